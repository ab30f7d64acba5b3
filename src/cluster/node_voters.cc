// The operator's choice of controller voters (docs/cluster.md "Controller voters";
// `raftmq controller voters list|add|remove|auto N`).
//
// Desired state, then reconciliation (as for partition assignments): the choice is a
// replicated controller command (SetVoterChoice), so it survives leader changes and restarts;
// the controller leader's membership step (reconcile_controller_voters, every 200 ms) changes
// group 0 one server at a time (thesis §4.1) until the configuration matches it. A demotion is
// a single-server change of a voter into a learner (the voter set changes by one; §4.1 holds).
// The Raft core refuses to demote its own leader, so a leader chosen to become a learner first
// transfers its leadership (thesis §3.10, TimeoutNow) to the most caught-up live voter; the new
// leader, applying the same replicated choice, demotes it.
#include <algorithm>
#include <set>

#include "cluster/broker_join.h"
#include "cluster/controller.h"
#include "cluster/ids.h"
#include "cluster/node.h"

namespace mq::cluster {
namespace {

constexpr std::int64_t kVoterTransferRetryMs = 1000;  // leadership transfer before a self-demotion
constexpr std::int64_t kVoterBlockedLogMs = 10000;
constexpr std::int16_t kBrokerIdNotRegistered = 102;  // Kafka's BROKER_ID_NOT_REGISTERED

bool contains(const std::vector<NodeId>& nodes, NodeId n) {
  return std::find(nodes.begin(), nodes.end(), n) != nodes.end();
}

std::string id_text(BrokerId b) { return std::to_string(b.value()); }

std::string list_text(const std::vector<NodeId>& nodes) {
  std::string out;
  for (NodeId n : nodes) out += (out.empty() ? "" : ",") + id_text(broker_of(n));
  return "[" + out + "]";
}

}  // namespace

bool Node::controller_peer_alive(BrokerId broker) const {
  return broker == config_.id || (broker_alive(broker) && !peer_down(broker));
}

// The quorum rule of a demotion. Three majorities must be alive (counting this broker alive):
// the change itself commits under the current voters (a configuration takes effect when
// applied, docs/raft_driver.md), so a majority of the V current voters; after it, a majority of
// the V-1 remaining voters; and a majority of the voters that remain once every demotion
// already chosen is done too (those voters count as gone: two demotions in a row cannot each
// assume the other voter still votes).
Status Node::check_demotion(const raft::ConfState& cs, BrokerId broker) const {
  const std::string id = id_text(broker);
  const NodeId n = node_of(broker);
  const std::size_t voters = cs.voters.size();
  if (voters <= 1) {
    return Status::invalid_argument("broker " + id + " is the only controller voter; promote "
                                    "another broker first (raftmq controller voters add ID)");
  }
  const ControllerState& state = controller_->state();
  std::size_t others_alive = 0, final_voters = 0, final_alive = 0;
  for (NodeId v : cs.voters) {
    if (v == n) continue;
    BrokerId b = broker_of(v);
    bool alive = state.find_removed(b) == nullptr && removals_in_flight_.count(b) == 0 &&
                 controller_peer_alive(b);
    others_alive += alive ? 1 : 0;
    if (state.voter_choice(b) == VoterChoice::kLearner) continue;  // leaving too
    ++final_voters;
    final_alive += alive ? 1 : 0;
  }
  const std::size_t commit_need = voters / 2 + 1;
  const std::size_t after_need = (voters - 1) / 2 + 1;
  const std::size_t final_need = final_voters / 2 + 1;
  const std::size_t with_self = others_alive + (controller_peer_alive(broker) ? 1 : 0);
  if (final_voters == 0) {
    return Status::invalid_argument("demoting broker " + id + " would leave the controller "
                                    "without voters: every other voter is chosen to be a "
                                    "learner already");
  }
  if (with_self < commit_need || others_alive < after_need || final_alive < final_need) {
    return Status::invalid_argument(
        "demoting broker " + id + " (a controller voter) would leave the controller without a "
        "quorum: " + std::to_string(others_alive) + " of the other " +
        std::to_string(voters - 1) + " voters are alive, and " + std::to_string(after_need) +
        " of the " + std::to_string(voters - 1) + " remaining voters (" +
        std::to_string(final_need) + " of " + std::to_string(final_voters) +
        " once the demotions already chosen are done) are needed; bring a voter back or "
        "promote a live broker first (raftmq controller voters add ID)");
  }
  return Status::ok();
}

bool Node::voter_change_under_way(const raft::ConfState& cs) const {
  if (cs.joint() || voter_choice_in_flight_ || !removals_in_flight_.empty()) return true;
  if (voter_change_index_ > controller_->applied()) return true;  // proposed, not applied
  const ControllerState& state = controller_->state();
  for (NodeId v : cs.voters) {  // a chosen demotion the leader can carry out now
    BrokerId b = broker_of(v);
    if (state.voter_choice(b) == VoterChoice::kLearner && check_demotion(cs, b).is_ok()) {
      return true;
    }
  }
  for (NodeId l : cs.learners) {  // a chosen promotion of a live learner (once caught up)
    BrokerId b = broker_of(l);
    if (state.voter_choice(b) == VoterChoice::kVoter && state.brokers().count(b) != 0 &&
        controller_peer_alive(b)) {
      return true;
    }
  }
  return false;
}

Status Node::check_voter_choice(BrokerId broker, VoterChoice choice) const {
  const std::string id = id_text(broker);
  const ControllerState& state = controller_->state();
  if (state.brokers().count(broker) == 0) {
    return Status::not_found(state.find_removed(broker) != nullptr
                                 ? "broker " + id + " was removed from the cluster"
                                 : "broker " + id + " is not registered");
  }
  if (choice == VoterChoice::kAuto) return Status::ok();  // only forgets a choice
  const raft::ConfState cs = controller_->node().conf_state();
  const NodeId n = node_of(broker);
  if (voter_change_under_way(cs)) {
    return Status::unavailable("a controller membership change is in progress (voters " +
                               list_text(cs.voters) + ", learners " + list_text(cs.learners) +
                               "); retry once it is done");
  }
  if (choice == VoterChoice::kVoter) {
    if (contains(cs.voters, n)) return Status::ok();  // it stays one, by choice now
    if (!controller_peer_alive(broker)) {
      return Status::invalid_argument("broker " + id + " is not alive (no connection to it); "
                                      "only a live broker can be promoted to controller voter");
    }
    if (cs.voters.size() >= kControllerVotersChosenMax) {
      return Status::invalid_argument(
          "the controller has " + std::to_string(cs.voters.size()) + " voters already, the "
          "most allowed is " + std::to_string(kControllerVotersChosenMax) +
          "; demote one first (raftmq controller voters remove ID)");
    }
    return Status::ok();
  }
  if (!contains(cs.voters, n)) return Status::ok();  // a learner: it stays one, by choice now
  return check_demotion(cs, broker);
}

void Node::set_controller_voter(BrokerId broker, VoterChoice choice, std::int64_t timeout_ms,
                                std::function<void(AdminResult)> done) {
  std::string name = "broker " + id_text(broker);
  if (should_forward()) {
    AdminRequest q;
    q.op = AdminOp::kControllerVoter;
    q.timeout_ms = timeout_ms;
    q.broker = broker;
    q.voter_choice = choice;
    return forward_admin(std::move(q), [done = std::move(done)](std::vector<AdminResult> r) {
      done(r.empty() ? AdminResult{"", Status::internal("empty answer"), 0} : std::move(r[0]));
    });
  }
  if (!controller_ || !controller_->leader_ready()) {
    return done(AdminResult{name, Status::not_leader("not the controller"), 0});
  }
  register_brokers();  // as before every admin command: a new leader registers the static list
  if (Status s = check_voter_choice(broker, choice); !s.is_ok()) {
    log("controller voter choice " + std::string(voter_choice_name(choice)) + " for broker " +
        id_text(broker) + " refused: " + s.message());
    return done(AdminResult{name, s, s.code() == ErrorCode::kNotFound ? kBrokerIdNotRegistered
                                                                      : std::int16_t{0}});
  }
  log("controller voter choice for broker " + id_text(broker) + ": " + voter_choice_name(choice));
  voter_choice_in_flight_ = true;
  std::int64_t deadline = steady_now_ms() + std::max<std::int64_t>(timeout_ms, 0);
  controller_->propose(
      SetVoterChoice{broker, choice}, timeout_ms,
      [this, alive = alive_, broker, choice, deadline, name, done](Status s) {
        if (!*alive) return done(AdminResult{name, Status::unavailable("broker stopped"), 0});
        voter_choice_in_flight_ = false;
        if (!s.is_ok() || choice == VoterChoice::kAuto) return done(AdminResult{name, s, 0});
        // Answered once the configuration in effect here matches the choice (or at the
        // deadline): the leader's membership step carries it out.
        voter_waits_.push_back(VoterWait{broker, choice, deadline, done});
        check_voter_waits(steady_now_ms());
      });
}

void Node::check_voter_waits(std::int64_t now_ms) {
  if (voter_waits_.empty()) return;
  if (!controller_) return fail_voter_waits(Status::unavailable("no controller replica"));
  if (!controller_->is_raft_leader()) voter_blocked_.clear();  // the leader's view only
  const raft::ConfState cs = controller_->node().conf_state();
  std::vector<VoterWait> waits = std::move(voter_waits_);
  voter_waits_.clear();
  for (VoterWait& w : waits) {
    const NodeId n = node_of(w.broker);
    bool reached = w.choice == VoterChoice::kVoter ? contains(cs.voters, n) && !cs.joint()
                                                   : contains(cs.learners, n);
    std::string name = "broker " + id_text(w.broker);
    if (reached) {
      w.done(AdminResult{name, Status::ok(), 0});
    } else if (now_ms >= w.deadline_ms) {
      w.done(AdminResult{
          name,
          Status::timeout("the choice (" + std::string(voter_choice_name(w.choice)) +
                          ") is recorded, but the controller configuration does not match it "
                          "yet (voters " + list_text(cs.voters) + ", learners " +
                          list_text(cs.learners) + ")" +
                          (voter_blocked_.empty() ? "" : ": " + voter_blocked_) +
                          "; the controller leader carries it out when it can"),
          0});
    } else {
      voter_waits_.push_back(std::move(w));
    }
  }
}

void Node::fail_voter_waits(const Status& status) {
  std::vector<VoterWait> waits = std::move(voter_waits_);
  voter_waits_.clear();
  for (VoterWait& w : waits) w.done(AdminResult{"broker " + id_text(w.broker), status, 0});
}

// One step of the controller leader (after removals and new learners, node_join.cc):
// 1. a voter chosen to be a learner is demoted (kAddLearner on a voter), if the quorum rule
//    allows it now; if it is this broker, the leadership is transferred first;
// 2. a learner chosen to be a voter is promoted once alive and caught up (beyond
//    kControllerVotersMax, up to kControllerVotersChosenMax);
// 3. automatic: while there are fewer than kControllerVotersMax voters, a learner without a
//    choice that is alive and caught up is promoted, lowest id first. A voter that must still
//    catch up would stall commits (thesis §4.2.1).
bool Node::reconcile_controller_voters(std::int64_t now_ms, const raft::ConfState& cs) {
  const ControllerState& state = controller_->state();
  std::string blocked;
  auto propose = [&](raft::ConfChangeType type, NodeId n, const std::string& what) {
    raft::ConfChange change;
    change.changes.push_back({type, n});
    learner_step_ms_ = now_ms;
    auto index = controller_->node().propose_conf_change(change);
    if (index.has_value()) {
      voter_change_index_ = *index;
      log("controller: " + what);
      schedule_pump(kControllerGroup);
    }
    return true;
  };
  raft::NodeStatus status = controller_->node().status();
  for (NodeId v : cs.voters) {
    BrokerId b = broker_of(v);
    if (state.voter_choice(b) != VoterChoice::kLearner) continue;
    if (Status s = check_demotion(cs, b); !s.is_ok()) {
      blocked = "the demotion of broker " + id_text(b) + " waits: " + s.message();
      continue;
    }
    if (b != config_.id) {
      voter_blocked_.clear();
      return propose(raft::ConfChangeType::kAddLearner, v,
                     "demoting broker " + id_text(b) + " from voter to learner (operator's "
                     "choice)");
    }
    // The core refuses to demote its own leader: hand the leadership over (§3.10); the next
    // leader applies the same choice.
    if (status.lead_transferee != kNoNode || now_ms - voter_transfer_ms_ < kVoterTransferRetryMs) {
      return true;
    }
    NodeId target = kNoNode;
    LogIndex best;
    for (NodeId o : cs.voters) {
      BrokerId ob = broker_of(o);
      auto p = status.progress.find(o);
      if (o == v || state.voter_choice(ob) == VoterChoice::kLearner ||
          !controller_peer_alive(ob) || p == status.progress.end()) {
        continue;
      }
      if (target == kNoNode || p->second.match > best) {
        target = o;
        best = p->second.match;
      }
    }
    if (target == kNoNode) {
      blocked = "the demotion of broker " + id_text(b) + " (the controller leader) waits for a "
                "live voter to hand the leadership to";
      continue;
    }
    voter_transfer_ms_ = now_ms;
    learner_step_ms_ = now_ms;
    log("controller: transferring the leadership to broker " + id_text(broker_of(target)) +
        " before this broker is demoted to learner (operator's choice)");
    (void)controller_->node().transfer_leader(target);
    schedule_pump(kControllerGroup);
    return true;
  }
  auto ready_learner = [&](NodeId n, std::string* why) {
    BrokerId b = broker_of(n);
    auto p = status.progress.find(n);
    if (state.brokers().count(b) == 0 || !controller_peer_alive(b)) {
      *why = "not alive";
      return false;
    }
    if (p == status.progress.end() || !p->second.recent_active ||
        p->second.match < status.hard_state.commit) {
      *why = "not caught up yet";
      return false;
    }
    return true;
  };
  std::string why;
  for (NodeId l : cs.learners) {
    BrokerId b = broker_of(l);
    if (state.voter_choice(b) != VoterChoice::kVoter) continue;
    if (cs.voters.size() >= kControllerVotersChosenMax) {
      blocked = "the promotion of broker " + id_text(b) + " waits: " +
                std::to_string(cs.voters.size()) + " voters already";
      continue;
    }
    if (!ready_learner(l, &why)) {
      blocked = "the promotion of broker " + id_text(b) + " waits: " + why;
      continue;
    }
    voter_blocked_.clear();
    return propose(raft::ConfChangeType::kAddNode, l,
                   "promoting broker " + id_text(b) + " from learner to voter (operator's "
                   "choice; caught up at index " +
                       std::to_string(status.progress.at(l).match.value()) + ")");
  }
  if (blocked != voter_blocked_ || now_ms - voter_blocked_log_ms_ >= kVoterBlockedLogMs) {
    if (!blocked.empty()) {
      log("controller: " + blocked);
      voter_blocked_log_ms_ = now_ms;
    }
  }
  voter_blocked_ = blocked;
  if (cs.voters.size() >= kControllerVotersMax) return false;
  for (NodeId l : cs.learners) {
    BrokerId b = broker_of(l);
    if (state.voter_choice(b) != VoterChoice::kAuto || !ready_learner(l, &why)) continue;
    return propose(raft::ConfChangeType::kAddNode, l,
                   "promoting broker " + id_text(b) + " from learner to voter (caught up at "
                   "index " + std::to_string(status.progress.at(l).match.value()) + ")");
  }
  return false;
}

Result<ControllerMembers> Node::controller_members() const {
  if (!controller_) {
    return Status::unavailable("broker " + id_text(config_.id) +
                               " has no controller replica yet (joining)");
  }
  ControllerMembers out;
  if (controller_->leader() != kNoNode) out.leader = broker_of(controller_->leader());
  const raft::ConfState cs = controller_->node().conf_state();
  out.joint = cs.joint();
  const ControllerState& state = controller_->state();
  std::set<BrokerId> ids;
  for (const auto& [id, record] : state.brokers()) ids.insert(id);
  for (const auto* list : {&cs.voters, &cs.learners, &cs.voters_outgoing, &cs.learners_next}) {
    for (NodeId n : *list) ids.insert(broker_of(n));
  }
  for (BrokerId b : ids) {
    ControllerMember m;
    m.id = b;
    m.voter = contains(cs.voters, node_of(b));
    m.learner = contains(cs.learners, node_of(b));
    m.choice = state.voter_choice(b);
    m.alive = controller_peer_alive(b);
    out.members.push_back(m);
  }
  return out;
}

}  // namespace mq::cluster
