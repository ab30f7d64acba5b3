// raftmq cluster status: brokers, the controller leader and, for every partition of the
// cluster, its leader, Raft term, replicas, commit index and each replica's lag. The broker
// asked (--bootstrap) gathers each partition's status from its leader (raftmq's own Kafka API
// RaftmqClusterStatus, key 10000; cluster/node_status.cc); brokers that are down or did not
// answer within --timeout-ms are listed as unreachable and their partitions without leader.
// Exit code: 0 when every partition has a leader, 1 otherwise or on error, 2 on bad usage.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli/client_commands.h"
#include "cluster/node.h"

namespace mq::cli {
namespace {

constexpr std::int16_t kClusterStatusApiKey = 10000;
constexpr std::int64_t kTimeoutMsMax = 30000;

std::string join(const std::vector<BrokerId>& ids) {
  std::string out;
  for (BrokerId b : ids) out += (out.empty() ? "" : ",") + std::to_string(b.value());
  return "[" + out + "]";
}

void print_partition(const cluster::PartitionStatus& s) {
  std::printf("  %s-%d: leader %d", s.topic.c_str(), s.partition, s.leader.value());
  if (s.leader.value() < 0) {
    std::printf(" (none answered), replicas %s\n", join(s.voters).c_str());
    return;
  }
  std::printf(" term %" PRIu64 " commit %" PRIu64 " last %" PRIu64 " hw %" PRId64
              " log-end %" PRId64 " voters %s",
              s.term.value(), s.commit_index.value(), s.last_index.value(),
              s.high_watermark.value(), s.log_end_offset.value(), join(s.voters).c_str());
  if (!s.learners.empty()) std::printf(" learners %s", join(s.learners).c_str());
  std::printf("%s\n", s.failed ? " FAILED" : "");
  for (const cluster::ReplicaLag& r : s.replicas) {
    if (r.broker == s.leader) continue;
    std::printf("      replica %d%s: match %" PRIu64 ", lag %" PRIu64 " entries\n",
                r.broker.value(), r.learner ? " (learner)" : "", r.match.value(), r.lag_entries);
  }
}

}  // namespace

int cluster_command(Args& args) {
  const auto& words = args.positional();
  char* end = nullptr;
  std::string timeout_text = args.get_or("timeout-ms", "3000");
  long long timeout_ms = std::strtoll(timeout_text.c_str(), &end, 10);
  if (words.size() != 1 || words[0] != "status" || *end != '\0' || timeout_ms < 1 ||
      timeout_ms > kTimeoutMsMax) {
    std::fprintf(stderr,
                 "usage: raftmq cluster status [--bootstrap host:port] [--timeout-ms 1..30000]\n");
    return 2;
  }
  protocol::RaftmqClusterStatusRequest request;
  request.timeout_ms = static_cast<std::int32_t>(timeout_ms);
  auto answer = kafka_call(args.get_or("bootstrap", "127.0.0.1:9092"),
                           protocol::AnyRequest(std::move(request)), kClusterStatusApiKey);
  if (!answer.has_value()) {
    std::fprintf(stderr, "raftmq: cluster status: %s\n", answer.error().to_string().c_str());
    return 1;
  }
  const auto* response = std::get_if<protocol::RaftmqClusterStatusResponse>(&*answer);
  if (response == nullptr) {
    std::fprintf(stderr, "raftmq: cluster status: unexpected answer\n");
    return 1;
  }
  if (response->error_code != 0) {
    std::fprintf(stderr, "raftmq: cluster status: error %d: %s\n", response->error_code,
                 response->error_message.value_or("").c_str());
    return 1;
  }
  auto view = cluster::decode_cluster_view(response->view.view());
  if (!view.has_value()) {
    std::fprintf(stderr, "raftmq: cluster status: %s\n", view.error().to_string().c_str());
    return 1;
  }
  const cluster::ClusterStatus& local = view->local;
  std::printf("asked broker: %d\ncontroller leader: %d (term %" PRIu64 ", commit %" PRIu64 ")\n",
              local.self.value(), local.controller_leader.value(), local.controller_term.value(),
              local.controller_commit.value());
  std::printf("brokers:\n");
  for (const cluster::BrokerStatus& b : local.brokers) {
    bool unreachable = std::find(view->unreachable.begin(), view->unreachable.end(), b.id) !=
                       view->unreachable.end();
    std::printf("  %d %s:%u %s\n", b.id.value(), b.host.c_str(), b.kafka_port,
                unreachable ? "unreachable" : "up");
  }
  int without_leader = 0;
  std::printf("partitions (%zu):\n", view->partitions.size());
  for (const cluster::PartitionStatus& s : view->partitions) {
    if (s.leader.value() < 0) ++without_leader;
    print_partition(s);
  }
  std::printf("partitions without leader: %d\n", without_leader);
  return without_leader == 0 ? 0 : 1;
}

}  // namespace mq::cli
