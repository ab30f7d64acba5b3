// InteractionEnv: drives a set of RawNodes through data-driven scripts (src/raft/testdata/),
// in the manner of etcd-io/raft's rafttest/interaction_env.go. Each node has its own
// MemoryStorage; messages travel through one in-flight queue owned by the env and are only
// delivered when a script says so (deliver-msgs, stabilize), so every interleaving in a
// script is explicit and the output is deterministic (fixed seeds, no clocks).
//
// The host side of the Ready contract (ready.h) is implemented by process_ready(): queue
// `messages`, persist snapshot/entries/hard state, then queue `messages_after_persist`, apply
// `committed_entries`, advance().
//
// Each command's handler lives in its own handler_<command>.cc. The list of commands and
// their arguments is in handle() (interaction_env.cc) and in src/raft/testdata/README.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "base/result.h"
#include "datadriven/datadriven.h"
#include "raft/memory_storage.h"
#include "raft/raw_node.h"

namespace mq::raft::rafttest {

using datadriven::TestData;

struct Node {
  Config config;
  std::unique_ptr<MemoryStorage> storage;
  std::unique_ptr<RawNode> raw_node;
  // The host's state machine: (index, payload) of every applied normal entry, in order. A
  // received snapshot replaces it with the snapshot's data (encode_state_machine).
  std::vector<std::pair<LogIndex, std::string>> state_machine;
  LogIndex applied;  // Invariant: committed entries arrive in order, starting at applied + 1.
  // A Ready whose messages were sent but whose persistence has not happened yet
  // (ready-send); the node gets no new Ready until ready-persist finishes it.
  std::optional<Ready> held_ready;
};

// The initial stable state of a new node (add-nodes).
struct Bootstrap {
  bool has_config = false;  // voters/learners given
  Snapshot snapshot;        // membership and position; index 0: no snapshot (bootstrapped)
  std::vector<Entry> preload;  // entries after the snapshot (paper figures)
  HardState hard_state;
};
Result<std::unique_ptr<MemoryStorage>> make_storage(const Bootstrap& bootstrap);

class InteractionEnv {
 public:
  InteractionEnv() = default;
  // Mutation testing: every node gets these Config::bugs (raftmq's deliberately broken
  // behaviours) so a script can be shown to catch them.
  explicit InteractionEnv(std::uint32_t forced_bugs) : forced_bugs_(forced_bugs) {}

  // Runs one script block and returns its output (errors are part of the output as
  // "error: ...", as in etcd's env, so a script can assert that a command fails).
  std::string handle(const TestData& block);

  // Handlers (one .cc each). They write to out_ and return an error for bad arguments or a
  // refused operation.
  Status handle_add_nodes(const TestData& block);
  Status handle_campaign(const TestData& block);
  Status handle_propose(const TestData& block);
  Status handle_propose_conf_change(const TestData& block);
  Status handle_tick(const TestData& block);  // tick, tick-election, tick-heartbeat
  Status handle_process_ready(const TestData& block);
  Status handle_deliver_msgs(const TestData& block);
  Status handle_stabilize(const TestData& block);
  Status handle_raft_log(const TestData& block);
  Status handle_raft_state(const TestData& block);
  Status handle_status(const TestData& block);
  Status handle_partition(const TestData& block);  // partition, isolate, heal
  Status handle_read_index(const TestData& block);
  Status handle_transfer_leadership(const TestData& block);
  Status handle_compact(const TestData& block);  // compact, snapshot
  Status handle_report(const TestData& block);   // report-unreachable, report-snapshot
  Status handle_log_level(const TestData& block);
  Status handle_send_msg(const TestData& block);  // inject a hand-made message
  Status handle_duplicate_msgs(const TestData& block);
  Status handle_restart(const TestData& block);

  // Shared machinery.
  Result<Node*> node(std::uint64_t id);
  // The node ids named by the block's bare numeric arguments (all nodes when there are none).
  Result<std::vector<std::uint64_t>> node_ids(const TestData& block, bool default_all) const;
  // Handles one Ready of node `id` (prints it unless quiet). No-op without a Ready.
  Status process_ready(std::uint64_t id);
  // Delivers every queued message addressed to `id` (in queue order); returns how many were
  // taken off the queue (delivered or dropped).
  std::size_t deliver(std::uint64_t id, const std::set<std::uint64_t>& drop_to,
                      const std::string& type_filter);
  bool partitioned(NodeId from, NodeId to) const;
  std::ostream& out() { return out_; }
  bool quiet() const { return quiet_; }
  std::size_t node_count() const { return nodes_.size(); }

  // Formatting shared by several handlers.
  static std::string describe_ready(const Ready& ready);
  std::string describe_state(std::uint64_t id);

 private:
  // Persist (step 2 of the Ready contract) into the node's storage and apply (step 4).
  Status take_ready(Node& n);    // ready(), print, send `messages` (step 1), hold the rest
  Status finish_ready(Node& n);  // persist, send after-persist, apply, advance (steps 2-5)
  Status persist(Node& n, const Ready& ready);
  Status apply(Node& n, const Ready& ready);
  // After applying a conf change: the membership initial_state() reports on a restart.
  void persist_conf_state(Node& n);
  // After applying: record a snapshot at the applied index (etcd env's History).
  Status snapshot_applied(Node& n);

  // Storage side of compact/snapshot: a snapshot at `index` (<= applied) holding the state
  // machine up to it, then the log prefix up to it discarded.
  Status create_snapshot_and_compact(Node& n, LogIndex index, bool compact);
  void set_snapshot_unavailable(Node& n, bool unavailable);
  // Restart: the state machine and applied index come back from the storage's snapshot.
  Status restore_from_storage(Node& n);

  std::vector<std::unique_ptr<Node>> nodes_;  // node id i is nodes_[i-1]
  std::vector<Message> in_flight_;
  // Partition groups: a message is dropped when sender and receiver are in different groups
  // (nodes in no group talk to everyone not isolated).
  std::vector<std::set<std::uint64_t>> partition_;
  std::uint32_t forced_bugs_ = 0;
  bool quiet_ = false;  // log-level none: state changes still happen, nothing is printed
  std::ostringstream out_;
};

// Parses a MessageType by its message_type_name() ("MsgApp") or enumerator name ("kAppend").
std::optional<MessageType> parse_message_type(std::string_view name);
// "v4" / "l5" / "r2" (voter, learner, remove) as in etcd's confchange scripts.
Result<ConfChangeSingle> parse_conf_change_token(std::string_view token);
// Snapshot data: one "index payload" line per applied normal entry up to `index`.
std::string encode_state_machine(const Node& n, LogIndex index);
Result<std::vector<std::pair<LogIndex, std::string>>> decode_state_machine(BufferView data);

}  // namespace mq::raft::rafttest
