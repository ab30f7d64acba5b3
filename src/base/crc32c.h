// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), the checksum of Kafka's
// record batch v2 and of every raftmq on-disk and inter-broker format. Uses the SSE4.2 crc32
// instruction when the CPU has it (detected once at run time) and a slicing-by-8 table
// otherwise; both paths are tested against the same known vectors.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/buffer.h"

namespace mq::crc32c {

// Returns the CRC-32C of concat(A, data) where init_crc is the CRC-32C of some string A.
std::uint32_t extend(std::uint32_t init_crc, const void* data, std::size_t n);
inline std::uint32_t value(const void* data, std::size_t n) { return extend(0, data, n); }
inline std::uint32_t value(BufferView bytes) { return extend(0, bytes.data(), bytes.size()); }
inline std::uint32_t extend(std::uint32_t crc, BufferView bytes) {
  return extend(crc, bytes.data(), bytes.size());
}

// Copies n bytes from src to dst (which must not overlap) and returns the CRC-32C of
// concat(A, src[0, n)) where init_crc is the CRC-32C of A: one pass over the bytes instead of
// a memcpy and a checksum pass (the append path's copy into its write buffer).
std::uint32_t extend_copy(std::uint32_t init_crc, void* dst, const void* src, std::size_t n);

// The two implementations, exposed for tests and benchmarks.
std::uint32_t extend_portable(std::uint32_t init_crc, const void* data, std::size_t n);
std::uint32_t extend_hardware(std::uint32_t init_crc, const void* data, std::size_t n);
bool hardware_available();
// The hardware implementation of extend_copy (with the portable fallback when the CPU lacks
// SSE4.2), and the portable one (memcpy, then extend_portable).
std::uint32_t extend_copy_hardware(std::uint32_t init_crc, void* dst, const void* src,
                                   std::size_t n);
std::uint32_t extend_copy_portable(std::uint32_t init_crc, void* dst, const void* src,
                                   std::size_t n);

}  // namespace mq::crc32c
