// Quorum math for majority and joint configurations (thesis §4.3; etcd quorum/). Pure
// functions over small value types; no dependency on the rest of the core.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/strong_id.h"

namespace mq::raft::quorum {

enum class VoteResult : std::uint8_t {
  kPending,  // neither a win nor a loss is decided yet
  kLost,     // a quorum cannot be reached any more
  kWon,      // a quorum granted
};
const char* vote_result_name(VoteResult result);

// Where each voter's log is known to be durable up to. A voter with no entry counts as 0.
class AckedIndexer {
 public:
  virtual ~AckedIndexer() = default;
  virtual std::optional<LogIndex> acked_index(NodeId id) const = 0;
};

// An AckedIndexer over a plain map (tests, small tools).
class MapAckedIndexer : public AckedIndexer {
 public:
  explicit MapAckedIndexer(std::map<NodeId, LogIndex> acked) : acked_(std::move(acked)) {}
  std::optional<LogIndex> acked_index(NodeId id) const override;

 private:
  std::map<NodeId, LogIndex> acked_;
};

// A set of voters deciding by simple majority.
// Invariant: ids is sorted and free of duplicates.
class MajorityConfig {
 public:
  MajorityConfig() = default;
  explicit MajorityConfig(std::vector<NodeId> ids);  // sorts and deduplicates

  const std::vector<NodeId>& ids() const { return ids_; }
  bool contains(NodeId id) const;
  void insert(NodeId id);
  void erase(NodeId id);
  std::size_t size() const { return ids_.size(); }
  bool empty() const { return ids_.empty(); }
  bool operator==(const MajorityConfig&) const = default;

  // The largest index acknowledged by a majority. An empty config returns LogIndex::max()
  // so that a joint config with an empty half defers to the other half.
  LogIndex committed_index(const AckedIndexer& acked) const;
  // Missing votes are pending. An empty config wins (again for the joint case).
  VoteResult vote_result(const std::map<NodeId, bool>& votes) const;
  std::string describe() const;  // "(1 2 3)"

 private:
  std::vector<NodeId> ids_;
};

// Two majority configs, both of which must agree (thesis §4.3). A non-joint config has an
// empty outgoing half.
struct JointConfig {
  MajorityConfig incoming;
  MajorityConfig outgoing;
  bool operator==(const JointConfig&) const = default;

  bool joint() const { return !outgoing.empty(); }
  bool contains(NodeId id) const { return incoming.contains(id) || outgoing.contains(id); }
  std::vector<NodeId> ids() const;  // union, sorted

  LogIndex committed_index(const AckedIndexer& acked) const;
  VoteResult vote_result(const std::map<NodeId, bool>& votes) const;
  std::string describe() const;  // "(1 2 3)" or "(1 2 3)&&(1 2)"
};

}  // namespace mq::raft::quorum
