// Node: admin request forwarding (docs/cluster.md, "Admin forwarding"). An admin call on a
// broker that is not the controller leader travels to the leader over the transport's
// control-plane channel (group kControlPlaneGroup, message context kAdminRequest, request id
// in `index`, the encoded AdminRequest as the single entry) and the leader's answer comes
// back the same way (context kAdminResponse). The caller waits up to its timeout (at least
// kForwardLocateMs) for a controller leader to be known; only if none is known by then does
// it get kNotLeader (NOT_CONTROLLER).
//
// A request is sent once per controller leader: if the leader it went to dies or answers
// kNotLeader (it lost the leadership), the request goes to the next leader. A request whose
// leader died after proposing may thus be applied once and then answered "already exists" by
// the next leader — the same outcome a Kafka client retrying a CreateTopics gets.
//
// One exception, because it is the rule rather than the exception: removing the broker that
// leads the controller. That leader applies its own removal and stops (node_join.cc), and
// its answer races with this broker applying the same entry and dropping the link to it. A
// forwarded RemoveBroker therefore also ends successfully when this broker's applied state
// gains the broker's tombstone (one it did not have when the request was made), and an
// "already removed" answer from a later leader is held until that tombstone is applied here
// (or the request's locate deadline passes, when the held answer is returned).
#include <algorithm>

#include "base/le_codec.h"
#include "cluster/ids.h"
#include "cluster/node.h"
#include "cluster/node_admin_rpc.h"

namespace mq::cluster {
namespace {

constexpr std::int64_t kForwardLocateMs = 5000;     // least wait for a controller leader
constexpr std::int64_t kForwardSlackMs = 2000;      // transport and scheduling slack
constexpr std::int64_t kForwardTimeoutMaxMs = 300000;

std::vector<AdminResult> all_failed(const std::vector<std::string>& names, const Status& s) {
  std::vector<AdminResult> results;
  for (const std::string& n : names) results.push_back(AdminResult{n, s, 0});
  return results;
}

std::vector<std::string> request_names(const AdminRequest& q) {
  std::vector<std::string> names;
  switch (q.op) {
    case AdminOp::kCreateTopics:
      for (const TopicSpec& t : q.topics) names.push_back(t.name);
      break;
    case AdminOp::kDeleteTopics:
      names = q.names;
      break;
    case AdminOp::kCreatePartitions:
      for (const auto& [n, total] : q.new_totals) names.push_back(n);
      break;
    case AdminOp::kAlterConfigs:
    case AdminOp::kMovePartition:
      names.push_back(q.topic);
      break;
    case AdminOp::kRemoveBroker:
    case AdminOp::kControllerVoter:
      names.push_back("broker " + std::to_string(q.broker.value()));
      break;
  }
  return names;
}

}  // namespace

bool Node::should_forward() const {
  return controller_ != nullptr && !controller_->leader_ready() && !serving_forwarded_;
}

void Node::forward_admin(AdminRequest request, std::function<void(std::vector<AdminResult>)> done) {
  std::int64_t now = steady_now_ms();
  std::int64_t wait = std::clamp<std::int64_t>(request.timeout_ms, 0, kForwardTimeoutMaxMs);
  Forward f;
  f.names = request_names(request);
  f.request = std::move(request);
  f.locate_deadline_ms = now + std::max(wait, kForwardLocateMs);
  f.deadline_ms = f.locate_deadline_ms + kForwardSlackMs;
  f.done = std::move(done);
  if (f.request.op == AdminOp::kRemoveBroker && controller_) {
    const RemovedBroker* r = controller_->state().find_removed(f.request.broker);
    if (r != nullptr) f.removed_before = *r;
  }
  std::uint64_t id = next_forward_id_++;
  forwards_.emplace(id, std::move(f));
  try_forward(id, now);
}

void Node::try_forward(std::uint64_t id, std::int64_t now_ms) {
  auto it = forwards_.find(id);
  if (it == forwards_.end()) return;
  Forward& f = it->second;
  if (removal_applied_since(f)) {
    Forward applied = std::move(f);
    forwards_.erase(it);
    return applied.done(all_failed(applied.names, Status::ok()));
  }
  if (!f.held.empty()) {  // an "already removed" answer, waiting for the tombstone here
    if (now_ms < f.locate_deadline_ms) return;
    Forward gone = std::move(f);
    forwards_.erase(it);
    return gone.done(std::move(gone.held));
  }
  if (controller_ && controller_->leader_ready()) {
    // We became the controller leader meanwhile: serve it here.
    Forward local = std::move(f);
    forwards_.erase(it);
    return serve_admin(std::move(local.request), std::move(local.done));
  }
  BrokerId leader{-1};
  if (controller_ && controller_->leader() != kNoNode) leader = broker_of(controller_->leader());
  bool refused_before =
      controller_ && leader == f.failed_leader && controller_->term() <= f.failed_term;
  if (leader.value() < 0 || leader == config_.id || !broker_alive(leader) || refused_before) {
    if (now_ms >= f.locate_deadline_ms) {
      Forward gone = std::move(f);
      forwards_.erase(it);
      return gone.done(all_failed(
          gone.names, Status::not_leader("no controller leader known; try again later")));
    }
    f.sent_to = BrokerId(-1);  // retried by sweep_forwards
    return;
  }
  raft::Message m;
  m.type = raft::MessageType::kReadIndex;
  m.from = node_of(config_.id);
  m.to = node_of(leader);
  m.index = LogIndex(id);
  m.context = kAdminRequestContext;
  raft::Entry e;
  e.payload = SharedBuffer(encode_admin_request(f.request));
  m.entries.push_back(std::move(e));
  f.sent_to = leader;
  if (!transport_ || !transport_->send(leader, kControlPlaneGroup, std::move(m))) {
    f.sent_to = BrokerId(-1);
  }
}

void Node::sweep_forwards(std::int64_t now_ms) {
  std::vector<std::uint64_t> retry;
  for (auto it = forwards_.begin(); it != forwards_.end();) {
    Forward& f = it->second;
    if (now_ms >= f.deadline_ms) {
      Forward gone = std::move(f);
      it = forwards_.erase(it);
      gone.done(all_failed(gone.names, Status::timeout("the controller did not answer in time")));
      continue;
    }
    if (f.sent_to.value() < 0) {
      retry.push_back(it->first);
    } else if (!broker_alive(f.sent_to)) {
      f.failed_leader = f.sent_to;  // it died with our request: wait for its successor
      f.failed_term = controller_ ? controller_->term() : Term(0);
      f.sent_to = BrokerId(-1);
      retry.push_back(it->first);
    }
    ++it;
  }
  for (std::uint64_t id : retry) try_forward(id, now_ms);
}

void Node::fail_forwards(const Status& status) {
  auto forwards = std::move(forwards_);
  forwards_.clear();
  for (auto& [id, f] : forwards) f.done(all_failed(f.names, status));
}

bool Node::removal_applied_since(const Forward& f) const {
  if (f.request.op != AdminOp::kRemoveBroker || !controller_) return false;
  const RemovedBroker* now = controller_->state().find_removed(f.request.broker);
  return now != nullptr && (!f.removed_before.has_value() || *f.removed_before != *now);
}

void Node::serve_admin(AdminRequest q, std::function<void(std::vector<AdminResult>)> done) {
  // Executed here without forwarding again (a forwarded request to a broker that lost the
  // controller leadership is answered kNotLeader; the origin then finds the new leader).
  serving_forwarded_ = true;
  auto one = [done](AdminResult r) { done(std::vector<AdminResult>{std::move(r)}); };
  switch (q.op) {
    case AdminOp::kCreateTopics:
      create_topics(std::move(q.topics), q.timeout_ms, std::move(done));
      break;
    case AdminOp::kDeleteTopics:
      delete_topics(std::move(q.names), q.timeout_ms, std::move(done));
      break;
    case AdminOp::kCreatePartitions:
      create_partitions(std::move(q.new_totals), q.timeout_ms, q.validate_only, std::move(done));
      break;
    case AdminOp::kAlterConfigs:
      alter_topic_configs(std::move(q.topic), std::move(q.configs), q.timeout_ms, one);
      break;
    case AdminOp::kMovePartition:
      move_partition(std::move(q.topic), q.partition, std::move(q.replicas), q.timeout_ms, one);
      break;
    case AdminOp::kRemoveBroker:
      remove_broker(q.broker, q.timeout_ms, one);
      break;
    case AdminOp::kControllerVoter:
      set_controller_voter(q.broker, q.voter_choice, q.timeout_ms, one);
      break;
  }
  serving_forwarded_ = false;
}

void Node::handle_admin_request(BrokerId from, const raft::Message& message) {
  if (message.entries.size() != 1) return;
  std::uint64_t id = message.index.value();
  auto reply = [this, alive = alive_, from, id](std::vector<AdminResult> results) {
    if (!*alive || !transport_) return;
    raft::Message m;
    m.type = raft::MessageType::kReadIndex;
    m.from = node_of(config_.id);
    m.to = node_of(from);
    m.index = LogIndex(id);
    m.context = kAdminResponseContext;
    raft::Entry e;
    e.payload = SharedBuffer(encode_admin_results(results));
    m.entries.push_back(std::move(e));
    transport_->send(from, kControlPlaneGroup, std::move(m));
  };
  Result<AdminRequest> q = decode_admin_request(message.entries[0].payload.view());
  if (!q.has_value()) {
    log("refused a forwarded admin request from broker " + std::to_string(from.value()) + ": " +
        q.error().to_string());
    return reply({AdminResult{"", q.error(), 0}});
  }
  if (!controller_ || !controller_->leader_ready()) {
    return reply(all_failed(request_names(*q), Status::not_leader("not the controller")));
  }
  serve_admin(std::move(*q), std::move(reply));
}

void Node::handle_admin_response(BrokerId from, const raft::Message& message) {
  if (message.entries.size() != 1) return;
  auto it = forwards_.find(message.index.value());
  if (it == forwards_.end() || it->second.sent_to != from) return;  // late or foreign
  Result<std::vector<AdminResult>> results = decode_admin_results(message.entries[0].payload.view());
  Forward& f = it->second;
  if (!results.has_value()) {
    Forward gone = std::move(f);
    forwards_.erase(it);
    return gone.done(all_failed(gone.names, results.error()));
  }
  bool moved = !results->empty() && std::all_of(results->begin(), results->end(), [](const AdminResult& r) {
    return r.status.code() == ErrorCode::kNotLeader;
  });
  // A re-sent removal answered "not registered / already removed" by a later leader: the first
  // leader may have applied it before losing its answer (the header); wait for the tombstone.
  bool resent_removal = f.request.op == AdminOp::kRemoveBroker && !f.removed_before.has_value() &&
                        f.failed_leader.value() >= 0 && results->size() == 1 &&
                        (*results)[0].status.code() == ErrorCode::kNotFound;
  if (resent_removal && steady_now_ms() < f.locate_deadline_ms) {
    f.held = std::move(*results);
    f.sent_to = BrokerId(-1);  // sweep_forwards -> try_forward checks the tombstone
    return;
  }
  if (moved && steady_now_ms() < f.locate_deadline_ms) {
    f.failed_leader = from;  // it is no longer the controller: wait for the new one
    f.failed_term = controller_ ? controller_->term() : Term(0);
    f.sent_to = BrokerId(-1);
    return;
  }
  Forward gone = std::move(f);
  forwards_.erase(it);
  gone.done(std::move(*results));
}

}  // namespace mq::cluster
