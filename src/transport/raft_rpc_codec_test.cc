#include "transport/raft_rpc_codec.h"

#include <gtest/gtest.h>

#include "base/le_codec.h"
#include "base/prng.h"

namespace mq::transport {
namespace {

using raft::Entry;
using raft::EntryType;
using raft::Message;
using raft::MessageType;

Entry make_entry(std::uint64_t term, std::uint64_t index, std::string_view payload,
                 EntryType type = EntryType::kNormal) {
  Entry e;
  e.term = Term(term);
  e.index = LogIndex(index);
  e.type = type;
  if (!payload.empty()) e.payload = SharedBuffer(payload);
  return e;
}

Message make_append() {
  Message m;
  m.type = MessageType::kAppend;
  m.from = NodeId(1);
  m.to = NodeId(2);
  m.term = Term(7);
  m.index = LogIndex(41);
  m.log_term = Term(6);
  m.commit = LogIndex(40);
  m.entries = {make_entry(7, 42, "hello"), make_entry(7, 43, ""),
               make_entry(7, 44, "conf", EntryType::kConfChange)};
  return m;
}

Message make_snapshot_message(std::size_t data_size) {
  Message m;
  m.type = MessageType::kSnapshot;
  m.from = NodeId(3);
  m.to = NodeId(9);
  m.term = Term(12);
  raft::Snapshot s;
  s.meta.index = LogIndex(1000);
  s.meta.term = Term(11);
  s.meta.conf_state.voters = {NodeId(1), NodeId(3), NodeId(9)};
  s.meta.conf_state.voters_outgoing = {NodeId(1), NodeId(2)};
  s.meta.conf_state.learners = {NodeId(5)};
  s.meta.conf_state.learners_next = {NodeId(2)};
  s.meta.conf_state.auto_leave = true;
  Buffer data(data_size);
  for (std::size_t i = 0; i < data_size; ++i) data[i] = static_cast<std::uint8_t>(i * 31 + 7);
  s.data = SharedBuffer(std::move(data));
  m.snapshot = std::move(s);
  return m;
}

Message make_heartbeat(std::uint64_t to, std::uint64_t commit, std::uint64_t context) {
  Message m;
  m.type = MessageType::kHeartbeat;
  m.from = NodeId(1);
  m.to = NodeId(to);
  m.term = Term(5);
  m.commit = LogIndex(commit);
  m.context = context;
  return m;
}

// A random message of any type with random fields (for property-style round trips).
Message random_message(Prng& prng) {
  Message m;
  m.type = static_cast<MessageType>(prng.uniform(kMessageTypeMax + 1));
  m.from = NodeId(prng.next());
  m.to = NodeId(prng.uniform(10));
  m.term = Term(prng.uniform(1000));
  m.index = LogIndex(prng.next());
  m.log_term = Term(prng.uniform(1000));
  m.commit = LogIndex(prng.uniform(1u << 20));
  m.reject = prng.chance(1, 4);
  m.reject_hint = LogIndex(prng.uniform(100));
  m.context = prng.chance(1, 2) ? 0 : prng.next();
  const std::size_t entries = prng.uniform(5);
  for (std::size_t i = 0; i < entries; ++i) {
    std::string payload(prng.uniform(64), 'x');
    for (char& c : payload) c = static_cast<char>(prng.uniform(256));
    m.entries.push_back(make_entry(prng.uniform(50), prng.next(), payload,
                                   static_cast<EntryType>(prng.uniform(3))));
  }
  if (prng.chance(1, 8)) m.snapshot = make_snapshot_message(prng.uniform(100)).snapshot;
  return m;
}

Buffer encode_batch_frame(const std::vector<GroupMessage>& items) {
  Buffer out;
  const std::size_t frame = begin_frame(out);
  std::size_t count_offset = 0;
  begin_batch(out, &count_offset);
  for (const GroupMessage& gm : items) append_batch_item(out, gm.group, gm.message);
  finish_batch(out, count_offset, static_cast<std::uint32_t>(items.size()));
  finish_frame(out, frame, FrameType::kMessageBatch);
  return out;
}

TEST(RaftRpcCodec, HelloRoundTrip) {
  Hello hello{kMaxProtocolVersion, BrokerId(3), BrokerId(-1), "cluster-a"};
  Buffer out;
  encode_hello(hello, out);
  ASSERT_EQ(out.size(), kHelloPrefixSize + kHelloFixedBodySize + 9 + 4);
  auto prefix = decode_hello_prefix(out.view(0, kHelloPrefixSize));
  ASSERT_TRUE(prefix.has_value()) << prefix.error().to_string();
  EXPECT_EQ(prefix->version, kMaxProtocolVersion);
  EXPECT_EQ(kHelloPrefixSize + prefix->rest_size(), out.size());
  auto decoded = decode_hello(out);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().to_string();
  EXPECT_EQ(*decoded, hello);
}

TEST(RaftRpcCodec, HelloEveryBitFlipAndTruncationIsRefused) {
  Buffer good;
  encode_hello(Hello{1, BrokerId(1), BrokerId(2), "c"}, good);
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(decode_hello(good.view(0, n)).has_value()) << "prefix of " << n;
  }
  for (std::size_t bit = 0; bit < good.size() * 8; ++bit) {
    Buffer bad = good;
    bad[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    auto r = decode_hello(bad);
    // A flip in the version field is caught by the crc (the version is covered).
    EXPECT_FALSE(r.has_value()) << "bit " << bit;
  }
}

TEST(RaftRpcCodec, HelloWrongMagicIsNamed) {
  Buffer bytes(as_bytes("GET / HTTP/1.1\r\n"));
  auto r = decode_hello_prefix(bytes.view(0, kHelloPrefixSize));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("bad hello magic"), std::string::npos);
}

TEST(RaftRpcCodec, HelloAckRoundTripAndBitFlips) {
  HelloAck ack{kMaxProtocolVersion, HelloStatus::kClusterMismatch, BrokerId(4)};
  Buffer out;
  encode_hello_ack(ack, out);
  ASSERT_EQ(out.size(), kHelloAckSize);
  auto decoded = decode_hello_ack(out);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded, ack);
  for (std::size_t bit = 0; bit < out.size() * 8; ++bit) {
    Buffer bad = out;
    bad[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(decode_hello_ack(bad).has_value()) << "bit " << bit;
  }
}

TEST(RaftRpcCodec, MessageRoundTripAllShapes) {
  std::vector<Message> messages = {make_append(), make_snapshot_message(300),
                                   make_heartbeat(2, 9, 77)};
  Message vote_response;
  vote_response.type = MessageType::kVoteResponse;
  vote_response.reject = true;
  vote_response.term = Term(3);
  messages.push_back(vote_response);
  Message app_response;
  app_response.type = MessageType::kAppendResponse;
  app_response.reject = true;
  app_response.index = LogIndex(10);
  app_response.reject_hint = LogIndex(4);
  app_response.log_term = Term(2);
  messages.push_back(app_response);
  for (const Message& m : messages) {
    Buffer out;
    encode_message(m, out);
    EXPECT_EQ(out.size(), encoded_message_size(m));
    auto decoded = decode_message(out);
    ASSERT_TRUE(decoded.has_value()) << decoded.error().to_string();
    EXPECT_EQ(*decoded, m) << message_type_label(m.type);
  }
}

TEST(RaftRpcCodec, RandomBatchesRoundTrip) {
  Prng prng(20261127);
  for (int round = 0; round < 200; ++round) {
    std::vector<GroupMessage> items;
    const std::size_t n = prng.uniform(8);
    for (std::size_t i = 0; i < n; ++i) items.push_back({GroupId(prng.next()), random_message(prng)});
    Buffer frame = encode_batch_frame(items);
    FrameView view;
    auto used = parse_frame(frame, kDefaultFrameBytesMax, &view);
    ASSERT_TRUE(used.has_value()) << used.error().to_string();
    ASSERT_EQ(*used, frame.size());
    ASSERT_EQ(view.type, FrameType::kMessageBatch);
    std::vector<GroupMessage> decoded;
    ASSERT_TRUE(decode_batch(view.body, &decoded).is_ok());
    EXPECT_EQ(decoded, items);
  }
}

TEST(RaftRpcCodec, FrameTruncatedAtEveryByteNeedsMoreAndBodyTruncationIsCorruption) {
  Buffer frame = encode_batch_frame({{GroupId(1), make_append()},
                                     {GroupId(2), make_snapshot_message(40)}});
  for (std::size_t n = 0; n < frame.size(); ++n) {
    FrameView view;
    auto used = parse_frame(frame.view(0, n), kDefaultFrameBytesMax, &view);
    ASSERT_TRUE(used.has_value()) << n;
    EXPECT_EQ(*used, 0u) << "a prefix of " << n << " bytes must not yield a frame";
  }
  // The body decoder, handed any strict prefix of a body, reports corruption (never reads
  // past it or crashes).
  const BufferView body = frame.view(kFrameHeaderSize, frame.size() - kFrameHeaderSize);
  for (std::size_t n = 0; n < body.size(); ++n) {
    std::vector<GroupMessage> decoded;
    Status s = decode_batch(body.first(n), &decoded);
    EXPECT_EQ(s.code(), ErrorCode::kCorruption) << n;
    EXPECT_TRUE(decoded.empty());
  }
}

TEST(RaftRpcCodec, EveryBitFlipInAFrameIsCaught) {
  Buffer frame = encode_batch_frame({{GroupId(77), make_append()}});
  for (std::size_t bit = 0; bit < frame.size() * 8; ++bit) {
    Buffer bad = frame;
    bad[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    FrameView view;
    auto used = parse_frame(bad, kDefaultFrameBytesMax, &view);
    // Either refused outright, or (a flip that enlarges the length) waiting for bytes that a
    // later crc check would refuse; never a frame.
    const bool yielded_frame = used.has_value() && *used > 0;
    EXPECT_FALSE(yielded_frame) << "bit " << bit;
  }
}

TEST(RaftRpcCodec, OversizedLengthRefusedFromTheHeaderAlone) {
  Buffer header(kFrameHeaderSize);
  le::encode_u32(header.data() + 4, 0xfffffff0u);
  header[8] = static_cast<std::uint8_t>(FrameType::kMessageBatch);
  FrameView view;
  auto used = parse_frame(header, kDefaultFrameBytesMax, &view);
  ASSERT_FALSE(used.has_value());
  EXPECT_EQ(used.error().code(), ErrorCode::kLimitExceeded);
  EXPECT_NE(used.error().message().find("exceeds the limit"), std::string::npos);
}

TEST(RaftRpcCodec, UnknownFrameTypeAndFlagsRefused) {
  Buffer frame;
  append_frame(frame, FrameType::kKeepalive, {});
  FrameView view;
  Buffer bad_type = frame;
  bad_type[8] = 0x7f;
  EXPECT_EQ(parse_frame(bad_type, 1024, &view).error().code(), ErrorCode::kCorruption);
  Buffer bad_flags = frame;
  bad_flags[9] = 0x01;
  EXPECT_EQ(parse_frame(bad_flags, 1024, &view).error().code(), ErrorCode::kCorruption);
  auto used = parse_frame(frame, 1024, &view);
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(*used, kFrameHeaderSize);
  EXPECT_EQ(view.type, FrameType::kKeepalive);
}

TEST(RaftRpcCodec, HostileCountsFailWithoutAllocating) {
  // A batch claiming 2^32-1 items in an 8-byte body.
  Buffer body;
  le::put_u32(body, 0xffffffffu);
  le::put_u32(body, 0);
  std::vector<GroupMessage> out;
  EXPECT_EQ(decode_batch(body, &out).code(), ErrorCode::kCorruption);
  // A message claiming 2^32-1 entries.
  Buffer m;
  encode_message(make_heartbeat(2, 1, 0), m);
  le::encode_u32(m.data() + kMessageFixedSize - 4, 0xffffffffu);
  EXPECT_EQ(decode_message(m).error().code(), ErrorCode::kCorruption);
  // An entry claiming a 4 GiB payload.
  Buffer e;
  Message one;
  one.entries = {make_entry(1, 1, "ab")};
  encode_message(one, e);
  le::encode_u32(e.data() + kMessageFixedSize + 17, 0xffffffffu);
  EXPECT_EQ(decode_message(e).error().code(), ErrorCode::kCorruption);
  // A snapshot claiming 2^32-1 voters.
  Buffer s;
  encode_message(make_snapshot_message(1), s);
  le::encode_u32(s.data() + kMessageFixedSize + 16, 0xffffffffu);
  EXPECT_EQ(decode_message(s).error().code(), ErrorCode::kCorruption);
  // Heartbeats claiming 2^32-1 records.
  Buffer hb;
  le::put_u32(hb, 0xffffffffu);
  hb.append(Buffer(12).view());
  EXPECT_EQ(decode_heartbeats(hb, FrameType::kHeartbeats, &out).code(), ErrorCode::kCorruption);
  EXPECT_TRUE(out.empty());
}

TEST(RaftRpcCodec, UnknownMessageAndEntryTypesRefused) {
  Buffer m;
  encode_message(make_append(), m);
  Buffer bad_type = m;
  bad_type[0] = kMessageTypeMax + 1;
  EXPECT_FALSE(decode_message(bad_type).has_value());
  Buffer bad_flags = m;
  bad_flags[1] = 0x80;
  EXPECT_FALSE(decode_message(bad_flags).has_value());
  Buffer bad_entry = m;
  bad_entry[kMessageFixedSize + 16] = kEntryTypeMax + 1;
  EXPECT_FALSE(decode_message(bad_entry).has_value());
  Buffer trailing = m;
  trailing.push_back(0);
  EXPECT_FALSE(decode_message(trailing).has_value());
}

TEST(RaftRpcCodec, HeartbeatsCoalesceCompactlyAndExpandBack) {
  std::vector<GroupMessage> heartbeats;
  Buffer body;
  le::put_u32(body, 1000);
  for (std::uint64_t g = 0; g < 1000; ++g) {
    Message m = make_heartbeat(2, 100 + g, g % 3);
    ASSERT_TRUE(coalescable(m));
    append_heartbeat_record(body, GroupId(g), m);
    heartbeats.push_back({GroupId(g), m});
  }
  // ~8 bytes per group instead of a 82-byte batch item.
  EXPECT_LT(body.size(), 1000u * 10);
  std::vector<GroupMessage> decoded;
  ASSERT_TRUE(decode_heartbeats(body, FrameType::kHeartbeats, &decoded).is_ok());
  EXPECT_EQ(decoded, heartbeats);
  for (std::size_t n = 0; n < body.size(); ++n) {
    std::vector<GroupMessage> partial;
    EXPECT_FALSE(decode_heartbeats(body.view(0, n), FrameType::kHeartbeats, &partial).is_ok());
  }
  // Responses decode as kHeartbeatResponse.
  decoded.clear();
  ASSERT_TRUE(decode_heartbeats(body, FrameType::kHeartbeatResponses, &decoded).is_ok());
  EXPECT_EQ(decoded[5].message.type, MessageType::kHeartbeatResponse);
}

TEST(RaftRpcCodec, HeartbeatWithExtraFieldsIsNotCoalescable) {
  Message m = make_heartbeat(2, 1, 0);
  EXPECT_TRUE(coalescable(m));
  m.index = LogIndex(3);
  EXPECT_FALSE(coalescable(m));
  Message r = make_heartbeat(2, 1, 0);
  r.type = MessageType::kHeartbeatResponse;
  r.reject = true;
  EXPECT_FALSE(coalescable(r));
  EXPECT_FALSE(coalescable(make_append()));
}

// Splits an encoded message into chunk frames' bodies of at most chunk_bytes bytes.
std::vector<Buffer> chunk_bodies(const Message& m, GroupId group, std::uint64_t id,
                                 std::size_t chunk_bytes) {
  Buffer encoded;
  encode_message(m, encoded);
  std::vector<Buffer> bodies;
  for (std::size_t offset = 0; offset < encoded.size(); offset += chunk_bytes) {
    const std::size_t n = std::min(chunk_bytes, encoded.size() - offset);
    Buffer body;
    append_chunk(body,
                 ChunkHeader{group, id, static_cast<std::uint32_t>(encoded.size()),
                             static_cast<std::uint32_t>(offset)},
                 encoded.view(offset, n));
    bodies.push_back(std::move(body));
  }
  return bodies;
}

TEST(RaftRpcCodec, ChunkedSnapshotReassembles) {
  const Message m = make_snapshot_message(10000);
  std::vector<Buffer> bodies = chunk_bodies(m, GroupId(5), 1, 1024);
  ASSERT_GT(bodies.size(), 9u);
  ChunkAssembler assembler(1 << 20);
  GroupMessage done;
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    BufferView data;
    auto header = decode_chunk(bodies[i], &data);
    ASSERT_TRUE(header.has_value());
    auto complete = assembler.add(*header, data, &done);
    ASSERT_TRUE(complete.has_value()) << complete.error().to_string();
    EXPECT_EQ(*complete, i + 1 == bodies.size());
  }
  EXPECT_EQ(done.group, GroupId(5));
  EXPECT_EQ(done.message, m);
  EXPECT_FALSE(assembler.in_progress());
}

TEST(RaftRpcCodec, ChunksOutOfSequenceOrOverLimitRefused) {
  const Message m = make_snapshot_message(5000);
  std::vector<Buffer> bodies = chunk_bodies(m, GroupId(5), 1, 1024);
  GroupMessage done;
  BufferView data;
  {
    ChunkAssembler assembler(1 << 20);
    auto h1 = decode_chunk(bodies[1], &data);
    EXPECT_FALSE(assembler.add(*h1, data, &done).has_value()) << "no first chunk";
  }
  {
    ChunkAssembler assembler(1 << 20);
    auto h0 = decode_chunk(bodies[0], &data);
    ASSERT_TRUE(assembler.add(*h0, data, &done).has_value());
    auto h2 = decode_chunk(bodies[2], &data);
    EXPECT_FALSE(assembler.add(*h2, data, &done).has_value()) << "skipped a chunk";
  }
  {
    ChunkAssembler assembler(4096);  // the message is larger than this
    auto h0 = decode_chunk(bodies[0], &data);
    auto r = assembler.add(*h0, data, &done);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), ErrorCode::kLimitExceeded);
    EXPECT_EQ(assembler.buffered_bytes(), 0u);
  }
  Buffer past_end;
  append_chunk(past_end, ChunkHeader{GroupId(1), 1, 10, 0}, as_bytes("0123456789"));
  le::encode_u32(past_end.data() + 16, 5);  // total_length 5 < offset + 10
  EXPECT_FALSE(decode_chunk(past_end, &data).has_value());
}

// Decodes whatever parse_frame accepts, the way a connection does; returns the messages.
std::size_t decode_stream(BufferView bytes, ChunkAssembler& assembler) {
  std::size_t messages = 0;
  while (!bytes.empty()) {
    FrameView frame;
    auto used = parse_frame(bytes, 1u << 20, &frame);
    if (!used.has_value() || *used == 0) break;
    std::vector<GroupMessage> out;
    Status status;
    if (frame.type == FrameType::kMessageBatch) {
      status = decode_batch(frame.body, &out);
    } else if (frame.type == FrameType::kHeartbeats ||
               frame.type == FrameType::kHeartbeatResponses) {
      status = decode_heartbeats(frame.body, frame.type, &out);
    } else if (frame.type == FrameType::kMessageChunk) {
      BufferView data;
      auto header = decode_chunk(frame.body, &data);
      GroupMessage done;
      if (header.has_value()) {
        auto r = assembler.add(*header, data, &done);
        if (r.has_value() && *r) out.push_back(done);
        if (!r.has_value()) status = r.error();
      }
    }
    if (!status.is_ok()) break;
    messages += out.size();
    bytes = bytes.subspan(*used);
  }
  return messages;
}

// Fuzz smoke: random corruptions of a valid stream (bit flips, byte overwrites, truncations,
// length fields set to extremes) never crash or over-allocate (run under ASan in CI), and
// corrupted frames never decode: only the frames before the first damaged byte yield
// messages.
TEST(RaftRpcCodec, RandomCorruptionsOfAStreamNeverCrash) {
  Buffer stream;
  std::vector<std::size_t> frame_ends;
  std::vector<std::size_t> messages_before;  // messages in frames [0, i)
  Prng prng(7);
  std::size_t total = 0;
  for (int f = 0; f < 12; ++f) {
    messages_before.push_back(total);
    if (f % 3 == 2) {
      const std::size_t start = begin_frame(stream);
      le::put_u32(stream, 3);
      for (std::uint64_t g = 0; g < 3; ++g) append_heartbeat_record(stream, GroupId(g), make_heartbeat(2, g, 0));
      finish_frame(stream, start, FrameType::kHeartbeats);
      total += 3;
    } else {
      std::vector<GroupMessage> items = {{GroupId(f), random_message(prng)}};
      Buffer frame = encode_batch_frame(items);
      stream.append(frame.view());
      total += 1;
    }
    frame_ends.push_back(stream.size());
  }
  {
    ChunkAssembler assembler(1 << 20);
    ASSERT_EQ(decode_stream(stream, assembler), total);
  }
  for (int round = 0; round < 3000; ++round) {
    Buffer bad = stream;
    const std::size_t at = prng.uniform(bad.size());
    switch (prng.uniform(4)) {
      case 0: bad[at] ^= static_cast<std::uint8_t>(1u << prng.uniform(8)); break;
      case 1: bad[at] = static_cast<std::uint8_t>(prng.next()); break;
      case 2: bad.resize(at); break;
      default:
        if (at + 4 <= bad.size()) le::encode_u32(bad.data() + at, prng.chance(1, 2) ? 0xffffffffu : 0);
        break;
    }
    if (bad == stream) continue;
    std::size_t damaged_frame = 0;
    while (frame_ends[damaged_frame] <= at) ++damaged_frame;
    ChunkAssembler assembler(1 << 20);
    const std::size_t decoded = decode_stream(bad, assembler);
    EXPECT_EQ(decoded, messages_before[damaged_frame]) << "round " << round << " byte " << at;
  }
}

// The worked example of docs/formats/raft_rpc_format.md: a batch frame holding one
// append for group 7, and a heartbeat frame for two groups.
TEST(RaftRpcCodec, DocumentedWorkedExample) {
  Message m;
  m.type = MessageType::kAppend;
  m.from = NodeId(1);
  m.to = NodeId(2);
  m.term = Term(3);
  m.index = LogIndex(4);
  m.log_term = Term(3);
  m.commit = LogIndex(4);
  m.entries = {make_entry(3, 5, "hi")};
  Buffer batch = encode_batch_frame({{GroupId(7), m}});
  EXPECT_EQ(to_hex(batch),
            "2563481f6d00000001000000"                  // crc, length 109, type 1, flags, reserved
            "01000000"                                  // count 1
            "0700000000000000" "5d000000"               // group 7, message_length 93
            "0000"                                      // MsgApp, flags 0
            "0100000000000000" "0200000000000000"       // from 1, to 2
            "0300000000000000" "0400000000000000"       // term 3, index 4
            "0300000000000000" "0400000000000000"       // log_term 3, commit 4
            "0000000000000000" "0000000000000000"       // reject_hint 0, context 0
            "01000000"                                  // entry_count 1
            "0300000000000000" "0500000000000000" "00"  // entry term 3, index 5, kNormal
            "02000000" "6869");                         // payload_length 2, "hi"
  Buffer hb;
  const std::size_t frame = begin_frame(hb);
  le::put_u32(hb, 2);
  append_heartbeat_record(hb, GroupId(7), make_heartbeat(2, 4, 0));
  append_heartbeat_record(hb, GroupId(300), make_heartbeat(2, 9, 1));
  finish_frame(hb, frame, FrameType::kHeartbeats);
  EXPECT_EQ(to_hex(hb), "affc38f81100000002000000"  // crc, length 17, type 2 (Heartbeats)
                        "02000000"                  // count 2
                        "070102050400"              // group 7, 1->2, term 5, commit 4, ctx 0
                        "ac020102050901");
  Buffer hello;
  encode_hello(Hello{1, BrokerId(1), BrokerId(2), "prod"}, hello);
  EXPECT_EQ(to_hex(hello), "4d515254" "0100" "0e00"  // "MQRT", version 1, body_length 14
                           "01000000" "02000000"  // source 1, target 2
                           "0400" "70726f64"      // cluster id "prod"
                           "392724de");           // crc
  Buffer ack;
  encode_hello_ack(HelloAck{1, HelloStatus::kOk, BrokerId(2)}, ack);
  EXPECT_EQ(to_hex(ack), "4d51414b" "0100" "0000"  // "MQAK", version 1, status ok
                         "02000000" "cf1840fc");  // responder 2, crc
}

}  // namespace
}  // namespace mq::transport
