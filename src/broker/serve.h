// `raftmq serve`: wires a cluster::Node (Raft groups, storage, controller, transport) and the
// Kafka server on one event loop thread (docs/architecture.md), runs until SIGTERM or SIGINT,
// then shuts down gracefully: stop accepting Kafka connections, cluster::Node::shutdown (which
// hands leaderships over and syncs), exit. A second signal exits at once.
#pragma once

#include <string>
#include <vector>

#include "broker/config.h"

namespace mq::broker {

// Returns the process exit code.
int run_serve(const BrokerConfig& config);
int serve_main(const std::vector<std::string>& args);
std::string serve_usage();
// False in a build without src/cluster (serve_unavailable.cc).
bool cluster_layer_available();

}  // namespace mq::broker
