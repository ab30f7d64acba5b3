#include "storage/read_cache.h"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

#include "base/thread_name.h"
#include "storage/file_system.h"

namespace mq::storage {

namespace {

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// MemAvailable and MemTotal of /proc/meminfo, in bytes.
bool proc_meminfo(std::uint64_t* available, std::uint64_t* total) {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return false;
  char line[256];
  bool have_available = false, have_total = false;
  while (std::fgets(line, sizeof line, f) != nullptr && !(have_available && have_total)) {
    unsigned long long kib = 0;
    if (std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1) {
      *available = kib * 1024;
      have_available = true;
    } else if (std::sscanf(line, "MemTotal: %llu kB", &kib) == 1) {
      *total = kib * 1024;
      have_total = true;
    }
  }
  std::fclose(f);
  return have_available && have_total && *total > 0;
}

constexpr std::int64_t kMemoryCheckIntervalMs = 100;
// The share of its time the filler may spend touching new memory.
constexpr int kFillDutyPercent = 1;
constexpr std::size_t kHugePage = 2u << 20;
// Blocks given back per offer while memory is short.
constexpr int kGiveBackBlocks = 4;

}  // namespace

struct AlignedBlock::Mapping {
  std::uint8_t* base = nullptr;
  ~Mapping() { ::munmap(base, kHugePage); }
};

namespace {

// Free blocks of 2 MiB mappings, by capacity: the other blocks of a fresh mapping, and
// blocks given back (at most kFreeBlocksMax bytes kept; beyond that they go, and a mapping
// is unmapped once none of its blocks is left).
class MappedBlocks {
 public:
  static MappedBlocks& instance() {
    static MappedBlocks* blocks = new MappedBlocks;  // never destroyed (blocks may outlive it)
    return *blocks;
  }
  struct Free {
    std::uint8_t* data;
    std::shared_ptr<AlignedBlock::Mapping> mapping;
  };
  std::optional<Free> take(std::size_t capacity) {
    {
      std::lock_guard lock(mutex_);
      std::vector<Free>& list = free_[capacity];
      if (!list.empty()) {
        Free f = std::move(list.back());
        list.pop_back();
        free_bytes_ -= capacity;
        return f;
      }
    }
    // A new mapping, aligned to 2 MiB so that it can be one huge page.
    void* raw =
        ::mmap(nullptr, 2 * kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return std::nullopt;
    auto lo = reinterpret_cast<std::uintptr_t>(raw);
    std::uintptr_t aligned = (lo + kHugePage - 1) & ~(kHugePage - 1);
    if (aligned > lo) ::munmap(raw, aligned - lo);
    std::uintptr_t end = lo + 2 * kHugePage;
    if (end > aligned + kHugePage) {
      ::munmap(reinterpret_cast<void*>(aligned + kHugePage), end - (aligned + kHugePage));
    }
    auto mapping = std::make_shared<AlignedBlock::Mapping>();
    mapping->base = reinterpret_cast<std::uint8_t*>(aligned);
    (void)::madvise(mapping->base, kHugePage, MADV_HUGEPAGE);  // advice: 4 KiB pages otherwise
    std::lock_guard lock(mutex_);
    std::vector<Free>& list = free_[capacity];
    for (std::size_t at = capacity; at + capacity <= kHugePage; at += capacity) {
      list.push_back({mapping->base + at, mapping});
      free_bytes_ += capacity;
    }
    return Free{mapping->base, std::move(mapping)};
  }
  void give_back(std::uint8_t* data, std::size_t capacity,
                 std::shared_ptr<AlignedBlock::Mapping> mapping) {
    std::lock_guard lock(mutex_);
    if (free_bytes_ + capacity > kFreeBytesMax) return;  // the mapping goes with its last block
    free_[capacity].push_back({data, std::move(mapping)});
    free_bytes_ += capacity;
  }

 private:
  static constexpr std::uint64_t kFreeBytesMax = 16u << 20;
  std::mutex mutex_;
  std::map<std::size_t, std::vector<Free>> free_;
  std::uint64_t free_bytes_ = 0;
};

bool mapped(std::size_t capacity) {
  return capacity >= (256u << 10) && capacity <= kHugePage && kHugePage % capacity == 0;
}

}  // namespace

std::shared_ptr<AlignedBlock> AlignedBlock::allocate(std::size_t capacity) {
  if (capacity == 0) return nullptr;
  if (mapped(capacity)) {
    if (auto f = MappedBlocks::instance().take(capacity)) {
      return std::shared_ptr<AlignedBlock>(
          new AlignedBlock(f->data, capacity, std::move(f->mapping)));
    }
  }
  void* memory = nullptr;
  if (::posix_memalign(&memory, kDirectIoAlignment, capacity) != 0) return nullptr;
  return std::shared_ptr<AlignedBlock>(
      new AlignedBlock(static_cast<std::uint8_t*>(memory), capacity, nullptr));
}

AlignedBlock::~AlignedBlock() {
  if (mapping_ == nullptr) {
    std::free(data_);
  } else {
    MappedBlocks::instance().give_back(data_, capacity_, std::move(mapping_));
  }
}

ReadCache& ReadCache::instance() {
  static ReadCache* cache = new ReadCache;  // never destroyed: segments may outlive statics
  return *cache;
}

std::uint64_t ReadCache::new_key() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1);
}

void ReadCache::set_budget_bytes(std::uint64_t bytes) {
  std::lock_guard lock(mutex_);
  budget_ = bytes;
  while (cached_bytes_ > budget_) {
    if (evict_oldest_locked() == nullptr) break;
  }
  while (!fresh_.empty() && cached_bytes_ + fresh_bytes_ > budget_) {
    fresh_bytes_ -= fresh_.back()->capacity();
    fresh_.pop_back();
  }
}

void ReadCache::set_grow_inline(bool on) {
  std::lock_guard lock(mutex_);
  grow_inline_ = on;
}

bool ReadCache::fill_wanted_locked() {
  // Only while parts are being offered (a broker that writes nothing does not grow).
  return budget_ > 0 && fresh_capacity_ > 0 && fresh_bytes_ < kFreshBytesTarget &&
         steady_ms() - last_offer_ms_ < 1000 &&
         cached_bytes_ + fresh_bytes_ + fresh_capacity_ <= budget_ && memory_pressure_locked() == 0;
}

void ReadCache::start_filler_locked() {
  if (filler_started_ || grow_inline_) return;
  try {
    std::thread([this] { fill_loop(); }).detach();
    filler_started_ = true;
  } catch (const std::system_error&) {
    // No thread: the cache keeps what it has and recycles (tried again at the next offer).
  }
}

// The filler: touches new blocks ahead of need at idle priority. On the virtual machines we
// measured, the first write to memory the guest had not used cost several µs per 4 KiB page
// (clear_page in the fault: 42% of a broker's CPU while the cache grew on its writer's path,
// and the produce rate fell by 40%); here it only uses CPU time nothing else wants, and the
// cache grows as fast as that allows. Never exits (the cache lives as long as the process).
void ReadCache::fill_loop() {
  name_this_thread("rmq-cache-fill");
  sched_param param{};
  (void)::pthread_setschedparam(::pthread_self(), SCHED_IDLE, &param);  // best effort
  std::unique_lock lock(mutex_);
  while (true) {
    // Woken when a block is taken; the timeout re-checks the machine's memory.
    fill_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return fill_wanted_locked(); });
    if (!fill_wanted_locked()) {
      lock.unlock();
      refresh_memory_pressure();
      lock.lock();
      continue;
    }
    std::size_t capacity = fresh_capacity_;
    lock.unlock();
    std::shared_ptr<AlignedBlock> block = AlignedBlock::allocate(capacity);
    auto touch_started = std::chrono::steady_clock::now();
    if (block != nullptr) std::memset(block->data(), 0, capacity);  // the first touch, here
    auto touched = std::chrono::steady_clock::now() - touch_started;
    // The pace, not the priority, is what spared the producers: the first touch may take at
    // most kFillDutyPercent of the time (it measures what a touch costs on this machine), and
    // the growth at most read_cache_grow_bytes_per_s().
    static const std::uint64_t rate = read_cache_grow_bytes_per_s();
    auto pause = touched * (100 - kFillDutyPercent) / kFillDutyPercent;
    if (rate > 0) {
      pause = std::max<std::chrono::steady_clock::duration>(
          pause, std::chrono::microseconds(capacity * 1'000'000 / rate));
    }
    std::this_thread::sleep_for(pause);
    refresh_memory_pressure();
    lock.lock();
    if (block == nullptr) {
      fill_cv_.wait_for(lock, std::chrono::seconds(1));  // no memory now: later
      continue;
    }
    if (capacity == fresh_capacity_ && cached_bytes_ + fresh_bytes_ + capacity <= budget_) {
      fresh_bytes_ += capacity;
      ++stats_.filled;
      fresh_.push_back(std::move(block));
    }
  }
}

std::uint64_t ReadCache::budget_bytes() const {
  std::lock_guard lock(mutex_);
  return budget_;
}

void ReadCache::set_memory_source(MemorySource source) {
  std::lock_guard lock(mutex_);
  memory_source_ = source;
  memory_checked_ms_ = -1'000'000;
  memory_pressure_ = 0;
}

namespace {

int pressure_of(ReadCache::MemorySource source) {
  std::uint64_t available = 0, total = 0;
  bool known = source != nullptr ? source(&available, &total) : proc_meminfo(&available, &total);
  return !known ? 0 : available < total / 16 ? 2 : available < total / 8 ? 1 : 0;
}

}  // namespace

// Inline growth (tests) reads the memory state here; otherwise the filler refreshes it
// (refresh_memory_pressure, outside the mutex: /proc/meminfo is not read on a writer's path).
int ReadCache::memory_pressure_locked() {
  if (!grow_inline_) return memory_pressure_;
  std::int64_t now = steady_ms();
  if (now - memory_checked_ms_ < kMemoryCheckIntervalMs) return memory_pressure_;
  memory_checked_ms_ = now;
  memory_pressure_ = pressure_of(memory_source_);
  return memory_pressure_;
}

void ReadCache::refresh_memory_pressure() {
  MemorySource source;
  {
    std::lock_guard lock(mutex_);
    std::int64_t now = steady_ms();
    if (now - memory_checked_ms_ < kMemoryCheckIntervalMs) return;
    memory_checked_ms_ = now;
    source = memory_source_;
  }
  int pressure = pressure_of(source);
  std::lock_guard lock(mutex_);
  memory_pressure_ = pressure;
}

std::shared_ptr<AlignedBlock> ReadCache::evict_oldest_locked() {
  while (!order_.empty()) {
    Order o = order_.front();
    order_.pop_front();
    auto it = by_key_.find(o.key);
    if (it == by_key_.end() || it->second.empty() || it->second.front().sequence != o.sequence) {
      continue;  // dropped meanwhile
    }
    std::shared_ptr<AlignedBlock> block = std::move(it->second.front().block);
    it->second.pop_front();
    if (it->second.empty()) by_key_.erase(it);
    cached_bytes_ -= block->capacity();
    blocks_.fetch_sub(1, std::memory_order_relaxed);
    ++stats_.evicted;
    return block;
  }
  return nullptr;
}

std::shared_ptr<AlignedBlock> ReadCache::exchange(std::uint64_t key, std::uint64_t start,
                                                  std::size_t size,
                                                  std::shared_ptr<AlignedBlock> block) {
  std::lock_guard lock(mutex_);
  ++stats_.offered;
  last_offer_ms_ = steady_ms();
  const std::size_t capacity = block->capacity();
  if (budget_ < capacity || size == 0 || size > capacity) return block;
  int pressure = memory_pressure_locked();
  if (pressure == 2) {
    for (int i = 0; i < kGiveBackBlocks && evict_oldest_locked() != nullptr; ++i) {
    }
    ++stats_.low_memory_refusals;
    return block;
  }
  // A replacement for the ring: fresh memory while the cache may grow (a block the filler
  // touched beforehand: the ring's writer never waits for the first touch of new memory),
  // else the oldest cached block when nobody else holds it (a response being sent may still
  // refer to one; that one is freed when the response ends).
  std::shared_ptr<AlignedBlock> replacement;
  if (fresh_capacity_ == 0) fresh_capacity_ = capacity;
  if (pressure != 0) ++stats_.low_memory_refusals;
  auto grow = [&] {
    if (pressure != 0 || cached_bytes_ + capacity > budget_) return;
    if (grow_inline_) {
      replacement = AlignedBlock::allocate(capacity);
    } else if (capacity == fresh_capacity_ && !fresh_.empty()) {
      replacement = std::move(fresh_.back());
      fresh_.pop_back();
      fresh_bytes_ -= capacity;
    }
    start_filler_locked();
    fill_cv_.notify_one();
  };
  grow();
  while (replacement == nullptr) {
    std::shared_ptr<AlignedBlock> victim = evict_oldest_locked();
    if (victim == nullptr) return block;  // nothing cached, nothing to grow with: keep nothing
    if (victim.use_count() == 1 && victim->capacity() == capacity) {
      replacement = std::move(victim);
      ++stats_.recycled;
    } else {
      grow();  // the victim's room, with new memory
    }
  }
  std::deque<Cached>& blocks = by_key_[key];
  // Parts arrive in file order; one at or above `start` can only be left from before a
  // truncation that did not drop it (it always does): drop it rather than keep two versions.
  while (!blocks.empty() && blocks.back().start + blocks.back().size > start) {
    cached_bytes_ -= blocks.back().block->capacity();
    blocks_.fetch_sub(1, std::memory_order_relaxed);
    blocks.pop_back();
  }
  std::uint64_t sequence = next_sequence_++;
  blocks.push_back({start, size, sequence, std::move(block)});
  order_.push_back({key, sequence});
  cached_bytes_ += capacity;
  blocks_.fetch_add(1, std::memory_order_relaxed);
  ++stats_.kept;
  // Entries of dropped blocks stay in order_ until eviction passes them; without evictions
  // (a cache that never fills) they would pile up: compact now and then.
  if (order_.size() > 2 * blocks_.load(std::memory_order_relaxed) + 1024) {
    std::deque<Order> kept;
    for (const Order& o : order_) {
      auto it = by_key_.find(o.key);
      if (it == by_key_.end()) continue;
      // Sequences ascend within a key's list (blocks are appended in order).
      auto at = std::lower_bound(it->second.begin(), it->second.end(), o.sequence,
                                 [](const Cached& c, std::uint64_t s) { return c.sequence < s; });
      bool present = at != it->second.end() && at->sequence == o.sequence;
      if (present) kept.push_back(o);
    }
    order_ = std::move(kept);
  }
  return replacement;
}

std::optional<std::size_t> ReadCache::covering_locked(const std::deque<Cached>& blocks,
                                                      std::uint64_t position,
                                                      std::uint64_t end) const {
  auto it = std::upper_bound(blocks.begin(), blocks.end(), position,
                             [](std::uint64_t p, const Cached& c) { return p < c.start; });
  if (it == blocks.begin()) return std::nullopt;
  --it;
  auto first = static_cast<std::size_t>(it - blocks.begin());
  std::uint64_t covered = it->start + it->size;
  if (position >= covered) return std::nullopt;
  for (auto next = it + 1; covered < end; ++next) {
    if (next == blocks.end() || next->start != covered) return std::nullopt;
    covered = next->start + next->size;
  }
  return first;
}

std::optional<SharedBuffer> ReadCache::find(std::uint64_t key, std::uint64_t position,
                                            std::uint64_t length) {
  // Nothing cached (off, or a broker that leads nothing busy): no lock on the read path.
  if (length == 0 || blocks_.load(std::memory_order_relaxed) == 0) return std::nullopt;
  std::lock_guard lock(mutex_);
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return std::nullopt;
  const std::deque<Cached>& blocks = it->second;
  std::optional<std::size_t> first = covering_locked(blocks, position, position + length);
  if (!first) return std::nullopt;
  ++stats_.hits;
  stats_.hit_bytes += length;
  const Cached& c = blocks[*first];
  if (position + length <= c.start + c.size) {
    return SharedBuffer::alias(c.block, BufferView(c.block->data() + (position - c.start),
                                                   static_cast<std::size_t>(length)));
  }
  Buffer out;
  out.reserve(static_cast<std::size_t>(length));
  for (std::size_t i = *first; length > 0; ++i) {
    const Cached& part = blocks[i];
    auto n = static_cast<std::size_t>(
        std::min<std::uint64_t>(length, part.start + part.size - position));
    out.append(part.block->data() + (position - part.start), n);
    position += n;
    length -= n;
  }
  return SharedBuffer(std::move(out));
}

bool ReadCache::copy_out(std::uint64_t key, std::uint64_t position, std::span<std::uint8_t> out) {
  if (out.empty() || blocks_.load(std::memory_order_relaxed) == 0) return false;
  std::lock_guard lock(mutex_);
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return false;
  const std::deque<Cached>& blocks = it->second;
  std::optional<std::size_t> first = covering_locked(blocks, position, position + out.size());
  if (!first) return false;
  std::size_t done = 0;
  for (std::size_t i = *first; done < out.size(); ++i) {
    const Cached& part = blocks[i];
    auto n = static_cast<std::size_t>(
        std::min<std::uint64_t>(out.size() - done, part.start + part.size - position));
    std::memcpy(out.data() + done, part.block->data() + (position - part.start), n);
    position += n;
    done += n;
  }
  return true;
}

void ReadCache::drop_from(std::uint64_t key, std::uint64_t position) {
  std::lock_guard lock(mutex_);
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return;
  std::deque<Cached>& blocks = it->second;
  while (!blocks.empty() && blocks.back().start + blocks.back().size > position) {
    cached_bytes_ -= blocks.back().block->capacity();
    blocks_.fetch_sub(1, std::memory_order_relaxed);
    blocks.pop_back();
  }
  if (blocks.empty()) by_key_.erase(it);
}

void ReadCache::drop(std::uint64_t key) { drop_from(key, 0); }

ReadCacheStats ReadCache::stats() const {
  std::lock_guard lock(mutex_);
  ReadCacheStats s = stats_;
  s.budget_bytes = budget_;
  s.cached_bytes = cached_bytes_;
  s.blocks = blocks_.load(std::memory_order_relaxed);
  s.fresh_bytes = fresh_bytes_;
  return s;
}

std::uint64_t read_cache_grow_bytes_per_s() {
  constexpr std::uint64_t kDefaultMib = 64;
  const char* env = std::getenv("RAFTMQ_READ_CACHE_GROW_MIBS");
  if (env == nullptr || *env == '\0') return kDefaultMib << 20;
  char* end = nullptr;
  unsigned long long v = std::strtoull(env, &end, 10);
  if (*end != '\0' || env[0] == '-' || v > (1u << 20)) {
    std::fprintf(stderr, "RAFTMQ_READ_CACHE_GROW_MIBS=%s: not a number of MiB/s; %llu used\n", env,
                 static_cast<unsigned long long>(kDefaultMib));
    return kDefaultMib << 20;
  }
  return static_cast<std::uint64_t>(v) << 20;
}

std::uint64_t read_cache_default_mib() {
  const char* env = std::getenv("RAFTMQ_READ_CACHE_MIB");
  if (env != nullptr && *env != '\0') {
    char* end = nullptr;
    unsigned long long v = std::strtoull(env, &end, 10);
    if (*end == '\0' && env[0] != '-' && v <= (1ull << 30)) return v;
    std::fprintf(stderr, "RAFTMQ_READ_CACHE_MIB=%s: not a number of MiB; the default is used\n",
                 env);
  }
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;
  return (static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page) / 8) >> 20;
}

}  // namespace mq::storage
