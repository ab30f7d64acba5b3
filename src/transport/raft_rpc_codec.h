// Encoding and decoding of the inter-broker Raft RPC wire format
// (docs/formats/raft_rpc_format.md; constants in raft_rpc_format.h).
//
// Writers append to a Buffer and cannot fail on valid input (oversized messages are refused by
// the caller before encoding: see encoded_message_size()). Readers take a BufferView holding
// bytes from the network and return a Status: every length and count is checked against the
// bytes actually present before anything is allocated, so a hostile peer can make a reader
// fail but never make it allocate more than it sent. Thread-safety: free functions, no state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "base/strong_id.h"
#include "raft/types.h"
#include "transport/raft_rpc_format.h"

namespace mq::transport {

// ---- Handshake ----

struct Hello {
  std::uint16_t version = kMaxProtocolVersion;
  BrokerId source;  // the connecting broker
  BrokerId target;  // the broker it believes it is connecting to
  std::string cluster_id;
  bool operator==(const Hello&) const = default;
};

// Appends the hello; cluster_id must be at most kClusterIdBytesMax bytes (asserted).
void encode_hello(const Hello& hello, Buffer& out);

struct HelloPrefix {
  std::uint16_t version = 0;
  std::uint16_t body_length = 0;
  // Bytes still to read after the prefix: body_length + 4 (the crc).
  std::size_t rest_size() const { return std::size_t{body_length} + 4; }
};
// Checks the first kHelloPrefixSize bytes: kCorruption for a wrong magic or a body length out
// of bounds. The version is returned, not judged: the caller answers an unsupported version
// with a HelloStatus::kUnsupportedVersion ack.
Result<HelloPrefix> decode_hello_prefix(BufferView prefix);
// Decodes a whole hello (prefix + rest, exactly) and checks its crc and fields.
Result<Hello> decode_hello(BufferView bytes);

struct HelloAck {
  std::uint16_t version = kMaxProtocolVersion;
  HelloStatus status = HelloStatus::kOk;
  BrokerId broker_id;  // the responder
  bool operator==(const HelloAck&) const = default;
};
void encode_hello_ack(const HelloAck& ack, Buffer& out);
Result<HelloAck> decode_hello_ack(BufferView bytes);  // exactly kHelloAckSize bytes

// ---- Frames ----

struct FrameView {
  FrameType type = FrameType::kKeepalive;
  std::uint8_t flags = 0;
  BufferView body;  // points into the bytes handed to parse_frame
};

// Starts a frame at the end of `out` (reserves its header); returns the frame's offset.
std::size_t begin_frame(Buffer& out);
// Completes the frame begun at `frame_offset`: everything appended since is its body.
void finish_frame(Buffer& out, std::size_t frame_offset, FrameType type);
// Appends a complete frame with the given body.
void append_frame(Buffer& out, FrameType type, BufferView body);

// Takes one frame from the front of `bytes`. Returns the number of bytes it occupies and fills
// *frame, or 0 when `bytes` holds only a prefix of a valid frame (read more, then call again).
// Fails with kCorruption on a bad header, a crc mismatch or an unknown type/flag, and with
// kLimitExceeded when the header announces a body above frame_bytes_max; both are decided as
// soon as the 12 header bytes are present, before the body arrives.
Result<std::size_t> parse_frame(BufferView bytes, std::uint32_t frame_bytes_max,
                                FrameView* frame);

// ---- Raft messages ----

struct GroupMessage {
  GroupId group;
  raft::Message message;
  bool operator==(const GroupMessage&) const = default;
};

// Size in bytes of encode_message(message)'s output.
std::size_t encoded_message_size(const raft::Message& message);
// Appends `message`. Precondition: every payload and the snapshot data are < 4 GiB.
void encode_message(const raft::Message& message, Buffer& out);
// Decodes exactly one message occupying all of `bytes`.
Result<raft::Message> decode_message(BufferView bytes);

// Appends (group, message) to a kMessageBatch body being built. The body starts with a u32
// count that begin_batch() reserves and finish_batch() fills in.
void begin_batch(Buffer& out, std::size_t* count_offset);
void append_batch_item(Buffer& out, GroupId group, const raft::Message& message);
void finish_batch(Buffer& out, std::size_t count_offset, std::uint32_t count);
// Size a batch item adds to a batch body.
inline std::size_t batch_item_size(const raft::Message& message) {
  return kBatchItemHeaderSize + encoded_message_size(message);
}
// Decodes a kMessageBatch body, appending to *out (which is left unchanged on error).
Status decode_batch(BufferView body, std::vector<GroupMessage>* out);

// Heartbeat coalescing. A kHeartbeat or kHeartbeatResponse whose only non-zero fields are
// from, to, term, commit and context is carried as one compact varint record instead of a
// whole message; anything else goes in a kMessageBatch so no field is ever lost.
bool coalescable(const raft::Message& message);
std::size_t heartbeat_record_size(GroupId group, const raft::Message& message);
void append_heartbeat_record(Buffer& out, GroupId group, const raft::Message& message);
// Decodes a kHeartbeats / kHeartbeatResponses body; the frame type selects the message type.
Status decode_heartbeats(BufferView body, FrameType type, std::vector<GroupMessage>* out);

// ---- Chunks of large messages ----

struct ChunkHeader {
  GroupId group;
  std::uint64_t message_id = 0;    // distinguishes messages on one connection
  std::uint32_t total_length = 0;  // encoded message size
  std::uint32_t offset = 0;        // of this chunk's data within the encoded message
  bool operator==(const ChunkHeader&) const = default;
};
void append_chunk(Buffer& out, const ChunkHeader& header, BufferView data);
// Decodes a kMessageChunk body: *data is the chunk's bytes (a view into body). Checks that the
// chunk lies within total_length.
Result<ChunkHeader> decode_chunk(BufferView body, BufferView* data);

// Assembles one chunked message at a time (chunks of one message arrive in order on one
// connection, interleaved with other frames). Memory grows with the bytes received, never with
// the announced total, and the total is checked against message_bytes_max first.
class ChunkAssembler {
 public:
  explicit ChunkAssembler(std::uint64_t message_bytes_max) : message_bytes_max_(message_bytes_max) {}
  // Adds one chunk. When it completes a message, returns true and fills *done.
  Result<bool> add(const ChunkHeader& header, BufferView data, GroupMessage* done);
  bool in_progress() const { return in_progress_; }
  std::size_t buffered_bytes() const { return bytes_.size(); }

 private:
  std::uint64_t message_bytes_max_;
  bool in_progress_ = false;
  ChunkHeader current_;
  Buffer bytes_;  // Invariant: bytes_.size() == next expected offset when in_progress_.
};

const char* message_type_label(raft::MessageType type);  // "MsgApp", ...; "MsgUnknown"

}  // namespace mq::transport
