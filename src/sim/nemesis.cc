#include "sim/nemesis.h"

#include <algorithm>
#include <string>

namespace mq::sim {

namespace {
std::string names(const std::vector<NodeId>& ids) {
  std::string out = "{";
  for (NodeId id : ids) {
    if (out.size() > 1) out += ',';
    out += std::to_string(id.value());
  }
  return out + "}";
}
}  // namespace

void Nemesis::start() {
  active_ = true;
  cluster_->schedule(cluster_->prng().range(options_.interval_min_us, options_.interval_max_us),
                     [this] { loop(); });
}

void Nemesis::stop(NetworkOptions reliable) {
  active_ = false;
  ++partition_generation_;  // pending heals become no-ops
  cluster_->network().heal();
  cluster_->network().set_options(reliable);
  cluster_->stop_faults();
  for (const auto& [id, node] : cluster_->nodes()) {
    node->paused_until = 0;
    if (!node->up && !node->removed) cluster_->restart(node->id);
  }
  if (cluster_->tracing()) cluster_->trace_line("nemesis", "STOP: network healed, all restarted");
}

void Nemesis::loop() {
  if (!active_) return;
  act();
  cluster_->schedule(cluster_->prng().range(options_.interval_min_us, options_.interval_max_us),
                     [this] { loop(); });
}

NodeId Nemesis::pick_victim() {
  Prng& prng = cluster_->prng();
  if (prng.chance(options_.unsynced_bias_percent, 100)) {
    // Crash in the middle of a write: a node whose Ready is waiting for its fsync.
    // Writes of a new term or vote first: the state §5 requires on disk before answering.
    std::vector<NodeId> writing;
    std::vector<NodeId> voting;
    for (const auto& [id, node] : cluster_->nodes()) {
      if (!node->up || !node->in_progress || node->pending.empty()) continue;
      writing.push_back(node->id);
      if (node->pending.hard_state && node->pending.hard_state->vote != kNoNode &&
          node->pending.hard_state->vote != node->id) {  // a vote granted to another node
        voting.push_back(node->id);
      }
    }
    if (!voting.empty()) return voting[prng.uniform(voting.size())];
    if (!writing.empty()) return writing[prng.uniform(writing.size())];
  }
  std::vector<NodeId> leaders = cluster_->leaders();
  if (!leaders.empty() && prng.chance(options_.leader_bias_percent, 100)) return leaders.front();
  std::vector<NodeId> up = cluster_->up_nodes();
  if (up.empty()) return kNoNode;
  return up[prng.uniform(up.size())];
}

void Nemesis::act() {
  Prng& prng = cluster_->prng();
  const std::uint64_t total = options_.crash_weight + options_.partition_weight +
                              options_.pause_weight + options_.quiet_weight;
  if (total == 0) return;
  std::uint64_t roll = prng.uniform(total);
  if (roll < options_.crash_weight) {
    const NodeId victim = pick_victim();
    if (victim == kNoNode) return;
    ++crashes_;
    if (cluster_->tracing()) cluster_->trace_line("nemesis", "crash n" + std::to_string(victim.value()));
    cluster_->crash(victim);
    cluster_->schedule(prng.range(options_.down_min_us, options_.down_max_us),
                       [this, victim] {
                         if (active_) cluster_->restart(victim);
                       });
    return;
  }
  roll -= options_.crash_weight;
  if (roll < options_.partition_weight) {
    partition();
    return;
  }
  roll -= options_.partition_weight;
  if (roll < options_.pause_weight) {
    const NodeId victim = pick_victim();
    if (victim == kNoNode) return;
    ++pauses_;
    cluster_->pause(victim, 1 + prng.uniform(options_.pause_max_us));
  }
}

void Nemesis::partition() {
  Prng& prng = cluster_->prng();
  SimNetwork& network = cluster_->network();
  network.heal();
  std::vector<NodeId> members = cluster_->member_ids();
  if (members.size() < 2) return;
  // Fisher-Yates with the run's Prng: a random order to cut.
  for (std::size_t i = members.size() - 1; i > 0; --i) {
    std::swap(members[i], members[prng.uniform(i + 1)]);
  }
  std::string what;
  const std::uint64_t kind = prng.uniform(4);
  if (kind == 0) {
    const std::size_t cut = 1 + prng.uniform(members.size() - 1);
    std::vector<NodeId> a(members.begin(), members.begin() + static_cast<std::ptrdiff_t>(cut));
    std::vector<NodeId> b(members.begin() + static_cast<std::ptrdiff_t>(cut), members.end());
    network.split(a, b);
    what = "split " + names(a) + " | " + names(b);
  } else if (kind == 1) {
    const NodeId from = members.front();
    std::vector<NodeId> to(members.begin() + 1, members.end());
    if (to.size() > 1 && prng.chance(1, 2)) to.resize(1 + prng.uniform(to.size()));
    network.one_way(from, to);
    what = "one-way loss n" + std::to_string(from.value()) + " -> " + names(to);
  } else if (kind == 2 && members.size() >= 3) {
    const NodeId bridge = members.front();
    const std::size_t cut = 1 + prng.uniform(members.size() - 2);
    std::vector<NodeId> a(members.begin() + 1, members.begin() + 1 + static_cast<std::ptrdiff_t>(cut));
    std::vector<NodeId> b(members.begin() + 1 + static_cast<std::ptrdiff_t>(cut), members.end());
    network.bridge(a, bridge, b);
    what = "bridge n" + std::to_string(bridge.value()) + " between " + names(a) + " and " + names(b);
  } else {
    std::vector<NodeId> leaders = cluster_->leaders();
    const NodeId victim = leaders.empty() ? members.front() : leaders.front();
    network.isolate(victim, members);
    what = "isolate n" + std::to_string(victim.value());
  }
  ++partitions_;
  const std::uint64_t generation = ++partition_generation_;
  if (cluster_->tracing()) cluster_->trace_line("nemesis", "partition: " + what);
  cluster_->schedule(prng.range(options_.partition_min_us, options_.partition_max_us),
                     [this, generation] {
                       if (!active_ || generation != partition_generation_) return;
                       cluster_->network().heal();
                       if (cluster_->tracing()) cluster_->trace_line("nemesis", "heal");
                     });
}

}  // namespace mq::sim
