#include "protocol/compression.h"

#include <lz4frame.h>
#include <snappy.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

namespace mq::protocol {

namespace {

constexpr std::size_t kChunkBytes = 64 * 1024;

Status too_large(std::size_t size_max) {
  return Status::limit_exceeded("record batch decompresses to more than " +
                                std::to_string(size_max) + " bytes");
}

// Grows *out by up to kChunkBytes (never beyond size_max + 1, so that exceeding the limit is
// detectable) and returns the writable tail.
std::uint8_t* grow(Buffer* out, std::size_t used, std::size_t size_max, std::size_t* room) {
  std::size_t target = std::min(used + kChunkBytes, size_max + 1);
  out->resize(target);
  *room = target - used;
  return out->data() + used;
}

// ---- gzip ------------------------------------------------------------------------------
Status gzip_compress(BufferView input, Buffer* out) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    return Status::internal("gzip: deflateInit2 failed");
  }
  std::size_t start = out->size();
  std::size_t bound = deflateBound(&zs, static_cast<uLong>(input.size())) + 32;
  out->resize(start + bound);
  zs.next_in = const_cast<Bytef*>(input.data());
  zs.avail_in = static_cast<uInt>(input.size());
  zs.next_out = out->data() + start;
  zs.avail_out = static_cast<uInt>(bound);
  int rc = deflate(&zs, Z_FINISH);
  std::size_t produced = bound - zs.avail_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return Status::internal("gzip: deflate did not finish");
  out->resize(start + produced);
  return Status::ok();
}

Status gzip_decompress(BufferView input, std::size_t size_max, Buffer* out) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return Status::internal("gzip: inflateInit2 failed");
  zs.next_in = const_cast<Bytef*>(input.data());
  zs.avail_in = static_cast<uInt>(input.size());
  std::size_t used = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    std::size_t room = 0;
    zs.next_out = grow(out, used, size_max, &room);
    zs.avail_out = static_cast<uInt>(room);
    rc = inflate(&zs, Z_NO_FLUSH);
    used += room - zs.avail_out;
    if (rc == Z_STREAM_END) break;
    if (used > size_max) {
      inflateEnd(&zs);
      return too_large(size_max);
    }
    if (rc != Z_OK || (zs.avail_in == 0 && zs.avail_out != 0)) {
      inflateEnd(&zs);
      return Status::corruption("gzip: corrupt or truncated stream");
    }
  }
  inflateEnd(&zs);
  if (used > size_max) return too_large(size_max);
  out->resize(used);
  return Status::ok();
}

// ---- snappy ----------------------------------------------------------------------------
// xerial snappy-java framing (Java client): magic, int32 version, int32 compatible version,
// then blocks of (int32 big-endian compressed size, raw snappy block).
constexpr std::uint8_t kXerialMagic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
constexpr std::size_t kXerialHeaderBytes = 16;

std::uint32_t load_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

Status snappy_block(BufferView block, std::size_t size_max, Buffer* out) {
  std::size_t length = 0;
  const char* src = reinterpret_cast<const char*>(block.data());
  if (!snappy::GetUncompressedLength(src, block.size(), &length)) {
    return Status::corruption("snappy: bad block header");
  }
  if (length > size_max - out->size()) return too_large(size_max);
  std::size_t at = out->size();
  out->resize(at + length);
  if (!snappy::RawUncompress(src, block.size(), reinterpret_cast<char*>(out->data() + at))) {
    return Status::corruption("snappy: corrupt block");
  }
  return Status::ok();
}

Status snappy_decompress(BufferView input, std::size_t size_max, Buffer* out) {
  out->clear();
  bool xerial = input.size() >= kXerialHeaderBytes &&
                std::memcmp(input.data(), kXerialMagic, sizeof(kXerialMagic)) == 0;
  if (!xerial) return snappy_block(input, size_max, out);
  std::size_t pos = kXerialHeaderBytes;
  while (pos < input.size()) {
    if (input.size() - pos < 4) return Status::corruption("snappy: truncated xerial block size");
    std::uint32_t n = load_be32(input.data() + pos);
    pos += 4;
    if (n > input.size() - pos) return Status::corruption("snappy: truncated xerial block");
    MQ_RETURN_IF_ERROR(snappy_block(input.subspan(pos, n), size_max, out));
    pos += n;
  }
  return Status::ok();
}

Status snappy_compress(BufferView input, Buffer* out) {
  std::size_t start = out->size();
  out->resize(start + snappy::MaxCompressedLength(input.size()));
  std::size_t n = 0;
  snappy::RawCompress(reinterpret_cast<const char*>(input.data()), input.size(),
                      reinterpret_cast<char*>(out->data() + start), &n);
  out->resize(start + n);
  return Status::ok();
}

// ---- lz4 (frame format) ------------------------------------------------------------------
Status lz4_compress(BufferView input, Buffer* out) {
  LZ4F_preferences_t prefs{};
  prefs.frameInfo.blockMode = LZ4F_blockIndependent;
  std::size_t start = out->size();
  std::size_t bound = LZ4F_compressFrameBound(input.size(), &prefs);
  out->resize(start + bound);
  std::size_t n = LZ4F_compressFrame(out->data() + start, bound, input.data(), input.size(), &prefs);
  if (LZ4F_isError(n)) return Status::internal(std::string("lz4: ") + LZ4F_getErrorName(n));
  out->resize(start + n);
  return Status::ok();
}

Status lz4_decompress(BufferView input, std::size_t size_max, Buffer* out) {
  LZ4F_dctx* raw = nullptr;
  if (LZ4F_isError(LZ4F_createDecompressionContext(&raw, LZ4F_VERSION))) {
    return Status::internal("lz4: cannot create a decompression context");
  }
  std::unique_ptr<LZ4F_dctx, decltype(&LZ4F_freeDecompressionContext)> dctx(
      raw, &LZ4F_freeDecompressionContext);
  std::size_t in_pos = 0;
  std::size_t used = 0;
  std::size_t hint = 1;
  while (hint != 0) {
    std::size_t room = 0;
    std::uint8_t* dst = grow(out, used, size_max, &room);
    std::size_t dst_size = room;
    std::size_t src_size = input.size() - in_pos;
    hint = LZ4F_decompress(dctx.get(), dst, &dst_size, input.data() + in_pos, &src_size, nullptr);
    if (LZ4F_isError(hint)) {
      return Status::corruption(std::string("lz4: ") + LZ4F_getErrorName(hint));
    }
    in_pos += src_size;
    used += dst_size;
    if (used > size_max) return too_large(size_max);
    if (hint != 0 && src_size == 0 && dst_size == 0) {
      return Status::corruption("lz4: truncated frame");
    }
  }
  out->resize(used);
  return Status::ok();
}

// ---- zstd --------------------------------------------------------------------------------
Status zstd_compress(BufferView input, Buffer* out) {
  std::size_t start = out->size();
  std::size_t bound = ZSTD_compressBound(input.size());
  out->resize(start + bound);
  std::size_t n = ZSTD_compress(out->data() + start, bound, input.data(), input.size(), 3);
  if (ZSTD_isError(n)) return Status::internal(std::string("zstd: ") + ZSTD_getErrorName(n));
  out->resize(start + n);
  return Status::ok();
}

Status zstd_decompress(BufferView input, std::size_t size_max, Buffer* out) {
  std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> dctx(ZSTD_createDCtx(), &ZSTD_freeDCtx);
  if (!dctx) return Status::internal("zstd: cannot create a context");
  // Refuse frames that would need a huge window (memory), as librdkafka and Java do by default.
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, 27);
  ZSTD_inBuffer in{input.data(), input.size(), 0};
  std::size_t used = 0;
  std::size_t rc = 1;
  while (true) {
    std::size_t room = 0;
    std::uint8_t* dst = grow(out, used, size_max, &room);
    ZSTD_outBuffer o{dst, room, 0};
    rc = ZSTD_decompressStream(dctx.get(), &o, &in);
    if (ZSTD_isError(rc)) return Status::corruption(std::string("zstd: ") + ZSTD_getErrorName(rc));
    used += o.pos;
    if (used > size_max) return too_large(size_max);
    if (rc == 0 && in.pos == in.size) break;  // frame(s) complete, input consumed
    if (in.pos == in.size && o.pos < o.size) return Status::corruption("zstd: truncated frame");
  }
  out->resize(used);
  return Status::ok();
}

}  // namespace

std::string_view compression_name(Compression c) {
  switch (c) {
    case Compression::kNone: return "none";
    case Compression::kGzip: return "gzip";
    case Compression::kSnappy: return "snappy";
    case Compression::kLz4: return "lz4";
    case Compression::kZstd: return "zstd";
  }
  return "unknown";
}

Status compress(Compression codec, BufferView input, Buffer* out) {
  switch (codec) {
    case Compression::kNone:
      out->append(input);
      return Status::ok();
    case Compression::kGzip: return gzip_compress(input, out);
    case Compression::kSnappy: return snappy_compress(input, out);
    case Compression::kLz4: return lz4_compress(input, out);
    case Compression::kZstd: return zstd_compress(input, out);
  }
  return Status::unsupported("unknown compression codec " + std::to_string(static_cast<int>(codec)));
}

Status decompress(Compression codec, BufferView input, std::size_t size_max, Buffer* out) {
  out->clear();
  switch (codec) {
    case Compression::kNone:
      if (input.size() > size_max) return too_large(size_max);
      out->append(input);
      return Status::ok();
    case Compression::kGzip: return gzip_decompress(input, size_max, out);
    case Compression::kSnappy: return snappy_decompress(input, size_max, out);
    case Compression::kLz4: return lz4_decompress(input, size_max, out);
    case Compression::kZstd: return zstd_decompress(input, size_max, out);
  }
  return Status::unsupported("unknown compression codec " + std::to_string(static_cast<int>(codec)));
}

}  // namespace mq::protocol
