// The compression codecs of Kafka record batches (attributes bits 0-2): gzip (zlib), snappy
// (raw blocks as librdkafka writes them, and the xerial framing the Java client writes), lz4
// (the LZ4 *frame* format, KIP-57) and zstd (KIP-110). Decompression is bounded: output beyond
// `size_max` bytes is refused (LimitExceeded) before it is produced, so a small "bomb" cannot
// exhaust memory. Corrupt input gives Corruption, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/buffer.h"
#include "base/result.h"

namespace mq::protocol {

// Record batch attributes bits 0-2. DO NOT CHANGE: on the wire.
enum class Compression : std::uint8_t {
  kNone = 0,
  kGzip = 1,
  kSnappy = 2,
  kLz4 = 3,
  kZstd = 4,
};
std::string_view compression_name(Compression c);

// Appends the compressed form of `input` to *out.
Status compress(Compression codec, BufferView input, Buffer* out);
// Replaces *out with the decompressed form of `input`; refuses more than size_max bytes.
Status decompress(Compression codec, BufferView input, std::size_t size_max, Buffer* out);

}  // namespace mq::protocol
