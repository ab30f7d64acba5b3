#include "raft/quorum/quorum.h"

#include <algorithm>
#include <array>

#include "base/assert.h"

namespace mq::raft::quorum {

const char* vote_result_name(VoteResult result) {
  switch (result) {
    case VoteResult::kPending: return "VotePending";
    case VoteResult::kLost: return "VoteLost";
    case VoteResult::kWon: return "VoteWon";
  }
  return "VoteUnknown";
}

std::optional<LogIndex> MapAckedIndexer::acked_index(NodeId id) const {
  auto it = acked_.find(id);
  if (it == acked_.end()) return std::nullopt;
  return it->second;
}

MajorityConfig::MajorityConfig(std::vector<NodeId> ids) : ids_(std::move(ids)) {
  std::sort(ids_.begin(), ids_.end());
  ids_.erase(std::unique(ids_.begin(), ids_.end()), ids_.end());
}

bool MajorityConfig::contains(NodeId id) const {
  return std::binary_search(ids_.begin(), ids_.end(), id);
}

void MajorityConfig::insert(NodeId id) {
  auto it = std::lower_bound(ids_.begin(), ids_.end(), id);
  if (it == ids_.end() || *it != id) ids_.insert(it, id);
}

void MajorityConfig::erase(NodeId id) {
  auto it = std::lower_bound(ids_.begin(), ids_.end(), id);
  if (it != ids_.end() && *it == id) ids_.erase(it);
}

LogIndex MajorityConfig::committed_index(const AckedIndexer& acked) const {
  const std::size_t n = ids_.size();
  if (n == 0) return LogIndex::max();
  // Small configs (the common case) sort on the stack; no allocation per commit check.
  constexpr std::size_t kStackVoters = 16;
  std::array<LogIndex, kStackVoters> stack{};
  std::vector<LogIndex> heap;
  LogIndex* srt = stack.data();
  if (n > kStackVoters) {
    heap.resize(n);
    srt = heap.data();
  }
  for (std::size_t i = 0; i < n; ++i) {
    srt[i] = acked.acked_index(ids_[i]).value_or(LogIndex(0));
  }
  std::sort(srt, srt + n);
  // The (n/2+1)-th largest acked index is held by a majority: in ascending order it sits
  // at position n - (n/2 + 1).
  const std::size_t quorum = n / 2 + 1;
  MQ_DASSERT(quorum <= n);
  return srt[n - quorum];
}

VoteResult MajorityConfig::vote_result(const std::map<NodeId, bool>& votes) const {
  if (ids_.empty()) return VoteResult::kWon;
  std::size_t granted = 0;
  std::size_t missing = 0;
  for (NodeId id : ids_) {
    auto it = votes.find(id);
    if (it == votes.end()) {
      ++missing;
    } else if (it->second) {
      ++granted;
    }
  }
  const std::size_t quorum = ids_.size() / 2 + 1;
  if (granted >= quorum) return VoteResult::kWon;
  if (granted + missing >= quorum) return VoteResult::kPending;
  return VoteResult::kLost;
}

std::string MajorityConfig::describe() const {
  std::string out = "(";
  for (std::size_t i = 0; i < ids_.size(); ++i) {
    if (i > 0) out += ' ';
    out += std::to_string(ids_[i].value());
  }
  out += ')';
  return out;
}

std::vector<NodeId> JointConfig::ids() const {
  std::vector<NodeId> out;
  std::set_union(incoming.ids().begin(), incoming.ids().end(), outgoing.ids().begin(),
                 outgoing.ids().end(), std::back_inserter(out));
  return out;
}

LogIndex JointConfig::committed_index(const AckedIndexer& acked) const {
  // Thesis §4.3: an entry is committed in C_old,new only with majorities of both halves.
  return std::min(incoming.committed_index(acked), outgoing.committed_index(acked));
}

VoteResult JointConfig::vote_result(const std::map<NodeId, bool>& votes) const {
  const VoteResult a = incoming.vote_result(votes);
  const VoteResult b = outgoing.vote_result(votes);
  if (a == b) return a;
  if (a == VoteResult::kLost || b == VoteResult::kLost) return VoteResult::kLost;
  return VoteResult::kPending;  // one won, the other is pending
}

std::string JointConfig::describe() const {
  if (outgoing.empty()) return incoming.describe();
  return incoming.describe() + "&&" + outgoing.describe();
}

}  // namespace mq::raft::quorum
