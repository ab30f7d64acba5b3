#include "transport/raft_rpc_codec.h"

#include <cstdio>
#include <limits>
#include <string>

#include "base/crc32c.h"
#include "base/le_codec.h"
#include "base/varint.h"

namespace mq::transport {

// The wire carries raft::MessageType and raft::EntryType values as they are numbered in
// src/raft/types.h; the format document lists them. A new enumerator there must be added to
// the document (and to these bounds) before it can travel.
static_assert(static_cast<std::uint8_t>(raft::MessageType::kReadIndexResponse) == kMessageTypeMax);
static_assert(static_cast<std::uint8_t>(raft::MessageType::kAppend) == 0);
static_assert(static_cast<std::uint8_t>(raft::MessageType::kHeartbeat) == 2);
static_assert(static_cast<std::uint8_t>(raft::MessageType::kSnapshot) == 8);
static_assert(static_cast<std::uint8_t>(raft::EntryType::kConfChange) == kEntryTypeMax);

namespace {

Status truncated(const char* what) {
  return Status::corruption(std::string("raft rpc: truncated ") + what);
}

// A bounds-checked reader that remembers the first failure, so a decoder can read a run of
// fields and check once.
using Reader = le::StickyReader;

std::size_t conf_state_size(const raft::ConfState& c) {
  return 4 * 4 + 8 * (c.voters.size() + c.voters_outgoing.size() + c.learners.size() +
                      c.learners_next.size());
}

void put_nodes(Buffer& out, const std::vector<NodeId>& nodes) {
  le::put_u32(out, static_cast<std::uint32_t>(nodes.size()));
  for (NodeId n : nodes) le::put_u64(out, n.value());
}

Status read_nodes(Reader& r, std::vector<NodeId>* nodes) {
  std::uint32_t count = r.u32();
  if (!r.ok()) return truncated("node list count");
  // Check the count against the bytes present before reserving anything.
  if (count > r.remaining() / 8) return truncated("node list");
  nodes->reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) nodes->push_back(NodeId(r.u64()));
  return Status::ok();
}

Status decode_snapshot(Reader& r, raft::Snapshot* snapshot) {
  snapshot->meta.index = LogIndex(r.u64());
  snapshot->meta.term = Term(r.u64());
  if (!r.ok()) return truncated("snapshot");
  raft::ConfState& c = snapshot->meta.conf_state;
  MQ_RETURN_IF_ERROR(read_nodes(r, &c.voters));
  MQ_RETURN_IF_ERROR(read_nodes(r, &c.voters_outgoing));
  MQ_RETURN_IF_ERROR(read_nodes(r, &c.learners));
  MQ_RETURN_IF_ERROR(read_nodes(r, &c.learners_next));
  std::uint8_t auto_leave = r.u8();
  std::uint32_t data_length = r.u32();
  if (!r.ok()) return truncated("snapshot");
  if (auto_leave > 1) return Status::corruption("raft rpc: snapshot auto_leave is not 0 or 1");
  BufferView data = r.bytes(data_length);
  if (!r.ok()) return truncated("snapshot data");
  if (!data.empty()) snapshot->data = SharedBuffer(data);
  c.auto_leave = auto_leave == 1;
  return Status::ok();
}

Status decode_entries(Reader& r, std::uint32_t count, std::vector<raft::Entry>* entries) {
  if (count > r.remaining() / kEntryFixedSize) return truncated("entries");
  entries->reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    raft::Entry e;
    e.term = Term(r.u64());
    e.index = LogIndex(r.u64());
    std::uint8_t type = r.u8();
    std::uint32_t length = r.u32();
    if (!r.ok()) return truncated("entry header");
    if (type > kEntryTypeMax) {
      return Status::corruption("raft rpc: unknown entry type " + std::to_string(type));
    }
    e.type = static_cast<raft::EntryType>(type);
    BufferView payload = r.bytes(length);
    if (!r.ok()) return truncated("entry payload");
    if (!payload.empty()) e.payload = SharedBuffer(payload);
    entries->push_back(std::move(e));
  }
  return Status::ok();
}

}  // namespace

const char* hello_status_name(HelloStatus status) {
  switch (status) {
    case HelloStatus::kOk: return "ok";
    case HelloStatus::kUnsupportedVersion: return "unsupported protocol version";
    case HelloStatus::kClusterMismatch: return "cluster id mismatch";
    case HelloStatus::kWrongTarget: return "wrong target broker";
    case HelloStatus::kMalformed: return "malformed hello";
    case HelloStatus::kTooManyConnections: return "too many connections";
    case HelloStatus::kSelfConnection: return "connection to self";
  }
  return "unknown status";
}

const char* frame_type_name(FrameType type) {
  switch (type) {
    case FrameType::kMessageBatch: return "MessageBatch";
    case FrameType::kHeartbeats: return "Heartbeats";
    case FrameType::kHeartbeatResponses: return "HeartbeatResponses";
    case FrameType::kMessageChunk: return "MessageChunk";
    case FrameType::kKeepalive: return "Keepalive";
  }
  return "Unknown";
}

const char* message_type_label(raft::MessageType type) {
  using T = raft::MessageType;
  switch (type) {
    case T::kAppend: return "MsgApp";
    case T::kAppendResponse: return "MsgAppResp";
    case T::kHeartbeat: return "MsgHeartbeat";
    case T::kHeartbeatResponse: return "MsgHeartbeatResp";
    case T::kVote: return "MsgVote";
    case T::kVoteResponse: return "MsgVoteResp";
    case T::kPreVote: return "MsgPreVote";
    case T::kPreVoteResponse: return "MsgPreVoteResp";
    case T::kSnapshot: return "MsgSnap";
    case T::kTimeoutNow: return "MsgTimeoutNow";
    case T::kReadIndex: return "MsgReadIndex";
    case T::kReadIndexResponse: return "MsgReadIndexResp";
  }
  return "MsgUnknown";
}

// ---- Handshake ----

void encode_hello(const Hello& hello, Buffer& out) {
  MQ_ASSERT(hello.cluster_id.size() <= kClusterIdBytesMax, "cluster id of %zu bytes",
            hello.cluster_id.size());
  const std::size_t start = out.size();
  le::put_u32(out, kHelloMagic);
  le::put_u16(out, hello.version);
  le::put_u16(out, static_cast<std::uint16_t>(kHelloFixedBodySize + hello.cluster_id.size()));
  le::put(out, hello.source.value());
  le::put(out, hello.target.value());
  le::put_u16(out, static_cast<std::uint16_t>(hello.cluster_id.size()));
  out.append(as_bytes(hello.cluster_id));
  le::put_u32(out, crc32c::value(out.view(start, out.size() - start)));
}

Result<HelloPrefix> decode_hello_prefix(BufferView prefix) {
  MQ_ASSERT(prefix.size() == kHelloPrefixSize);
  const std::uint32_t magic = le::decode_u32(prefix.data());
  if (magic != kHelloMagic) {
    char text[64];
    std::snprintf(text, sizeof(text), "bad hello magic 0x%08x (want 0x%08x)", magic, kHelloMagic);
    return Status::corruption(text);
  }
  HelloPrefix p;
  p.version = le::decode_u16(prefix.data() + 4);
  p.body_length = le::decode_u16(prefix.data() + 6);
  if (p.body_length < kHelloFixedBodySize || p.body_length > kHelloBodyBytesMax) {
    return Status::corruption("hello body length " + std::to_string(p.body_length) +
                              " out of bounds");
  }
  return p;
}

Result<Hello> decode_hello(BufferView bytes) {
  if (bytes.size() < kHelloPrefixSize) return truncated("hello");
  MQ_ASSIGN_OR_RETURN(HelloPrefix prefix, decode_hello_prefix(bytes.first(kHelloPrefixSize)));
  if (bytes.size() != kHelloPrefixSize + prefix.rest_size()) {
    return Status::corruption("hello of " + std::to_string(bytes.size()) + " bytes, expected " +
                              std::to_string(kHelloPrefixSize + prefix.rest_size()));
  }
  const std::size_t covered = bytes.size() - 4;
  if (crc32c::value(bytes.first(covered)) != le::decode_u32(bytes.data() + covered)) {
    return Status::corruption("hello crc mismatch");
  }
  Reader r(bytes.subspan(kHelloPrefixSize, prefix.body_length));
  Hello hello;
  hello.version = prefix.version;
  hello.source = BrokerId(static_cast<std::int32_t>(r.u32()));
  hello.target = BrokerId(static_cast<std::int32_t>(r.u32()));
  const std::uint16_t id_length = r.u16();
  if (!r.ok() || id_length != r.remaining()) {
    return Status::corruption("hello cluster id length disagrees with body length");
  }
  hello.cluster_id.assign(as_chars(r.bytes(id_length)));
  return hello;
}

void encode_hello_ack(const HelloAck& ack, Buffer& out) {
  const std::size_t start = out.size();
  le::put_u32(out, kHelloAckMagic);
  le::put_u16(out, ack.version);
  le::put_u16(out, static_cast<std::uint16_t>(ack.status));
  le::put(out, ack.broker_id.value());
  le::put_u32(out, crc32c::value(out.view(start, out.size() - start)));
}

Result<HelloAck> decode_hello_ack(BufferView bytes) {
  MQ_ASSERT(bytes.size() == kHelloAckSize);
  if (le::decode_u32(bytes.data()) != kHelloAckMagic) {
    return Status::corruption("bad hello ack magic");
  }
  if (crc32c::value(bytes.first(12)) != le::decode_u32(bytes.data() + 12)) {
    return Status::corruption("hello ack crc mismatch");
  }
  HelloAck ack;
  ack.version = le::decode_u16(bytes.data() + 4);
  const std::uint16_t status = le::decode_u16(bytes.data() + 6);
  if (status > static_cast<std::uint16_t>(HelloStatus::kSelfConnection)) {
    return Status::corruption("unknown hello ack status " + std::to_string(status));
  }
  ack.status = static_cast<HelloStatus>(status);
  ack.broker_id = BrokerId(static_cast<std::int32_t>(le::decode_u32(bytes.data() + 8)));
  return ack;
}

// ---- Frames ----

std::size_t begin_frame(Buffer& out) {
  const std::size_t offset = out.size();
  out.resize(offset + kFrameHeaderSize);
  return offset;
}

void finish_frame(Buffer& out, std::size_t frame_offset, FrameType type) {
  MQ_ASSERT(out.size() >= frame_offset + kFrameHeaderSize);
  const std::size_t body_length = out.size() - frame_offset - kFrameHeaderSize;
  MQ_ASSERT(body_length <= std::numeric_limits<std::uint32_t>::max());
  std::uint8_t* h = out.data() + frame_offset;
  le::encode_u32(h + 4, static_cast<std::uint32_t>(body_length));
  h[8] = static_cast<std::uint8_t>(type);
  h[9] = 0;  // flags
  le::encode_u16(h + 10, 0);
  le::encode_u32(h, crc32c::value(h + 4, kFrameCrcCoveredHeaderBytes + body_length));
}

void append_frame(Buffer& out, FrameType type, BufferView body) {
  const std::size_t offset = begin_frame(out);
  out.append(body);
  finish_frame(out, offset, type);
}

Result<std::size_t> parse_frame(BufferView bytes, std::uint32_t frame_bytes_max,
                                FrameView* frame) {
  if (bytes.size() < kFrameHeaderSize) return std::size_t{0};
  const std::uint8_t* h = bytes.data();
  const std::uint32_t length = le::decode_u32(h + 4);
  const std::uint8_t type = h[8];
  const std::uint8_t flags = h[9];
  const std::uint16_t reserved = le::decode_u16(h + 10);
  if (length > frame_bytes_max) {
    return Status::limit_exceeded("frame body of " + std::to_string(length) +
                                  " bytes exceeds the limit of " +
                                  std::to_string(frame_bytes_max));
  }
  if (type < kFrameTypeMin || type > kFrameTypeMax) {
    return Status::corruption("unknown frame type " + std::to_string(type));
  }
  if ((flags & ~kFrameFlagsKnown) != 0 || reserved != 0) {
    return Status::corruption("unknown frame flags 0x" + to_hex(BufferView(h + 9, 3)));
  }
  if (bytes.size() - kFrameHeaderSize < length) return std::size_t{0};
  const std::uint32_t crc = crc32c::value(h + 4, kFrameCrcCoveredHeaderBytes + length);
  if (crc != le::decode_u32(h)) {
    return Status::corruption(std::string("crc mismatch in ") +
                              frame_type_name(static_cast<FrameType>(type)) + " frame of " +
                              std::to_string(length) + " bytes");
  }
  frame->type = static_cast<FrameType>(type);
  frame->flags = flags;
  frame->body = bytes.subspan(kFrameHeaderSize, length);
  return kFrameHeaderSize + std::size_t{length};
}

// ---- Raft messages ----

std::size_t encoded_message_size(const raft::Message& m) {
  std::size_t size = kMessageFixedSize;
  for (const raft::Entry& e : m.entries) size += kEntryFixedSize + e.payload.size();
  if (m.snapshot) {
    size += kSnapshotFixedSize - 4 * 4 + conf_state_size(m.snapshot->meta.conf_state) +
            m.snapshot->data.size();
  }
  return size;
}

void encode_message(const raft::Message& m, Buffer& out) {
  const std::size_t start = out.size();
  std::uint8_t flags = 0;
  if (m.reject) flags |= kMessageFlagReject;
  if (m.snapshot) flags |= kMessageFlagSnapshot;
  le::put_u8(out, static_cast<std::uint8_t>(m.type));
  le::put_u8(out, flags);
  for (std::uint64_t v : {m.from.value(), m.to.value(), m.term.value(), m.index.value(),
                          m.log_term.value(), m.commit.value(), m.reject_hint.value(), m.context}) {
    le::put_u64(out, v);
  }
  MQ_ASSERT(m.entries.size() <= std::numeric_limits<std::uint32_t>::max());
  le::put_u32(out, static_cast<std::uint32_t>(m.entries.size()));
  for (const raft::Entry& e : m.entries) {
    MQ_ASSERT(e.payload.size() <= std::numeric_limits<std::uint32_t>::max());
    le::put_u64(out, e.term.value());
    le::put_u64(out, e.index.value());
    le::put_u8(out, static_cast<std::uint8_t>(e.type));
    le::put_u32(out, static_cast<std::uint32_t>(e.payload.size()));
    out.append(e.payload.view());
  }
  if (m.snapshot) {
    const raft::Snapshot& s = *m.snapshot;
    MQ_ASSERT(s.data.size() <= std::numeric_limits<std::uint32_t>::max());
    le::put_u64(out, s.meta.index.value());
    le::put_u64(out, s.meta.term.value());
    put_nodes(out, s.meta.conf_state.voters);
    put_nodes(out, s.meta.conf_state.voters_outgoing);
    put_nodes(out, s.meta.conf_state.learners);
    put_nodes(out, s.meta.conf_state.learners_next);
    le::put_u8(out, s.meta.conf_state.auto_leave ? 1 : 0);
    le::put_u32(out, static_cast<std::uint32_t>(s.data.size()));
    out.append(s.data.view());
  }
  MQ_DASSERT(out.size() - start == encoded_message_size(m));
}

Result<raft::Message> decode_message(BufferView bytes) {
  Reader r(bytes);
  const std::uint8_t type = r.u8();
  const std::uint8_t flags = r.u8();
  if (!r.ok()) return truncated("message header");
  if (type > kMessageTypeMax) {
    return Status::corruption("raft rpc: unknown message type " + std::to_string(type));
  }
  if ((flags & ~kMessageFlagsKnown) != 0) {
    return Status::corruption("raft rpc: unknown message flags " + std::to_string(flags));
  }
  raft::Message m;
  m.type = static_cast<raft::MessageType>(type);
  m.reject = (flags & kMessageFlagReject) != 0;
  m.from = NodeId(r.u64());
  m.to = NodeId(r.u64());
  m.term = Term(r.u64());
  m.index = LogIndex(r.u64());
  m.log_term = Term(r.u64());
  m.commit = LogIndex(r.u64());
  m.reject_hint = LogIndex(r.u64());
  m.context = r.u64();
  const std::uint32_t entry_count = r.u32();
  if (!r.ok()) return truncated("message header");
  MQ_RETURN_IF_ERROR(decode_entries(r, entry_count, &m.entries));
  if ((flags & kMessageFlagSnapshot) != 0) {
    m.snapshot.emplace();
    MQ_RETURN_IF_ERROR(decode_snapshot(r, &*m.snapshot));
  }
  if (!r.at_end()) {
    return Status::corruption("raft rpc: " + std::to_string(r.remaining()) +
                              " trailing bytes after message");
  }
  return m;
}

void begin_batch(Buffer& out, std::size_t* count_offset) {
  *count_offset = out.size();
  le::put_u32(out, 0);
}

void append_batch_item(Buffer& out, GroupId group, const raft::Message& message) {
  const std::size_t size = encoded_message_size(message);
  MQ_ASSERT(size <= std::numeric_limits<std::uint32_t>::max());
  le::put_u64(out, group.value());
  le::put_u32(out, static_cast<std::uint32_t>(size));
  encode_message(message, out);
}

void finish_batch(Buffer& out, std::size_t count_offset, std::uint32_t count) {
  MQ_ASSERT(count_offset + 4 <= out.size());
  le::encode_u32(out.data() + count_offset, count);
}

Status decode_batch(BufferView body, std::vector<GroupMessage>* out) {
  Reader r(body);
  const std::uint32_t count = r.u32();
  if (!r.ok()) return truncated("batch count");
  if (count > r.remaining() / (kBatchItemHeaderSize + kMessageFixedSize)) {
    return Status::corruption("raft rpc: batch count " + std::to_string(count) +
                              " exceeds what the frame can hold");
  }
  std::vector<GroupMessage> decoded;
  decoded.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    const GroupId group(r.u64());
    const std::uint32_t length = r.u32();
    BufferView bytes = r.bytes(length);
    if (!r.ok()) return truncated("batch item");
    MQ_ASSIGN_OR_RETURN(raft::Message message, decode_message(bytes));
    decoded.push_back(GroupMessage{group, std::move(message)});
  }
  if (!r.at_end()) return Status::corruption("raft rpc: trailing bytes after batch");
  for (GroupMessage& gm : decoded) out->push_back(std::move(gm));
  return Status::ok();
}

// ---- Heartbeats ----

bool coalescable(const raft::Message& m) {
  if (m.type != raft::MessageType::kHeartbeat && m.type != raft::MessageType::kHeartbeatResponse) {
    return false;
  }
  return m.entries.empty() && !m.snapshot && !m.reject && m.index == LogIndex(0) &&
         m.log_term == Term(0) && m.reject_hint == LogIndex(0);
}

std::size_t heartbeat_record_size(GroupId group, const raft::Message& m) {
  return varint::length(group.value()) + varint::length(m.from.value()) +
         varint::length(m.to.value()) + varint::length(m.term.value()) +
         varint::length(m.commit.value()) + varint::length(m.context);
}

void append_heartbeat_record(Buffer& out, GroupId group, const raft::Message& m) {
  MQ_DASSERT(coalescable(m));
  varint::put_unsigned(out, group.value());
  varint::put_unsigned(out, m.from.value());
  varint::put_unsigned(out, m.to.value());
  varint::put_unsigned(out, m.term.value());
  varint::put_unsigned(out, m.commit.value());
  varint::put_unsigned(out, m.context);
}

Status decode_heartbeats(BufferView body, FrameType type, std::vector<GroupMessage>* out) {
  MQ_ASSERT(type == FrameType::kHeartbeats || type == FrameType::kHeartbeatResponses);
  const raft::MessageType message_type = type == FrameType::kHeartbeats
                                             ? raft::MessageType::kHeartbeat
                                             : raft::MessageType::kHeartbeatResponse;
  if (body.size() < 4) return truncated("heartbeat count");
  const std::uint32_t count = le::decode_u32(body.data());
  const std::uint8_t* p = body.data() + 4;
  const std::uint8_t* limit = body.data() + body.size();
  if (count > static_cast<std::size_t>(limit - p) / kHeartbeatRecordSizeMin) {
    return Status::corruption("raft rpc: heartbeat count " + std::to_string(count) +
                              " exceeds what the frame can hold");
  }
  std::vector<GroupMessage> decoded;
  decoded.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uint64_t fields[6];
    for (std::uint64_t& field : fields) {
      const std::size_t n = varint::decode_unsigned(p, limit, &field);
      if (n == 0) return Status::corruption("raft rpc: truncated or over-long heartbeat varint");
      p += n;
    }
    GroupMessage gm;
    gm.group = GroupId(fields[0]);
    gm.message.type = message_type;
    gm.message.from = NodeId(fields[1]);
    gm.message.to = NodeId(fields[2]);
    gm.message.term = Term(fields[3]);
    gm.message.commit = LogIndex(fields[4]);
    gm.message.context = fields[5];
    decoded.push_back(std::move(gm));
  }
  if (p != limit) return Status::corruption("raft rpc: trailing bytes after heartbeats");
  for (GroupMessage& gm : decoded) out->push_back(std::move(gm));
  return Status::ok();
}

// ---- Chunks ----

void append_chunk(Buffer& out, const ChunkHeader& header, BufferView data) {
  MQ_ASSERT(std::uint64_t{header.offset} + data.size() <= header.total_length);
  le::put_u64(out, header.group.value());
  le::put_u64(out, header.message_id);
  le::put_u32(out, header.total_length);
  le::put_u32(out, header.offset);
  out.append(data);
}

Result<ChunkHeader> decode_chunk(BufferView body, BufferView* data) {
  if (body.size() < kChunkHeaderSize) return truncated("chunk header");
  Reader r(body);
  ChunkHeader h;
  h.group = GroupId(r.u64());
  h.message_id = r.u64();
  h.total_length = r.u32();
  h.offset = r.u32();
  MQ_ASSERT(r.ok());
  *data = body.subspan(kChunkHeaderSize);
  if (data->empty()) return Status::corruption("raft rpc: empty chunk");
  if (std::uint64_t{h.offset} + data->size() > h.total_length) {
    return Status::corruption("raft rpc: chunk runs past its message's total length");
  }
  return h;
}

Result<bool> ChunkAssembler::add(const ChunkHeader& h, BufferView data, GroupMessage* done) {
  if (!in_progress_) {
    if (h.offset != 0) {
      return Status::corruption("raft rpc: chunk at offset " + std::to_string(h.offset) +
                                " without a first chunk");
    }
    if (h.total_length > message_bytes_max_) {
      return Status::limit_exceeded("chunked message of " + std::to_string(h.total_length) +
                                    " bytes exceeds the limit of " +
                                    std::to_string(message_bytes_max_));
    }
    in_progress_ = true;
    current_ = h;
    bytes_.clear();
  } else if (h.group != current_.group || h.message_id != current_.message_id ||
             h.total_length != current_.total_length || h.offset != bytes_.size()) {
    return Status::corruption("raft rpc: chunk out of sequence (message " +
                              std::to_string(h.message_id) + " offset " +
                              std::to_string(h.offset) + ", expected message " +
                              std::to_string(current_.message_id) + " offset " +
                              std::to_string(bytes_.size()) + ")");
  }
  bytes_.append(data);  // grows with bytes received, bounded by total_length
  MQ_DASSERT(bytes_.size() <= current_.total_length);
  if (bytes_.size() < current_.total_length) return false;
  in_progress_ = false;
  MQ_ASSIGN_OR_RETURN(raft::Message message, decode_message(bytes_.view()));
  done->group = current_.group;
  done->message = std::move(message);
  bytes_ = Buffer();
  return true;
}

}  // namespace mq::transport
