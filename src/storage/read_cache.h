// Read cache: the newest written parts of the partition logs this broker leads, kept in memory
// for the consumers that read them back.
//
// Why: the logs are written with direct I/O (segment_write.cc), so the page cache never holds
// what was written, and a consumer reading anything older than the tail's write-behind buffer
// (its newest 3-4 MiB) reads the disk. Kafka and NATS write through the page cache and serve
// such a consumer from memory; here consuming what the producers just wrote ran at the disk's
// read bandwidth (docs/benchmarks.md, "Consume: a read cache of the newest written parts").
//
// What: when the write-behind buffer's ring would reuse a part whose write is complete (its
// bytes are on the file), the segment hands that part's block to this cache and takes another
// block for the ring in exchange: a block the cache evicts (recycled, no allocation) or a fresh
// one while the cache grows. No byte is copied. Reads of the segment (entry headers through
// its read view, fetch payloads as shared buffers) find the bytes here before the file.
//
// Correctness: a cached block holds bytes [start, start + size) of one segment's file, written
// and never changed afterwards except by a truncation of that segment, which drops every block
// at or above the cut first (Segment::truncate_from); a segment's blocks go when the segment
// object does. Readers that raced a truncation are caught by the log's generation check, as
// with the file itself. A block handed out to a reader (a fetch response being sent) is kept
// alive by it and is never recycled while so referenced.
//
// Memory: blocks are counted against a process-wide budget (set_budget_bytes; the broker's
// `read-cache-mib`, by default 1/8 of the machine's memory). The cache also stops growing
// while the machine's available memory (MemAvailable) is below 1/8 of its total, and gives
// blocks back while it is below 1/16: the broker's other memory and other processes come first.
// It grows only with blocks a thread at idle priority touched beforehand, at a pace where that
// thread spends at most 1% of its time touching new memory (on some virtual machines the first
// touch of a page costs several µs, and growing faster slowed the producers;
// read_cache_grow_bytes_per_s caps the pace where touching is cheap).
// Eviction is oldest-first across all segments (the newest writes are the likeliest reads).
// Only logs that ask for it (Log::set_read_cache: a partition's leader, which serves the
// consumers) hand their parts over; a follower's writes would only take the leaders' space.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "base/buffer.h"

namespace mq::storage {

// One aligned, fixed-size block of memory (a write-behind buffer part or a cached one).
// Blocks whose capacity divides 2 MiB (at least 256 KiB) are cut from 2 MiB mappings advised
// as transparent huge pages: the cache grows by hundreds of MiB while the producers write,
// and with 4 KiB pages the first write of every page cost a fault (one per 4 KiB: the produce
// rate fell by a quarter while the cache grew; docs/benchmarks.md). A mapping is returned to
// the system when none of its blocks is in use any more (a few free blocks are kept for
// reuse). Others come from posix_memalign.
class AlignedBlock {
 public:
  // Null when the memory cannot be had.
  static std::shared_ptr<AlignedBlock> allocate(std::size_t capacity);
  ~AlignedBlock();
  AlignedBlock(const AlignedBlock&) = delete;
  AlignedBlock& operator=(const AlignedBlock&) = delete;
  std::uint8_t* data() const { return data_; }
  std::size_t capacity() const { return capacity_; }

  struct Mapping;  // a 2 MiB mapping cut into blocks (read_cache.cc)

 private:
  AlignedBlock(std::uint8_t* data, std::size_t capacity, std::shared_ptr<Mapping> mapping)
      : data_(data), capacity_(capacity), mapping_(std::move(mapping)) {}
  std::uint8_t* data_;
  std::size_t capacity_;
  std::shared_ptr<Mapping> mapping_;  // null: data_ is from posix_memalign
};

struct ReadCacheStats {
  std::uint64_t budget_bytes = 0;
  std::uint64_t cached_bytes = 0;  // blocks held by the cache
  std::uint64_t blocks = 0;
  std::uint64_t offered = 0;   // parts offered by segments
  std::uint64_t kept = 0;      // of those, kept
  std::uint64_t recycled = 0;  // evicted blocks handed back to a segment's ring
  std::uint64_t evicted = 0;   // blocks evicted (recycled or freed)
  std::uint64_t hits = 0;      // lookups answered from memory
  std::uint64_t hit_bytes = 0;
  std::uint64_t low_memory_refusals = 0;  // growth refused because MemAvailable was low
  std::uint64_t fresh_bytes = 0;          // touched blocks waiting to be used to grow
  std::uint64_t filled = 0;               // blocks the filler touched
};

class ReadCache {
 public:
  static ReadCache& instance();

  // 0 turns the cache off (and frees what it holds).
  void set_budget_bytes(std::uint64_t bytes);
  // Growth: by default the cache grows only with blocks a background thread at idle priority
  // touched beforehand (kFreshBytesTarget of them wait at most), so an appender never pays the
  // first touch of new memory; until one is ready the cache recycles its oldest block. Inline
  // (tests): a new block is allocated when the cache may grow.
  void set_grow_inline(bool on);
  static constexpr std::uint64_t kFreshBytesTarget = 16u << 20;
  std::uint64_t budget_bytes() const;

  // A unique key per segment object (its blocks are found by it).
  static std::uint64_t new_key();

  // Offers `block`, whose first `size` bytes are bytes [start, start + size) of key's file,
  // written to it. Returns the block the caller's ring uses instead: a recycled or fresh one
  // of the same capacity when the cache kept `block`, else `block` itself (off, or no memory).
  std::shared_ptr<AlignedBlock> exchange(std::uint64_t key, std::uint64_t start, std::size_t size,
                                         std::shared_ptr<AlignedBlock> block);

  // The bytes [position, position + length) of key's file when cached blocks hold all of
  // them: without a copy when one block does, copied when they span blocks. nullopt otherwise.
  std::optional<SharedBuffer> find(std::uint64_t key, std::uint64_t position, std::uint64_t length);
  // Copies [position, position + out.size()) into `out` when cached blocks hold all of it.
  bool copy_out(std::uint64_t key, std::uint64_t position, std::span<std::uint8_t> out);

  // Forgets key's blocks at or above `position` (a truncation of its file) / all of them.
  void drop_from(std::uint64_t key, std::uint64_t position);
  void drop(std::uint64_t key);

  ReadCacheStats stats() const;

  // For tests: the memory check's view (MemAvailable, MemTotal in bytes); the default reads
  // /proc/meminfo (at most every 100 ms). A source that returns false has no answer (no
  // check).
  using MemorySource = bool (*)(std::uint64_t* available, std::uint64_t* total);
  void set_memory_source(MemorySource source);

 private:
  ReadCache() = default;
  struct Cached {
    std::uint64_t start = 0;
    std::size_t size = 0;
    std::uint64_t sequence = 0;
    std::shared_ptr<AlignedBlock> block;
  };
  struct Order {
    std::uint64_t key = 0;
    std::uint64_t sequence = 0;
  };
  // Under mutex_: removes the oldest cached block; returns it (null when nothing is cached).
  std::shared_ptr<AlignedBlock> evict_oldest_locked();
  void free_locked(std::shared_ptr<AlignedBlock> block);
  // Under mutex_: the memory check (0: fine, 1: do not grow, 2: give back).
  int memory_pressure_locked();
  // Under mutex_: the index in by_key_[key] of the first of the contiguous cached blocks
  // that hold all of [position, end); nullopt when they do not.
  std::optional<std::size_t> covering_locked(const std::deque<Cached>& blocks,
                                             std::uint64_t position, std::uint64_t end) const;

  bool fill_wanted_locked();
  void refresh_memory_pressure();
  void start_filler_locked();
  void fill_loop();

  mutable std::mutex mutex_;
  std::condition_variable fill_cv_;
  bool grow_inline_ = false;
  bool filler_started_ = false;
  std::size_t fresh_capacity_ = 0;  // of the blocks the filler makes: the first offered one's
  std::vector<std::shared_ptr<AlignedBlock>> fresh_;
  std::uint64_t fresh_bytes_ = 0;
  std::int64_t last_offer_ms_ = -1'000'000;
  std::uint64_t budget_ = 0;
  std::uint64_t cached_bytes_ = 0;
  // Blocks in by_key_ (changed under mutex_; read without it by the lookups' fast path).
  std::atomic<std::size_t> blocks_{0};
  std::uint64_t next_sequence_ = 1;
  std::map<std::uint64_t, std::deque<Cached>> by_key_;  // each in file order
  std::deque<Order> order_;                             // oldest first (may hold stale ones)
  ReadCacheStats stats_;
  MemorySource memory_source_ = nullptr;
  std::int64_t memory_checked_ms_ = -1'000'000;
  int memory_pressure_ = 0;
};

// The filler's top pace: RAFTMQ_READ_CACHE_GROW_MIBS MiB/s (default 64; 0: no cap beyond
// the filler's duty cycle of 1%).
std::uint64_t read_cache_grow_bytes_per_s();

// The broker's default budget: RAFTMQ_READ_CACHE_MIB if set (0: off), else 1/8 of the
// machine's memory.
std::uint64_t read_cache_default_mib();

}  // namespace mq::storage
