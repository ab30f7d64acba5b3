// The client-side raftmq commands, built on librdkafka (a real Kafka client, not one of our
// own): topic create|list|describe|delete, produce, consume, cluster status. Each returns the
// process exit code (0 ok, 1 failure, 2 usage error) and prints errors to stderr.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"
#include "cli/args.h"
#include "protocol/gen/messages.h"

namespace mq::cli {

int topic_command(Args& args);
int produce_command(Args& args);
int consume_command(Args& args);
int cluster_command(Args& args);
int partition_command(Args& args);
int broker_command(Args& args);
int controller_command(Args& args);  // controller_voters.cc

// One raw Kafka request (version 0) to the first broker of `bootstrap` (host:port[,...]) over
// a fresh blocking connection, for APIs librdkafka has no client call for
// (membership_commands.cc).
Result<protocol::AnyResponse> kafka_call(const std::string& bootstrap,
                                         const protocol::AnyRequest& request, std::int16_t api_key);

}  // namespace mq::cli
