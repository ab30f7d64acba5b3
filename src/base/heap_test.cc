// reserve_heap() (base/heap.h). ctest runs each test in a process of its own, so every test
// starts from glibc's default heap.
#include "base/heap.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace mq {
namespace {

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// The VmFlags line of the mapping that holds `p` (/proc/self/smaps), empty if none.
std::string vm_flags_of(const void* p) {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t lo = 0;
    std::uintptr_t hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
      inside = a >= lo && a < hi;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return {};
}

std::string thp_mode() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return text;
}

bool thp_usable() {
  std::string mode = thp_mode();
  return mode.find("[always]") != std::string::npos || mode.find("[madvise]") != std::string::npos;
}

TEST(HeapTest, ALargerReserveIsCutToOneGiB) {
  HeapReserve r = reserve_heap(std::size_t{4} << 30);
  EXPECT_NE(r.note.find("cut to 1024 MiB"), std::string::npos) << r.note;
  EXPECT_LE(r.reserved_bytes, kReserveBytesMax + (16u << 20));
}

TEST(HeapTest, ZeroReservesNothing) {
  HeapReserve r = reserve_heap(0);
  EXPECT_EQ(r.reserved_bytes, 0u);
  EXPECT_FALSE(r.huge_pages_advised);
}

TEST(HeapTest, ReserveAdvisesTheHeapRangeThatLaterBlocksComeFrom) {
  HeapReserve r = reserve_heap(64u << 20);
  if (thp_mode().empty()) GTEST_SKIP() << "no transparent huge pages in this kernel: " << r.note;
  ASSERT_TRUE(r.huge_pages_advised) << r.note;
  // 64 MiB and the first 16 MiB block, trimmed to whole 2 MiB pages at both ends.
  EXPECT_GE(r.reserved_bytes, 76u << 20);
  EXPECT_LE(r.reserved_bytes, 80u << 20);
  // A block allocated afterwards lies in the advised range ("hg" in its mapping's flags).
  void* p = std::malloc(4u << 20);
  ASSERT_NE(p, nullptr);
  std::string flags = vm_flags_of(static_cast<char*>(p) + (2u << 20));
  EXPECT_NE(flags.find(" hg"), std::string::npos) << flags;
  std::free(p);
}

TEST(HeapTest, BlocksFaultInHugePagesAndFreedSpaceIsKept) {
  if (!thp_usable()) GTEST_SKIP() << "transparent huge pages off: " << thp_mode();
  HeapReserve r = reserve_heap(64u << 20);
  ASSERT_TRUE(r.huge_pages_advised) << r.note;
  constexpr std::size_t kBytes = 16u << 20;  // 4,096 pages of 4 KiB
  // Skipped: the reserve's first bytes up to a 2 MiB boundary (madvise takes whole huge
  // pages), and the 2 MiB where glibc wrote the top's header while extending the heap, 16 MiB
  // in, before the advice (that one was resident already and stays in 4 KiB pages).
  void* below_first_boundary = std::malloc(18u << 20);
  ASSERT_NE(below_first_boundary, nullptr);
  auto* p = static_cast<char*>(std::malloc(kBytes));
  ASSERT_NE(p, nullptr);
  long before = minor_faults();
  std::memset(p, 1, kBytes);
  long first_touch = minor_faults() - before;
  // 8 huge pages (a few more where one is not available at once); without the advice
  // this is 4,096 faults.
  EXPECT_LT(first_touch, 64) << "faults touching 16 MiB";
  std::free(p);
  // Freed back to the heap's top, kept (not trimmed): the next block is resident already.
  auto* q = static_cast<char*>(std::malloc(kBytes));
  ASSERT_NE(q, nullptr);
  before = minor_faults();
  std::memset(q, 2, kBytes);
  EXPECT_LT(minor_faults() - before, 16) << "faults touching 16 MiB again";
  std::free(q);
  std::free(below_first_boundary);
}

TEST(HeapTest, WithoutTheReserveTouchingFaultsPageByPage) {
  // The contrast of the test above: glibc's default heap, a fresh 16 MiB block is its own
  // mapping (above the mmap threshold) and faults in 4 KiB at a time.
  if (thp_mode().find("[always]") != std::string::npos) GTEST_SKIP() << "THP always on";
  constexpr std::size_t kBytes = 16u << 20;
  auto* p = static_cast<char*>(std::malloc(kBytes));
  ASSERT_NE(p, nullptr);
  long before = minor_faults();
  std::memset(p, 1, kBytes);
  EXPECT_GT(minor_faults() - before, 1000);
  std::free(p);
}

}  // namespace
}  // namespace mq
