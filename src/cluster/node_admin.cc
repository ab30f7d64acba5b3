// Node: ClusterApi — metadata, partition lookup, admin commands (proposed to the controller
// group by its leader; other brokers answer kNotLeader = NOT_CONTROLLER), cluster status.
#include <algorithm>
#include <random>

#include "cluster/ids.h"
#include "cluster/node.h"

namespace mq::cluster {
namespace {

constexpr std::int16_t kInvalidTopicException = 17;
constexpr std::int16_t kInvalidPartitions = 37;
constexpr std::int16_t kInvalidReplicationFactor = 38;
constexpr std::int16_t kInvalidReplicaAssignment = 39;
constexpr std::int16_t kInvalidConfig = 40;

Uuid random_uuid() {
  // Chosen by the proposer and carried in the command, so apply() stays deterministic.
  static thread_local std::mt19937_64 prng(std::random_device{}());
  Uuid id{};
  std::uint64_t a = prng(), b = prng();
  for (int i = 0; i < 8; ++i) {
    id[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(a >> (8 * i));
    id[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>(b >> (8 * i));
  }
  id[6] = static_cast<std::uint8_t>((id[6] & 0x0f) | 0x40);  // version 4
  id[8] = static_cast<std::uint8_t>((id[8] & 0x3f) | 0x80);  // variant
  return id;
}

bool parse_long(const std::string& s, std::int64_t* out) {
  if (s.empty()) return false;
  std::size_t used = 0;
  try {
    *out = std::stoll(s, &used);
  } catch (...) {
    return false;
  }
  return used == s.size();
}

// Topic configs raftmq understands; other keys are refused (INVALID_CONFIG).
Status validate_configs(const std::map<std::string, std::string>& configs) {
  static const std::set<std::string> kNumeric = {"retention.ms", "retention.bytes", "segment.bytes",
                                                 "max.message.bytes", "min.insync.replicas",
                                                 "segment.ms", "delete.retention.ms"};
  static const std::set<std::string> kText = {"cleanup.policy", "compression.type",
                                              "message.timestamp.type"};
  for (const auto& [k, v] : configs) {
    std::int64_t n = 0;
    if (kNumeric.count(k) != 0) {
      if (!parse_long(v, &n)) return Status::invalid_argument("config " + k + ": not a number");
      if (k == "segment.bytes" && (n < 4096 || n > (1ll << 31))) {
        return Status::invalid_argument("segment.bytes must be in [4096, 2^31]");
      }
    } else if (kText.count(k) == 0) {
      return Status::invalid_argument("unknown topic config " + k);
    }
  }
  return Status::ok();
}

}  // namespace

const TopicInfo* MetadataSnapshot::find_topic(std::string_view name) const {
  for (const TopicInfo& t : topics) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::vector<BrokerId> Node::broker_ids() const {
  std::vector<BrokerId> ids;
  if (controller_ && !controller_->state().brokers().empty()) {
    for (const auto& [id, b] : controller_->state().brokers()) ids.push_back(id);
  } else {
    for (const BrokerAddress& b : config_.brokers) ids.push_back(b.id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::int16_t Node::default_replication_factor() const {
  if (config_.default_replication_factor > 0) return config_.default_replication_factor;
  return static_cast<std::int16_t>(std::min<std::size_t>(3, broker_ids().size()));
}

bool Node::broker_alive(BrokerId broker) const {
  if (broker == config_.id) return true;
  if (!transport_) return false;
  auto stats = transport_->peer_stats(broker);
  return stats.has_value() && stats->connected;
}

bool Node::sees_quorum_of_voters(const RaftGroup& group) const {
  const raft::ConfState& conf = group.node().conf_state();
  // Alive as this broker sees it: its connection up and not silent for the liveness timeout.
  auto majority_alive = [&](const std::vector<NodeId>& voters) {
    if (voters.empty()) return true;
    std::size_t alive = 0;
    for (NodeId v : voters) {
      BrokerId b = broker_of(v);
      if (b == config_.id || (broker_alive(b) && !peer_down(b))) ++alive;
    }
    return alive * 2 > voters.size();
  };
  return majority_alive(conf.voters) && majority_alive(conf.voters_outgoing);
}

PartitionInfo Node::partition_info(const PartitionRecord& record, std::int32_t index) const {
  PartitionInfo info;
  info.partition = index;
  info.replicas = record.replicas;
  auto hosted = partitions_.find(record.group);
  // A stopped replica (storage error) knows no leader: answer with the leader hint instead.
  if (hosted != partitions_.end() && hosted->second->started() && !hosted->second->failed()) {
    const PartitionGroup& g = *hosted->second;
    if (g.leader() != kNoNode) info.leader = broker_of(g.leader());
    info.leader_epoch = epoch_of_term(g.term());
    // A replica the leader knows caught up with the commit index is "in sync".
    if (g.is_raft_leader()) {
      raft::NodeStatus ns = g.node().status();
      for (const auto& [node, progress] : ns.progress) {
        if (!progress.learner && progress.match >= ns.hard_state.commit) {
          info.isr.push_back(broker_of(node));
        }
      }
    }
  } else {
    if (const Hint* hint = fresh_hint(record.group, steady_now_ms())) {
      info.leader = hint->leader;
      info.leader_epoch = epoch_of_term(hint->term);
    }
  }
  // A leader that sees fewer than a quorum of its voters alive does not name itself: another
  // replica may already lead a newer term (CheckQuorum deposes it only after an election
  // timeout). Kafka clients without leader epochs (librdkafka 2.0.2) act on whichever Metadata
  // answer they read last, and a stale "leader is me" read between two answers naming the
  // new leader can leave the partition on the old broker for good (docs/cluster.md
  // "Metadata from a leader cut off from its quorum").
  bool cut_off = false;
  if (info.leader == config_.id && hosted != partitions_.end() &&
      !sees_quorum_of_voters(*hosted->second)) {
    info.leader = BrokerId(-1);
    cut_off = true;
  }
  // A leader whose process is gone (its transport connection failed) is not named: a client
  // told "no leader" keeps asking for metadata (librdkafka's fast leader query), while one
  // told the dead broker waits for its next periodic refresh.
  // The same goes for a leader whose connection the kernel already reports closed while the
  // transport thread has not handled it yet: a client that lost the leader asks for Metadata
  // at once and may get here first (seen: "broker down" Metadata answered with the dead
  // leader, the client then waiting 1 s for its next refresh).
  NodeId gone = kNoNode;
  if (info.leader.value() >= 0 && !broker_alive(info.leader)) {
    info.leader = BrokerId(-1);
  } else if (info.leader.value() >= 0 && leader_connection_lost_now(info.leader)) {
    gone = node_of(info.leader);
    info.leader = BrokerId(-1);
  }
  // Right after a leader's loss, name the replica expected to win the election instead of
  // -1: a client told -1 waits for its next periodic refresh (librdkafka: 1 s), while one
  // sent to a replica not leading yet gets NOT_LEADER_OR_FOLLOWER and re-asks at once
  // (librdkafka's fast leader query, 250 ms). Routing advice only, like the hints.
  if (info.leader.value() < 0 && hosted != partitions_.end() && !cut_off) {
    info.leader = expected_leader(*hosted->second, gone);
    info.leader_expected = info.leader.value() >= 0;
  }
  for (BrokerId b : record.replicas) {
    if (!broker_alive(b)) info.offline.push_back(b);
  }
  if (info.isr.empty()) {
    for (BrokerId b : record.replicas) {
      if (broker_alive(b)) info.isr.push_back(b);
    }
  }
  std::sort(info.isr.begin(), info.isr.end());
  return info;
}

MetadataSnapshot Node::metadata() const {
  MetadataSnapshot m;
  m.cluster_id = config_.cluster_id;
  m.controller = config_.id;
  if (controller_ && controller_->leader() != kNoNode &&
      broker_alive(broker_of(controller_->leader()))) {
    m.controller = broker_of(controller_->leader());
  }
  const ControllerState* state = controller_ ? &controller_->state() : nullptr;
  if (state != nullptr && !state->brokers().empty()) {
    for (const auto& [id, b] : state->brokers()) {
      BrokerInfo info{id, b.host, b.kafka_port, std::nullopt, broker_alive(id)};
      if (!b.rack.empty()) info.rack = b.rack;
      m.brokers.push_back(std::move(info));
    }
  } else {
    for (const BrokerAddress& b : config_.brokers) {
      std::string host = b.id == config_.id ? config_.advertised_host : b.host;
      std::uint16_t port = b.id == config_.id ? config_.advertised_kafka_port : b.kafka_port;
      m.brokers.push_back(BrokerInfo{b.id, host, port, std::nullopt, broker_alive(b.id)});
    }
  }
  if (state == nullptr) return m;
  for (const auto& [name, t] : state->topics()) {
    TopicInfo info;
    info.name = name;
    info.topic_id = t.id;
    info.configs = t.configs;
    for (std::size_t p = 0; p < t.partitions.size(); ++p) {
      info.partitions.push_back(partition_info(t.partitions[p], static_cast<std::int32_t>(p)));
    }
    m.topics.push_back(std::move(info));
  }
  return m;
}

Result<LocalPartition*> Node::local_partition(std::string_view topic, std::int32_t partition) {
  if (!controller_) return Status::unavailable("broker not started");
  const TopicRecord* t = controller_->state().find_topic(topic);
  if (t == nullptr) return Status::not_found("unknown topic " + std::string(topic));
  if (partition < 0 || static_cast<std::size_t>(partition) >= t->partitions.size()) {
    return Status::not_found("unknown partition " + std::to_string(partition) + " of " +
                             std::string(topic));
  }
  const PartitionRecord& record = t->partitions[static_cast<std::size_t>(partition)];
  auto it = partitions_.find(record.group);
  if (it != partitions_.end() && it->second->is_leader()) return static_cast<LocalPartition*>(it->second.get());
  PartitionInfo info = partition_info(record, partition);
  return Status::not_leader(
      std::string(topic) + "-" + std::to_string(partition) + " is not led here" +
      (info.leader.value() >= 0 ? "; leader is broker " + std::to_string(info.leader.value())
                                : "; no leader right now"));
}

void Node::propose_admin(Command command, std::string name, std::int64_t timeout_ms,
                         std::function<void(AdminResult)> done, bool timeout_is_error) {
  if (!controller_ || !controller_->leader_ready()) {
    return done(AdminResult{std::move(name), Status::not_leader("not the controller"), 0});
  }
  register_brokers();
  // Answered once every live broker applied it (node_propagation.cc).
  controller_->propose(command, timeout_ms,
                       after_propagation(timeout_ms, timeout_is_error,
                                         [name, done = std::move(done)](Status s) {
                                           done(AdminResult{name, s, 0});
                                         }));
}

// Collects n results, then calls done once (the results are in request order).
namespace {
struct Gather {
  std::vector<AdminResult> results;
  std::size_t pending = 0;
  std::function<void(std::vector<AdminResult>)> done;
  void set(std::size_t i, AdminResult r) {
    results[i] = std::move(r);
    if (--pending == 0) done(std::move(results));
  }
};
}  // namespace

void Node::create_topics(std::vector<TopicSpec> topics, std::int64_t timeout_ms,
                         std::function<void(std::vector<AdminResult>)> done) {
  if (!topics.empty() && should_forward()) {
    AdminRequest q;
    q.op = AdminOp::kCreateTopics;
    q.timeout_ms = timeout_ms;
    q.topics = std::move(topics);
    return forward_admin(std::move(q), std::move(done));
  }
  auto gather = std::make_shared<Gather>();
  gather->results.resize(topics.size());
  gather->pending = topics.size();
  gather->done = std::move(done);
  if (topics.empty()) return gather->done({});
  register_brokers();
  // Like Kafka's controller, new replicas go to live brokers only: a replica on a dead
  // broker would leave a small group without a quorum from the start.
  // The static list (registered before this command commits) and the brokers that joined.
  std::vector<BrokerId> brokers{config_.id};
  for (BrokerId b : peer_ids()) {
    if (broker_alive(b)) brokers.push_back(b);
  }
  std::sort(brokers.begin(), brokers.end());
  for (std::size_t i = 0; i < topics.size(); ++i) {
    TopicSpec& spec = topics[i];
    auto fail = [&](Status s, std::int16_t code) { gather->set(i, AdminResult{spec.name, s, code}); };
    if (!controller_ || !controller_->leader_ready()) {
      fail(Status::not_leader("not the controller"), 0);
      continue;
    }
    if (Status s = validate_topic_name(spec.name); !s.is_ok()) {
      fail(s, kInvalidTopicException);
      continue;
    }
    if (controller_->state().find_topic(spec.name) != nullptr) {
      fail(Status::already_exists("topic " + spec.name + " exists"), 0);
      continue;
    }
    if (Status s = validate_configs(spec.configs); !s.is_ok()) {
      fail(s, kInvalidConfig);
      continue;
    }
    std::vector<std::vector<BrokerId>> assignment;
    if (!spec.assignments.empty()) {
      if (spec.partitions > 0 || spec.replication_factor > 0) {
        fail(Status::invalid_argument("give either an assignment or partitions/replication factor"),
             kInvalidReplicaAssignment);
        continue;
      }
      std::int32_t expected = 0;
      bool ok = true;
      for (auto& [p, replicas] : spec.assignments) {
        ok &= p == expected++ && !replicas.empty();
        assignment.push_back(replicas);
      }
      if (!ok) {
        fail(Status::invalid_argument("assignment must cover partitions 0..n-1"), kInvalidReplicaAssignment);
        continue;
      }
    } else {
      std::int32_t partitions = spec.partitions > 0 ? spec.partitions : config_.default_partitions;
      std::int16_t rf = spec.replication_factor > 0 ? spec.replication_factor
                                                    : default_replication_factor();
      if (spec.partitions == 0 || spec.partitions < -1) {
        fail(Status::invalid_argument("number of partitions must be positive"), kInvalidPartitions);
        continue;
      }
      if (spec.replication_factor == 0 || spec.replication_factor < -1) {
        fail(Status::invalid_argument("replication factor must be positive"), kInvalidReplicationFactor);
        continue;
      }
      std::uint32_t start = std::max(assignment_rotation_, controller_->state().assignment_start());
      auto a = assign_replicas(brokers, partitions, rf, start);
      if (!a.has_value()) {
        fail(a.error(), static_cast<std::size_t>(rf) > brokers.size() || rf < 1
                            ? kInvalidReplicationFactor
                            : kInvalidPartitions);
        continue;
      }
      assignment_rotation_ = start + 1;
      assignment = std::move(*a);
    }
    if (spec.validate_only) {
      gather->set(i, AdminResult{spec.name, Status::ok(), 0});
      continue;
    }
    CreateTopic c;
    c.name = spec.name;
    c.id = random_uuid();
    c.first_group = controller_->reserve_groups(assignment.size());
    c.assignment = std::move(assignment);
    c.configs = spec.configs;
    std::string name = spec.name;
    // Answered once every live broker applied it, REQUEST_TIMED_OUT after timeout_ms
    // (node_propagation.cc; Kafka's CreateTopics, KIP-4).
    controller_->propose(c, timeout_ms, after_propagation(timeout_ms, true, [gather, i, name](Status s) {
      std::int16_t code = s.code() == ErrorCode::kInvalidArgument ? kInvalidReplicaAssignment : 0;
      gather->set(i, AdminResult{name, s, code});
    }));
  }
}

void Node::delete_topics(std::vector<std::string> names, std::int64_t timeout_ms,
                         std::function<void(std::vector<AdminResult>)> done) {
  if (!names.empty() && should_forward()) {
    AdminRequest q;
    q.op = AdminOp::kDeleteTopics;
    q.timeout_ms = timeout_ms;
    q.names = std::move(names);
    return forward_admin(std::move(q), std::move(done));
  }
  auto gather = std::make_shared<Gather>();
  gather->results.resize(names.size());
  gather->pending = names.size();
  gather->done = std::move(done);
  if (names.empty()) return gather->done({});
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (controller_ && controller_->leader_ready() &&
        controller_->state().find_topic(names[i]) == nullptr) {
      gather->set(i, AdminResult{names[i], Status::not_found("unknown topic " + names[i]), 0});
      continue;
    }
    propose_admin(DeleteTopic{names[i]}, names[i], timeout_ms,
                  [gather, i](AdminResult r) { gather->set(i, std::move(r)); });
  }
}

void Node::create_partitions(std::vector<std::pair<std::string, std::int32_t>> new_totals,
                             std::int64_t timeout_ms, bool validate_only,
                             std::function<void(std::vector<AdminResult>)> done) {
  if (!new_totals.empty() && should_forward()) {
    AdminRequest q;
    q.op = AdminOp::kCreatePartitions;
    q.timeout_ms = timeout_ms;
    q.validate_only = validate_only;
    q.new_totals = std::move(new_totals);
    return forward_admin(std::move(q), std::move(done));
  }
  auto gather = std::make_shared<Gather>();
  gather->results.resize(new_totals.size());
  gather->pending = new_totals.size();
  gather->done = std::move(done);
  if (new_totals.empty()) return gather->done({});
  register_brokers();
  for (std::size_t i = 0; i < new_totals.size(); ++i) {
    const auto& [name, total] = new_totals[i];
    auto fail = [&](Status s, std::int16_t code) { gather->set(i, AdminResult{name, s, code}); };
    if (!controller_ || !controller_->leader_ready()) {
      fail(Status::not_leader("not the controller"), 0);
      continue;
    }
    const TopicRecord* t = controller_->state().find_topic(name);
    if (t == nullptr) {
      fail(Status::not_found("unknown topic " + name), 0);
      continue;
    }
    std::int32_t current = static_cast<std::int32_t>(t->partitions.size());
    if (total <= current) {
      fail(Status::invalid_argument("topic " + name + " has " + std::to_string(current) +
                                    " partitions already"),
           kInvalidPartitions);
      continue;
    }
    auto rf = static_cast<std::int32_t>(t->partitions.front().replicas.size());
    std::uint32_t start = std::max(assignment_rotation_, controller_->state().assignment_start());
    std::vector<BrokerId> live;
    for (BrokerId b : broker_ids()) {
      if (broker_alive(b)) live.push_back(b);
    }
    auto a = assign_replicas(live, total - current, rf, start + static_cast<std::uint32_t>(current));
    if (!a.has_value()) {
      fail(a.error(), kInvalidPartitions);
      continue;
    }
    if (validate_only) {
      gather->set(i, AdminResult{name, Status::ok(), 0});
      continue;
    }
    CreatePartitions c{name, controller_->reserve_groups(a->size()), std::move(*a)};
    controller_->propose(c, timeout_ms,
                         after_propagation(timeout_ms, true, [gather, i, name = name](Status s) {
                           gather->set(i, AdminResult{name, s, 0});
                         }));
  }
}

void Node::alter_topic_configs(std::string topic, std::map<std::string, std::string> configs,
                               std::int64_t timeout_ms, std::function<void(AdminResult)> done) {
  if (Status s = validate_configs(configs); !s.is_ok()) {
    return done(AdminResult{topic, s, kInvalidConfig});
  }
  if (should_forward()) {
    AdminRequest q;
    q.op = AdminOp::kAlterConfigs;
    q.timeout_ms = timeout_ms;
    q.topic = std::move(topic);
    q.configs = std::move(configs);
    return forward_admin(std::move(q), [done = std::move(done)](std::vector<AdminResult> r) {
      done(r.empty() ? AdminResult{"", Status::internal("empty answer"), 0} : std::move(r[0]));
    });
  }
  // Kafka's AlterConfigs has no timeout_ms: waiting for the brokers is bounded by ours, and
  // its expiry is no error (the change is committed).
  propose_admin(AlterConfigs{topic, std::move(configs)}, topic, timeout_ms, std::move(done),
                false);
}

void Node::move_partition(std::string topic, std::int32_t partition,
                          std::vector<BrokerId> replicas, std::int64_t timeout_ms,
                          std::function<void(AdminResult)> done) {
  if (should_forward()) {
    AdminRequest q;
    q.op = AdminOp::kMovePartition;
    q.timeout_ms = timeout_ms;
    q.topic = std::move(topic);
    q.partition = partition;
    q.replicas = std::move(replicas);
    return forward_admin(std::move(q), [done = std::move(done)](std::vector<AdminResult> r) {
      done(r.empty() ? AdminResult{"", Status::internal("empty answer"), 0} : std::move(r[0]));
    });
  }
  propose_admin(MovePartition{topic, partition, std::move(replicas)}, topic, timeout_ms,
                std::move(done));
}

Result<std::map<std::string, std::string>> Node::describe_topic_configs(std::string_view topic) const {
  if (!controller_) return Status::unavailable("broker not started");
  const TopicRecord* t = controller_->state().find_topic(topic);
  if (t == nullptr) return Status::not_found("unknown topic " + std::string(topic));
  std::map<std::string, std::string> configs = {
      {"retention.ms", std::to_string(config_.default_retention_ms)},
      {"retention.bytes", std::to_string(config_.default_retention_bytes)},
      {"segment.bytes", std::to_string(config_.segment_size_bytes)},
      {"max.message.bytes", std::to_string(config_.max_batch_bytes)},
      {"cleanup.policy", "delete"},
      {"min.insync.replicas", "1"},
      {"message.timestamp.type", "CreateTime"},
      {"compression.type", "producer"},
  };
  for (const auto& [k, v] : t->configs) configs[k] = v;
  return configs;
}

std::map<std::string, std::string> Node::describe_broker_configs() const {
  return {
      {"broker.id", std::to_string(config_.id.value())},
      {"num.partitions", std::to_string(config_.default_partitions)},
      {"default.replication.factor", std::to_string(default_replication_factor())},
      {"auto.create.topics.enable", config_.auto_create_topics ? "true" : "false"},
      {"log.retention.ms", std::to_string(config_.default_retention_ms)},
      {"log.retention.bytes", std::to_string(config_.default_retention_bytes)},
      {"log.segment.bytes", std::to_string(config_.segment_size_bytes)},
      {"message.max.bytes", std::to_string(config_.max_batch_bytes)},
  };
}

std::vector<ReassignmentInfo> Node::list_reassignments() const {
  std::vector<ReassignmentInfo> out;
  if (!controller_) return out;
  for (const auto& [name, t] : controller_->state().topics()) {
    for (std::size_t p = 0; p < t.partitions.size(); ++p) {
      const PartitionRecord& record = t.partitions[p];
      auto hosted = partitions_.find(record.group);
      if (hosted == partitions_.end() || !hosted->second->started()) continue;
      raft::ConfState conf = hosted->second->node().conf_state();
      std::set<BrokerId> current;
      for (NodeId v : conf.voters) current.insert(broker_of(v));
      for (NodeId v : conf.voters_outgoing) current.insert(broker_of(v));
      ReassignmentInfo info;
      info.topic = name;
      info.partition = static_cast<std::int32_t>(p);
      info.replicas = record.replicas;
      std::set<BrokerId> target(record.replicas.begin(), record.replicas.end());
      for (BrokerId b : target) {
        if (current.count(b) == 0) info.adding.push_back(b);
      }
      for (BrokerId b : current) {
        if (target.count(b) == 0) info.removing.push_back(b);
      }
      if (!info.adding.empty() || !info.removing.empty()) out.push_back(std::move(info));
    }
  }
  return out;
}

ClusterStatus Node::cluster_status() const {
  ClusterStatus s;
  s.self = config_.id;
  if (controller_ && controller_->started()) {
    if (controller_->leader() != kNoNode) s.controller_leader = broker_of(controller_->leader());
    s.controller_term = controller_->term();
    s.controller_commit = controller_->node().status().hard_state.commit;
  }
  for (const BrokerInfo& b : metadata().brokers) {
    s.brokers.push_back(BrokerStatus{b.id, b.host, b.kafka_port, b.alive});
  }
  for (const auto& [id, g] : partitions_) s.partitions.push_back(g->status());
  s.metrics = metrics();
  return s;
}

}  // namespace mq::cluster
