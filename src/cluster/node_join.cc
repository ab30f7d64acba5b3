// Dynamic broker addition (docs/cluster.md, "Adding a broker").
//
// The controller voters stay the static broker list (--peers). A new broker is started with
// join seeds (the RPC address of any running broker) and an unused id:
//   1. it picks a random incarnation (the identity of its data directory), saves it in
//      join.state, and sends a join request to every seed over the transport, on a link to the
//      address (transport.h: negative peer keys), since it does not know the seeds' ids;
//   2. a seed that is not the controller leader forwards the request once to the leader;
//   3. the leader checks it (an id of the static list, or one in use by a live broker with
//      another data directory, is refused), proposes JoinBroker and, once applied, answers
//      with the controller voters; every broker applies JoinBroker and adds a transport peer
//      for the new broker (sync_peers);
//   4. the leader adds the new broker as a learner of the controller group (one
//      configuration change at a time, thesis §4.1/§4.2.1): it receives the metadata log like
//      every replica, never votes, and the voter set stays small and fixed;
//   5. the new broker saves the voters in join.state and opens its controller replica with
//      them as bootstrap membership (the configuration entries of the log, or the snapshot,
//      then add it as a learner).
// A restart reads join.state and needs no seed; if the broker's addresses changed it
// registers them again (same incarnation: the record is updated).
#include <algorithm>
#include <asio/post.hpp>
#include <random>

#include "cluster/ids.h"
#include "cluster/node.h"
#include "storage/file_system.h"

namespace mq::cluster {
namespace {

constexpr std::int64_t kMembershipTickMs = 100;
constexpr std::int64_t kJoinRetryMs = 500;        // a lost request (or no leader yet): again
constexpr std::int64_t kReregisterRetryMs = 1000;
constexpr std::int64_t kReplyLinkIdleMs = 10000;
constexpr std::int64_t kJoinProposeTimeoutMs = 5000;
constexpr std::size_t kReplyLinksMax = 64;
// Transport keys of links to an address (transport.h): seeds -1 - i, answers kReplyKeyBase - i.
constexpr std::int32_t kReplyKeyBase = -100000;

BrokerId seed_key(std::size_t i) { return BrokerId(-1 - static_cast<std::int32_t>(i)); }

std::uint64_t random_nonzero() {
  std::random_device device;
  std::uint64_t v = 0;
  while (v == 0) v = (static_cast<std::uint64_t>(device()) << 32) ^ device();
  return v;
}

raft::Message control_message(BrokerId from, BrokerId to, std::uint64_t context, Buffer body) {
  raft::Message m;
  m.type = raft::MessageType::kReadIndex;
  m.from = node_of(from);
  m.to = to.value() >= 0 ? node_of(to) : kNoNode;
  m.context = context;
  raft::Entry e;
  e.payload = SharedBuffer(std::move(body));
  m.entries.push_back(std::move(e));
  return m;
}

std::string address_text(const std::string& host, std::uint16_t port) {
  return host + ":" + std::to_string(port);
}

}  // namespace

// ---- Start-up ----

Status Node::prepare_join() {
  if (config_.join_timeout_ms <= 0) return Status::invalid_argument("join_timeout_ms must be > 0");
  storage::FileSystem* fs = storage::posix_file_system();
  MQ_ASSIGN_OR_RETURN(std::optional<JoinState> saved, load_join_state(fs, config_.data_dir));
  // The constructor's default list (a single-broker cluster of this node).
  bool default_list = config_.brokers.size() == 1 && config_.brokers[0].id == config_.id;
  if (saved) {
    if (saved->broker != config_.id) {
      return Status::invalid_argument(config_.data_dir + " belongs to broker " +
                                      std::to_string(saved->broker.value()) + " (join.state), not " +
                                      std::to_string(config_.id.value()));
    }
    if (!config_.brokers.empty() && !default_list) {
      return Status::invalid_argument(
          "this data directory belongs to a broker that joined the cluster (join.state): start "
          "it without a broker list (--peers)");
    }
    join_state_ = saved;
    config_.brokers.clear();
    if (saved->voters.empty()) {
      // The incarnation was saved but no answer came: join again with the same one.
      if (config_.join_seeds.empty()) {
        return Status::invalid_argument("the join of this broker never completed: give --join");
      }
      join_pending_ = true;
    } else {
      for (const JoinVoter& v : saved->voters) {
        config_.brokers.push_back(BrokerAddress{v.id, v.host, v.rpc_port, v.kafka_port});
      }
    }
  } else {
    if (config_.join_seeds.empty()) return Status::ok();  // a broker of the static list
    MQ_ASSIGN_OR_RETURN(bool has_controller, fs->exists(config_.data_dir + "/controller"));
    if (has_controller) {
      return Status::invalid_argument(
          config_.data_dir + " holds a broker of the static broker list (a controller replica, "
          "no join.state): --join is for new brokers; restart it with its --peers");
    }
    // Saved before asking: a crash after the registration must not change the identity.
    JoinState fresh;
    fresh.broker = config_.id;
    fresh.incarnation = random_nonzero();
    MQ_RETURN_IF_ERROR(save_join_state(fs, config_.data_dir, fresh));
    join_state_ = fresh;
    join_pending_ = true;
  }
  join_request_id_ = random_nonzero();
  join_deadline_ms_ = steady_now_ms() + config_.join_timeout_ms;
  if (join_pending_) {
    std::string seeds;
    for (const JoinSeed& s : config_.join_seeds) seeds += " " + address_text(s.host, s.port);
    log("joining the cluster through" + seeds);
  }
  return Status::ok();
}

void Node::start_membership_timer() {
  membership_timer_ = std::make_unique<asio::steady_timer>(loop_);
  on_membership_timer();
}

void Node::on_membership_timer() {
  if (!*alive_ || stopped_) return;
  std::int64_t now = steady_now_ms();
  if (join_pending_) {
    if (now >= join_deadline_ms_) {
      bool reached = false;
      for (std::size_t i = 0; i < config_.join_seeds.size(); ++i) {
        auto stats = transport_->peer_stats(seed_key(i));
        reached |= stats.has_value() && stats->connects_succeeded > 0;
      }
      std::string seeds;
      for (const JoinSeed& s : config_.join_seeds) {
        seeds += (seeds.empty() ? "" : ", ") + address_text(s.host, s.port);
      }
      return fail_join(Status::timeout(
          reached ? "no answer to the join within " + std::to_string(config_.join_timeout_ms) +
                        " ms from " + seeds + " (no controller leader?)"
                  : "cannot reach any join seed (" + seeds + ") within " +
                        std::to_string(config_.join_timeout_ms) + " ms"));
    }
    if (now - join_sent_ms_ >= kJoinRetryMs) send_join_request(now);
  } else {
    maybe_reregister(now);
    sync_peers();  // also after a restart from a snapshot: no state change is applied then
    reconcile_controller_membership(now);
    check_voter_waits(now);
    if (controller_) controller_->snapshot_if_membership_changed();
  }
  for (auto it = reply_links_.begin(); it != reply_links_.end();) {
    if (now - it->second.used_ms < kReplyLinkIdleMs) {
      ++it;
      continue;
    }
    transport_->remove_peer(it->second.key);
    it = reply_links_.erase(it);
  }
  membership_timer_->expires_after(std::chrono::milliseconds(kMembershipTickMs));
  membership_timer_->async_wait([this, alive = alive_](const std::error_code& ec) {
    if (ec || !*alive) return;
    on_membership_timer();
  });
}

BrokerRecord Node::own_join_record() const {
  BrokerRecord r;
  r.id = config_.id;
  r.host = config_.advertised_host;
  r.kafka_port = config_.advertised_kafka_port;
  // Peers connect to this address: a wildcard listen address is not one.
  bool wildcard = config_.rpc_listen_host == "0.0.0.0" || config_.rpc_listen_host == "::" ||
                  config_.rpc_listen_host.empty();
  r.rpc_host = wildcard ? config_.advertised_host : config_.rpc_listen_host;
  r.rpc_port = rpc_port_;
  r.rack = config_.rack;
  r.incarnation = join_state_ ? join_state_->incarnation : 0;
  return r;
}

void Node::send_join_request(std::int64_t now_ms) {
  join_sent_ms_ = now_ms;
  JoinRequest q;
  q.request_id = join_request_id_;
  q.broker = own_join_record();
  Buffer body = encode_join_request(q);
  for (std::size_t i = 0; i < config_.join_seeds.size(); ++i) {
    const JoinSeed& seed = config_.join_seeds[i];
    if (!transport_->add_peer(seed_key(i), seed.host, seed.port).is_ok()) continue;
    Buffer copy;
    copy.append(body.data(), body.size());
    transport_->send(seed_key(i), kControlPlaneGroup,
                     control_message(config_.id, BrokerId(-1), kJoinRequestContext, std::move(copy)));
  }
}

void Node::fail_join(Status status) {
  log("join failed: " + status.to_string());
  join_pending_ = false;
  join_failure_ = status;
  auto failed = std::move(join_failed_);
  stop();
  if (failed) failed(status);
}

// A restarted joined broker whose addresses changed registers them again (same incarnation).
void Node::maybe_reregister(std::int64_t now_ms) {
  if (!join_state_ || join_state_->voters.empty() || !controller_) return;
  if (now_ms - join_sent_ms_ < kReregisterRetryMs) return;
  BrokerRecord want = own_join_record();
  const auto& brokers = controller_->state().brokers();
  auto it = brokers.find(config_.id);
  if (it != brokers.end() && it->second == want) return;
  // Not waiting for readiness: the leader cannot answer this replica's ReadIndex before it
  // knows the new address. A request sent on a record about to be replaced by entries still
  // to apply is harmless: it carries the current addresses (the leader answers OK if equal).
  join_sent_ms_ = now_ms;
  JoinRequest q;
  q.request_id = join_request_id_;
  q.broker = want;
  BrokerId target(-1);
  if (controller_->leader() != kNoNode) {
    target = broker_of(controller_->leader());
  } else if (!config_.brokers.empty()) {
    target = config_.brokers[join_next_target_++ % config_.brokers.size()].id;
  }
  if (target.value() < 0 || target == config_.id) return;
  log("registering this broker's addresses (the metadata applied so far has other ones)");
  transport_->send(target, kControlPlaneGroup,
                   control_message(config_.id, target, kJoinRequestContext, encode_join_request(q)));
}

// ---- The cluster's side ----

Status Node::check_join(const BrokerRecord& broker) const {
  const std::string id = std::to_string(broker.id.value());
  for (const BrokerAddress& b : config_.brokers) {
    if (b.id == broker.id) {
      return Status::already_exists("broker id " + id +
                                    " belongs to a static broker of the cluster (a controller "
                                    "voter, started with --peers); a new broker needs an unused id");
    }
  }
  if (broker.rpc_host.empty() || broker.rpc_port == 0 || broker.host.empty() ||
      broker.kafka_port == 0) {
    return Status::invalid_argument("join of broker " + id + " without an RPC or Kafka address");
  }
  const auto& brokers = controller_->state().brokers();
  auto it = brokers.find(broker.id);
  if (it != brokers.end() && it->second.incarnation != broker.incarnation &&
      broker_alive(broker.id)) {
    return Status::already_exists("broker id " + id + " is in use by a live broker (at " +
                                  address_text(it->second.rpc_host, it->second.rpc_port) +
                                  ", with another data directory)");
  }
  return Status::ok();
}

void Node::handle_join_request(BrokerId from, const raft::Message& message) {
  (void)from;
  if (message.entries.size() != 1 || !transport_) return;
  auto decoded = decode_join_request(message.entries[0].payload.view());
  if (!decoded.has_value()) {
    log("ignoring a bad join request: " + decoded.error().to_string());
    return;
  }
  JoinRequest q = std::move(*decoded);
  if (!controller_ || !controller_->leader_ready()) {
    // Forwarded once to the controller leader; without one the new broker asks again.
    if (!controller_ || q.hops != 0 || controller_->leader() == kNoNode) return;
    BrokerId leader = broker_of(controller_->leader());
    if (leader == config_.id) return;
    q.hops = 1;
    transport_->send(leader, kControlPlaneGroup,
                     control_message(config_.id, leader, kJoinRequestContext,
                                     encode_join_request(q)));
    return;
  }
  if (Status s = check_join(q.broker); !s.is_ok()) return answer_join(q, s);
  const auto& brokers = controller_->state().brokers();
  auto it = brokers.find(q.broker.id);
  if (it != brokers.end() && it->second == q.broker) return answer_join(q, Status::ok());
  if (!joins_in_flight_.insert(q.broker.id).second) return;  // a retry gets the answer
  log("broker " + std::to_string(q.broker.id.value()) + " asks to join from " +
      address_text(q.broker.rpc_host, q.broker.rpc_port));
  controller_->propose(JoinBroker{q.broker}, kJoinProposeTimeoutMs,
                       [this, alive = alive_, q](Status s) {
                         if (!*alive) return;
                         joins_in_flight_.erase(q.broker.id);
                         // Leadership lost or no commit in time: the new broker asks again.
                         if (s.code() == ErrorCode::kNotLeader || s.code() == ErrorCode::kTimeout) {
                           return;
                         }
                         answer_join(q, s);
                       });
}

void Node::answer_join(const JoinRequest& q, const Status& status) {
  if (!transport_) return;
  JoinAnswer a;
  a.request_id = q.request_id;
  a.status = status;
  if (status.is_ok()) {
    a.voters = controller_voters();
    log("broker " + std::to_string(q.broker.id.value()) + " joined (" +
        address_text(q.broker.rpc_host, q.broker.rpc_port) + ")");
  } else {
    log("join of broker " + std::to_string(q.broker.id.value()) + " from " +
        address_text(q.broker.rpc_host, q.broker.rpc_port) + " refused: " + status.to_string());
  }
  // A registered broker is answered on its own link; anyone else on a link to its address
  // (its id may belong to another, live broker whose link must not be re-addressed).
  BrokerId to(-1);
  if (controller_) {
    const auto& brokers = controller_->state().brokers();
    auto it = brokers.find(q.broker.id);
    if (status.is_ok() && it != brokers.end() && it->second == q.broker) {
      sync_peers();
      to = q.broker.id;
    }
  }
  if (to.value() < 0) to = reply_link(q.broker.rpc_host, q.broker.rpc_port, steady_now_ms());
  if (to.value() == -1) return;
  transport_->send(to, kControlPlaneGroup,
                   control_message(config_.id, q.broker.id, kJoinAnswerContext,
                                   encode_join_answer(a)));
}

BrokerId Node::reply_link(const std::string& host, std::uint16_t port, std::int64_t now_ms) {
  auto key = std::make_pair(host, port);
  auto it = reply_links_.find(key);
  if (it != reply_links_.end()) {
    it->second.used_ms = now_ms;
    return it->second.key;
  }
  if (reply_links_.size() >= kReplyLinksMax) return BrokerId(-1);  // expire first
  BrokerId link(kReplyKeyBase - next_reply_key_);
  next_reply_key_ = (next_reply_key_ + 1) % 100000;
  if (!transport_->add_peer(link, host, port).is_ok()) return BrokerId(-1);
  reply_links_[key] = ReplyLink{link, now_ms};
  return link;
}

// ---- The new broker receives the answer ----

void Node::handle_join_answer(BrokerId from, const raft::Message& message) {
  if (message.entries.size() != 1 || !join_state_) return;
  auto decoded = decode_join_answer(message.entries[0].payload.view());
  if (!decoded.has_value()) {
    log("ignoring a bad join answer: " + decoded.error().to_string());
    return;
  }
  JoinAnswer a = std::move(*decoded);
  if (a.request_id != join_request_id_) return;
  if (!join_pending_) {
    if (!a.status.is_ok()) log("registration of the new addresses refused: " + a.status.to_string());
    return;
  }
  if (!a.status.is_ok()) {
    return fail_join(Status(a.status.code(), "the cluster (broker " +
                                                 std::to_string(from.value()) +
                                                 ") refused the join: " + a.status.message()));
  }
  if (a.voters.empty()) return fail_join(Status::corruption("join answer without voters"));
  for (const JoinVoter& v : a.voters) {
    if (v.id == config_.id) {
      return fail_join(Status::invalid_argument("this broker's id is a controller voter"));
    }
  }
  join_state_->voters = a.voters;
  Status saved = save_join_state(storage::posix_file_system(), config_.data_dir, *join_state_);
  if (!saved.is_ok()) return fail_join(saved);
  // The links to the seeds' addresses go: the links to the voters (and the brokers that
  // joined, sync_peers) replace them, and two inbound connections from one broker would
  // replace each other at the seed.
  for (std::size_t i = 0; i < config_.join_seeds.size(); ++i) transport_->remove_peer(seed_key(i));
  config_.brokers.clear();
  std::string voters;
  for (const JoinVoter& v : a.voters) {
    config_.brokers.push_back(BrokerAddress{v.id, v.host, v.rpc_port, v.kafka_port});
    voters += " " + std::to_string(v.id.value()) + "@" + address_text(v.host, v.rpc_port);
  }
  join_pending_ = false;
  log("joined the cluster; controller voters:" + voters);
  Status opened = open_cluster();
  if (!opened.is_ok()) return fail_join(opened);
  schedule_pump(kControllerGroup);
}

// ---- Every broker ----

std::vector<BrokerId> Node::peer_ids() const {
  std::set<BrokerId> ids;
  for (const BrokerAddress& b : config_.brokers) ids.insert(b.id);
  if (controller_) {
    for (const auto& [id, b] : controller_->state().brokers()) ids.insert(id);
  }
  ids.erase(config_.id);
  return {ids.begin(), ids.end()};
}

void Node::sync_peers() {
  if (!controller_ || !transport_) return;
  prune_removed_brokers();  // node_membership.cc
  if (stopped_) return;
  for (const auto& [id, b] : controller_->state().brokers()) {
    if (id == config_.id || b.rpc_port == 0) continue;
    bool listed = std::any_of(config_.brokers.begin(), config_.brokers.end(),
                              [&](const BrokerAddress& a) { return a.id == id; });
    if (listed) continue;  // the static list's addresses are the configured ones
    auto address = std::make_pair(b.rpc_host, b.rpc_port);
    auto it = joined_peers_.find(id);
    if (it != joined_peers_.end() && it->second == address) continue;
    Status s = transport_->add_peer(id, b.rpc_host, b.rpc_port);
    if (!s.is_ok()) {
      log("cannot add peer broker " + std::to_string(id.value()) + ": " + s.to_string());
      continue;
    }
    joined_peers_[id] = address;
    log("peer broker " + std::to_string(id.value()) + " at " + address_text(b.rpc_host, b.rpc_port));
  }
}

// ---- Removing a broker; controller voters (docs/cluster.md "Removing a broker") ----

namespace {

constexpr std::int64_t kMembershipStepMs = 200;       // one controller configuration change
constexpr std::int64_t kRemovedNoticeIntervalMs = 1000;  // per removed broker heard from
constexpr std::int32_t kBrokerIdNotRegistered = 102;     // Kafka's BROKER_ID_NOT_REGISTERED

bool contains(const std::vector<NodeId>& nodes, NodeId n) {
  return std::find(nodes.begin(), nodes.end(), n) != nodes.end();
}

}  // namespace

std::vector<JoinVoter> Node::controller_voters() const {
  std::vector<JoinVoter> voters;
  if (!controller_) return voters;
  const auto& brokers = controller_->state().brokers();
  for (NodeId n : controller_->node().conf_state().voters) {
    BrokerId id = broker_of(n);
    // A removed voter about to leave the group is no bootstrap member for a newcomer.
    if (controller_->state().find_removed(id) != nullptr) continue;
    auto it = brokers.find(id);
    if (it != brokers.end() && it->second.rpc_port != 0) {
      voters.push_back(JoinVoter{id, it->second.rpc_host, it->second.rpc_port,
                                 it->second.kafka_port});
      continue;
    }
    for (const BrokerAddress& b : config_.brokers) {
      if (b.id == id) voters.push_back(JoinVoter{id, b.host, b.rpc_port, b.kafka_port});
    }
  }
  return voters;
}

void Node::remove_broker(BrokerId broker, std::int64_t timeout_ms,
                         std::function<void(AdminResult)> done) {
  std::string name = "broker " + std::to_string(broker.value());
  if (should_forward()) {
    AdminRequest q;
    q.op = AdminOp::kRemoveBroker;
    q.timeout_ms = timeout_ms;
    q.broker = broker;
    return forward_admin(std::move(q), [done = std::move(done)](std::vector<AdminResult> r) {
      done(r.empty() ? AdminResult{"", Status::internal("empty answer"), 0} : std::move(r[0]));
    });
  }
  if (!controller_ || !controller_->leader_ready()) {
    return done(AdminResult{name, Status::not_leader("not the controller"), 0});
  }
  register_brokers();  // as before every admin command: a new leader registers the static list
  if (registering_.count(broker) != 0) {
    return done(AdminResult{
        name, Status::unavailable("broker " + std::to_string(broker.value()) +
                                  " is being registered by the new controller leader; retry"),
        0});
  }
  if (Status s = check_remove(broker); !s.is_ok()) {
    log("removal of broker " + std::to_string(broker.value()) + " refused: " + s.message());
    std::int16_t kafka = s.code() == ErrorCode::kNotFound ? kBrokerIdNotRegistered : 0;
    return done(AdminResult{name, s, kafka});
  }
  log("removing broker " + std::to_string(broker.value()) + " from the cluster");
  removals_in_flight_.insert(broker);
  // Answered once every live broker applied it (node_propagation.cc); UnregisterBroker has
  // no timeout_ms, so the wait's expiry is no error.
  auto answer = after_propagation(timeout_ms, false, [done, name](Status s) {
    std::int16_t kafka = s.code() == ErrorCode::kNotFound ? kBrokerIdNotRegistered : 0;
    done(AdminResult{name, s, kafka});
  });
  controller_->propose(RemoveBroker{broker}, timeout_ms,
                       [this, alive = alive_, broker, answer](Status s) {
    if (*alive) removals_in_flight_.erase(broker);
    answer(s);
  });
}

// The rules (also re-checked at apply where they depend only on the state): registered, no
// partition replica assigned, no hosted partition group still listing it (a move in flight),
// and, for a controller voter, the quorum rule: the other voters that are alive must form a
// majority of the current voters. The removed broker may stop at once (it applies its own
// removal), and until its RemoveNode is applied the controller counts votes with the current
// voters (a configuration takes effect when applied, docs/raft_driver.md), so that majority
// is what commits the change and keeps the controller available.
Status Node::check_remove(BrokerId broker) const {
  const std::string id = std::to_string(broker.value());
  const ControllerState& state = controller_->state();
  if (state.brokers().count(broker) == 0) {
    return Status::not_found(state.find_removed(broker) != nullptr
                                 ? "broker " + id + " was already removed from the cluster"
                                 : "broker " + id + " is not registered");
  }
  if (std::size_t held = state.replica_count(broker); held > 0) {
    return Status::invalid_argument("broker " + id + " still holds " + std::to_string(held) +
                                    " partition replica(s); drain it first (raftmq broker "
                                    "decommission " + id + " --wait)");
  }
  // The partitions assigned here whose Raft group still lists it: a move not finished (the
  // other brokers' partitions are the CLI's check, through Metadata).
  for (const auto& [name, topic] : state.topics()) {
    for (std::size_t p = 0; p < topic.partitions.size(); ++p) {
      const PartitionRecord& record = topic.partitions[p];
      auto hosted = partitions_.find(record.group);
      if (hosted == partitions_.end() || !hosted->second->started() ||
          std::find(record.replicas.begin(), record.replicas.end(), config_.id) ==
              record.replicas.end()) {
        continue;
      }
      raft::ConfState cs = hosted->second->node().conf_state();
      NodeId n = node_of(broker);
      if (contains(cs.voters, n) || contains(cs.voters_outgoing, n) || contains(cs.learners, n)) {
        return Status::invalid_argument("broker " + id + " is still a replica of " + name + "/" +
                                        std::to_string(p) + " (a move in progress); wait for it "
                                        "(raftmq broker decommission " + id + " --wait)");
      }
    }
  }
  const raft::ConfState& cs = controller_->node().conf_state();
  NodeId n = node_of(broker);
  if (cs.joint()) {
    return Status::unavailable("a controller membership change is in progress; retry");
  }
  if (!contains(cs.voters, n)) return Status::ok();
  if (cs.voters.size() == 1) {
    return Status::invalid_argument("broker " + id + " is the only controller voter");
  }
  // Voters already removed (or being removed) whose RemoveNode is not applied yet count as
  // gone: two removals in a row must not each assume the other voter is still there.
  std::size_t alive = 0;
  for (NodeId v : cs.voters) {
    BrokerId b = broker_of(v);
    // A voter chosen to be demoted (node_voters.cc) is leaving the voters too.
    if (v == n || state.find_removed(b) != nullptr || removals_in_flight_.count(b) != 0 ||
        state.voter_choice(b) == VoterChoice::kLearner) {
      continue;
    }
    if (b == config_.id || (broker_alive(b) && !peer_down(b))) ++alive;
  }
  std::size_t need = cs.voters.size() / 2 + 1;
  if (alive < need) {
    return Status::invalid_argument(
        "removing broker " + id + " (a controller voter) would leave the controller without a "
        "quorum: " + std::to_string(alive) + " of the other " +
        std::to_string(cs.voters.size() - 1) + " voters are alive, " + std::to_string(need) +
        " of the " + std::to_string(cs.voters.size()) + " voters are needed (add a broker "
        "with --join first: it is promoted to voter once caught up)");
  }
  return Status::ok();
}

void Node::reconcile_controller_membership(std::int64_t now_ms) {
  if (!controller_ || !controller_->leader_ready() || controller_->failed()) return;
  if (now_ms - learner_step_ms_ < kMembershipStepMs) return;
  const raft::ConfState& cs = controller_->node().conf_state();
  if (cs.joint()) return;  // single-server changes only; the core leaves a joint one itself
  const ControllerState& state = controller_->state();
  auto propose = [&](raft::ConfChangeType type, NodeId n, const std::string& what) {
    raft::ConfChange change;
    change.changes.push_back({type, n});
    learner_step_ms_ = now_ms;
    // One change at a time (the core refuses a second one in flight): the next on a later step.
    if (controller_->node().propose_conf_change(change).has_value()) {
      log("controller: " + what);
      schedule_pump(kControllerGroup);
    }
  };
  // 1. Removed brokers leave the group (thesis §4.1: one server at a time).
  std::vector<NodeId> members = cs.voters;
  members.insert(members.end(), cs.learners.begin(), cs.learners.end());
  for (NodeId n : members) {
    BrokerId id = broker_of(n);
    if (id == config_.id || state.brokers().count(id) != 0 || state.find_removed(id) == nullptr) {
      continue;
    }
    return propose(raft::ConfChangeType::kRemoveNode, n,
                   "removing broker " + std::to_string(id.value()) + " from the controller group");
  }
  // 2. Registered brokers outside the group become learners (thesis §4.2.1).
  for (const auto& [id, b] : state.brokers()) {
    NodeId n = node_of(id);
    if (contains(cs.voters, n) || contains(cs.learners, n) || contains(cs.learners_next, n)) {
      continue;
    }
    bool listed = std::any_of(config_.brokers.begin(), config_.brokers.end(),
                              [&](const BrokerAddress& a) { return a.id == id; });
    if (listed) continue;  // voters by bootstrap
    return propose(raft::ConfChangeType::kAddLearner, n,
                   "adding broker " + std::to_string(id.value()) + " as a learner");
  }
  // 3. Voter changes: the operator's choices (demotions, promotions), then automatic
  //    promotions up to kControllerVotersMax (node_voters.cc).
  reconcile_controller_voters(now_ms, cs);
}

void Node::prune_removed_brokers() {
  if (!controller_ || leaving_removed_) return;
  const ControllerState& state = controller_->state();
  if (const RemovedBroker* self = state.find_removed(config_.id);
      self != nullptr && self->incarnation == own_incarnation()) {
    return leave_removed(Status::aborted(
        "broker " + std::to_string(config_.id.value()) +
        " was removed from the cluster (raftmq broker remove); this data directory cannot "
        "rejoin: to add the machine again, start it with an empty data directory and --join"));
  }
  // The static list keeps only brokers still registered as static ones: a removed id (or one
  // that joined again, with its own record) is no static voter any more.
  std::erase_if(config_.brokers, [&](const BrokerAddress& b) {
    if (b.id == config_.id) return false;
    auto it = state.brokers().find(b.id);
    return state.find_removed(b.id) != nullptr ||
           (it != state.brokers().end() && it->second.incarnation != 0);
  });
  // Nor is it pinged or tracked for liveness (a removed broker heard from again must not wake
  // the groups led here, node_quiesce.cc).
  std::erase_if(liveness_,
                [&](const PeerLiveness& l) { return state.find_removed(l.peer) != nullptr; });
  for (const auto& [id, removed] : state.removed()) {
    if (id == config_.id) continue;
    bool linked = joined_peers_.erase(id) > 0;
    if (transport_ && (linked || transport_->peer_stats(id).has_value())) {
      transport_->remove_peer(id);
      log("peer broker " + std::to_string(id.value()) + " removed from the cluster: link dropped");
    }
  }
}

bool Node::refuse_removed_peer(BrokerId from, GroupId group, const raft::Message& message) {
  if (!controller_ || !transport_ || from == config_.id) return false;
  // Let through: a join request (a new data directory under the removed id) and the answer
  // to an admin request it served as controller leader (its own removal, typically).
  if (group == kControlPlaneGroup && (message.context == kJoinRequestContext ||
                                      message.context == kAdminResponseContext)) {
    return false;
  }
  const RemovedBroker* removed = controller_->state().find_removed(from);
  if (removed == nullptr) return false;
  std::int64_t now = steady_now_ms();
  auto& last = removed_notice_ms_[from];
  if (now - last < kRemovedNoticeIntervalMs || removed->rpc_port == 0) return true;
  last = now;
  BrokerId link = reply_link(removed->rpc_host, removed->rpc_port, now);
  if (link.value() == -1) return true;
  log("broker " + std::to_string(from.value()) + " was removed from the cluster and is heard "
      "from again: telling it");
  Buffer notice = encode_removed_notice(RemovedNotice{from, removed->incarnation});
  transport_->send(link, kControlPlaneGroup,
                   control_message(config_.id, from, kRemovedNoticeContext, std::move(notice)));
  return true;
}

void Node::handle_removed_notice(BrokerId from, const raft::Message& message) {
  if (message.entries.size() != 1) return;
  auto notice = decode_removed_notice(message.entries[0].payload.view());
  if (!notice.has_value()) {
    log("ignoring a bad removed notice: " + notice.error().to_string());
    return;
  }
  // Only this data directory's own removal counts (a newer incarnation joined again).
  if (notice->broker != config_.id || notice->incarnation != own_incarnation()) return;
  leave_removed(Status::aborted(
      "broker " + std::to_string(config_.id.value()) + " was removed from the cluster (broker " +
      std::to_string(from.value()) + " says so); this data directory cannot rejoin: to add "
      "the machine again, start it with an empty data directory and --join"));
}

void Node::leave_removed(const Status& status) {
  if (leaving_removed_ || stopped_) return;
  leaving_removed_ = true;
  log("REMOVED from the cluster: " + status.message());
  join_failure_ = status;
  // A graceful stop (checkpoints); the others no longer accept this broker's messages, so a
  // controller it led is taken over by an election among the remaining voters (the quorum
  // rule of check_remove). The serve command exits non-zero.
  asio::post(loop_, [this, alive = alive_, status] {
    if (!*alive || shutting_down_) return;  // a shutdown already under way ends it
    shutdown([this, status] {  // the Node outlives its stop (its owner destroys it)
      auto failed = std::move(join_failed_);
      if (failed) failed(status);
    });
  });
}

}  // namespace mq::cluster
