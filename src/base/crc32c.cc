#include "base/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace mq::crc32c {
namespace {

constexpr std::uint32_t kPolyReflected = 0x82F63B78u;

struct Tables {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  constexpr Tables() {
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t crc = i;
      for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ ((crc & 1u) ? kPolyReflected : 0u);
      t[0][i] = crc;
    }
    for (std::uint32_t i = 0; i < 256; ++i) {
      for (std::size_t k = 1; k < 8; ++k) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
    }
  }
};
constexpr Tables kTables;

inline std::uint64_t load_le64(const std::uint8_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian host assumed");
  return v;
}

}  // namespace

std::uint32_t extend_portable(std::uint32_t init_crc, const void* data, std::size_t n) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  std::uint32_t crc = ~init_crc;
  const auto& t = kTables.t;
  while (n >= 8) {
    std::uint64_t word = load_le64(p) ^ crc;
    crc = t[7][word & 0xff] ^ t[6][(word >> 8) & 0xff] ^ t[5][(word >> 16) & 0xff] ^
          t[4][(word >> 24) & 0xff] ^ t[3][(word >> 32) & 0xff] ^ t[2][(word >> 40) & 0xff] ^
          t[1][(word >> 48) & 0xff] ^ t[0][word >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
  return ~crc;
}

#if defined(__x86_64__)
namespace {

// Three-way interleaving (Intel, "Fast CRC Computation for iSCSI Polynomial Using CRC32
// Instruction", 2009): the crc32 instruction has a latency of ~3 cycles but a throughput of
// one per cycle, so one dependency chain uses a third of it. A run of 3 * B bytes is split
// into three streams of B bytes whose CRCs are computed side by side (the second and third
// from 0) and then combined: crc(A || B) = shift_B(crc(A)) ^ crc_0(B), where shift_B
// multiplies a CRC register by x^(8B) mod P (appending B zero bytes). shift_B is linear, so
// it is four byte-indexed tables built from the 32 single-bit registers.
struct Shift {
  std::array<std::array<std::uint32_t, 256>, 4> t{};
  std::uint32_t operator()(std::uint32_t crc) const {
    return t[0][crc & 0xff] ^ t[1][(crc >> 8) & 0xff] ^ t[2][(crc >> 16) & 0xff] ^ t[3][crc >> 24];
  }
};

__attribute__((target("sse4.2"))) Shift make_shift(std::size_t bytes) {
  std::uint32_t bit[32];
  for (int i = 0; i < 32; ++i) {
    std::uint64_t crc = 1u << i;
    for (std::size_t k = 0; k < bytes / 8; ++k) crc = _mm_crc32_u64(crc, 0);
    bit[i] = static_cast<std::uint32_t>(crc);
  }
  Shift shift;
  for (int byte = 0; byte < 4; ++byte) {
    for (std::uint32_t v = 0; v < 256; ++v) {
      std::uint32_t out = 0;
      for (int i = 0; i < 8; ++i) {
        if ((v >> i) & 1u) out ^= bit[8 * byte + i];
      }
      shift.t[static_cast<std::size_t>(byte)][v] = out;
    }
  }
  return shift;
}

constexpr std::size_t kLongBlock = 8192;  // streams of 8 KiB (runs of 24 KiB)
constexpr std::size_t kShortBlock = 256;  // then of 256 bytes (runs of 768 bytes)

struct Shifts {
  Shift long_block = make_shift(kLongBlock);
  Shift short_block = make_shift(kShortBlock);
};
const Shifts& shifts() {
  static const Shifts kShifts;
  return kShifts;
}

inline void store_le64(std::uint8_t* p, std::uint64_t v) { std::memcpy(p, &v, 8); }

// Runs of 3 * block bytes, three streams at a time; with kCopy, every word is also stored
// at the same offset of dst.
template <bool kCopy>
__attribute__((target("sse4.2"), always_inline)) inline std::uint64_t crc_runs(
    std::uint64_t crc, const std::uint8_t*& p, std::uint8_t*& d, std::size_t& n,
    std::size_t block, const Shift& shift) {
  while (n >= 3 * block) {
    std::uint64_t c0 = crc, c1 = 0, c2 = 0;
    for (std::size_t i = 0; i < block; i += 8) {
      std::uint64_t w0 = load_le64(p + i);
      std::uint64_t w1 = load_le64(p + block + i);
      std::uint64_t w2 = load_le64(p + 2 * block + i);
      if constexpr (kCopy) {
        store_le64(d + i, w0);
        store_le64(d + block + i, w1);
        store_le64(d + 2 * block + i, w2);
      }
      c0 = _mm_crc32_u64(c0, w0);
      c1 = _mm_crc32_u64(c1, w1);
      c2 = _mm_crc32_u64(c2, w2);
    }
    crc = shift(shift(static_cast<std::uint32_t>(c0)) ^ static_cast<std::uint32_t>(c1)) ^
          static_cast<std::uint32_t>(c2);
    p += 3 * block;
    if constexpr (kCopy) d += 3 * block;
    n -= 3 * block;
  }
  return crc;
}

template <bool kCopy>
__attribute__((target("sse4.2"))) std::uint32_t crc_hardware(std::uint32_t init_crc,
                                                             std::uint8_t* d,
                                                             const std::uint8_t* p,
                                                             std::size_t n) {
  std::uint64_t crc = static_cast<std::uint32_t>(~init_crc);
  if (n >= 3 * kShortBlock) {
    const Shifts& s = shifts();
    crc = crc_runs<kCopy>(crc, p, d, n, kLongBlock, s.long_block);
    crc = crc_runs<kCopy>(crc, p, d, n, kShortBlock, s.short_block);
  }
  while (n >= 8) {
    std::uint64_t w = load_le64(p);
    if constexpr (kCopy) {
      store_le64(d, w);
      d += 8;
    }
    crc = _mm_crc32_u64(crc, w);
    p += 8;
    n -= 8;
  }
  auto crc32 = static_cast<std::uint32_t>(crc);
  while (n-- > 0) {
    if constexpr (kCopy) *d++ = *p;
    crc32 = _mm_crc32_u8(crc32, *p++);
  }
  return ~crc32;
}

}  // namespace

std::uint32_t extend_hardware(std::uint32_t init_crc, const void* data, std::size_t n) {
  return crc_hardware<false>(init_crc, nullptr, static_cast<const std::uint8_t*>(data), n);
}
std::uint32_t extend_copy_hardware(std::uint32_t init_crc, void* dst, const void* src,
                                   std::size_t n) {
  if (!hardware_available()) return extend_copy_portable(init_crc, dst, src, n);
  return crc_hardware<true>(init_crc, static_cast<std::uint8_t*>(dst),
                            static_cast<const std::uint8_t*>(src), n);
}
bool hardware_available() {
  static const bool kAvailable = __builtin_cpu_supports("sse4.2");
  return kAvailable;
}
#else
std::uint32_t extend_hardware(std::uint32_t init_crc, const void* data, std::size_t n) {
  return extend_portable(init_crc, data, n);
}
std::uint32_t extend_copy_hardware(std::uint32_t init_crc, void* dst, const void* src,
                                   std::size_t n) {
  return extend_copy_portable(init_crc, dst, src, n);
}
bool hardware_available() { return false; }
#endif

std::uint32_t extend_copy_portable(std::uint32_t init_crc, void* dst, const void* src,
                                   std::size_t n) {
  if (n == 0) return init_crc;
  std::memcpy(dst, src, n);
  return extend_portable(init_crc, src, n);
}

std::uint32_t extend_copy(std::uint32_t init_crc, void* dst, const void* src, std::size_t n) {
  static const bool kHardware = hardware_available();
  return kHardware ? extend_copy_hardware(init_crc, dst, src, n)
                   : extend_copy_portable(init_crc, dst, src, n);
}

std::uint32_t extend(std::uint32_t init_crc, const void* data, std::size_t n) {
  static const bool kHardware = hardware_available();
  return kHardware ? extend_hardware(init_crc, data, n) : extend_portable(init_crc, data, n);
}

}  // namespace mq::crc32c
