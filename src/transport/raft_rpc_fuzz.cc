// Fuzz target: every decoder of the Raft RPC wire format (docs/formats/raft_rpc_format.md).
// Built with tests/fuzz/fuzz_driver.cc (g++, ctest smoke run) or libFuzzer (scripts/fuzz).
//
// The first input byte picks the entry point, so that mutated bodies reach the body decoders
// directly and not only through the frame CRC (which rejects almost every mutation):
//   0 decode_batch   1 decode_heartbeats   2 decode_chunk + ChunkAssembler   3 decode_message
//   4 hello          5 hello_ack           6 frame stream with the CRCs fixed up
//   other: the raw frame stream as a connection reads it
// Properties: no crash, no assertion, no allocation beyond the input (plus the 1 MiB chunk
// limit); every message that decodes re-encodes to exactly encoded_message_size() bytes and
// decodes back to an equal message.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/crc32c.h"
#include "base/le_codec.h"
#include "tests/fuzz/fuzz_target.h"
#include "transport/raft_rpc_codec.h"

namespace {

using namespace mq;
using namespace mq::transport;

constexpr std::uint32_t kFrameBytesMax = 1u << 20;

void fail(const char* what) {
  std::fprintf(stderr, "raft_rpc_fuzz: %s\n", what);
  std::abort();
}

void check_round_trip(const raft::Message& m) {
  Buffer out;
  encode_message(m, out);
  if (out.size() != encoded_message_size(m)) fail("encoded_message_size disagrees");
  auto again = decode_message(out);
  if (!again.has_value() || !(*again == m)) fail("message does not survive a round trip");
}

void check_all(const std::vector<GroupMessage>& messages) {
  for (const GroupMessage& gm : messages) check_round_trip(gm.message);
}

void decode_body(FrameType type, BufferView body, ChunkAssembler& assembler) {
  std::vector<GroupMessage> out;
  switch (type) {
    case FrameType::kMessageBatch:
      if (decode_batch(body, &out).is_ok()) check_all(out);
      break;
    case FrameType::kHeartbeats:
    case FrameType::kHeartbeatResponses:
      if (decode_heartbeats(body, type, &out).is_ok()) {
        for (const GroupMessage& gm : out) {
          if (!coalescable(gm.message)) fail("an expanded heartbeat is not coalescable");
        }
        check_all(out);
      }
      break;
    case FrameType::kMessageChunk: {
      BufferView data;
      auto header = decode_chunk(body, &data);
      if (!header.has_value()) break;
      GroupMessage done;
      auto complete = assembler.add(*header, data, &done);
      if (assembler.buffered_bytes() > kFrameBytesMax) fail("assembler above its limit");
      if (complete.has_value() && *complete) check_round_trip(done.message);
      break;
    }
    case FrameType::kKeepalive:
      break;
  }
}

void decode_stream(BufferView bytes, bool fix_crcs) {
  Buffer copy(bytes);
  ChunkAssembler assembler(kFrameBytesMax);
  std::size_t at = 0;
  while (at < copy.size()) {
    BufferView rest = copy.view(at, copy.size() - at);
    if (fix_crcs && rest.size() >= kFrameHeaderSize) {
      const std::uint32_t length = le::decode_u32(rest.data() + 4);
      if (length <= rest.size() - kFrameHeaderSize) {
        le::encode_u32(copy.data() + at,
                       crc32c::value(rest.data() + 4, kFrameCrcCoveredHeaderBytes + length));
      }
    }
    FrameView frame;
    auto used = parse_frame(rest, kFrameBytesMax, &frame);
    if (!used.has_value() || *used == 0) return;
    if (*used > rest.size() || frame.body.size() > kFrameBytesMax) fail("frame outside input");
    decode_body(frame.type, frame.body, assembler);
    at += *used;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const BufferView body(data + 1, size - 1);
  ChunkAssembler assembler(kFrameBytesMax);
  switch (data[0]) {
    case 0: decode_body(FrameType::kMessageBatch, body, assembler); break;
    case 1: decode_body(FrameType::kHeartbeats, body, assembler); break;
    case 2: decode_body(FrameType::kMessageChunk, body, assembler); break;
    case 3: {
      auto m = decode_message(body);
      if (m.has_value()) check_round_trip(*m);
      break;
    }
    case 4: {
      auto hello = decode_hello(body);
      if (hello.has_value()) {
        Buffer out;
        encode_hello(*hello, out);
        if (!equal_bytes(out, body)) fail("hello does not re-encode to its bytes");
      }
      if (body.size() >= kHelloPrefixSize) (void)decode_hello_prefix(body.first(kHelloPrefixSize));
      break;
    }
    case 5:
      if (body.size() == kHelloAckSize) (void)decode_hello_ack(body);
      break;
    case 6: decode_stream(body, /*fix_crcs=*/true); break;
    default: decode_stream(body, /*fix_crcs=*/false); break;
  }
  return 0;
}

namespace mq::fuzz {

std::vector<Buffer> seeds() {
  raft::Message append;
  append.type = raft::MessageType::kAppend;
  append.from = NodeId(1);
  append.to = NodeId(2);
  append.term = Term(3);
  append.index = LogIndex(4);
  append.log_term = Term(3);
  append.commit = LogIndex(4);
  raft::Entry entry;
  entry.term = Term(3);
  entry.index = LogIndex(5);
  entry.payload = SharedBuffer(std::string_view("payload"));
  append.entries = {entry, entry};
  raft::Message snap;
  snap.type = raft::MessageType::kSnapshot;
  snap.snapshot.emplace();
  snap.snapshot->meta.index = LogIndex(9);
  snap.snapshot->meta.conf_state.voters = {NodeId(1), NodeId(2)};
  snap.snapshot->meta.conf_state.learners = {NodeId(3)};
  snap.snapshot->data = SharedBuffer(std::string_view("snapshot data"));
  raft::Message heartbeat;
  heartbeat.type = raft::MessageType::kHeartbeat;
  heartbeat.from = NodeId(1);
  heartbeat.to = NodeId(2);
  heartbeat.term = Term(3);
  heartbeat.commit = LogIndex(300);
  heartbeat.context = 2;

  auto with_mode = [](std::uint8_t mode, BufferView bytes) {
    Buffer b(bytes.size() + 1);
    b[0] = mode;
    if (!bytes.empty()) std::memcpy(b.data() + 1, bytes.data(), bytes.size());
    return b;
  };
  Buffer batch;
  std::size_t count_offset;
  begin_batch(batch, &count_offset);
  append_batch_item(batch, GroupId(7), append);
  append_batch_item(batch, GroupId(8), snap);
  finish_batch(batch, count_offset, 2);
  Buffer heartbeats(4);  // count, then records (sized up front: GCC 12 misreads an insert
  le::encode_u32(heartbeats.data(), 2);  // into an empty vector here as an overflow)
  append_heartbeat_record(heartbeats, GroupId(7), heartbeat);
  append_heartbeat_record(heartbeats, GroupId(70000), heartbeat);
  Buffer encoded_snap;
  encode_message(snap, encoded_snap);
  Buffer chunk;
  append_chunk(chunk, ChunkHeader{GroupId(8), 1, static_cast<std::uint32_t>(encoded_snap.size()), 0},
               encoded_snap);
  Buffer message;
  encode_message(append, message);
  Buffer hello;
  encode_hello(Hello{kMaxProtocolVersion, BrokerId(1), BrokerId(2), "cluster"}, hello);
  Buffer ack;
  encode_hello_ack(HelloAck{kMaxProtocolVersion, HelloStatus::kOk, BrokerId(2)}, ack);
  Buffer stream;
  append_frame(stream, FrameType::kMessageBatch, batch);
  append_frame(stream, FrameType::kHeartbeats, heartbeats);
  append_frame(stream, FrameType::kMessageChunk, chunk);
  append_frame(stream, FrameType::kKeepalive, {});

  return {with_mode(0, batch),   with_mode(1, heartbeats), with_mode(2, chunk),
          with_mode(3, message), with_mode(4, hello),      with_mode(5, ack),
          with_mode(6, stream),  with_mode(7, stream)};
}

}  // namespace mq::fuzz
