// The broker's group coordinator, created on the first group request a broker serves and
// ticking on that broker's event loop from then on (one per ClusterApi, i.e. per broker; tests
// may run several brokers in one process). Keeps the Kafka layer free of wiring: handlers ask
// for the coordinator of ctx.cluster.
#pragma once

#include <asio/io_context.hpp>

#include "cluster/api.h"
#include "groups/coordinator.h"

namespace mq::groups {

Coordinator& coordinator_for(cluster::ClusterApi& cluster, asio::io_context& io);
// Destroys the coordinator of `cluster` (tests: before the cluster or the loop goes away).
void forget_coordinator(cluster::ClusterApi& cluster);

}  // namespace mq::groups
