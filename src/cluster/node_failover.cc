// Node: fast failover after a leader's loss (docs/cluster.md "Failover (leader loss)").
//
// A connection to a peer that fails (refused, reset, EOF) on loopback or a LAN means the
// peer's process is gone; a network partition shows up as timeouts instead, well after the
// election timeout. So when the peer that led one of our groups becomes unreachable, the
// replica forgets that leader (it then grants an up-to-date candidate's PreVote/vote without
// waiting for its lease to lapse, thesis §4.2.3) and the remaining voters campaign in a fixed
// order, kCampaignStaggerMs apart (the first one usually wins; the others only campaign if no
// leader appeared). Safety is Raft's: PreVote still requires a majority that forgot the leader
// or timed out, so a single broker that lost its connection cannot disrupt a leader the
// others still hear from; at worst a PreVote fails. The randomized election timeout stays the
// fallback.
//
// Which survivor should win is a client matter. A Kafka client reconnects to a broker whose
// connection failed with an exponential back-off that a just-restarted broker does not reset:
// librdkafka (2.0) doubles `reconnect.backoff.ms` (100 ms) on every connection attempt up to
// `reconnect.backoff.max.ms` (10 s) and only starts again from 100 ms when the previous
// attempt is more than 10 s old, so a client whose attempt was refused while the broker was
// down may not try it again for up to 10 s after its restart. A new leader it cannot reach is
// a pause of that length (seen in test_failover: 7-8 s pauses ending exactly 10 s after the
// client's refused attempt). Hence:
// - a broker that (re)started within kClientBackoffWindowMs and has no Kafka client
//   connection open is probably unreachable for some clients: it campaigns only after every
//   other survivor had its turn (the penalty is decided when its turn comes, so a client that
//   connected to it right after the loss — librdkafka connects to a usable broker at once to
//   ask for metadata — counts). A broker with an open client connection is reachable by that
//   client whatever its back-off, and one up for longer than the window by every client. A
//   postponed broker that a client connects to later (the client's pick was itself in
//   back-off for a moment) campaigns at its next half-turn, before the penalized turns;
// - Metadata names, right after the loss, the survivor expected to win by that rule (for
//   peers, whose connections it cannot see, assuming a recently restarted one is penalized).
#include <algorithm>

#include "cluster/ids.h"
#include "cluster/node.h"
#include "transport/transport.h"

namespace mq::cluster {
namespace {
constexpr std::int64_t kFirstCampaignDelayMs = 20;  // lets the peers see the loss too
// Between two survivors' campaigns: long enough for a PreVote and a vote round trip on a
// loaded machine, so that two survivors never become candidates in the same term (a split
// vote only ends at the election timeout).
constexpr std::int64_t kCampaignStaggerMs = 150;
// librdkafka's default reconnect.backoff.max.ms (10 s) plus a margin: a broker (re)started
// within this window may still be in some client's reconnect back-off.
constexpr std::int64_t kClientBackoffWindowMs = 15000;
// How long after losing its leader Metadata names the expected winner instead of -1.
constexpr std::int64_t kExpectedLeaderWindowMs = 2000;
// Added to a penalized campaign beyond the other survivors' turns: room for a survivor whose
// first client connection arrives late (the client's pick was itself in back-off for a few
// hundred ms) to campaign before a penalized one.
constexpr std::int64_t kLateEvidenceRoomMs = 2 * kCampaignStaggerMs;
// At most one "postponed" log line per this interval (a loss concerns every hosted group).
constexpr std::int64_t kPostponeLogIntervalMs = 1000;

// The first "late evidence" campaign time >= now_ms for a survivor of rank `rank` among
// `voters`: halfway between the regular turns (which are kFirstCampaignDelayMs + k *
// kCampaignStaggerMs after the loss, penalized ones included), each rank on its own
// half-turns, so it never coincides with another survivor's campaign.
std::int64_t late_campaign_ms(std::int64_t lost_ms, std::int64_t rank, std::int64_t voters,
                              std::int64_t now_ms) {
  std::int64_t base = lost_ms + kFirstCampaignDelayMs + kCampaignStaggerMs / 2 +
                      rank * kCampaignStaggerMs;
  std::int64_t period = voters * kCampaignStaggerMs;
  if (now_ms <= base || period <= 0) return base;
  return base + (now_ms - base + period - 1) / period * period;
}
}  // namespace

void Node::client_connections_changed(std::size_t open) {
  bool gained = open > client_connections_;
  client_connections_ = open;
  if (!gained || postponed_campaigns_.empty()) return;
  // A client reached this broker while its campaigns wait behind the others': it is
  // reachable after all, so it campaigns at its next half-turn if that comes first.
  std::int64_t now = steady_now_ms();
  for (auto it = postponed_campaigns_.begin(); it != postponed_campaigns_.end();) {
    auto due = campaign_due_ms_.find(it->first);
    if (due == campaign_due_ms_.end()) {  // elected meanwhile, or campaigned
      it = postponed_campaigns_.erase(it);
      continue;
    }
    std::int64_t late = late_campaign_ms(it->second.lost_ms, it->second.rank,
                                         it->second.voters, now);
    due->second = std::min(due->second, late);
    it = postponed_campaigns_.erase(it);
  }
}

void Node::note_peer_heard(BrokerId peer) {
  auto awaiting = peers_awaiting_back_.find(peer);
  if (awaiting == peers_awaiting_back_.end()) return;
  peers_awaiting_back_.erase(awaiting);
  peer_back_ms_[peer] = steady_now_ms();
}

bool Node::leader_connection_lost_now(BrokerId leader) const {
  return leader != config_.id && transport_ && transport_->peer_connection_lost_now(leader);
}

bool Node::recently_restarted(BrokerId broker, std::int64_t now_ms) const {
  bool self_recent = now_ms - ready_started_ms_ < kClientBackoffWindowMs;
  if (broker == config_.id || self_recent) return self_recent;  // a peer's age is unknown then
  auto lost = peer_lost_ms_.find(broker);
  if (lost != peer_lost_ms_.end() && now_ms - lost->second < kClientBackoffWindowMs) return true;
  auto back = peer_back_ms_.find(broker);
  return back != peer_back_ms_.end() && now_ms - back->second < kClientBackoffWindowMs;
}

bool Node::clients_can_reach_self(std::int64_t now_ms) const {
  return client_connections_ > 0 || !recently_restarted(config_.id, now_ms);
}

std::vector<NodeId> Node::campaign_order(const std::vector<NodeId>& voters, NodeId dead) const {
  // By id only: every survivor must compute the same order, or two of them campaign at once
  // and split the vote (then only the election timeout ends it). Facts only one broker knows
  // (its client connections, its own restart) go into the penalty, which only moves a
  // campaign behind every unpenalized one, never into the same slot.
  std::vector<NodeId> order;
  for (NodeId v : voters) {
    if (v != dead && broker_alive(broker_of(v))) order.push_back(v);
  }
  std::sort(order.begin(), order.end());
  return order;
}

BrokerId Node::expected_leader(const RaftGroup& group, NodeId dead) const {
  std::int64_t now = steady_now_ms();
  if (!group.started()) return BrokerId(-1);
  if (dead == kNoNode) {
    auto since = leaderless_since_ms_.find(group.id());
    if (since == leaderless_since_ms_.end() || now - since->second > kExpectedLeaderWindowMs) {
      return BrokerId(-1);
    }
  }
  // The survivor whose campaign comes first: its rank in the shared order, plus the penalty
  // for one clients probably cannot reach. This broker knows whether clients reach itself
  // (this request's client does); a peer is assumed penalized while recently restarted (or
  // while this broker's own uptime is too short to know).
  const std::vector<NodeId> voters = group.node().conf_state().voters;
  std::vector<NodeId> order = campaign_order(voters, dead);
  // §5.2: only a candidate with votes from a majority of the voters wins. With a majority of
  // the replicas unreachable no survivor can be elected, so none is named: a client told a
  // survivor would retry a broker that cannot lead, and an observer (the chaos harness's
  // term counters) would take that survivor for the leader until the dead replicas return.
  if (order.size() * 2 <= voters.size()) return BrokerId(-1);
  const auto penalty = static_cast<std::int64_t>(order.size()) * kCampaignStaggerMs;
  BrokerId best(-1);
  std::int64_t best_delay = 0;
  for (std::size_t rank = 0; rank < order.size(); ++rank) {
    BrokerId b = broker_of(order[rank]);
    bool reachable = b == config_.id ? clients_can_reach_self(now) : !recently_restarted(b, now);
    std::int64_t delay = static_cast<std::int64_t>(rank) * kCampaignStaggerMs +
                         (reachable ? 0 : penalty);
    if (best.value() < 0 || delay < best_delay) {
      best = b;
      best_delay = delay;
    }
  }
  return best;
}

void Node::on_peer_unreachable(BrokerId peer) {
  NodeId node = node_of(peer);
  std::int64_t now = steady_now_ms();
  peer_lost_ms_[peer] = now;
  peers_awaiting_back_.insert(peer);
  mark_peer_down(peer, now, "its connection failed");  // wakes quiesced groups (node_quiesce.cc)
  auto handle = [&](RaftGroup& g) {
    g.report_unreachable(node);
    if (!g.forget_leader_if(node)) return;
    std::vector<NodeId> order = campaign_order(g.node().conf_state().voters, node);
    auto self = std::find(order.begin(), order.end(), node_of(config_.id));
    if (self == order.end()) return;  // not a voter
    std::int64_t rank = self - order.begin();
    campaign_due_ms_[g.id()] = now + kFirstCampaignDelayMs + rank * kCampaignStaggerMs;
    // Decided when the turn comes (run_due_campaigns): after every other survivor's turn.
    campaign_penalty_ms_[g.id()] =
        static_cast<std::int64_t>(order.size()) * kCampaignStaggerMs + kLateEvidenceRoomMs;
    postponed_campaigns_.erase(g.id());
    leaderless_since_ms_[g.id()] = now;
    schedule_pump(g.id());
  };
  if (controller_) handle(*controller_);
  for (auto& [id, g] : partitions_) handle(*g);
}

void Node::run_due_campaigns(std::int64_t now_ms) {
  for (auto it = campaign_due_ms_.begin(); it != campaign_due_ms_.end();) {
    if (it->second > now_ms) {
      ++it;
      continue;
    }
    GroupId id = it->first;
    auto penalty = campaign_penalty_ms_.find(id);
    if (penalty != campaign_penalty_ms_.end()) {
      std::int64_t postpone_ms = penalty->second;
      campaign_penalty_ms_.erase(penalty);
      if (!clients_can_reach_self(now_ms)) {
        it->second = now_ms + postpone_ms;
        auto since = leaderless_since_ms_.find(id);
        RaftGroup* g = find_group(id);
        if (since != leaderless_since_ms_.end() && g != nullptr) {
          std::vector<NodeId> order = campaign_order(g->node().conf_state().voters, kNoNode);
          auto self = std::find(order.begin(), order.end(), node_of(config_.id));
          if (self != order.end()) {
            postponed_campaigns_[id] = PostponedCampaign{
                since->second, self - order.begin(), static_cast<std::int64_t>(order.size())};
          }
        }
        if (now_ms - last_postpone_log_ms_ >= kPostponeLogIntervalMs) {
          last_postpone_log_ms_ = now_ms;
          log("campaigns after the leader's loss postponed by " + std::to_string(postpone_ms) +
              " ms: restarted recently and no Kafka client connected (clients may still be in "
              "reconnect back-off)");
        }
        ++it;
        continue;
      }
    }
    it = campaign_due_ms_.erase(it);
    if (RaftGroup* g = find_group(id)) {
      g->campaign_if_leaderless();
      schedule_pump(id);
    }
  }
}

}  // namespace mq::cluster
