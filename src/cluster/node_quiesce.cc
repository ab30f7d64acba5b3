// Node: quiescing of idle partition groups and per-broker-pair liveness (docs/cluster.md
// "Quiescing").
//
// An idle Raft group costs a heartbeat round every heartbeat interval and an election timer
// on every replica; with thousands of partitions that is most of an idle broker's CPU. As
// CockroachDB does for its ranges, a leader whose group has nothing left to do (everything
// committed, applied and replicated to every live peer: RawNode::quiescable_as_leader) stops
// ticking it and sends its followers a quiesce notice; a follower that holds exactly the
// leader's log stops its election timer. Only awake groups are ticked, so a tick costs
// O(awake groups). Any message (but a heartbeat response), proposal or other Ready wakes a
// group (RaftGroup::step/pump).
//
// Liveness. A quiesced follower no longer notices a dead leader by its silence, so brokers
// exchange a ping every kPingIntervalMs on every broker pair (one message per peer, whatever
// the number of groups; skipped when something else was written to that peer since the last
// round) and any inbound message counts as a sign of life. A peer silent for
// one minimum election timeout, or whose connection failed (Node::on_peer_unreachable), is
// down: the quiesced groups it leads wake (their election timers run again, thesis §5.2), as
// do the groups this broker leads (CheckQuorum, thesis §6.2, must run again: a leader cut off
// from its followers steps down). A leader does not quiesce while a quorum is down, and
// quiesces without the followers that are down; when a peer is heard from again the groups
// this broker leads wake, so that the returning follower is caught up by heartbeats, and the
// peer is asked to wake the groups it leads (a quiesce notice without entries): a peer only
// thought down (a stalled event loop) must not leave the followers it woke here without
// heartbeats, or they would elect a new leader although the old one is alive.
//
// Waking. A quiesced follower woken by anything (a message, a proposal, a peer's loss) restarts
// its election timer (RawNode::unquiesce: in its lease for a full election timeout) and, at the
// next tick, asks its leader's broker to wake the group there (a wake request: a notice entry
// with term 0), unless that broker is down. Otherwise a follower woken by a message not from
// its leader, typically a returning peer's PreVote (which it refuses: in lease), kept ticking
// while its quiesced leader sent nothing; its election timer ran out, it pre-voted, the
// returning peer (leaderless) granted, and it won one term more: an extra leader change after
// every heal that reached the follower before the leader (tests/chaos/FINDINGS.md F2). For the
// same reason a follower that cannot honour its leader's quiesce notice (behind, or a Ready not
// yet handled) answers it with a wake request: it keeps ticking, so its leader must too.
// Safety is Raft's throughout: quiescing only stops counting time.
#include <algorithm>

#include "base/le_codec.h"
#include "cluster/ids.h"
#include "cluster/node.h"

namespace mq::cluster {
namespace {
constexpr std::int64_t kPingIntervalMs = 50;
// Idle brokers reconcile (every hosted partition against the metadata) this often; a metadata
// change reconciles at once anyway, and anything left to retry keeps the broker out of idle.
constexpr std::int64_t kIdleReconcileIntervalMs = 3000;
// Idle brokers scan their partitions for stopped replicas this often (Node::recover_interval_ms).
constexpr std::int64_t kIdleRecoverIntervalMs = 1000;
// Idle brokers: one tick-timer wake-up per kIdleTickStride ticks (100 ms with 10 ms ticks;
// at most a third of the minimum election timeout, so a controller follower still gets three
// heartbeat rounds per election timeout: the controller leader sends one round per wake-up,
// raft::RawNode::tick), and the waiter/recovery sweep every kIdleSweepIntervalMs instead of
// kSweepIntervalMs (controller command deadlines are then met up to that late; a stopped
// replica's re-open waits for its back-off anyway). A group that wakes cuts the stride short
// (Node::on_awake).
constexpr std::uint32_t kIdleTickStride = 10;
constexpr std::int64_t kSweepIntervalMs = 50;
constexpr std::int64_t kIdleSweepIntervalMs = 250;
// One notice entry: group u64 | term u64 | index u64.
constexpr std::size_t kNoticeEntryBytes = 24;

// A quiesce notice from `self` to `to` whose entries (group, term 0, index 0) in `body` (count
// u32 placeholder first) are wake requests (Node::ask_leaders_to_wake, Node::handle_quiesce).
raft::Message wake_request_message(BrokerId self, BrokerId to, Buffer body,
                                   std::uint64_t context) {
  le::encode_u32(body.data(), static_cast<std::uint32_t>((body.size() - 4) / kNoticeEntryBytes));
  raft::Message m;
  m.type = raft::MessageType::kReadIndex;
  m.from = node_of(self);
  m.to = node_of(to);
  m.context = context;
  raft::Entry e;
  e.payload = SharedBuffer(std::move(body));
  m.entries.push_back(std::move(e));
  return m;
}
}  // namespace

void Node::on_awake(GroupId group) {
  if (group == kControllerGroup) return;
  awake_.insert(group);
  woken_.insert(group);  // ask_leaders_to_wake, at the next tick
  cut_idle_tick_short();  // that tick comes within tick_ms, not an idle stride
}

void Node::ask_leaders_to_wake(const std::vector<NodeId>& down) {
  if (woken_.empty()) return;
  const NodeId self = node_of(config_.id);
  std::map<BrokerId, Buffer> requests;  // count u32, then (group, term 0, index 0) entries
  for (GroupId id : woken_) {
    auto found = partitions_.find(id);
    if (found == partitions_.end()) continue;
    PartitionGroup& g = *found->second;
    // Quiesced again (its leader quiesced it meanwhile), or no leader to wake: nothing to ask.
    if (!g.started() || g.failed() || g.quiesced() || g.is_raft_leader()) continue;
    const NodeId leader = g.leader();
    if (leader == kNoNode || leader == self) continue;
    if (std::find(down.begin(), down.end(), leader) != down.end()) continue;
    const BrokerId b = broker_of(leader);
    if (link_blocked(b)) continue;
    Buffer& body = requests[b];
    if (body.size() == 0) le::put_u32(body, 0);
    le::put_u64(body, id.value());
    le::put_u64(body, 0);
    le::put_u64(body, 0);
  }
  woken_.clear();
  if (!transport_) return;
  for (auto& [b, body] : requests) {
    ++metrics_.wake_requests_sent;
    transport_->send(b, kControlPlaneGroup,
                     wake_request_message(config_.id, b, std::move(body), kQuiesceContext));
  }
}

void Node::on_waiter(GroupId group) {
  if (group != kControllerGroup) waiting_.insert(group);
}

void Node::sweep_partitions(std::int64_t now_ms) {
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    auto found = partitions_.find(*it);
    if (found == partitions_.end()) {
      it = waiting_.erase(it);
      continue;
    }
    found->second->sweep(now_ms);
    it = found->second->has_waiters() ? std::next(it) : waiting_.erase(it);
  }
}

std::size_t Node::awake_partitions() const {
  std::size_t n = 0;
  for (const auto& [id, g] : partitions_) n += g->quiesced() ? 0 : 1;
  return n;
}

std::size_t Node::quiesced_partitions() const { return partitions_.size() - awake_partitions(); }

void Node::tick_partitions(std::int64_t now_ms) {
  (void)now_ms;
  std::vector<NodeId> down;
  for (const PeerLiveness& l : liveness_) {
    if (l.down) down.push_back(node_of(l.peer));
  }
  ask_leaders_to_wake(down);
  // Quiesce notices, one message per follower broker: count u32, then the entries.
  std::map<BrokerId, Buffer> notices;
  const std::int64_t started = steady_now_ms();
  for (auto it = awake_.begin(); it != awake_.end();) {
    auto found = partitions_.find(*it);
    if (found == partitions_.end() || found->second->quiesced() || found->second->failed()) {
      it = awake_.erase(it);  // removed, quiesced as a follower, or stopped by a storage error
      continue;
    }
    PartitionGroup& g = *found->second;
    g.tick();
    // Past the tick's budget the Readies wait for a later turn of the loop (loop stalls,
    // tests/chaos/FINDINGS.md F2): every group is still ticked.
    if (steady_now_ms() - started < kDrainBudgetMs) {
      g.pump();
    } else {
      schedule_pump(g.id());
    }
    if (!g.is_raft_leader() || !g.maybe_quiesce_as_leader(down)) {
      ++it;
      continue;
    }
    auto [term, index] = g.quiesced_at();
    raft::ConfState cs = g.node().conf_state();
    std::vector<NodeId> members = cs.voters;
    members.insert(members.end(), cs.learners.begin(), cs.learners.end());
    for (NodeId n : members) {
      BrokerId b = broker_of(n);
      if (b == config_.id || std::find(down.begin(), down.end(), n) != down.end()) continue;
      Buffer& body = notices[b];
      if (body.size() == 0) le::put_u32(body, 0);
      le::put_u64(body, g.id().value());
      le::put_u64(body, term.value());
      le::put_u64(body, index.value());
    }
    it = awake_.erase(it);
  }
  if (!transport_) return;
  for (auto& [b, body] : notices) {
    le::encode_u32(body.data(), static_cast<std::uint32_t>((body.size() - 4) / kNoticeEntryBytes));
    if (link_blocked(b)) continue;
    raft::Message m;
    m.type = raft::MessageType::kReadIndex;
    m.from = node_of(config_.id);
    m.to = node_of(b);
    m.context = kQuiesceContext;
    raft::Entry e;
    e.payload = SharedBuffer(std::move(body));
    m.entries.push_back(std::move(e));
    transport_->send(b, kControlPlaneGroup, std::move(m));
  }
}

std::int64_t Node::reconcile_interval_ms() const {
  const std::int64_t base = config_.reconcile_interval_ms;
  if (!awake_.empty() || !orphan_since_ms_.empty() || !registering_.empty()) return base;
  return std::max(base, kIdleReconcileIntervalMs);
}

bool Node::idle() const {
  if (!awake_.empty() || !waiting_.empty() || !forwards_.empty() || !campaign_due_ms_.empty()) {
    return false;
  }
  if (!ready_ || !controller_ || controller_->leader() == kNoNode) return false;
  return std::none_of(liveness_.begin(), liveness_.end(),
                      [](const PeerLiveness& l) { return l.down; });
}

std::uint32_t Node::idle_tick_stride() const {
  if (!idle()) return 1;
  return std::max<std::uint32_t>(1, std::min(kIdleTickStride, config_.election_ticks / 3));
}

void Node::cut_idle_tick_short() {
  if (tick_stride_ <= 1 || !*alive_ || stopped_) return;
  const auto now = std::chrono::steady_clock::now();
  const auto tick = std::chrono::milliseconds(config_.tick_ms);
  if (tick_timer_.expiry() <= now + tick) return;  // already due within a tick
  // The timer was armed for tick_stride_ ticks; it fires one tick from now instead, and the
  // controller then gets the ticks that have passed since the last wake-up (time runs at the
  // same rate), the woken groups their first tick.
  const std::int64_t elapsed = steady_now_ms() - last_tick_wake_ms_;
  tick_stride_ = static_cast<std::uint32_t>(
      std::clamp<std::int64_t>(elapsed / config_.tick_ms + 1, 1, tick_stride_));
  arm(tick_timer_, config_.tick_ms, &Node::on_tick);
}

std::int64_t Node::sweep_interval_ms() const {
  return idle() ? kIdleSweepIntervalMs : kSweepIntervalMs;
}

std::int64_t Node::recover_interval_ms() const {
  return idle() && recovery_.empty() ? kIdleRecoverIntervalMs : kSweepIntervalMs;
}

void Node::handle_quiesce(BrokerId from, const raft::Message& message) {
  if (message.entries.empty()) {
    // A wake request: `from` had considered this broker down and woke the groups this broker
    // leads there; their leaders here must heartbeat again, or those followers time out and
    // elect a new leader although this one is alive.
    wake_groups_for(BrokerId(-1));
    return;
  }
  if (message.entries.size() != 1) return;
  le::LeReader r(message.entries[0].payload.view());
  std::uint32_t count = 0;
  if (!r.read_u32(&count) || count > r.remaining() / kNoticeEntryBytes) return;
  Buffer refused;  // wake requests for the notices a follower here could not honour
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uint64_t group = 0, term = 0, index = 0;
    if (!r.read_u64(&group) || !r.read_u64(&term) || !r.read_u64(&index)) return;
    auto found = partitions_.find(GroupId(group));
    if (found == partitions_.end()) continue;
    if (term == 0) {
      // A wake request (ask_leaders_to_wake): a follower of a group led here woke; heartbeats
      // must resume before its election timer runs out. Not for a group no longer led here.
      if (found->second->quiesced() && found->second->is_raft_leader()) {
        ++metrics_.wake_requests_honoured;
        found->second->wake();
      }
      continue;
    }
    // Not quiescing here (a notice overtaken by newer entries, this replica behind, a Ready
    // not yet handled) while following `from`: it keeps ticking while its leader sends
    // nothing, and its election timeout would run out; its PreVote wakes the leader, which
    // ignores it (in lease), but a leaderless third replica (one coming back) grants it
    // (tests/chaos/FINDINGS.md F2). So the leader is asked to wake again at once; it
    // quiesces again once this replica can follow.
    PartitionGroup& g = *found->second;
    if (!g.quiesce_as_follower(node_of(from), Term(term), LogIndex(index)) && !g.quiesced() &&
        !g.failed() && !g.is_raft_leader() && g.leader() == node_of(from)) {
      if (refused.size() == 0) le::put_u32(refused, 0);
      le::put_u64(refused, group);
      le::put_u64(refused, 0);
      le::put_u64(refused, 0);
    }
  }
  if (refused.size() != 0 && transport_ && !link_blocked(from)) {
    ++metrics_.wake_requests_sent;
    transport_->send(from, kControlPlaneGroup,
                     wake_request_message(config_.id, from, std::move(refused), kQuiesceContext));
  }
}

bool Node::note_inbound(BrokerId from) {
  if (link_blocked(from)) return false;
  std::int64_t now = steady_now_ms();
  for (PeerLiveness& l : liveness_) {
    if (l.peer != from) continue;
    l.last_heard_ms = now;
    if (l.down) {
      l.down = false;
      log("broker " + std::to_string(from.value()) +
          " is reachable again: waking the groups led here and asking it to wake those it leads");
      wake_groups_for(BrokerId(-1));
      if (transport_) {
        raft::Message m;  // a quiesce notice without entries: a wake request (handle_quiesce)
        m.type = raft::MessageType::kReadIndex;
        m.from = node_of(config_.id);
        m.to = node_of(from);
        m.context = kQuiesceContext;
        transport_->send(from, kControlPlaneGroup, std::move(m));
      }
    }
    return true;
  }
  if (from != config_.id) liveness_.push_back(PeerLiveness{from, now, false});
  return true;
}

bool Node::link_blocked(BrokerId peer) const {
  return !blocked_for_test_.empty() && blocked_for_test_.count(peer) != 0;
}

void Node::block_links_for_test(std::set<BrokerId> peers) { blocked_for_test_ = std::move(peers); }

bool Node::peer_down(BrokerId peer) const {
  for (const PeerLiveness& l : liveness_) {
    if (l.peer == peer) return l.down;
  }
  return false;
}

void Node::check_liveness(std::int64_t now_ms) {
  auto track = [&](BrokerId id) {
    if (id == config_.id) return;
    bool known = std::any_of(liveness_.begin(), liveness_.end(),
                             [&](const PeerLiveness& l) { return l.peer == id; });
    if (!known) liveness_.push_back(PeerLiveness{id, now_ms, false});
  };
  for (const BrokerAddress& b : config_.brokers) track(b.id);
  for (const auto& [id, address] : joined_peers_) track(id);  // brokers added by a join
  // One minimum election timeout of silence (pings every kPingIntervalMs).
  const std::int64_t timeout_ms =
      std::max<std::int64_t>(static_cast<std::int64_t>(config_.election_ticks) * config_.tick_ms,
                             4 * kPingIntervalMs);
  for (PeerLiveness& l : liveness_) {
    if (!l.down && now_ms - l.last_heard_ms > timeout_ms) {
      mark_peer_down(l.peer, now_ms, "it was silent for the liveness timeout");
    }
  }
  if (now_ms - last_ping_ms_ < kPingIntervalMs || !transport_) return;
  last_ping_ms_ = now_ms;
  for (PeerLiveness& l : liveness_) {
    if (link_blocked(l.peer)) continue;
    if (!ping_needed(l)) {
      ++metrics_.pings_suppressed;
      continue;
    }
    ++metrics_.pings_sent;
    raft::Message m;
    m.type = raft::MessageType::kReadIndex;
    m.from = node_of(config_.id);
    m.to = node_of(l.peer);
    m.context = kPingContext;
    transport_->send(l.peer, kControlPlaneGroup, std::move(m));
  }
}

bool Node::ping_needed(PeerLiveness& l) {
  // The peer's liveness check counts any inbound message, so a ping only matters on a pair
  // with no other traffic: e.g. between two followers of the controller (leader and followers
  // exchange heartbeats every heartbeat interval, and busy partitions their appends). The
  // transport counts what it wrote to the peer's socket; if that grew by more than our own
  // last ping, the peer heard from us within the last interval. Failure detection is
  // unchanged: the peer still hears from us at least every kPingIntervalMs plus one round.
  auto stats = transport_->peer_stats(l.peer);
  if (!stats.has_value()) return true;  // unknown to the transport: send() reports it
  const std::uint64_t sent = stats->messages_sent;
  const std::uint64_t own = l.pinged ? 1 : 0;
  const bool other_traffic = sent > l.sent_at_round + own;
  l.sent_at_round = sent;
  l.pinged = !other_traffic;
  return l.pinged;
}

void Node::mark_peer_down(BrokerId peer, std::int64_t now_ms, const char* why) {
  (void)now_ms;
  for (PeerLiveness& l : liveness_) {
    if (l.peer != peer) continue;
    if (l.down) return;
    l.down = true;
    log("broker " + std::to_string(peer.value()) + " considered down (" + why +
        "): waking the groups it leads and those led here");
    wake_groups_for(peer);
    return;
  }
  if (peer != config_.id) {
    liveness_.push_back(PeerLiveness{peer, 0, true});
    wake_groups_for(peer);
  }
}

void Node::wake_groups_for(BrokerId peer) {
  const NodeId self = node_of(config_.id);
  const NodeId other = peer.value() < 0 ? kNoNode : node_of(peer);
  for (auto& [id, g] : partitions_) {
    if (!g->quiesced()) continue;
    NodeId leader = g->leader();
    if (leader == self || (other != kNoNode && leader == other)) g->wake();
  }
}

}  // namespace mq::cluster
