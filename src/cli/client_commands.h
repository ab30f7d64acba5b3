// The client-side raftmq commands, built on librdkafka (a real Kafka client, not one of our
// own): topic create|list|describe|delete, produce, consume, cluster status. Each returns the
// process exit code (0 ok, 1 failure, 2 usage error) and prints errors to stderr.
#pragma once

#include "cli/args.h"

namespace mq::cli {

int topic_command(Args& args);
int produce_command(Args& args);
int consume_command(Args& args);
int cluster_command(Args& args);
int partition_command(Args& args);
int broker_command(Args& args);

}  // namespace mq::cli
