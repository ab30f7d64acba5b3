// Heap set-up for a long-running server process (docs/benchmarks.md, "Page faults: the heap
// on huge pages").
//
// A broker's heap grows to its working size (in-flight batches, entry caches, transport
// queues: 100-200 MiB under a produce load) in its first seconds of load, one 4 KiB page
// fault at a time. On a virtual machine a fault is expensive (a trap to the hypervisor), and
// the faults were a fifth of the brokers' CPU in a fresh broker's first seconds of load.
//
// reserve_heap(bytes), called at the start of `raftmq serve` before any other thread starts:
//   - one malloc arena for every thread (M_ARENA_MAX 1): the brokers' buffers are allocated
//     on the event loop and the transport thread and freed on the other; every block then
//     comes from the main heap below;
//   - blocks up to 32 MiB come from the heap, not from a mapping of their own
//     (M_MMAP_THRESHOLD), and freed space at the heap's top is kept up to `bytes` + 64 MiB
//     (M_TRIM_THRESHOLD);
//   - the heap is extended by `bytes` (and 16 MiB) without touching it, and that range is
//     advised as transparent huge pages (MADV_HUGEPAGE): it becomes resident 2 MiB at a time
//     on first use (one fault instead of 512), and only as it is used: the reserve itself
//     costs no memory. Beyond it the heap grows with normal pages, as before. (One 2 MiB
//     piece of the range, where glibc wrote a header while extending the heap, stays in
//     4 KiB pages.)
// Returns what was done, for the start-up log; failures are not fatal (the heap then behaves
// as glibc's default).
#pragma once

#include <cstddef>
#include <string>

namespace mq {

struct HeapReserve {
  std::size_t reserved_bytes = 0;  // heap range advised as huge pages
  bool huge_pages_advised = false;
  std::string note;  // why less than asked, if so
};

// Larger requests are cut to this (glibc's thresholds are ints).
inline constexpr std::size_t kReserveBytesMax = std::size_t{1} << 30;

HeapReserve reserve_heap(std::size_t bytes);

}  // namespace mq
