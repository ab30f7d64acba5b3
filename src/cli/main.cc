// The raftmq command: `raftmq serve` runs a broker; every other command is a Kafka client
// (librdkafka) talking to a running cluster.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "broker/serve.h"
#include "cluster/internal_topics.h"
#include "cli/args.h"
#include "cli/client_commands.h"
#include "cli/group_commands.h"

namespace {

void usage() {
  std::fputs(
      "usage: raftmq <command> [args]\n"
      "  serve [--config FILE] [--option value]...   run a broker (serve --help: all options)\n"
      "  topic create NAME [--partitions N] [--replication-factor R] [--config k=v]...\n"
      "  topic list | topic describe NAME | topic delete NAME\n"
      "  produce TOPIC [--message M]... [--key K] [--acks all|1|0] [--compression C]\n"
      "  consume TOPIC [--from-beginning] [--count N] [--partition P] [--print-key]\n"
      "  cluster status [--timeout-ms N]   every partition: leader, term, commit, lag\n"
      "  partition move TOPIC/PARTITION --to ID,ID,... [--wait] | partition reassignments\n"
      "  broker decommission ID [--wait] [--timeout S] move every replica off a broker\n"
      "  broker remove ID [--timeout S]                drain a broker, then remove it from the cluster\n"
      "  controller voters [list] | controller voters add|remove|auto ID [--timeout S]\n"
      "                                   the controller's voters: list, promote, demote, automatic\n"
      "  group list | group describe GROUP (offsets, log end, lag per partition)\n"
      "  group reset-offsets GROUP --topic T --to-earliest|--to-latest|--to-offset N\n"
      "client commands take --bootstrap host:port (default 127.0.0.1:9092) and\n"
      "--property k=v (any librdkafka setting)\n",
      stderr);
}

int run_client(int (*command)(mq::cli::Args&), int argc, char** argv) {
  mq::cli::Args args(argc, argv, 2,
                     {"from-beginning", "print-key", "wait", "to-earliest", "to-latest"});
  if (!args.error().empty()) {
    std::fprintf(stderr, "raftmq: %s\n", args.error().c_str());
    return 2;
  }
  int rc = command(args);
  for (const std::string& flag : args.unused()) {
    std::fprintf(stderr, "raftmq: warning: %s was not used by this command\n", flag.c_str());
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  std::string command = argv[1];
  if (command == "serve") {
    mq::cluster::enable_internal_topics(true);  // __consumer_offsets (docs/groups.md)
    return mq::broker::serve_main(std::vector<std::string>(argv + 2, argv + argc));
  }
  if (command == "topic") return run_client(mq::cli::topic_command, argc, argv);
  if (command == "produce") return run_client(mq::cli::produce_command, argc, argv);
  if (command == "consume") return run_client(mq::cli::consume_command, argc, argv);
  if (command == "cluster") return run_client(mq::cli::cluster_command, argc, argv);
  if (command == "partition") return run_client(mq::cli::partition_command, argc, argv);
  if (command == "broker") return run_client(mq::cli::broker_command, argc, argv);
  if (command == "controller") return run_client(mq::cli::controller_command, argc, argv);
  if (command == "group") return run_client(mq::cli::group_command, argc, argv);
  std::fprintf(stderr, "raftmq: unknown command '%s'\n", command.c_str());
  usage();
  return 2;
}
