// Test helpers for driving one real PartitionGroup by hand (Raft core, GroupStorage, the
// in-memory file system): a recording host, plain record batches, a produce outcome, and
// the votes of a second voter granted by hand. Used by the partition-level cluster tests.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cluster/group_storage.h"
#include "cluster/partition.h"
#include "protocol/record_batch.h"
#include "storage/memory_file_system.h"

namespace mq::cluster::testing {

// One record with `value`, no key, timestamp 5000, in a plain (non-idempotent) batch.
inline SharedBuffer plain_batch(const std::string& value) {
  protocol::RecordInput r;
  r.value = Buffer(std::string_view(value));
  r.timestamp = 5000;
  std::vector<protocol::RecordInput> inputs;
  inputs.push_back(std::move(r));
  return SharedBuffer(*protocol::build_record_batch(protocol::RecordBatchOptions{}, inputs));
}

// Keeps what the group sends so that the test can answer as the other voters would.
class RecordingHost : public GroupHost {
 public:
  bool send_message(GroupId, raft::Message m) override {
    sent.push_back(std::move(m));
    return true;
  }
  void log(std::string_view) override {}
  std::vector<raft::Message> sent;
};

// What a produce callback was given.
struct ProduceOutcome {
  bool done = false;
  Result<ProduceResult> result = Status::internal("not answered");
};

// Node 1 of `voters` (group 1, "t-0", in `directory`), started and initialised, with no
// elections but the ones the test starts.
inline std::unique_ptr<PartitionGroup> open_partition_node1(storage::MemoryFileSystem* fs,
                                                            storage::ManualClock* clock,
                                                            GroupHost* host,
                                                            const std::string& directory,
                                                            std::vector<NodeId> voters) {
  GroupStorageOptions o;
  o.directory = directory;
  o.name = "t-0";
  o.bootstrap.voters = std::move(voters);
  auto s = GroupStorage::open(fs, clock, nullptr, o);
  MQ_ASSERT(s.has_value(), "%s", s.error().to_string().c_str());
  RaftGroupOptions go;
  go.group = GroupId(1);
  go.name = "t-0";
  go.raft.id = NodeId(1);
  go.raft.election_ticks = 1000;
  go.raft.heartbeat_ticks = 1;
  auto p = std::make_unique<PartitionGroup>(host, go, PartitionOptions{}, std::move(*s));
  MQ_ASSERT(p->start().is_ok());
  MQ_ASSERT(p->init().is_ok());
  return p;
}

// Node 1 campaigns; every (pre-)vote it sends is granted by node 2 (bounded rounds, each
// preceded by `settle`). Returns whether node 1 became the Raft leader.
inline bool campaign_with_votes_of_node2(PartitionGroup& p, RecordingHost& host,
                                         const std::function<void()>& settle) {
  p.node().campaign();
  for (int round = 0; round < 6 && !p.is_raft_leader(); ++round) {
    settle();
    std::vector<raft::Message> sent;
    sent.swap(host.sent);
    for (const raft::Message& m : sent) {
      if (m.type != raft::MessageType::kVote && m.type != raft::MessageType::kPreVote) continue;
      raft::Message r;
      r.type = m.type == raft::MessageType::kVote ? raft::MessageType::kVoteResponse
                                                  : raft::MessageType::kPreVoteResponse;
      r.from = NodeId(2);
      r.to = NodeId(1);
      r.term = m.term;
      p.step(r);
    }
  }
  settle();
  return p.is_raft_leader();
}

}  // namespace mq::cluster::testing
