#include "cluster/broker_join.h"

#include <charconv>

#include "base/crc32c.h"
#include "base/le_codec.h"
#include "storage/metadata.h"

namespace mq::cluster {
namespace {

constexpr std::uint8_t kJoinVersion = 1;
constexpr std::uint8_t kJoinStateVersion = 1;
constexpr std::uint64_t kJoinStateBytesMax = 1u << 20;

void put_string(Buffer& out, std::string_view s) {
  MQ_ASSERT(s.size() <= kStringBytesMax, "string too long to encode");
  le::put_u16(out, static_cast<std::uint16_t>(s.size()));
  out.append(s.data(), s.size());
}
void put_i32(Buffer& out, std::int32_t v) { le::put_u32(out, static_cast<std::uint32_t>(v)); }
void put_voters(Buffer& out, const std::vector<JoinVoter>& voters) {
  MQ_ASSERT(voters.size() <= kJoinVotersMax, "too many voters to encode");
  le::put_u32(out, static_cast<std::uint32_t>(voters.size()));
  for (const JoinVoter& v : voters) {
    put_i32(out, v.id.value());
    put_string(out, v.host);
    le::put_u16(out, v.rpc_port);
    le::put_u16(out, v.kafka_port);
  }
}

// Decoding helpers over le::StickyReader: a failure (truncation, a bound exceeded) sticks, and
// each decoder checks r.ok() once.
std::string read_string(le::StickyReader& r) {
  std::string s = r.str16();
  if (s.size() > kStringBytesMax) r.fail();
  return s;
}
std::vector<JoinVoter> read_voters(le::StickyReader& r) {
  // Each voter takes at least 10 bytes: checked before allocating.
  std::uint32_t n = r.count(kJoinVotersMax);
  if (n > r.remaining() / 10) r.fail();
  std::vector<JoinVoter> voters;
  for (std::uint32_t i = 0; i < n && r.ok(); ++i) {
    JoinVoter v;
    v.id = BrokerId(r.i32());
    v.host = read_string(r);
    v.rpc_port = r.u16();
    v.kafka_port = r.u16();
    voters.push_back(std::move(v));
  }
  return voters;
}
BrokerRecord read_broker(le::StickyReader& r) {
  BrokerRecord b;
  b.id = BrokerId(r.i32());
  b.host = read_string(r);
  b.kafka_port = r.u16();
  b.rpc_host = read_string(r);
  b.rpc_port = r.u16();
  b.rack = read_string(r);
  b.incarnation = r.u64();
  return b;
}

Status malformed(const std::string& what) {
  return Status::corruption("join: malformed " + what);
}

}  // namespace

Buffer encode_join_request(const JoinRequest& q) {
  Buffer out;
  le::put_u8(out, kJoinVersion);
  le::put_u64(out, q.request_id);
  le::put_u8(out, q.hops);
  put_i32(out, q.broker.id.value());
  put_string(out, q.broker.host);
  le::put_u16(out, q.broker.kafka_port);
  put_string(out, q.broker.rpc_host);
  le::put_u16(out, q.broker.rpc_port);
  put_string(out, q.broker.rack);
  le::put_u64(out, q.broker.incarnation);
  return out;
}

Result<JoinRequest> decode_join_request(BufferView bytes) {
  le::StickyReader r(bytes);
  JoinRequest q;
  std::uint8_t version = r.u8();
  if (!r.ok()) return malformed("request");
  if (version != kJoinVersion) {
    return Status::corruption("join: unsupported request version " + std::to_string(version));
  }
  q.request_id = r.u64();
  q.hops = r.u8();
  q.broker = read_broker(r);
  if (!r.ok()) return malformed("request");
  if (!r.at_end()) return malformed("request (trailing bytes)");
  if (q.broker.id.value() < 0) return malformed("request (negative broker id)");
  if (q.broker.incarnation == 0) return malformed("request (no incarnation)");
  return q;
}

Buffer encode_join_answer(const JoinAnswer& a) {
  Buffer out;
  le::put_u8(out, kJoinVersion);
  le::put_u64(out, a.request_id);
  le::put_u8(out, static_cast<std::uint8_t>(a.status.code()));
  std::string message = a.status.message().substr(0, kStringBytesMax);
  put_string(out, message);
  put_voters(out, a.voters);
  return out;
}

Result<JoinAnswer> decode_join_answer(BufferView bytes) {
  le::StickyReader r(bytes);
  JoinAnswer a;
  std::uint8_t version = r.u8();
  if (!r.ok()) return malformed("answer");
  if (version != kJoinVersion) {
    return Status::corruption("join: unsupported answer version " + std::to_string(version));
  }
  a.request_id = r.u64();
  std::uint8_t code = r.u8();
  std::string message = read_string(r);
  a.voters = read_voters(r);
  if (!r.ok()) return malformed("answer");
  if (!r.at_end()) return malformed("answer (trailing bytes)");
  if (code > static_cast<std::uint8_t>(ErrorCode::kInternal)) {
    return malformed("answer (unknown status code)");
  }
  auto ec = static_cast<ErrorCode>(code);
  a.status = ec == ErrorCode::kOk ? Status::ok() : Status(ec, std::move(message));
  return a;
}

Buffer encode_removed_notice(const RemovedNotice& n) {
  Buffer out;
  le::put_u8(out, kJoinVersion);
  put_i32(out, n.broker.value());
  le::put_u64(out, n.incarnation);
  return out;
}

Result<RemovedNotice> decode_removed_notice(BufferView bytes) {
  le::StickyReader r(bytes);
  std::uint8_t version = r.u8();
  RemovedNotice n;
  n.broker = BrokerId(r.i32());
  n.incarnation = r.u64();
  if (!r.ok()) return malformed("removed notice");
  if (version != kJoinVersion) {
    return Status::corruption("join: unsupported removed notice version " +
                              std::to_string(version));
  }
  if (!r.at_end()) return malformed("removed notice (trailing bytes)");
  return n;
}

Buffer encode_join_state(const JoinState& s) {
  Buffer out;
  le::put_u8(out, kJoinStateVersion);
  put_i32(out, s.broker.value());
  le::put_u64(out, s.incarnation);
  put_voters(out, s.voters);
  le::put_u32(out, crc32c::value(out.view()));
  return out;
}

Result<JoinState> decode_join_state(BufferView bytes) {
  if (bytes.size() < 5) return malformed("join.state (truncated)");
  std::size_t covered = bytes.size() - 4;
  if (crc32c::value(bytes.first(covered)) != le::decode_u32(bytes.data() + covered)) {
    return Status::corruption("join.state: crc mismatch");
  }
  le::StickyReader r(bytes.first(covered));
  JoinState s;
  std::uint8_t version = r.u8();
  if (!r.ok()) return malformed("join.state");
  if (version != kJoinStateVersion) {
    return Status::corruption("join.state: unsupported version " + std::to_string(version));
  }
  std::int32_t broker = r.i32();
  s.incarnation = r.u64();
  s.voters = read_voters(r);
  if (!r.ok()) return malformed("join.state");
  if (!r.at_end()) return malformed("join.state (trailing bytes)");
  if (s.incarnation == 0) return malformed("join.state (no incarnation)");
  s.broker = BrokerId(broker);
  return s;
}

Status save_join_state(storage::FileSystem* fs, const std::string& data_dir, const JoinState& s) {
  MQ_RETURN_IF_ERROR(fs->create_dirs(data_dir));
  Buffer bytes = encode_join_state(s);
  BufferView piece = bytes.view();
  return storage::write_file_atomically(fs, data_dir, kJoinStateFile,
                                        std::span<const BufferView>(&piece, 1));
}

Result<std::optional<JoinState>> load_join_state(storage::FileSystem* fs,
                                                 const std::string& data_dir) {
  std::string path = data_dir + "/" + kJoinStateFile;
  MQ_ASSIGN_OR_RETURN(auto bytes, storage::read_whole_file(fs, path, kJoinStateBytesMax));
  if (!bytes) return std::optional<JoinState>();
  auto state = decode_join_state(bytes->view());
  if (!state.has_value()) return Status::corruption(path + ": " + state.error().message());
  return std::optional<JoinState>(std::move(*state));
}

Result<std::vector<JoinSeed>> parse_join_seeds(std::string_view text) {
  std::vector<JoinSeed> seeds;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(start, comma - start);
    start = comma + 1;
    auto bad = [&](const char* why) {
      return Status::invalid_argument("join: '" + std::string(item) + "' is not host:rpc_port (" +
                                      why + ")");
    };
    std::size_t colon = item.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    JoinSeed seed;
    seed.host = std::string(item.substr(0, colon));
    if (seed.host.empty()) return bad("empty host");
    if (seed.host.find_first_of(" @/") != std::string::npos) return bad("bad host");
    std::string_view port = item.substr(colon + 1);
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value < 1 ||
        value > 65535) {
      return bad("port must be in [1, 65535]");
    }
    seed.port = static_cast<std::uint16_t>(value);
    seeds.push_back(std::move(seed));
    if (seeds.size() > kJoinVotersMax) return Status::invalid_argument("join: too many seeds");
    if (comma == text.size()) break;
  }
  return seeds;
}

}  // namespace mq::cluster
