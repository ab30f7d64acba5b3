#include "sim/workload.h"

#include <algorithm>

namespace mq::sim {

namespace {
constexpr std::size_t kPendingReadsMax = 256;
constexpr std::size_t kPendingWritesMax = 4096;
constexpr SimTime kReadTimeoutUs = 3'000'000;
constexpr SimTime kMarkerIntervalUs = 25'000;

bool contains(const std::vector<NodeId>& ids, NodeId id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}
}  // namespace

Workload::Workload(Cluster* cluster, WorkloadOptions options)
    : cluster_(cluster), options_(options) {}

void Workload::start() {
  loop_writes();
  loop_reads();
  if (options_.transfers || options_.membership) {
    cluster_->schedule(cluster_->prng().range(options_.admin_interval_min_us,
                                              options_.admin_interval_max_us),
                       [this] { loop_admin(); });
  }
}

void Workload::loop_writes() {
  if (!writing_) return;
  write_once(false);
  cluster_->schedule(1 + cluster_->prng().uniform(options_.write_interval_max_us),
                     [this] { loop_writes(); });
}

void Workload::loop_reads() {
  read_once();
  cluster_->schedule(1 + cluster_->prng().uniform(options_.read_interval_max_us),
                     [this] { loop_reads(); });
}

void Workload::loop_admin() {
  if (!admin_) return;
  admin_once();
  cluster_->schedule(cluster_->prng().range(options_.admin_interval_min_us,
                                            options_.admin_interval_max_us),
                     [this] { loop_admin(); });
}

void Workload::start_liveness_probe() {
  probing_ = true;
  loop_marker();
}

void Workload::loop_marker() {
  if (marker_acked()) return;
  write_once(true);
  cluster_->schedule(kMarkerIntervalUs, [this] { loop_marker(); });
}

// Clients find "the leader" the way real ones do: from whoever claims it. Any node that
// believes it leads is a candidate target, so a deposed leader that has not noticed yet
// gets requests too.
NodeId Workload::pick_target() {
  Prng& prng = cluster_->prng();
  std::vector<NodeId> leaders = cluster_->leaders();
  if (!leaders.empty() && prng.chance(85, 100)) {
    if (prng.chance(1, 2)) return leaders.front();
    return leaders[prng.uniform(leaders.size())];
  }
  std::vector<NodeId> up = cluster_->up_nodes();
  if (up.empty()) return kNoNode;
  return up[prng.uniform(up.size())];
}

void Workload::write_once(bool marker) {
  if (writes_.size() >= kPendingWritesMax) return;
  NodeId target = marker ? (cluster_->leaders().empty() ? kNoNode : cluster_->leaders().front())
                         : pick_target();
  if (target == kNoNode) return;
  const std::uint64_t id = next_write_id_++;
  SharedBuffer payload(std::string(marker ? "marker-" : "w-") + std::to_string(id));
  auto result = cluster_->propose(target, payload);
  ++writes_proposed_;
  if (cluster_->tracing()) {
    cluster_->trace_line("client", "write " + std::to_string(id) + " to n" +
                                       std::to_string(target.value()) + ": " +
                                       (result.has_value()
                                            ? "index " + std::to_string(result->value())
                                            : result.error().to_string()));
  }
  if (!result.has_value()) return;
  SimNode* node = cluster_->node(target);
  PendingWrite pending;
  pending.id = id;
  pending.incarnation = node->incarnation;
  pending.payload = std::move(payload);
  pending.marker = marker;
  writes_[{target.value(), result->value()}] = std::move(pending);
}

void Workload::read_once() {
  if (reads_.size() >= kPendingReadsMax) {
    // Expire reads whose node never answered (lost leadership, dropped forward).
    const SimTime now = cluster_->now();
    for (auto it = reads_.begin(); it != reads_.end();) {
      it = now - it->second.invoked > kReadTimeoutUs ? reads_.erase(it) : std::next(it);
    }
    if (reads_.size() >= kPendingReadsMax) return;
  }
  NodeId target = pick_target();
  if (target == kNoNode) return;
  const std::uint64_t context = next_read_id_++;
  PendingRead read;
  read.node = target;
  read.incarnation = cluster_->node(target)->incarnation;
  read.acked_before = cluster_->checker().max_acked_index();
  read.invoked = cluster_->now();
  // Registered before the call: a single-voter leader may answer within read_index().
  reads_[context] = read;
  if (cluster_->tracing()) {
    cluster_->trace_line("client", "read " + std::to_string(context) + " at n" +
                                       std::to_string(target.value()) + " (acked before: " +
                                       std::to_string(read.acked_before.value()) + ")");
  }
  Status status = cluster_->read_index(target, context);
  if (!status.is_ok() && cluster_->tracing()) {
    cluster_->trace_line("client", "read " + std::to_string(context) + " refused: " +
                                       status.to_string());
  }
  if (!status.is_ok()) reads_.erase(context);
}

void Workload::admin_once() {
  std::vector<NodeId> leaders = cluster_->leaders();
  if (leaders.empty()) return;
  const NodeId leader = leaders.front();
  Prng& prng = cluster_->prng();
  const bool do_transfer =
      options_.transfers && (!options_.membership || prng.chance(1, 2));
  if (!do_transfer) {
    if (options_.membership) change_membership(leader);
    return;
  }
  const raft::ConfState conf = cluster_->node(leader)->raft->conf_state();
  std::vector<NodeId> others;
  for (NodeId voter : conf.voters) {
    if (voter != leader) others.push_back(voter);
  }
  if (others.empty()) return;
  const NodeId transferee = others[prng.uniform(others.size())];
  ++transfers_requested_;
  Status status = cluster_->transfer_leader(leader, transferee);
  if (cluster_->tracing()) {
    cluster_->trace_line("client", "transfer leadership n" + std::to_string(leader.value()) +
                                       " -> n" + std::to_string(transferee.value()) +
                                       (status.is_ok() ? "" : ": " + status.to_string()));
  }
}

void Workload::change_membership(NodeId leader) {
  Prng& prng = cluster_->prng();
  const raft::ConfState conf = cluster_->node(leader)->raft->conf_state();
  if (conf.joint()) return;  // auto-leave is on its way
  raft::ConfChange change;
  std::string what;
  const auto& voters = conf.voters;
  const auto& learners = conf.learners;
  const std::uint64_t roll = prng.uniform(100);
  if (!learners.empty() && roll < 35) {
    const NodeId learner = learners[prng.uniform(learners.size())];
    change.changes.push_back({raft::ConfChangeType::kAddNode, learner});
    what = "promote learner n" + std::to_string(learner.value());
  } else if (!learners.empty() && roll < 60) {
    // Replace a voter (possibly the leader itself) with a learner: two voter changes, so the
    // core goes through a joint configuration and leaves it automatically (thesis §4.3).
    const NodeId learner = learners[prng.uniform(learners.size())];
    const NodeId victim = prng.chance(1, 2) ? leader : voters[prng.uniform(voters.size())];
    change.changes.push_back({raft::ConfChangeType::kAddNode, learner});
    change.changes.push_back({raft::ConfChangeType::kRemoveNode, victim});
    what = "replace n" + std::to_string(victim.value()) + " by n" + std::to_string(learner.value());
  } else if (voters.size() > options_.min_voters && roll < 80) {
    const NodeId victim = prng.chance(1, 3) ? leader : voters[prng.uniform(voters.size())];
    change.changes.push_back({raft::ConfChangeType::kRemoveNode, victim});
    what = "remove voter n" + std::to_string(victim.value());
  } else {
    // Add a learner: a node that is not a member yet (created earlier but never admitted,
    // or a brand-new one while the budget lasts).
    NodeId joiner = kNoNode;
    for (const auto& [id, node] : cluster_->nodes()) {
      if (!node->removed && node->up && !cluster_->ever_member(node->id) &&
          !contains(voters, node->id) &&
          !contains(learners, node->id) && !contains(conf.voters_outgoing, node->id)) {
        joiner = node->id;
        break;
      }
    }
    if (joiner == kNoNode) {
      if (extra_nodes_created_ >= options_.max_extra_nodes) return;
      ++extra_nodes_created_;
      joiner = NodeId(cluster_->nodes().rbegin()->first + 1);
      cluster_->add_node(joiner, options_.joiner_timing);
    }
    change.changes.push_back({raft::ConfChangeType::kAddLearner, joiner});
    what = "add learner n" + std::to_string(joiner.value());
  }
  if (std::any_of(change.changes.begin(), change.changes.end(), [&](const auto& c) {
        return c.type == raft::ConfChangeType::kRemoveNode && c.node_id == leader;
      })) {
    // The core refuses to remove its own leader (thesis §3.10: transfer first). Hand the
    // leadership to another voter, then propose the change to whoever leads then.
    NodeId transferee = kNoNode;
    for (NodeId voter : voters) {
      if (voter != leader) transferee = voter;
    }
    if (transferee == kNoNode) return;
    Status status = cluster_->transfer_leader(leader, transferee);
    if (cluster_->tracing()) {
      cluster_->trace_line("client", "to " + what + ": transfer leadership n" +
                                         std::to_string(leader.value()) + " -> n" +
                                         std::to_string(transferee.value()) +
                                         (status.is_ok() ? "" : ": " + status.to_string()));
    }
    cluster_->schedule(300'000, [this, change, what] {
      std::vector<NodeId> leaders = cluster_->leaders();
      if (!admin_ || leaders.empty()) return;
      propose_change(leaders.front(), change, what);
    });
    return;
  }
  propose_change(leader, change, what);
}

void Workload::propose_change(NodeId leader, const raft::ConfChange& change,
                              const std::string& what) {
  ++conf_changes_proposed_;
  auto result = cluster_->propose_conf_change(leader, change);
  if (cluster_->tracing()) {
    cluster_->trace_line("client", "conf change at n" + std::to_string(leader.value()) + ": " +
                                       what + ": " +
                                       (result.has_value()
                                            ? "index " + std::to_string(result->value())
                                            : result.error().to_string()));
  }
}

void Workload::on_applied(SimNode& node, const raft::Entry& entry) {
  auto it = writes_.find({node.id.value(), entry.index.value()});
  if (it != writes_.end()) {
    PendingWrite pending = std::move(it->second);
    writes_.erase(it);
    if (pending.incarnation == node.incarnation && entry.type == raft::EntryType::kNormal &&
        entry.payload == pending.payload) {
      ++writes_acked_;
      cluster_->checker().on_write_acked(pending.id, entry.index, entry);
      if (pending.marker && !marker_acked()) marker_index_ = entry.index;
      if (cluster_->tracing()) {
        cluster_->trace_line("client", "write " + std::to_string(pending.id) + " ACK at index " +
                                           std::to_string(entry.index.value()));
      }
    }
  }
  complete_reads(node);
}

void Workload::on_read_state(SimNode& node, const raft::ReadState& read_state) {
  auto it = reads_.find(read_state.request_context);
  if (it == reads_.end()) return;
  PendingRead& read = it->second;
  if (read.node != node.id || read.incarnation != node.incarnation || read.has_index) return;
  read.read_index = read_state.index;
  read.has_index = true;
  complete_reads(node);
}

void Workload::complete_reads(SimNode& node) {
  for (auto it = reads_.begin(); it != reads_.end();) {
    PendingRead& read = it->second;
    if (!read.has_index || read.node != node.id || read.incarnation != node.incarnation ||
        node.state.applied < read.read_index) {
      ++it;
      continue;
    }
    ++reads_completed_;
    if (cluster_->tracing()) {
      cluster_->trace_line("client", "read " + std::to_string(it->first) + " DONE at n" +
                                         std::to_string(node.id.value()) + " read_index=" +
                                         std::to_string(read.read_index.value()) + " applied=" +
                                         std::to_string(node.state.applied.value()));
    }
    cluster_->checker().on_read_completed(node.id, it->first, read.acked_before, read.read_index,
                                          node.state);
    it = reads_.erase(it);
  }
}

void Workload::on_crash(SimNode& node) {
  // Outstanding requests at a crashed node have an unknown outcome: never acknowledged.
  for (auto it = writes_.begin(); it != writes_.end();) {
    it = it->first.first == node.id.value() ? writes_.erase(it) : std::next(it);
  }
  for (auto it = reads_.begin(); it != reads_.end();) {
    it = it->second.node == node.id ? reads_.erase(it) : std::next(it);
  }
}

}  // namespace mq::sim
