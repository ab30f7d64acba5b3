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

// The crc32 instruction has a latency of 3 cycles and a throughput of 1 per cycle, so one
// dependent chain uses a third of it. Long inputs are cut into three lanes computed at once
// and joined with the "append n zero bytes" operator (a CRC register is linear in GF(2):
// reg(A || B) = shift(reg(A), |B|) xor reg_from_zero(B)); the technique of Intel's
// "Fast CRC Computation for iSCSI Polynomial Using CRC32 Instruction" white paper.
constexpr std::size_t kLongLane = 8192;
constexpr std::size_t kShortLane = 256;

// GF(2) 32x32 matrix (mat[i] = image of bit i) times a vector.
std::uint32_t gf2_times(const std::uint32_t* mat, std::uint32_t vec) {
  std::uint32_t sum = 0;
  for (int i = 0; vec != 0; ++i, vec >>= 1) {
    if (vec & 1u) sum ^= mat[i];
  }
  return sum;
}

void gf2_square(std::uint32_t* square, const std::uint32_t* mat) {
  for (int i = 0; i < 32; ++i) square[i] = gf2_times(mat, mat[i]);
}

// Byte tables of the operator that appends `bytes` zero bytes to a CRC register.
struct ShiftTables {
  std::array<std::array<std::uint32_t, 256>, 4> t{};

  explicit ShiftTables(std::size_t bytes) {
    std::uint32_t op[32];   // the operator for one zero bit, then squared
    std::uint32_t tmp[32];
    op[0] = kPolyReflected;
    for (int i = 1; i < 32; ++i) op[i] = 1u << (i - 1);
    // Square three times: one zero bit -> one zero byte.
    for (int k = 0; k < 3; ++k) {
      gf2_square(tmp, op);
      std::memcpy(op, tmp, sizeof op);
    }
    // result = op^bytes by binary exponentiation (bytes > 0).
    std::uint32_t result[32];
    bool have = false;
    for (std::size_t n = bytes; n != 0; n >>= 1) {
      if (n & 1u) {
        if (!have) {
          std::memcpy(result, op, sizeof result);
          have = true;
        } else {
          for (int i = 0; i < 32; ++i) tmp[i] = gf2_times(op, result[i]);
          std::memcpy(result, tmp, sizeof result);
        }
      }
      gf2_square(tmp, op);
      std::memcpy(op, tmp, sizeof op);
    }
    for (std::uint32_t b = 0; b < 256; ++b) {
      for (int k = 0; k < 4; ++k) t[k][b] = gf2_times(result, b << (8 * k));
    }
  }

  std::uint32_t shift(std::uint32_t crc) const {
    return t[0][crc & 0xff] ^ t[1][(crc >> 8) & 0xff] ^ t[2][(crc >> 16) & 0xff] ^ t[3][crc >> 24];
  }
};

const ShiftTables& long_shift() {
  static const ShiftTables kTables(kLongLane);
  return kTables;
}
const ShiftTables& short_shift() {
  static const ShiftTables kTables(kShortLane);
  return kTables;
}

// Three lanes of `lane` bytes each, from register crc0; p advances by 3 * lane.
__attribute__((target("sse4.2"))) std::uint64_t crc_three_lanes(std::uint64_t crc0,
                                                                 const std::uint8_t*& p,
                                                                 std::size_t lane,
                                                                 const ShiftTables& shift) {
  std::uint64_t crc1 = 0;
  std::uint64_t crc2 = 0;
  const std::uint8_t* end = p + lane;
  while (p < end) {
    crc0 = _mm_crc32_u64(crc0, load_le64(p));
    crc1 = _mm_crc32_u64(crc1, load_le64(p + lane));
    crc2 = _mm_crc32_u64(crc2, load_le64(p + 2 * lane));
    p += 8;
  }
  std::uint32_t joined = shift.shift(static_cast<std::uint32_t>(crc0)) ^ static_cast<std::uint32_t>(crc1);
  joined = shift.shift(joined) ^ static_cast<std::uint32_t>(crc2);
  p += 2 * lane;
  return joined;
}

}  // namespace

__attribute__((target("sse4.2"))) std::uint32_t extend_hardware(std::uint32_t init_crc,
                                                                 const void* data, std::size_t n) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  std::uint64_t crc = static_cast<std::uint32_t>(~init_crc);
  if (n >= 3 * kShortLane) {
    while (n >= 3 * kLongLane) {
      crc = crc_three_lanes(crc, p, kLongLane, long_shift());
      n -= 3 * kLongLane;
    }
    while (n >= 3 * kShortLane) {
      crc = crc_three_lanes(crc, p, kShortLane, short_shift());
      n -= 3 * kShortLane;
    }
  }
  while (n >= 8) {
    crc = _mm_crc32_u64(crc, load_le64(p));
    p += 8;
    n -= 8;
  }
  auto crc32 = static_cast<std::uint32_t>(crc);
  while (n-- > 0) crc32 = _mm_crc32_u8(crc32, *p++);
  return ~crc32;
}
bool hardware_available() {
  static const bool kAvailable = __builtin_cpu_supports("sse4.2");
  return kAvailable;
}
#else
std::uint32_t extend_hardware(std::uint32_t init_crc, const void* data, std::size_t n) {
  return extend_portable(init_crc, data, n);
}
bool hardware_available() { return false; }
#endif

std::uint32_t extend(std::uint32_t init_crc, const void* data, std::size_t n) {
  static const bool kHardware = hardware_available();
  return kHardware ? extend_hardware(init_crc, data, n) : extend_portable(init_crc, data, n);
}

}  // namespace mq::crc32c
