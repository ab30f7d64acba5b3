#include "cluster/internal_topics.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "cluster/node.h"

namespace mq::cluster {
namespace {

constexpr std::string_view kOffsetsTopic = "__consumer_offsets";
constexpr std::int64_t kRetryIntervalMs = 2000;
constexpr std::int32_t kPartitionsMax = 1000;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::int32_t offsets_partitions() {
  const char* env = std::getenv("RAFTMQ_OFFSETS_TOPIC_PARTITIONS");
  if (env == nullptr) return kOffsetsTopicPartitionsDefault;
  char* end = nullptr;
  long n = std::strtol(env, &end, 10);
  if (end == env || *end != '\0' || n < 1 || n > kPartitionsMax) {
    return kOffsetsTopicPartitionsDefault;
  }
  return static_cast<std::int32_t>(n);
}

std::atomic<bool> g_enabled{false};

struct Attempt {
  std::int64_t last_ms = -kRetryIntervalMs;
  std::shared_ptr<bool> in_flight = std::make_shared<bool>(false);
};

}  // namespace

void enable_internal_topics(bool enabled) { g_enabled = enabled; }

void ensure_internal_topics(Node& node) {
  if (!g_enabled) return;
  const ControllerGroup* controller = node.controller();
  if (controller == nullptr || !controller->leader_ready()) return;
  if (controller->state().find_topic(kOffsetsTopic) != nullptr) return;
  // Per node (several nodes may share a process in tests); loop thread only.
  static auto* attempts = new std::map<const Node*, Attempt>();
  Attempt& attempt = (*attempts)[&node];
  std::int64_t now = now_ms();
  if (*attempt.in_flight || now - attempt.last_ms < kRetryIntervalMs) return;
  std::size_t configured = std::max<std::size_t>(1, node.config().brokers.size());
  std::size_t wanted = std::min<std::size_t>(3, configured);
  MetadataSnapshot md = node.metadata();
  auto alive = static_cast<std::size_t>(
      std::count_if(md.brokers.begin(), md.brokers.end(), [](const BrokerInfo& b) { return b.alive; }));
  if (alive < wanted) return;  // a replication factor below 3 would stay so forever
  attempt.last_ms = now;
  *attempt.in_flight = true;
  TopicSpec spec;
  spec.name = std::string(kOffsetsTopic);
  spec.partitions = offsets_partitions();
  spec.replication_factor = static_cast<std::int16_t>(wanted);
  spec.configs["cleanup.policy"] = "compact";
  std::vector<TopicSpec> specs;
  specs.push_back(std::move(spec));
  node.create_topics(std::move(specs), 10000,
                     [flag = attempt.in_flight](std::vector<AdminResult>) { *flag = false; });
}

}  // namespace mq::cluster
