#include "raft/testing/cluster.h"

#include <algorithm>
#include <string>

#include "base/assert.h"

namespace mq::raft::testing {

Cluster::Cluster(std::size_t n, std::function<void(Config&)> config_fn)
    : config_fn_(std::move(config_fn)) {
  ConfState cs;
  for (std::size_t i = 1; i <= n; ++i) cs.voters.push_back(NodeId(i));
  for (NodeId id : cs.voters) create_node(id, cs);
}

Cluster::Cluster(std::vector<NodeId> voters, std::vector<NodeId> learners,
                 std::function<void(Config&)> config_fn)
    : config_fn_(std::move(config_fn)) {
  ConfState cs;
  cs.voters = voters;
  cs.learners = learners;
  for (NodeId id : voters) create_node(id, cs);
  for (NodeId id : learners) create_node(id, cs);
}

void Cluster::create_node(NodeId id, const ConfState& conf_state) {
  TestNode& tn = nodes_[id];
  tn.config.id = id;
  tn.config.random_seed = 42;
  tn.config.check_invariants = true;
  if (config_fn_) config_fn_(tn.config);
  tn.config.id = id;
  tn.storage = std::make_unique<MemoryStorage>(conf_state);
  start(id);
}

void Cluster::add_node(NodeId id, const ConfState& conf_state) { create_node(id, conf_state); }

void Cluster::start(NodeId id) {
  TestNode& tn = nodes_.at(id);
  auto node = RawNode::create(tn.config, tn.storage.get());
  MQ_ASSERT(node.has_value(), "%s", node.status().to_string().c_str());
  tn.node = std::move(node).value();
}

std::vector<NodeId> Cluster::ids() const {
  std::vector<NodeId> out;
  for (const auto& [id, tn] : nodes_) out.push_back(id);
  return out;
}

bool Cluster::process_ready(NodeId id) {
  TestNode& tn = nodes_.at(id);
  if (!tn.node->has_ready()) return false;
  handle_ready(id, tn.node->ready());
  return true;
}

void Cluster::handle_ready(NodeId id, const Ready& rd) {
  TestNode& tn = nodes_.at(id);
  for (const Message& m : rd.messages) queue_.push_back(m);
  if (rd.snapshot) MQ_ASSERT(tn.storage->apply_snapshot(*rd.snapshot).is_ok());
  MQ_ASSERT(tn.storage->append(rd.entries_to_persist).is_ok());
  if (rd.hard_state) tn.storage->set_hard_state(*rd.hard_state);
  if (rd.must_sync) tn.synced_hard_state = tn.storage->hard_state();
  for (const Message& m : rd.messages_after_persist) queue_.push_back(m);
  bool conf_changed = false;
  for (const Entry& e : rd.committed_entries) {
    tn.applied.push_back(e);
    conf_changed |= e.type == EntryType::kConfChange;
  }
  for (const ReadState& rs : rd.read_states) tn.read_states.push_back(rs);
  if (record_readies) tn.readies.push_back(rd);
  tn.node->advance(rd);
  if (conf_changed || rd.snapshot) tn.storage->set_conf_state(tn.node->conf_state());
}

void Cluster::deliver_queued() {
  std::deque<Message> batch;
  batch.swap(queue_);
  for (Message& m : batch) {
    if (cut_.count({m.from, m.to}) != 0) continue;
    if (dropped_types_.count(m.type) != 0) continue;
    if (filter_ && !filter_(m)) continue;
    auto it = nodes_.find(m.to);
    if (it == nodes_.end()) continue;
    delivered_.push_back(m);
    (void)it->second.node->step(m);
  }
}

void Cluster::stabilize(std::size_t max_rounds) {
  for (std::size_t round = 0; round < max_rounds; ++round) {
    bool moved = false;
    for (auto& [id, tn] : nodes_) moved |= process_ready(id);
    if (!queue_.empty()) {
      moved = true;
      deliver_queued();
    }
    if (!moved) return;
  }
  std::string recent;
  const std::size_t n = std::min<std::size_t>(delivered_.size(), 12);
  for (std::size_t i = delivered_.size() - n; i < delivered_.size(); ++i) {
    recent += "\n  " + describe(delivered_[i]);
  }
  MQ_UNREACHABLE("cluster did not stabilize in %zu rounds; last messages:%s", max_rounds,
                 recent.c_str());
}

void Cluster::tick(NodeId id, std::size_t ticks) {
  for (std::size_t i = 0; i < ticks; ++i) nodes_.at(id).node->tick();
}

void Cluster::tick_all(std::size_t ticks) {
  for (std::size_t i = 0; i < ticks; ++i) {
    for (auto& [id, tn] : nodes_) tn.node->tick();
  }
}

void Cluster::elect(NodeId id) {
  nodes_.at(id).node->campaign();
  stabilize();
}

std::optional<NodeId> Cluster::leader() const {
  std::optional<NodeId> out;
  for (const auto& [id, tn] : nodes_) {
    if (tn.node->status().soft_state.role == Role::kLeader) {
      if (!out || tn.node->status().hard_state.term >
                      nodes_.at(*out).node->status().hard_state.term) {
        out = id;
      }
    }
  }
  return out;
}

void Cluster::isolate(NodeId id) {
  for (const auto& [other, tn] : nodes_) {
    if (other == id) continue;
    cut(id, other);
  }
}

void Cluster::cut(NodeId a, NodeId b) {
  cut_.insert({a, b});
  cut_.insert({b, a});
}

void Cluster::heal() {
  cut_.clear();
  dropped_types_.clear();
  filter_ = nullptr;
}

void Cluster::restart(NodeId id) {
  TestNode& tn = nodes_.at(id);
  tn.node.reset();
  // Drop messages to the crashed node that were in flight.
  std::deque<Message> kept;
  for (Message& m : queue_) {
    if (m.to != id) kept.push_back(std::move(m));
  }
  queue_.swap(kept);
  tn.config.applied = LogIndex(0);
  tn.applied.clear();
  start(id);
}

void Cluster::crash_and_restart(NodeId id) {
  TestNode& tn = nodes_.at(id);
  tn.storage->set_hard_state(tn.synced_hard_state);
  restart(id);
}

void Cluster::replace_storage(NodeId id, const MemoryStorage& storage) {
  *nodes_.at(id).storage = storage;
  nodes_.at(id).synced_hard_state = storage.hard_state();
  restart(id);
}

std::vector<Message> Cluster::take_messages() {
  std::vector<Message> out(queue_.begin(), queue_.end());
  queue_.clear();
  return out;
}

}  // namespace mq::raft::testing
