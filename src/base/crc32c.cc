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
__attribute__((target("sse4.2"))) std::uint32_t extend_hardware(std::uint32_t init_crc,
                                                                 const void* data, std::size_t n) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  std::uint64_t crc = static_cast<std::uint32_t>(~init_crc);
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
