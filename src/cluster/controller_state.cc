#include "cluster/controller_state.h"

#include <algorithm>
#include <limits>
#include <set>

#include "base/le_codec.h"

namespace mq::cluster {
namespace {

constexpr std::uint8_t kCommandVersion = 1;
constexpr std::uint8_t kSnapshotVersion = 5;  // 5: + controller voter choices section
constexpr std::uint8_t kSnapshotVersionWithoutVoterChoices = 4;  // 4: + removed brokers section
constexpr std::uint8_t kSnapshotVersionWithoutRemoved = 3;  // 3: + broker incarnations
constexpr std::uint8_t kSnapshotVersionWithoutIncarnations = 2;  // 2: + producer ids section
constexpr std::uint8_t kSnapshotVersionWithoutProducerIds = 1;

enum class CommandType : std::uint8_t {
  kRegisterBroker = 1,
  kCreateTopic = 2,
  kDeleteTopic = 3,
  kCreatePartitions = 4,
  kAlterConfigs = 5,
  kMovePartition = 6,
  kJoinBroker = 7,
  kRemoveBroker = 8,
  kSetVoterChoice = 9,
  kAllocateProducerIds = 32,  // far from the others: other command types may be added
};

// Tagged sections after the topics in a snapshot (older snapshots have none).
constexpr std::uint8_t kSnapshotProducerIdsTag = 1;
constexpr std::uint8_t kSnapshotRemovedTag = 2;
constexpr std::uint8_t kSnapshotVoterChoicesTag = 3;

// ---- writing ----
void put_string(Buffer& out, std::string_view s) {
  MQ_ASSERT(s.size() <= kStringBytesMax, "string too long to encode");
  le::put_u16(out, static_cast<std::uint16_t>(s.size()));
  out.append(s.data(), s.size());
}
void put_i32(Buffer& out, std::int32_t v) { le::put_u32(out, static_cast<std::uint32_t>(v)); }
void put_replicas(Buffer& out, const std::vector<BrokerId>& replicas) {
  le::put_u32(out, static_cast<std::uint32_t>(replicas.size()));
  for (BrokerId b : replicas) put_i32(out, b.value());
}
void put_assignment(Buffer& out, const std::vector<std::vector<BrokerId>>& a) {
  le::put_u32(out, static_cast<std::uint32_t>(a.size()));
  for (const auto& replicas : a) put_replicas(out, replicas);
}
void put_configs(Buffer& out, const std::map<std::string, std::string>& configs) {
  le::put_u32(out, static_cast<std::uint32_t>(configs.size()));
  for (const auto& [k, v] : configs) {
    put_string(out, k);
    put_string(out, v);
  }
}
void put_broker(Buffer& out, const BrokerRecord& b) {
  put_i32(out, b.id.value());
  put_string(out, b.host);
  le::put_u16(out, b.kafka_port);
  put_string(out, b.rpc_host);
  le::put_u16(out, b.rpc_port);
  put_string(out, b.rack);
}
void put_uuid(Buffer& out, const Uuid& id) { out.append(id.data(), id.size()); }

// ---- reading: every helper returns false on truncation or a bound exceeded ----
class Reader {
 public:
  explicit Reader(BufferView bytes) : r_(bytes) {}
  bool u8(std::uint8_t* v) { return r_.read_u8(v); }
  bool u16(std::uint16_t* v) { return r_.read_u16(v); }
  bool u32(std::uint32_t* v) { return r_.read_u32(v); }
  bool u64(std::uint64_t* v) { return r_.read_u64(v); }
  bool i32(std::int32_t* v) {
    std::uint32_t u = 0;
    if (!r_.read_u32(&u)) return false;
    *v = static_cast<std::int32_t>(u);
    return true;
  }
  bool string(std::string* s) {
    std::uint16_t n = 0;
    BufferView bytes;
    if (!r_.read_u16(&n) || n > kStringBytesMax || !r_.read_bytes(n, &bytes)) return false;
    s->assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return true;
  }
  bool uuid(Uuid* id) {
    BufferView bytes;
    if (!r_.read_bytes(id->size(), &bytes)) return false;
    std::copy(bytes.begin(), bytes.end(), id->begin());
    return true;
  }
  bool replicas(std::vector<BrokerId>* out) {
    std::uint32_t n = 0;
    if (!u32(&n) || n > kReplicasMax || n > r_.remaining() / 4) return false;
    out->clear();
    for (std::uint32_t i = 0; i < n; ++i) {
      std::int32_t b = 0;
      if (!i32(&b)) return false;
      out->push_back(BrokerId(b));
    }
    return true;
  }
  bool assignment(std::vector<std::vector<BrokerId>>* out) {
    std::uint32_t n = 0;
    if (!u32(&n) || n > kPartitionsPerTopicMax || n > r_.remaining() / 4) return false;
    out->resize(n);
    for (auto& replicas_of : *out) {
      if (!replicas(&replicas_of)) return false;
    }
    return true;
  }
  bool configs(std::map<std::string, std::string>* out) {
    std::uint32_t n = 0;
    if (!u32(&n) || n > kConfigsMax || n > r_.remaining() / 4) return false;
    out->clear();
    for (std::uint32_t i = 0; i < n; ++i) {
      std::string k, v;
      if (!string(&k) || !string(&v)) return false;
      (*out)[k] = v;
    }
    return true;
  }
  bool broker(BrokerRecord* b) {
    std::int32_t id = 0;
    if (!i32(&id) || !string(&b->host) || !u16(&b->kafka_port) || !string(&b->rpc_host) ||
        !u16(&b->rpc_port) || !string(&b->rack)) {
      return false;
    }
    b->id = BrokerId(id);
    return true;
  }
  bool at_end() const { return r_.at_end(); }
  std::size_t remaining() const { return r_.remaining(); }

 private:
  le::LeReader r_;
};

Status malformed(const char* what) {
  return Status::corruption(std::string("controller command: malformed ") + what);
}

}  // namespace

Buffer encode_command(const Command& command) {
  Buffer out;
  le::put_u8(out, kCommandVersion);
  std::visit(
      [&out](const auto& c) {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, RegisterBroker>) {
          le::put_u8(out, static_cast<std::uint8_t>(CommandType::kRegisterBroker));
          put_broker(out, c.broker);
        } else if constexpr (std::is_same_v<T, CreateTopic>) {
          le::put_u8(out, static_cast<std::uint8_t>(CommandType::kCreateTopic));
          put_string(out, c.name);
          put_uuid(out, c.id);
          le::put_u64(out, c.first_group.value());
          put_assignment(out, c.assignment);
          put_configs(out, c.configs);
        } else if constexpr (std::is_same_v<T, DeleteTopic>) {
          le::put_u8(out, static_cast<std::uint8_t>(CommandType::kDeleteTopic));
          put_string(out, c.name);
        } else if constexpr (std::is_same_v<T, CreatePartitions>) {
          le::put_u8(out, static_cast<std::uint8_t>(CommandType::kCreatePartitions));
          put_string(out, c.name);
          le::put_u64(out, c.first_group.value());
          put_assignment(out, c.assignment);
        } else if constexpr (std::is_same_v<T, AlterConfigs>) {
          le::put_u8(out, static_cast<std::uint8_t>(CommandType::kAlterConfigs));
          put_string(out, c.name);
          put_configs(out, c.set);
        } else if constexpr (std::is_same_v<T, JoinBroker>) {
          le::put_u8(out, static_cast<std::uint8_t>(CommandType::kJoinBroker));
          put_broker(out, c.broker);
          le::put_u64(out, c.broker.incarnation);
        } else if constexpr (std::is_same_v<T, RemoveBroker>) {
          le::put_u8(out, static_cast<std::uint8_t>(CommandType::kRemoveBroker));
          put_i32(out, c.id.value());
        } else if constexpr (std::is_same_v<T, SetVoterChoice>) {
          le::put_u8(out, static_cast<std::uint8_t>(CommandType::kSetVoterChoice));
          put_i32(out, c.broker.value());
          le::put_u8(out, static_cast<std::uint8_t>(c.choice));
        } else if constexpr (std::is_same_v<T, AllocateProducerIds>) {
          le::put_u8(out, static_cast<std::uint8_t>(CommandType::kAllocateProducerIds));
          put_i32(out, c.broker.value());
          le::put_u64(out, c.request_id);
          le::put_u32(out, c.count);
        } else {
          static_assert(std::is_same_v<T, MovePartition>);
          le::put_u8(out, static_cast<std::uint8_t>(CommandType::kMovePartition));
          put_string(out, c.name);
          put_i32(out, c.partition);
          put_replicas(out, c.replicas);
        }
      },
      command);
  return out;
}

Result<Command> decode_command(BufferView bytes) {
  Reader r(bytes);
  std::uint8_t version = 0, type = 0;
  if (!r.u8(&version) || !r.u8(&type)) return malformed("header");
  if (version != kCommandVersion) {
    return Status::corruption("controller command: unsupported version " + std::to_string(version));
  }
  Command command;
  bool ok = false;
  switch (static_cast<CommandType>(type)) {
    case CommandType::kRegisterBroker: {
      RegisterBroker c;
      ok = r.broker(&c.broker);
      command = std::move(c);
      break;
    }
    case CommandType::kJoinBroker: {
      JoinBroker c;
      ok = r.broker(&c.broker) && r.u64(&c.broker.incarnation);
      command = std::move(c);
      break;
    }
    case CommandType::kRemoveBroker: {
      RemoveBroker c;
      std::int32_t id = 0;
      ok = r.i32(&id);
      c.id = BrokerId(id);
      command = std::move(c);
      break;
    }
    case CommandType::kSetVoterChoice: {
      SetVoterChoice c;
      std::int32_t id = 0;
      std::uint8_t choice = 0;
      ok = r.i32(&id) && r.u8(&choice) && choice <= static_cast<std::uint8_t>(VoterChoice::kLearner);
      c.broker = BrokerId(id);
      c.choice = static_cast<VoterChoice>(choice);
      command = std::move(c);
      break;
    }
    case CommandType::kCreateTopic: {
      CreateTopic c;
      std::uint64_t group = 0;
      ok = r.string(&c.name) && r.uuid(&c.id) && r.u64(&group) && r.assignment(&c.assignment) &&
           r.configs(&c.configs);
      c.first_group = GroupId(group);
      command = std::move(c);
      break;
    }
    case CommandType::kDeleteTopic: {
      DeleteTopic c;
      ok = r.string(&c.name);
      command = std::move(c);
      break;
    }
    case CommandType::kCreatePartitions: {
      CreatePartitions c;
      std::uint64_t group = 0;
      ok = r.string(&c.name) && r.u64(&group) && r.assignment(&c.assignment);
      c.first_group = GroupId(group);
      command = std::move(c);
      break;
    }
    case CommandType::kAlterConfigs: {
      AlterConfigs c;
      ok = r.string(&c.name) && r.configs(&c.set);
      command = std::move(c);
      break;
    }
    case CommandType::kMovePartition: {
      MovePartition c;
      ok = r.string(&c.name) && r.i32(&c.partition) && r.replicas(&c.replicas);
      command = std::move(c);
      break;
    }
    case CommandType::kAllocateProducerIds: {
      AllocateProducerIds c;
      std::int32_t broker = 0;
      ok = r.i32(&broker) && r.u64(&c.request_id) && r.u32(&c.count);
      c.broker = BrokerId(broker);
      command = std::move(c);
      break;
    }
    default:
      return Status::corruption("controller command: unknown type " + std::to_string(type));
  }
  if (!ok) return malformed("body");
  if (!r.at_end()) return malformed("command (trailing bytes)");
  return command;
}

Result<std::vector<std::vector<BrokerId>>> assign_replicas(const std::vector<BrokerId>& brokers,
                                                           std::int32_t partitions,
                                                           std::int32_t replication_factor,
                                                           std::uint32_t start) {
  if (partitions < 1 || static_cast<std::uint32_t>(partitions) > kPartitionsPerTopicMax) {
    return Status::invalid_argument("number of partitions must be in [1, " +
                                    std::to_string(kPartitionsPerTopicMax) + "]");
  }
  if (replication_factor < 1 || static_cast<std::uint32_t>(replication_factor) > kReplicasMax) {
    return Status::invalid_argument("replication factor must be in [1, " +
                                    std::to_string(kReplicasMax) + "]");
  }
  if (static_cast<std::size_t>(replication_factor) > brokers.size()) {
    return Status::invalid_argument("replication factor " + std::to_string(replication_factor) +
                                    " larger than the " + std::to_string(brokers.size()) +
                                    " live brokers");
  }
  std::vector<std::vector<BrokerId>> out(static_cast<std::size_t>(partitions));
  const std::size_t n = brokers.size();
  for (std::size_t p = 0; p < out.size(); ++p) {
    for (std::int32_t j = 0; j < replication_factor; ++j) {
      out[p].push_back(brokers[(start + p + static_cast<std::size_t>(j)) % n]);
    }
  }
  return out;
}

Status validate_topic_name(std::string_view name) {
  if (name.empty() || name.size() > kTopicNameBytesMax) {
    return Status::invalid_argument("topic name must have 1 to 249 characters");
  }
  if (name == "." || name == "..") return Status::invalid_argument("topic name cannot be . or ..");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return Status::invalid_argument("topic name may only contain [a-zA-Z0-9._-]");
  }
  return Status::ok();
}

const TopicRecord* ControllerState::find_topic(std::string_view name) const {
  auto it = topics_.find(std::string(name));
  return it == topics_.end() ? nullptr : &it->second;
}

Status ControllerState::check_assignment(const std::vector<std::vector<BrokerId>>& a) const {
  for (const auto& replicas : a) {
    if (replicas.empty()) return Status::invalid_argument("a partition needs a replica");
    std::set<BrokerId> seen;
    for (BrokerId b : replicas) {
      if (brokers_.count(b) == 0) {
        return Status::invalid_argument("unknown broker " + std::to_string(b.value()));
      }
      if (!seen.insert(b).second) {
        return Status::invalid_argument("broker " + std::to_string(b.value()) +
                                        " listed twice for one partition");
      }
    }
  }
  return Status::ok();
}

Status ControllerState::apply(const Command& command) {
  Status result = std::visit(
      [this](const auto& c) -> Status {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, RegisterBroker>) {
          return apply_register(c);
        } else if constexpr (std::is_same_v<T, RemoveBroker>) {
          return apply_remove(c);
        } else if constexpr (std::is_same_v<T, CreateTopic>) {
          return apply_create(c);
        } else if constexpr (std::is_same_v<T, DeleteTopic>) {
          if (topics_.erase(c.name) == 0) return Status::not_found("topic " + c.name);
          return Status::ok();
        } else if constexpr (std::is_same_v<T, CreatePartitions>) {
          return apply_create_partitions(c);
        } else if constexpr (std::is_same_v<T, AlterConfigs>) {
          auto it = topics_.find(c.name);
          if (it == topics_.end()) return Status::not_found("topic " + c.name);
          it->second.configs = c.set;
          return Status::ok();
        } else if constexpr (std::is_same_v<T, AllocateProducerIds>) {
          return apply_allocate_producer_ids(c);
        } else if constexpr (std::is_same_v<T, JoinBroker>) {
          return apply_join(c);
        } else if constexpr (std::is_same_v<T, SetVoterChoice>) {
          return apply_voter_choice(c);
        } else {
          return apply_move(c);
        }
      },
      command);
  if (result.is_ok()) ++applied_commands_;
  return result;
}

Status ControllerState::apply_create(const CreateTopic& c) {
  MQ_RETURN_IF_ERROR(validate_topic_name(c.name));
  if (topics_.count(c.name) != 0) return Status::already_exists("topic " + c.name);
  if (c.assignment.empty()) return Status::invalid_argument("a topic needs a partition");
  if (c.first_group < next_group_) return Status::aborted("stale group id (retry)");
  MQ_RETURN_IF_ERROR(check_assignment(c.assignment));
  TopicRecord topic;
  topic.name = c.name;
  topic.id = c.id;
  topic.configs = c.configs;
  for (std::size_t p = 0; p < c.assignment.size(); ++p) {
    topic.partitions.push_back(
        PartitionRecord{c.first_group + p, c.assignment[p], c.assignment[p]});
  }
  next_group_ = c.first_group + c.assignment.size();
  ++assignment_start_;
  topics_[c.name] = std::move(topic);
  return Status::ok();
}

Status ControllerState::apply_create_partitions(const CreatePartitions& c) {
  auto it = topics_.find(c.name);
  if (it == topics_.end()) return Status::not_found("topic " + c.name);
  if (c.first_group < next_group_) return Status::aborted("stale group id (retry)");
  if (it->second.partitions.size() + c.assignment.size() > kPartitionsPerTopicMax) {
    return Status::invalid_argument("too many partitions");
  }
  MQ_RETURN_IF_ERROR(check_assignment(c.assignment));
  for (std::size_t p = 0; p < c.assignment.size(); ++p) {
    it->second.partitions.push_back(
        PartitionRecord{c.first_group + p, c.assignment[p], c.assignment[p]});
  }
  next_group_ = c.first_group + c.assignment.size();
  return Status::ok();
}

Status ControllerState::apply_move(const MovePartition& c) {
  auto it = topics_.find(c.name);
  if (it == topics_.end()) return Status::not_found("topic " + c.name);
  if (c.partition < 0 || static_cast<std::size_t>(c.partition) >= it->second.partitions.size()) {
    return Status::not_found("partition " + std::to_string(c.partition) + " of " + c.name);
  }
  MQ_RETURN_IF_ERROR(check_assignment({c.replicas}));
  it->second.partitions[static_cast<std::size_t>(c.partition)].replicas = c.replicas;
  return Status::ok();
}

std::size_t ControllerState::replica_count(BrokerId broker) const {
  std::size_t n = 0;
  for (const auto& [name, t] : topics_) {
    for (const PartitionRecord& p : t.partitions) {
      n += std::count(p.replicas.begin(), p.replicas.end(), broker) > 0 ? 1 : 0;
    }
  }
  return n;
}

Status ControllerState::apply_join(const JoinBroker& c) {
  const BrokerRecord& b = c.broker;
  if (b.incarnation == 0) return Status::invalid_argument("join without an incarnation");
  const std::string id = std::to_string(b.id.value());
  auto it = brokers_.find(b.id);
  if (it == brokers_.end()) {
    auto gone = removed_.find(b.id);
    if (gone != removed_.end() && gone->second.incarnation == b.incarnation) {
      return Status::already_exists(
          "broker " + id + " was removed from the cluster and this is its old data directory; "
          "to add it again, start it with an empty data directory and --join");
    }
    if (brokers_.size() >= kBrokersMax) return Status::limit_exceeded("too many brokers");
    brokers_[b.id] = b;
    removed_.erase(b.id);  // a new data directory under a removed id: a new broker
    voter_choices_.erase(b.id);
    return Status::ok();
  }
  if (it->second.incarnation == 0) {
    return Status::already_exists("broker " + id +
                                  " is a static broker of the cluster (a controller voter, "
                                  "started with --peers); pick another id");
  }
  if (it->second.incarnation != b.incarnation) {
    // Another data directory under a registered id: only safe when that id holds no replica
    // (an empty log standing in for a voter's log could lose acknowledged writes, §5.4).
    std::size_t held = replica_count(b.id);
    if (held > 0) {
      return Status::already_exists(
          "broker " + id + " is registered with another data directory and still holds " +
          std::to_string(held) + " partition replica(s); restart it with its own data "
          "directory, or decommission it first");
    }
    voter_choices_.erase(b.id);  // a new broker under the id: no choice made for it
  }
  it->second = b;  // same directory (or an empty id): new addresses
  return Status::ok();
}

Status ControllerState::apply_register(const RegisterBroker& c) {
  const std::string id = std::to_string(c.broker.id.value());
  if (removed_.count(c.broker.id) != 0) {
    return Status::already_exists("broker " + id +
                                  " was removed from the cluster; it can only come back as a new "
                                  "broker (an empty data directory and --join)");
  }
  auto it = brokers_.find(c.broker.id);
  if (it != brokers_.end() && it->second.incarnation != 0) {
    return Status::already_exists("broker " + id +
                                  " joined the cluster (--join); a static registration cannot "
                                  "replace its record");
  }
  if (brokers_.size() >= kBrokersMax && it == brokers_.end()) {
    return Status::limit_exceeded("too many brokers");
  }
  brokers_[c.broker.id] = c.broker;
  return Status::ok();
}

Status ControllerState::apply_remove(const RemoveBroker& c) {
  const std::string id = std::to_string(c.id.value());
  auto it = brokers_.find(c.id);
  if (it == brokers_.end()) {
    if (removed_.count(c.id) != 0) {
      return Status::not_found("broker " + id + " was already removed from the cluster");
    }
    return Status::not_found("broker " + id + " is not registered");
  }
  if (brokers_.size() == 1) {
    return Status::invalid_argument("broker " + id + " is the last broker of the cluster");
  }
  if (std::size_t held = replica_count(c.id); held > 0) {
    return Status::invalid_argument("broker " + id + " still holds " + std::to_string(held) +
                                    " partition replica(s); drain it first (raftmq broker "
                                    "decommission " + id + " --wait)");
  }
  if (removed_.size() >= kRemovedBrokersMax) removed_.erase(removed_.begin());
  removed_[c.id] = RemovedBroker{it->second.incarnation, it->second.rpc_host, it->second.rpc_port};
  brokers_.erase(it);
  producer_blocks_.erase(c.id);
  voter_choices_.erase(c.id);
  return Status::ok();
}

Status ControllerState::apply_voter_choice(const SetVoterChoice& c) {
  const std::string id = std::to_string(c.broker.value());
  if (brokers_.count(c.broker) == 0) {
    return Status::not_found(removed_.count(c.broker) != 0
                                 ? "broker " + id + " was removed from the cluster"
                                 : "broker " + id + " is not registered");
  }
  if (c.choice == VoterChoice::kAuto) {
    voter_choices_.erase(c.broker);
  } else {
    voter_choices_[c.broker] = c.choice;
  }
  return Status::ok();
}

VoterChoice ControllerState::voter_choice(BrokerId broker) const {
  auto it = voter_choices_.find(broker);
  return it == voter_choices_.end() ? VoterChoice::kAuto : it->second;
}

const RemovedBroker* ControllerState::find_removed(BrokerId id) const {
  auto it = removed_.find(id);
  return it == removed_.end() ? nullptr : &it->second;
}

Buffer ControllerState::encode_snapshot() const {
  Buffer out;
  le::put_u8(out, kSnapshotVersion);
  le::put_u64(out, next_group_.value());
  le::put_u32(out, assignment_start_);
  le::put_u64(out, applied_commands_);
  le::put_u32(out, static_cast<std::uint32_t>(brokers_.size()));
  for (const auto& [id, b] : brokers_) {
    put_broker(out, b);
    le::put_u64(out, b.incarnation);
  }
  le::put_u32(out, static_cast<std::uint32_t>(topics_.size()));
  for (const auto& [name, t] : topics_) {
    put_string(out, t.name);
    put_uuid(out, t.id);
    put_configs(out, t.configs);
    le::put_u32(out, static_cast<std::uint32_t>(t.partitions.size()));
    for (const PartitionRecord& p : t.partitions) {
      le::put_u64(out, p.group.value());
      put_replicas(out, p.replicas);
      put_replicas(out, p.initial_replicas);
    }
  }
  encode_producer_ids(out);
  encode_removed(out);
  encode_voter_choices(out);
  return out;
}

Result<ControllerState> ControllerState::decode_snapshot(BufferView bytes) {
  Reader r(bytes);
  ControllerState s;
  std::uint8_t version = 0;
  std::uint64_t next_group = 0;
  std::uint32_t brokers = 0, topics = 0;
  if (!r.u8(&version)) return malformed("snapshot");
  if (version < kSnapshotVersionWithoutProducerIds || version > kSnapshotVersion) {
    return Status::corruption("controller snapshot: bad version");
  }
  if (!r.u64(&next_group) || !r.u32(&s.assignment_start_) || !r.u64(&s.applied_commands_) ||
      !r.u32(&brokers) || brokers > kBrokersMax) {
    return malformed("snapshot header");
  }
  s.next_group_ = GroupId(next_group);
  for (std::uint32_t i = 0; i < brokers; ++i) {
    BrokerRecord b;
    if (!r.broker(&b)) return malformed("snapshot broker");
    if (version >= kSnapshotVersionWithoutRemoved && !r.u64(&b.incarnation)) {
      return malformed("snapshot broker");
    }
    s.brokers_[b.id] = b;
  }
  if (!r.u32(&topics) || topics > r.remaining()) return malformed("snapshot topics");
  for (std::uint32_t i = 0; i < topics; ++i) {
    TopicRecord t;
    std::uint32_t partitions = 0;
    if (!r.string(&t.name) || !r.uuid(&t.id) || !r.configs(&t.configs) || !r.u32(&partitions) ||
        partitions > kPartitionsPerTopicMax) {
      return malformed("snapshot topic");
    }
    for (std::uint32_t p = 0; p < partitions; ++p) {
      PartitionRecord pr;
      std::uint64_t group = 0;
      if (!r.u64(&group) || !r.replicas(&pr.replicas) || !r.replicas(&pr.initial_replicas)) {
        return malformed("snapshot partition");
      }
      pr.group = GroupId(group);
      t.partitions.push_back(std::move(pr));
    }
    std::string name = t.name;
    s.topics_[name] = std::move(t);
  }
  std::size_t consumed = bytes.size() - r.remaining();
  if (!decode_sections(bytes.subspan(consumed), version, &s)) {
    return malformed("snapshot sections (producer ids, removed brokers) or trailing bytes");
  }
  return s;
}

// ---- Producer ids (AllocateProducerIds) ----

const ProducerIdBlock* ControllerState::producer_id_block(BrokerId broker) const {
  auto it = producer_blocks_.find(broker);
  return it == producer_blocks_.end() ? nullptr : &it->second;
}

Status ControllerState::apply_allocate_producer_ids(const AllocateProducerIds& c) {
  if (brokers_.count(c.broker) == 0) {
    return Status::invalid_argument("producer ids for unknown broker " +
                                    std::to_string(c.broker.value()));
  }
  if (c.count == 0 || c.count > kProducerIdBlockMax) {
    return Status::invalid_argument("producer id block size must be in [1, " +
                                    std::to_string(kProducerIdBlockMax) + "]");
  }
  if (next_producer_id_ > std::numeric_limits<std::int64_t>::max() - c.count) {
    return Status::limit_exceeded("producer ids exhausted");
  }
  producer_blocks_[c.broker] = ProducerIdBlock{c.request_id, next_producer_id_, c.count};
  next_producer_id_ += c.count;
  return Status::ok();
}

// Snapshot section: tag u8 (=1) | next_producer_id i64 | count u32 |
// (broker i32 | request_id u64 | first i64 | count u32)*.
void ControllerState::encode_producer_ids(Buffer& out) const {
  le::put_u8(out, kSnapshotProducerIdsTag);
  le::put_i64(out, next_producer_id_);
  le::put_u32(out, static_cast<std::uint32_t>(producer_blocks_.size()));
  for (const auto& [broker, block] : producer_blocks_) {
    put_i32(out, broker.value());
    le::put_u64(out, block.request_id);
    le::put_i64(out, block.first);
    le::put_u32(out, block.count);
  }
}

// Snapshot section (version 4): tag u8 (=2) | count u32 |
// (broker i32 | incarnation u64 | rpc_host string | rpc_port u16)*.
void ControllerState::encode_removed(Buffer& out) const {
  le::put_u8(out, kSnapshotRemovedTag);
  le::put_u32(out, static_cast<std::uint32_t>(removed_.size()));
  for (const auto& [id, r] : removed_) {
    put_i32(out, id.value());
    le::put_u64(out, r.incarnation);
    put_string(out, r.rpc_host);
    le::put_u16(out, r.rpc_port);
  }
}

// Snapshot section (version 5): tag u8 (=3) | count u32 | (broker i32 | choice u8)*, choice
// 1 = voter, 2 = learner (kAuto is not stored).
void ControllerState::encode_voter_choices(Buffer& out) const {
  le::put_u8(out, kSnapshotVoterChoicesTag);
  le::put_u32(out, static_cast<std::uint32_t>(voter_choices_.size()));
  for (const auto& [id, choice] : voter_choices_) {
    put_i32(out, id.value());
    le::put_u8(out, static_cast<std::uint8_t>(choice));
  }
}

// The tagged sections after the topics: none before version 2, the producer ids from 2, the
// removed brokers from 4, the voter choices from 5. False on a malformed section or trailing bytes.
bool ControllerState::decode_sections(BufferView bytes, std::uint8_t version, ControllerState* s) {
  le::StickyReader r(bytes);
  if (version >= kSnapshotVersionWithoutIncarnations) {
    if (r.u8() != kSnapshotProducerIdsTag) return false;
    std::int64_t next = r.i64();
    std::uint32_t count = r.count(kBrokersMax);
    if (!r.ok() || next < 0) return false;
    s->next_producer_id_ = next;
    for (std::uint32_t i = 0; i < count && r.ok(); ++i) {
      BrokerId broker(r.i32());
      ProducerIdBlock block;
      block.request_id = r.u64();
      block.first = r.i64();
      block.count = r.u32();
      if (r.ok()) s->producer_blocks_[broker] = block;
    }
  }
  if (version >= kSnapshotVersionWithoutVoterChoices) {
    if (r.u8() != kSnapshotRemovedTag) return false;
    std::uint32_t count = r.count(kRemovedBrokersMax);
    for (std::uint32_t i = 0; i < count && r.ok(); ++i) {
      BrokerId id(r.i32());
      RemovedBroker removed;
      removed.incarnation = r.u64();
      removed.rpc_host = r.str16();
      removed.rpc_port = r.u16();
      if (removed.rpc_host.size() > kStringBytesMax) r.fail();
      if (r.ok()) s->removed_[id] = std::move(removed);
    }
  }
  if (version >= kSnapshotVersion) {
    if (r.u8() != kSnapshotVoterChoicesTag) return false;
    std::uint32_t count = r.count(kBrokersMax);
    for (std::uint32_t i = 0; i < count && r.ok(); ++i) {
      BrokerId id(r.i32());
      std::uint8_t choice = r.u8();
      if (choice != static_cast<std::uint8_t>(VoterChoice::kVoter) &&
          choice != static_cast<std::uint8_t>(VoterChoice::kLearner)) {
        r.fail();
      }
      if (r.ok()) s->voter_choices_[id] = static_cast<VoterChoice>(choice);
    }
  }
  return r.ok() && r.at_end();
}

}  // namespace mq::cluster
