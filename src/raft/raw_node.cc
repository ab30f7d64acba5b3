#include "raft/raw_node.h"

#include <algorithm>
#include <limits>

#include "raft/raft.h"

namespace mq::raft {

namespace {
// Runs `fn` on the core and checks state and delta invariants around it when enabled.
template <typename Fn>
auto checked(Raft& raft, Fn&& fn) {
  if (!raft.invariants_enabled()) return fn();
  const Raft::InvariantSnapshot before = raft.invariant_snapshot();
  if constexpr (std::is_void_v<decltype(fn())>) {
    fn();
    raft.check_invariants(&before);
  } else {
    auto result = fn();
    raft.check_invariants(&before);
    return result;
  }
}
}  // namespace

Result<std::unique_ptr<RawNode>> RawNode::create(const Config& config,
                                                 const StorageView* storage) {
  MQ_ASSIGN_OR_RETURN(std::unique_ptr<Raft> raft, Raft::create(config, storage));
  if (raft->invariants_enabled()) raft->check_invariants(nullptr);
  return std::unique_ptr<RawNode>(new RawNode(std::move(raft)));
}

RawNode::RawNode(std::unique_ptr<Raft> raft) : raft_(std::move(raft)) {}
RawNode::~RawNode() = default;

void RawNode::tick(std::uint32_t ticks) {
  checked(*raft_, [&] { raft_->tick(ticks); });
}

Status RawNode::step(const Message& message) {
  return checked(*raft_, [&] { return raft_->step(message); });
}

void RawNode::campaign() {
  checked(*raft_, [&] { raft_->campaign(/*transfer=*/false); });
}

Result<LogIndex> RawNode::propose(SharedBuffer payload) {
  return checked(*raft_, [&] { return raft_->propose(std::move(payload)); });
}

Result<LogIndex> RawNode::propose_conf_change(const ConfChange& change) {
  return checked(*raft_, [&] { return raft_->propose_conf_change(change); });
}

Status RawNode::read_index(std::uint64_t request_context) {
  return checked(*raft_, [&] { return raft_->read_index(request_context); });
}

Status RawNode::transfer_leader(NodeId transferee) {
  return checked(*raft_, [&] { return raft_->transfer_leader(transferee); });
}

void RawNode::report_snapshot(NodeId to, bool success) {
  checked(*raft_, [&] { raft_->report_snapshot(to, success); });
}

void RawNode::report_unreachable(NodeId to) {
  checked(*raft_, [&] { raft_->report_unreachable(to); });
}

void RawNode::forget_leader() {
  checked(*raft_, [&] { raft_->forget_leader(); });
}

void RawNode::set_abstain_until(LogIndex index) {
  checked(*raft_, [&] { raft_->set_abstain_until(index); });
}

LogIndex RawNode::abstain_until() const { return raft_->abstain_until(); }

bool RawNode::has_ready() const { return raft_->has_ready(); }

bool RawNode::quiescable_as_leader(std::span<const NodeId> down) const {
  return raft_->quiescable_as_leader(down);
}

bool RawNode::quiescable_as_follower(NodeId leader, Term term, LogIndex index) const {
  return raft_->quiescable_as_follower(leader, term, index);
}

void RawNode::unquiesce() { raft_->unquiesce(); }

Ready RawNode::ready() {
  return checked(*raft_, [&] { return raft_->ready(); });
}

void RawNode::advance(const Ready& ready) {
  checked(*raft_, [&] { raft_->advance(ready); });
}

std::vector<Message> RawNode::take_leader_messages() {
  return checked(*raft_, [&] { return raft_->take_leader_messages(); });
}

NodeStatus RawNode::status() const { return raft_->status(); }
LogIndex RawNode::committed() const { return raft_->log().committed(); }

bool RawNode::holds(LogIndex index, Term term) const {
  return raft_->log().match_term(index, term);
}

LogIndex RawNode::lowest_active_follower_next() const {
  LogIndex lowest(std::numeric_limits<std::uint64_t>::max());
  if (raft_->role() != Role::kLeader) return lowest;
  for (const auto& [id, pr] : raft_->tracker().progress) {
    if (id == raft_->id() || !pr.recent_active || pr.state == ProgressState::kSnapshot) continue;
    lowest = std::min(lowest, pr.next);
  }
  return lowest;
}

NodeId RawNode::id() const { return raft_->id(); }

ConfState RawNode::conf_state() const { return raft_->tracker().config.to_conf_state(); }

}  // namespace mq::raft
