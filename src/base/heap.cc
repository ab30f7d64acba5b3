#include "base/heap.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace mq {
namespace {

constexpr std::size_t kHugePage = 2u << 20;
constexpr std::size_t kFirstBlock = 16u << 20;  // below M_MMAP_THRESHOLD: from the heap
constexpr int kDefaultTopPad = 128 << 10;       // glibc's DEFAULT_TOP_PAD

}  // namespace

HeapReserve reserve_heap(std::size_t bytes) {
  HeapReserve out;
  if (bytes == 0) return out;
  if (bytes > kReserveBytesMax) {  // mallopt takes an int
    bytes = kReserveBytesMax;
    out.note = "reserve cut to " + std::to_string(kReserveBytesMax >> 20) + " MiB";
  }
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest allowed value on 64-bit
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(bytes + (64u << 20)));
  // One block larger than the heap's free top makes glibc extend the heap (brk) by the block
  // plus the top pad; only the block's header is written, so no page of the range is
  // resident yet (a resident 4 KiB page would keep its 2 MiB out of a huge page).
  mallopt(M_TOP_PAD, static_cast<int>(bytes));
  void* first = std::malloc(kFirstBlock);
  mallopt(M_TOP_PAD, kDefaultTopPad);
  if (first == nullptr) {
    out.note = "the heap could not be extended";
    return out;
  }
  auto lo = reinterpret_cast<std::uintptr_t>(first);
  auto brk_now = reinterpret_cast<std::uintptr_t>(sbrk(0));
  if (brk_now < lo + kFirstBlock) {
    // glibc fell back to a mapping of its own (brk failed): nothing contiguous to advise.
    std::free(first);
    out.note = "the heap could not be extended (brk)";
    return out;
  }
  std::uintptr_t start = (lo + kHugePage - 1) & ~(kHugePage - 1);
  std::uintptr_t end = brk_now & ~(kHugePage - 1);
  if (end > start) {
    if (madvise(reinterpret_cast<void*>(start), end - start, MADV_HUGEPAGE) == 0) {
      out.huge_pages_advised = true;
    } else {
      out.note = std::string("madvise(MADV_HUGEPAGE): ") + std::strerror(errno);
    }
    out.reserved_bytes = end - start;
  }
  // Back into the top chunk, which stays (below the trim threshold): later blocks are cut
  // from this range.
  std::free(first);
  return out;
}

}  // namespace mq
