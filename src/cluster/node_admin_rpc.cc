#include "cluster/node_admin_rpc.h"

#include "base/le_codec.h"

namespace mq::cluster {
namespace {

constexpr std::uint8_t kVersion = 1;

using le::put_i32;

void put_str(Buffer& out, std::string_view s) { le::put_str16(out, s); }
void put_brokers(Buffer& out, const std::vector<BrokerId>& ids) { le::put_i32_list(out, ids); }

void put_configs(Buffer& out, const std::map<std::string, std::string>& configs) {
  le::put_u32(out, static_cast<std::uint32_t>(configs.size()));
  for (const auto& [k, v] : configs) {
    put_str(out, k);
    put_str(out, v);
  }
}

// Counts are bounded by kAdminItemsMax.
class Reader : public le::StickyReader {
 public:
  using le::StickyReader::StickyReader;
  std::uint32_t count() { return StickyReader::count(kAdminItemsMax); }
  std::string str() { return str16(); }
  std::vector<BrokerId> brokers() { return i32_list<BrokerId>(kAdminItemsMax); }
  std::map<std::string, std::string> configs() {
    std::map<std::string, std::string> m;
    std::uint32_t n = count();
    for (std::uint32_t i = 0; i < n && ok(); ++i) {
      std::string k = str();
      m[k] = str();
    }
    return m;
  }
};

}  // namespace

Buffer encode_admin_request(const AdminRequest& q) {
  Buffer out;
  le::put_u8(out, kVersion);
  le::put_u8(out, static_cast<std::uint8_t>(q.op));
  le::put_i64(out, q.timeout_ms);
  le::put_u8(out, q.validate_only ? 1 : 0);
  switch (q.op) {
    case AdminOp::kCreateTopics:
      le::put_u32(out, static_cast<std::uint32_t>(q.topics.size()));
      for (const TopicSpec& t : q.topics) {
        put_str(out, t.name);
        put_i32(out, t.partitions);
        le::put_u16(out, static_cast<std::uint16_t>(t.replication_factor));
        le::put_u32(out, static_cast<std::uint32_t>(t.assignments.size()));
        for (const auto& [p, replicas] : t.assignments) {
          put_i32(out, p);
          put_brokers(out, replicas);
        }
        put_configs(out, t.configs);
        le::put_u8(out, t.validate_only ? 1 : 0);
      }
      break;
    case AdminOp::kDeleteTopics:
      le::put_u32(out, static_cast<std::uint32_t>(q.names.size()));
      for (const std::string& n : q.names) put_str(out, n);
      break;
    case AdminOp::kCreatePartitions:
      le::put_u32(out, static_cast<std::uint32_t>(q.new_totals.size()));
      for (const auto& [name, total] : q.new_totals) {
        put_str(out, name);
        put_i32(out, total);
      }
      break;
    case AdminOp::kAlterConfigs:
      put_str(out, q.topic);
      put_configs(out, q.configs);
      break;
    case AdminOp::kMovePartition:
      put_str(out, q.topic);
      put_i32(out, q.partition);
      put_brokers(out, q.replicas);
      break;
    case AdminOp::kRemoveBroker:
      put_i32(out, q.broker.value());
      break;
    case AdminOp::kControllerVoter:
      put_i32(out, q.broker.value());
      le::put_u8(out, static_cast<std::uint8_t>(q.voter_choice));
      break;
  }
  return out;
}

Result<AdminRequest> decode_admin_request(BufferView bytes) {
  Reader r(bytes);
  if (r.u8() != kVersion || !r.ok()) return Status::unsupported("admin request version");
  AdminRequest q;
  std::uint8_t op = r.u8();
  q.timeout_ms = r.i64();
  q.validate_only = r.u8() != 0;
  switch (op) {
    case static_cast<std::uint8_t>(AdminOp::kCreateTopics): {
      q.op = AdminOp::kCreateTopics;
      std::uint32_t n = r.count();
      for (std::uint32_t i = 0; i < n && r.ok(); ++i) {
        TopicSpec t;
        t.name = r.str();
        t.partitions = r.i32();
        t.replication_factor = r.i16();
        std::uint32_t a = r.count();
        for (std::uint32_t j = 0; j < a && r.ok(); ++j) {
          std::int32_t p = r.i32();
          t.assignments[p] = r.brokers();
        }
        t.configs = r.configs();
        t.validate_only = r.u8() != 0;
        q.topics.push_back(std::move(t));
      }
      break;
    }
    case static_cast<std::uint8_t>(AdminOp::kDeleteTopics): {
      q.op = AdminOp::kDeleteTopics;
      std::uint32_t n = r.count();
      for (std::uint32_t i = 0; i < n && r.ok(); ++i) q.names.push_back(r.str());
      break;
    }
    case static_cast<std::uint8_t>(AdminOp::kCreatePartitions): {
      q.op = AdminOp::kCreatePartitions;
      std::uint32_t n = r.count();
      for (std::uint32_t i = 0; i < n && r.ok(); ++i) {
        std::string name = r.str();
        q.new_totals.emplace_back(std::move(name), r.i32());
      }
      break;
    }
    case static_cast<std::uint8_t>(AdminOp::kAlterConfigs):
      q.op = AdminOp::kAlterConfigs;
      q.topic = r.str();
      q.configs = r.configs();
      break;
    case static_cast<std::uint8_t>(AdminOp::kMovePartition):
      q.op = AdminOp::kMovePartition;
      q.topic = r.str();
      q.partition = r.i32();
      q.replicas = r.brokers();
      break;
    case static_cast<std::uint8_t>(AdminOp::kRemoveBroker):
      q.op = AdminOp::kRemoveBroker;
      q.broker = BrokerId(r.i32());
      break;
    case static_cast<std::uint8_t>(AdminOp::kControllerVoter): {
      q.op = AdminOp::kControllerVoter;
      q.broker = BrokerId(r.i32());
      std::uint8_t choice = r.u8();
      if (choice > static_cast<std::uint8_t>(VoterChoice::kLearner)) {
        return Status::corruption("admin request: unknown controller voter choice " +
                                  std::to_string(choice));
      }
      q.voter_choice = static_cast<VoterChoice>(choice);
      break;
    }
    default:
      return Status::unsupported("admin request op " + std::to_string(op));
  }
  if (!r.ok()) return Status::corruption("truncated or oversized admin request");
  if (!r.at_end()) return Status::corruption("trailing bytes after an admin request");
  return q;
}

Buffer encode_admin_results(const std::vector<AdminResult>& results) {
  Buffer out;
  le::put_u8(out, kVersion);
  le::put_u32(out, static_cast<std::uint32_t>(results.size()));
  for (const AdminResult& a : results) {
    put_str(out, a.name);
    le::put_u8(out, static_cast<std::uint8_t>(a.status.code()));
    put_str(out, a.status.message());
    le::put_u16(out, static_cast<std::uint16_t>(a.kafka_error));
  }
  return out;
}

Result<std::vector<AdminResult>> decode_admin_results(BufferView bytes) {
  Reader r(bytes);
  if (r.u8() != kVersion || !r.ok()) return Status::unsupported("admin answer version");
  std::vector<AdminResult> results;
  std::uint32_t n = r.count();
  for (std::uint32_t i = 0; i < n && r.ok(); ++i) {
    AdminResult a;
    a.name = r.str();
    std::uint8_t code = r.u8();
    std::string message = r.str();
    a.kafka_error = r.i16();
    if (code > static_cast<std::uint8_t>(ErrorCode::kInternal)) {
      return Status::corruption("admin answer with an unknown status code");
    }
    auto ec = static_cast<ErrorCode>(code);
    a.status = ec == ErrorCode::kOk ? Status::ok() : Status(ec, std::move(message));
    results.push_back(std::move(a));
  }
  if (!r.ok()) return Status::corruption("truncated or oversized admin answer");
  if (!r.at_end()) return Status::corruption("trailing bytes after an admin answer");
  return results;
}

}  // namespace mq::cluster
