#include "base/crc32c.h"

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/prng.h"

namespace mq::crc32c {
namespace {

using Fn = std::uint32_t (*)(std::uint32_t, const void*, std::size_t);

class Crc32cTest : public ::testing::TestWithParam<Fn> {};

// Known vectors: RFC 3720 (iSCSI) appendix B.4 and the standard "123456789" check value.
TEST_P(Crc32cTest, KnownVectors) {
  Fn fn = GetParam();
  std::vector<std::uint8_t> buf(32, 0);
  EXPECT_EQ(fn(0, buf.data(), buf.size()), 0x8a9136aau);
  std::fill(buf.begin(), buf.end(), 0xff);
  EXPECT_EQ(fn(0, buf.data(), buf.size()), 0x62a8ab43u);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<std::uint8_t>(i);
  EXPECT_EQ(fn(0, buf.data(), buf.size()), 0x46dd794eu);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<std::uint8_t>(31 - i);
  EXPECT_EQ(fn(0, buf.data(), buf.size()), 0x113fdb5cu);
  std::string check = "123456789";
  EXPECT_EQ(fn(0, check.data(), check.size()), 0xe3069283u);
  EXPECT_EQ(fn(0, nullptr, 0), 0u);
}

TEST_P(Crc32cTest, ExtendEqualsWhole) {
  Fn fn = GetParam();
  std::string data = "hello world, this is a longer string to cross 8-byte words";
  for (std::size_t split = 0; split <= data.size(); ++split) {
    std::uint32_t a = fn(0, data.data(), split);
    EXPECT_EQ(fn(a, data.data() + split, data.size() - split), fn(0, data.data(), data.size()));
  }
}

INSTANTIATE_TEST_SUITE_P(Implementations, Crc32cTest,
                         ::testing::Values(&extend_portable, &extend_hardware, static_cast<Fn>(&extend)));

TEST(Crc32c, HardwareMatchesPortableOnRandomInput) {
  Prng prng(42);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::uint8_t> buf(prng.uniform(300));
    for (auto& b : buf) b = static_cast<std::uint8_t>(prng.next());
    std::size_t offset = buf.empty() ? 0 : prng.uniform(buf.size());
    EXPECT_EQ(extend_hardware(7, buf.data() + offset, buf.size() - offset),
              extend_portable(7, buf.data() + offset, buf.size() - offset));
  }
}

// Lengths around the hardware path's lane sizes (3 x 256 and 3 x 8192 bytes: three lanes joined
// by the zero-append operator) and misaligned starts.
TEST(Crc32c, HardwareMatchesPortableAcrossLaneBoundaries) {
  Prng prng(7);
  std::vector<std::uint8_t> buf(3 * 8192 * 2 + 1000);
  for (auto& b : buf) b = static_cast<std::uint8_t>(prng.next());
  for (std::size_t n : {767u, 768u, 769u, 1535u, 1536u, 2000u, 24575u, 24576u, 24577u, 49152u,
                        50000u}) {
    for (std::size_t offset : {0u, 1u, 3u, 7u}) {
      EXPECT_EQ(extend_hardware(0, buf.data() + offset, n),
                extend_portable(0, buf.data() + offset, n))
          << "n=" << n << " offset=" << offset;
      EXPECT_EQ(extend_hardware(0xdeadbeef, buf.data() + offset, n),
                extend_portable(0xdeadbeef, buf.data() + offset, n));
    }
  }
  for (int round = 0; round < 100; ++round) {
    std::size_t n = prng.uniform(buf.size());
    std::size_t offset = prng.uniform(buf.size() - n + 1);
    EXPECT_EQ(extend_hardware(9, buf.data() + offset, n), extend_portable(9, buf.data() + offset, n));
  }
}

// Lengths around the three-way runs (768 bytes and 24 KiB) and beyond, at unaligned offsets:
// the interleaved hardware path and the fused copy must equal the portable table code.
TEST(Crc32c, LongInputsAndCopyMatchPortable) {
  Prng prng(7);
  std::vector<std::uint8_t> src(100'000);
  for (auto& b : src) b = static_cast<std::uint8_t>(prng.next());
  std::vector<std::size_t> lengths = {0, 1, 7, 8, 767, 768, 769, 3 * 8192 - 1, 3 * 8192,
                                      3 * 8192 + 768 + 9, 2 * 3 * 8192 + 5, 99'000};
  for (int i = 0; i < 40; ++i) lengths.push_back(prng.uniform(99'000));
  for (std::size_t n : lengths) {
    std::size_t offset = prng.uniform(8);
    const std::uint8_t* p = src.data() + offset;
    auto init = static_cast<std::uint32_t>(prng.next());
    std::uint32_t expected = extend_portable(init, p, n);
    EXPECT_EQ(extend_hardware(init, p, n), expected) << n;
    EXPECT_EQ(extend(init, p, n), expected) << n;
    for (auto fn : {&extend_copy, &extend_copy_hardware, &extend_copy_portable}) {
      // Destination at an unaligned offset, with guard bytes on both sides left untouched.
      std::vector<std::uint8_t> dst(n + 16, 0xee);
      std::size_t at = 1 + prng.uniform(7);
      EXPECT_EQ(fn(init, dst.data() + at, p, n), expected) << n;
      EXPECT_TRUE(std::equal(p, p + n, dst.begin() + static_cast<std::ptrdiff_t>(at))) << n;
      for (std::size_t k = 0; k < at; ++k) EXPECT_EQ(dst[k], 0xee);
      for (std::size_t k = at + n; k < dst.size(); ++k) EXPECT_EQ(dst[k], 0xee);
    }
  }
}

// A copy in pieces chains like extend: the CRC of the whole.
TEST(Crc32c, CopyInPiecesEqualsWhole) {
  std::vector<std::uint8_t> src(70'000);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<std::uint8_t>(i * 131 + 17);
  std::vector<std::uint8_t> dst(src.size());
  std::uint32_t crc = 0;
  for (std::size_t at = 0, step = 1; at < src.size(); step = step * 3 + 1) {
    std::size_t n = std::min(step, src.size() - at);
    crc = extend_copy(crc, dst.data() + at, src.data() + at, n);
    at += n;
  }
  EXPECT_EQ(crc, value(src.data(), src.size()));
  EXPECT_EQ(dst, src);
}

}  // namespace
}  // namespace mq::crc32c
