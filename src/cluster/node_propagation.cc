// Node: admin read-your-writes (docs/cluster.md "Admin answers wait for the live brokers").
//
// Every broker learns metadata by applying the controller log (Raft group 0), each at its
// own pace: the controller leader applies an entry once a majority stored it, the others
// when the next append or heartbeat tells them the commit index. An admin answer given at
// commit therefore leaves a window in which another broker's Metadata still shows the old
// state. Like Kafka's ZooKeeper-mode controller, which answers CreateTopics/DeleteTopics/
// CreatePartitions once the new metadata reached the brokers or timeout_ms expired (KIP-4:
// "if a timeout error occurs, the topic could still be created successfully"; the answer is
// then REQUEST_TIMED_OUT), the controller leader here asks every *live* broker (connected
// and not considered down by the liveness pings) to confirm it applied the entry and
// answers when all did. A broker that dies or is cut off meanwhile is dropped from the wait;
// one that stays live without applying the entry holds the answer until the deadline only.
//
// The query and its acknowledgement travel on the control-plane channel: query = context
// kAppliedQueryContext, index = request id, commit = the entry's index; the asked broker
// answers (kAppliedAckContext, same id, commit = its applied index) as soon as its
// controller replica has applied that index: at once, or from the apply itself.
#include <algorithm>

#include "cluster/ids.h"
#include "cluster/node.h"
#include "cluster/partition.h"  // steady_now_ms

namespace mq::cluster {
namespace {

constexpr std::size_t kPropagationsMax = 1024;     // waits in flight on the controller leader
constexpr std::size_t kAppliedQueriesMax = 4096;   // queries waiting for an apply, per broker
constexpr std::int64_t kQueryResendMs = 250;       // a query lost with a reconnect is resent
constexpr std::int64_t kAppliedQueryMaxAgeMs = 300000;  // longest admin timeout (forwarding)

std::string broker_list(const std::set<BrokerId>& brokers) {
  std::string out;
  for (BrokerId b : brokers) out += (out.empty() ? "" : ", ") + std::to_string(b.value());
  return out;
}

}  // namespace

void Node::hold_controller_for_test(std::int64_t ms) {
  controller_hold_until_ms_ = ms > 0 ? steady_now_ms() + ms : 0;
}

std::function<void(Status)> Node::after_propagation(std::int64_t timeout_ms, bool timeout_is_error,
                                                    std::function<void(Status)> done) {
  std::int64_t deadline_ms = steady_now_ms() + timeout_ms;
  return [this, alive = alive_, timeout_ms, timeout_is_error, deadline_ms,
          done = std::move(done)](Status s) {
    // Kafka: timeout_ms <= 0 answers as soon as the command is accepted, without waiting.
    if (!s.is_ok() || timeout_ms <= 0 || !*alive || !controller_) return done(s);
    // This broker applied its own removal and is leaving: answer while it still can.
    if (controller_->state().find_removed(config_.id) != nullptr) return done(s);
    // Called from the controller's apply of the command: applied() is the entry's index.
    LogIndex index = controller_->applied();
    await_propagation(index, deadline_ms,
                      [done, timeout_is_error, index](std::set<BrokerId> missing) {
      if (missing.empty() || !timeout_is_error) return done(Status::ok());
      done(Status::timeout("committed (controller index " + std::to_string(index.value()) +
                           "), but broker(s) " + broker_list(missing) +
                           " had not applied it within the timeout"));
    });
  };
}

void Node::await_propagation(LogIndex index, std::int64_t deadline_ms,
                             std::function<void(std::set<BrokerId>)> done) {
  Propagation p;
  p.index = index;
  p.deadline_ms = deadline_ms;
  p.sent_ms = steady_now_ms();
  for (BrokerId b : broker_ids()) {
    if (b == config_.id || !broker_alive(b) || peer_down(b)) continue;  // not live: not waited for
    p.waiting.insert(b);
  }
  if (p.waiting.empty()) return done({});
  if (propagations_.size() >= kPropagationsMax) {
    log("admin answer not waiting for the brokers to apply controller index " +
        std::to_string(index.value()) + ": too many waits in flight");
    return done({});
  }
  std::uint64_t id = next_propagation_id_++;
  p.done = std::move(done);
  std::set<BrokerId> targets = p.waiting;
  propagations_.emplace(id, std::move(p));
  for (BrokerId b : targets) send_applied_query(b, id, index);
}

void Node::send_applied_query(BrokerId to, std::uint64_t id, LogIndex index) {
  if (!transport_) return;
  raft::Message m;
  m.type = raft::MessageType::kReadIndex;
  m.from = node_of(config_.id);
  m.to = node_of(to);
  m.index = LogIndex(id);
  m.commit = index;
  m.context = kAppliedQueryContext;
  transport_->send(to, kControlPlaneGroup, std::move(m));  // a lost one is resent by the sweep
}

void Node::handle_applied_query(BrokerId from, const raft::Message& message) {
  AppliedQuery q{from, message.index.value(), message.commit, steady_now_ms()};
  for (const AppliedQuery& other : applied_queries_) {
    if (other.from == q.from && other.id == q.id) return;  // a resent query already waiting
  }
  if (applied_queries_.size() >= kAppliedQueriesMax) {
    applied_queries_.erase(applied_queries_.begin());  // the oldest asker times out instead
  }
  applied_queries_.push_back(q);
  answer_applied_queries();
}

void Node::answer_applied_queries() {
  if (applied_queries_.empty() || !controller_ || !transport_) return;
  LogIndex applied = controller_->applied();
  std::int64_t now = steady_now_ms();
  auto answered = std::remove_if(applied_queries_.begin(), applied_queries_.end(),
                                 [&](const AppliedQuery& q) {
    if (q.index > applied) return now - q.received_ms > kAppliedQueryMaxAgeMs;
    raft::Message m;
    m.type = raft::MessageType::kReadIndex;
    m.from = node_of(config_.id);
    m.to = node_of(q.from);
    m.index = LogIndex(q.id);
    m.commit = applied;
    m.context = kAppliedAckContext;
    transport_->send(q.from, kControlPlaneGroup, std::move(m));
    return true;
  });
  applied_queries_.erase(answered, applied_queries_.end());
}

void Node::handle_applied_ack(BrokerId from, const raft::Message& message) {
  auto it = propagations_.find(message.index.value());
  if (it == propagations_.end() || message.commit < it->second.index) return;  // late or short
  Propagation& p = it->second;
  p.waiting.erase(from);
  if (!p.waiting.empty()) return;
  auto done = std::move(p.done);
  propagations_.erase(it);
  done({});
}

void Node::sweep_propagations(std::int64_t now_ms) {
  answer_applied_queries();  // also covers applies that changed no state (configuration entries)
  std::vector<std::pair<std::function<void(std::set<BrokerId>)>, std::set<BrokerId>>> finished;
  for (auto it = propagations_.begin(); it != propagations_.end();) {
    Propagation& p = it->second;
    for (auto b = p.waiting.begin(); b != p.waiting.end();) {
      bool live = broker_alive(*b) && !peer_down(*b);  // died or cut off meanwhile: not waited for
      b = live ? std::next(b) : p.waiting.erase(b);
    }
    if (p.waiting.empty() || now_ms >= p.deadline_ms) {
      finished.emplace_back(std::move(p.done), std::move(p.waiting));
      it = propagations_.erase(it);
      continue;
    }
    if (now_ms - p.sent_ms >= kQueryResendMs) {
      p.sent_ms = now_ms;
      for (BrokerId b : p.waiting) send_applied_query(b, it->first, p.index);
    }
    ++it;
  }
  for (auto& [done, missing] : finished) done(std::move(missing));
}

void Node::fail_propagations() {
  // Stopping: the commands are committed; answer with the brokers not confirmed.
  auto pending = std::move(propagations_);
  propagations_.clear();
  for (auto& [id, p] : pending) p.done(std::move(p.waiting));
  applied_queries_.clear();
}

}  // namespace mq::cluster
