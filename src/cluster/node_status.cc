// Node: cluster-wide status (`raftmq cluster status`, docs/operations.md "Cluster status").
// Only a partition's Raft leader knows its followers' progress (match index, thesis §3.5), so
// the broker asked gathers the status of every partition from its leader: it asks every live
// peer over the transport's control-plane channel (context kStatusRequestContext, request id
// in `index`) for the partitions it leads, merges the answers with its own, and after
// timeout_ms reports the peers that did not answer as unreachable. A partition whose leader
// did not answer (or that has none) is listed from the metadata with leader -1.
//
// Answer encoding (little-endian, our own format): version u8 | count u32 | partition*, a
// partition = topic str | partition i32 | group u64 | leader i32 | term u64 | commit u64 |
// applied u64 | last u64 | hwm i64 | log start i64 | log end i64 | voters | learners |
// count u32 | (broker i32 | match u64 | lag u64 | learner u8)* | flags u8. Strings are u16
// length | bytes; counts are bounded and trailing bytes refused.
#include <algorithm>
#include <map>
#include <memory>

#include "base/le_codec.h"
#include "cluster/ids.h"
#include "cluster/node.h"

namespace mq::cluster {
namespace {

constexpr std::uint8_t kStatusVersion = 1;
constexpr std::uint32_t kStatusItemsMax = 100000;
constexpr std::int64_t kStatusTimeoutMaxMs = 60000;

void put_str(Buffer& out, const std::string& s) { le::put_str16(out, s); }
void put_brokers(Buffer& out, const std::vector<BrokerId>& ids) { le::put_i32_list(out, ids); }

// Counts are bounded by kStatusItemsMax.
class StatusReader : public le::StickyReader {
 public:
  using le::StickyReader::StickyReader;
  std::uint32_t count() { return StickyReader::count(kStatusItemsMax); }
  std::string str() { return str16(); }
  std::vector<BrokerId> brokers() { return i32_list<BrokerId>(kStatusItemsMax); }
};

void put_partitions(Buffer& out, const std::vector<PartitionStatus>& statuses) {
  le::put_u32(out, static_cast<std::uint32_t>(statuses.size()));
  for (const PartitionStatus& s : statuses) {
    put_str(out, s.topic);
    le::put_u32(out, static_cast<std::uint32_t>(s.partition));
    le::put_u64(out, s.group.value());
    le::put_u32(out, static_cast<std::uint32_t>(s.leader.value()));
    le::put_u64(out, s.term.value());
    le::put_u64(out, s.commit_index.value());
    le::put_u64(out, s.applied_index.value());
    le::put_u64(out, s.last_index.value());
    le::put_i64(out, s.high_watermark.value());
    le::put_i64(out, s.log_start_offset.value());
    le::put_i64(out, s.log_end_offset.value());
    put_brokers(out, s.voters);
    put_brokers(out, s.learners);
    le::put_u32(out, static_cast<std::uint32_t>(s.replicas.size()));
    for (const ReplicaLag& r : s.replicas) {
      le::put_u32(out, static_cast<std::uint32_t>(r.broker.value()));
      le::put_u64(out, r.match.value());
      le::put_u64(out, r.lag_entries);
      le::put_u8(out, r.learner ? 1 : 0);
    }
    le::put_u8(out, static_cast<std::uint8_t>((s.is_leader ? 1 : 0) | (s.failed ? 2 : 0)));
  }
}

std::vector<PartitionStatus> read_partitions(StatusReader& r) {
  std::vector<PartitionStatus> out;
  std::uint32_t n = r.count();
  for (std::uint32_t i = 0; i < n && r.ok(); ++i) {
    PartitionStatus s;
    s.topic = r.str();
    s.partition = r.i32();
    s.group = GroupId(r.u64());
    s.leader = BrokerId(r.i32());
    s.term = Term(r.u64());
    s.commit_index = LogIndex(r.u64());
    s.applied_index = LogIndex(r.u64());
    s.last_index = LogIndex(r.u64());
    s.high_watermark = KafkaOffset(static_cast<std::int64_t>(r.u64()));
    s.log_start_offset = KafkaOffset(static_cast<std::int64_t>(r.u64()));
    s.log_end_offset = KafkaOffset(static_cast<std::int64_t>(r.u64()));
    s.voters = r.brokers();
    s.learners = r.brokers();
    std::uint32_t replicas = r.count();
    for (std::uint32_t j = 0; j < replicas && r.ok(); ++j) {
      ReplicaLag lag;
      lag.broker = BrokerId(r.i32());
      lag.match = LogIndex(r.u64());
      lag.lag_entries = r.u64();
      lag.learner = r.u8() != 0;
      s.replicas.push_back(lag);
    }
    std::uint8_t flags = r.u8();
    s.is_leader = (flags & 1) != 0;
    s.failed = (flags & 2) != 0;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

Buffer encode_partition_statuses(const std::vector<PartitionStatus>& statuses) {
  Buffer out;
  le::put_u8(out, kStatusVersion);
  put_partitions(out, statuses);
  return out;
}

Result<std::vector<PartitionStatus>> decode_partition_statuses(BufferView bytes) {
  StatusReader r(bytes);
  if (r.u8() != kStatusVersion || !r.ok()) return Status::unsupported("status answer version");
  std::vector<PartitionStatus> out = read_partitions(r);
  if (!r.ok() || !r.at_end()) return Status::corruption("malformed status answer");
  return out;
}

// A view = version u8 | self i32 | controller leader i32 | controller term u64 | controller
// commit u64 | count u32 | (broker i32 | host str | kafka port u16 | alive u8)* | unreachable
// (count u32 | broker i32 *) | partitions (as above).
Buffer encode_cluster_view(const ClusterView& view) {
  Buffer out;
  le::put_u8(out, kStatusVersion);
  le::put_u32(out, static_cast<std::uint32_t>(view.local.self.value()));
  le::put_u32(out, static_cast<std::uint32_t>(view.local.controller_leader.value()));
  le::put_u64(out, view.local.controller_term.value());
  le::put_u64(out, view.local.controller_commit.value());
  le::put_u32(out, static_cast<std::uint32_t>(view.local.brokers.size()));
  for (const BrokerStatus& b : view.local.brokers) {
    le::put_u32(out, static_cast<std::uint32_t>(b.id.value()));
    put_str(out, b.host);
    le::put_u16(out, b.kafka_port);
    le::put_u8(out, b.alive ? 1 : 0);
  }
  put_brokers(out, view.unreachable);
  put_partitions(out, view.partitions);
  return out;
}

Result<ClusterView> decode_cluster_view(BufferView bytes) {
  StatusReader r(bytes);
  if (r.u8() != kStatusVersion || !r.ok()) return Status::unsupported("cluster view version");
  ClusterView v;
  v.local.self = BrokerId(r.i32());
  v.local.controller_leader = BrokerId(r.i32());
  v.local.controller_term = Term(r.u64());
  v.local.controller_commit = LogIndex(r.u64());
  std::uint32_t n = r.count();
  for (std::uint32_t i = 0; i < n && r.ok(); ++i) {
    BrokerStatus b;
    b.id = BrokerId(r.i32());
    b.host = r.str();
    b.kafka_port = r.u16();
    b.alive = r.u8() != 0;
    v.local.brokers.push_back(std::move(b));
  }
  v.unreachable = r.brokers();
  v.partitions = read_partitions(r);
  if (!r.ok() || !r.at_end()) return Status::corruption("malformed cluster view");
  return v;
}

void Node::cluster_view(std::int64_t timeout_ms, std::function<void(Result<Buffer>)> done) {
  gather_cluster_status(timeout_ms, [done = std::move(done)](ClusterView view) {
    done(encode_cluster_view(view));
  });
}

void Node::gather_cluster_status(std::int64_t timeout_ms,
                                 std::function<void(ClusterView)> done) {
  std::uint64_t id = next_status_id_++;
  StatusGather& g = status_gathers_[id];
  g.view.local = cluster_status();
  g.done = std::move(done);
  for (const PartitionStatus& s : g.view.local.partitions) {
    if (s.is_leader) g.led.push_back(s);
  }
  for (const BrokerStatus& b : g.view.local.brokers) {
    if (b.id == config_.id) continue;
    if (!b.alive) {
      g.view.unreachable.push_back(b.id);
      continue;
    }
    raft::Message m;
    m.type = raft::MessageType::kReadIndex;
    m.from = node_of(config_.id);
    m.to = node_of(b.id);
    m.index = LogIndex(id);
    m.context = kStatusRequestContext;
    if (transport_ && transport_->send(b.id, kControlPlaneGroup, std::move(m))) {
      g.waiting.insert(b.id);
    } else {
      g.view.unreachable.push_back(b.id);
    }
  }
  if (g.waiting.empty()) return finish_status_gather(id);
  g.timer = std::make_shared<asio::steady_timer>(loop_);
  g.timer->expires_after(std::chrono::milliseconds(std::clamp<std::int64_t>(timeout_ms, 1, kStatusTimeoutMaxMs)));
  g.timer->async_wait([this, alive = alive_, id](const std::error_code& ec) {
    if (ec || !*alive) return;
    finish_status_gather(id);
  });
}

void Node::handle_status_request(BrokerId from, const raft::Message& message) {
  if (!transport_) return;
  std::vector<PartitionStatus> led;
  for (const auto& [group, p] : partitions_) {
    if (p->is_leader()) led.push_back(p->status());
  }
  raft::Message m;
  m.type = raft::MessageType::kReadIndex;
  m.from = node_of(config_.id);
  m.to = node_of(from);
  m.index = message.index;
  m.context = kStatusResponseContext;
  raft::Entry e;
  e.payload = SharedBuffer(encode_partition_statuses(led));
  m.entries.push_back(std::move(e));
  transport_->send(from, kControlPlaneGroup, std::move(m));
}

void Node::handle_status_response(BrokerId from, const raft::Message& message) {
  auto it = status_gathers_.find(message.index.value());
  if (it == status_gathers_.end() || it->second.waiting.count(from) == 0) return;  // late
  if (message.entries.size() != 1) return;
  Result<std::vector<PartitionStatus>> led =
      decode_partition_statuses(message.entries[0].payload.view());
  if (!led.has_value()) {
    log("refused a status answer from broker " + std::to_string(from.value()) + ": " +
        led.error().to_string());
    return;  // counted unreachable at the deadline
  }
  StatusGather& g = it->second;
  g.waiting.erase(from);
  for (PartitionStatus& s : *led) g.led.push_back(std::move(s));
  if (g.waiting.empty()) finish_status_gather(it->first);
}

void Node::finish_status_gather(std::uint64_t id) {
  auto it = status_gathers_.find(id);
  if (it == status_gathers_.end()) return;
  StatusGather g = std::move(it->second);
  status_gathers_.erase(it);
  if (g.timer) g.timer->cancel();
  for (BrokerId b : g.waiting) g.view.unreachable.push_back(b);
  std::sort(g.view.unreachable.begin(), g.view.unreachable.end());
  // Two brokers may both claim a partition's leadership for a moment (a deposed leader that
  // has not heard of the new term yet, thesis §3.6): the higher term wins.
  std::map<std::pair<std::string, std::int32_t>, PartitionStatus> by_name;
  for (PartitionStatus& s : g.led) {
    auto key = std::make_pair(s.topic, s.partition);
    auto found = by_name.find(key);
    if (found == by_name.end() || found->second.term < s.term) by_name[key] = std::move(s);
  }
  MetadataSnapshot md = metadata();
  for (const TopicInfo& t : md.topics) {
    for (const PartitionInfo& p : t.partitions) {
      auto found = by_name.find(std::make_pair(t.name, p.partition));
      if (found != by_name.end()) {
        g.view.partitions.push_back(std::move(found->second));
        continue;
      }
      PartitionStatus s;  // leader unknown or unreachable: what the metadata says
      s.topic = t.name;
      s.partition = p.partition;
      s.voters = p.replicas;
      g.view.partitions.push_back(std::move(s));
    }
  }
  g.done(std::move(g.view));
}

void Node::fail_status_gathers() {
  std::vector<std::uint64_t> ids;
  for (const auto& [id, g] : status_gathers_) ids.push_back(id);
  for (std::uint64_t id : ids) finish_status_gather(id);
}

}  // namespace mq::cluster
