// A small in-memory cluster for the core's own unit tests: nodes over MemoryStorage and a
// message queue delivered in FIFO order, with per-link drop filters. Deterministic. (The
// simulator with faults and checkers lives in src/sim; this is only a test fixture.)
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "raft/memory_storage.h"
#include "raft/raw_node.h"

namespace mq::raft::testing {

struct TestNode {
  Config config;
  std::unique_ptr<MemoryStorage> storage;
  std::unique_ptr<RawNode> node;
  std::vector<Entry> applied;          // every committed entry applied, in order
  std::vector<ReadState> read_states;  // every ReadState received
  std::vector<Ready> readies;          // the Readies processed (when record_readies)
  // The hard state as of the last Ready with must_sync (what survives a power loss: a
  // commit-only change is written without fsync).
  HardState synced_hard_state;
};

class Cluster {
 public:
  // Nodes 1..n, all voters, with `config_fn` adjusting each node's Config.
  explicit Cluster(std::size_t n, std::function<void(Config&)> config_fn = nullptr);
  // Nodes with the given voters and learners (ids), bootstrapped with that membership.
  Cluster(std::vector<NodeId> voters, std::vector<NodeId> learners,
          std::function<void(Config&)> config_fn = nullptr);

  RawNode& node(NodeId id) { return *nodes_.at(id).node; }
  RawNode& node(std::uint64_t id) { return node(NodeId(id)); }
  TestNode& test_node(std::uint64_t id) { return nodes_.at(NodeId(id)); }
  MemoryStorage& storage(std::uint64_t id) { return *nodes_.at(NodeId(id)).storage; }
  std::vector<NodeId> ids() const;

  // Adds a node with empty storage (or the given ConfState) that is not yet a member.
  void add_node(NodeId id, const ConfState& conf_state = {});

  // Processes one node's Ready: persist, queue messages, apply, advance. Returns false when
  // it had none.
  bool process_ready(NodeId id);
  // The same for a Ready the test took (and inspected) itself.
  void handle_ready(NodeId id, const Ready& ready);
  // Delivers queued messages and processes Readies until nothing moves (bounded).
  void stabilize(std::size_t max_rounds = 10000);
  // Delivers only the currently queued messages once (no Ready processing).
  void deliver_queued();
  void tick(NodeId id, std::size_t ticks = 1);
  void tick_all(std::size_t ticks = 1);
  // campaign() on `id` and stabilize.
  void elect(NodeId id);
  std::optional<NodeId> leader() const;

  // Network faults.
  void isolate(NodeId id);
  void cut(NodeId a, NodeId b);  // both directions
  void heal();
  void drop_type(MessageType type) { dropped_types_.insert(type); }
  // Called on every message before delivery; may modify it; false drops it.
  void set_message_filter(std::function<bool(Message&)> keep) { filter_ = std::move(keep); }

  // Crash (losing nothing: MemoryStorage is the "disk") and restart from storage.
  void restart(NodeId id);
  // Crash losing what was not fsynced (the hard state falls back to the last synced one),
  // and restart.
  void crash_and_restart(NodeId id);
  // Replaces a node's storage (e.g. a prepared log) and restarts it from it.
  void replace_storage(NodeId id, const MemoryStorage& storage);
  // Removes and returns every queued message.
  std::vector<Message> take_messages();

  std::deque<Message>& queue() { return queue_; }
  std::vector<Message>& delivered() { return delivered_; }
  bool record_readies = false;

 private:
  void create_node(NodeId id, const ConfState& conf_state);
  void start(NodeId id);

  std::function<void(Config&)> config_fn_;
  std::map<NodeId, TestNode> nodes_;
  std::deque<Message> queue_;
  std::vector<Message> delivered_;
  std::set<std::pair<NodeId, NodeId>> cut_;
  std::set<MessageType> dropped_types_;
  std::function<bool(Message&)> filter_;
};

}  // namespace mq::raft::testing
