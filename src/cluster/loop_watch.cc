#include "cluster/loop_watch.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/thread_name.h"

namespace mq::cluster {
namespace {

constexpr std::size_t kRing = 512;              // samples kept: ~25 s at 50 ms
constexpr std::int64_t kChainMinNs = 5'000'000;  // nested sections shorter than this: no text
constexpr std::int64_t kNsPerMs = 1'000'000;

// Reads a small /proc file; empty on error.
std::string read_small_file(const char* path) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buffer[512];
  ssize_t n = ::read(fd, buffer, sizeof(buffer) - 1);
  ::close(fd);
  if (n <= 0) return {};
  return std::string(buffer, static_cast<std::size_t>(n));
}

// The system calls a blocked event loop is likely to be in (x86-64 numbers; others print
// their number).
std::string syscall_name(long number) {
#if defined(__x86_64__)
  switch (number) {
    case 0: return "read";
    case 1: return "write";
    case 2: return "open";
    case 3: return "close";
    case 4: return "stat";
    case 5: return "fstat";
    case 7: return "poll";
    case 8: return "lseek";
    case 9: return "mmap";
    case 10: return "mprotect";
    case 11: return "munmap";
    case 17: return "pread64";
    case 18: return "pwrite64";
    case 19: return "readv";
    case 20: return "writev";
    case 26: return "msync";
    case 28: return "madvise";
    case 35: return "nanosleep";
    case 44: return "sendto";
    case 45: return "recvfrom";
    case 46: return "sendmsg";
    case 47: return "recvmsg";
    case 74: return "fsync";
    case 75: return "fdatasync";
    case 76: return "truncate";
    case 77: return "ftruncate";
    case 82: return "rename";
    case 83: return "mkdir";
    case 84: return "rmdir";
    case 87: return "unlink";
    case 162: return "sync";
    case 202: return "futex";
    case 217: return "getdents64";
    case 230: return "clock_nanosleep";
    case 232: return "epoll_wait";
    case 257: return "openat";
    case 262: return "newfstatat";
    case 263: return "unlinkat";
    case 264: return "renameat";
    case 277: return "sync_file_range";
    case 281: return "epoll_pwait";
    case 285: return "fallocate";
    case 295: return "preadv";
    case 296: return "pwritev";
    case 306: return "syncfs";
    case 316: return "renameat2";
    case 327: return "preadv2";
    case 328: return "pwritev2";
    case 332: return "statx";
    default: break;
  }
#endif
  return "syscall " + std::to_string(number);
}

std::string verdict(const LoopTimeSplit& s) {
  if (!s.known || s.wall_ms <= 0) return "";
  if (2 * s.runqueue_wait_ms >= s.wall_ms) return "starved";
  if (2 * s.off_cpu_ms() >= s.wall_ms) return "blocked";
  if (2 * s.cpu_ms >= s.wall_ms) return "busy";
  return "mixed";
}

}  // namespace

std::string LoopTimeSplit::to_string() const {
  if (!known) return "loop thread time split unknown";
  std::string out = verdict(*this) + ": loop thread over " + std::to_string(wall_ms) +
                    " ms: cpu " + std::to_string(cpu_ms) + " ms, run-queue wait " +
                    std::to_string(runqueue_wait_ms) + " ms, off-cpu " +
                    std::to_string(off_cpu_ms()) + " ms";
  if (!sampled.empty()) out += "; sampled " + sampled;
  return out;
}

void LoopWatch::Tally::add(const std::string& what) {
  for (auto& [name, count] : seen) {
    if (name == what) {
      ++count;
      return;
    }
  }
  if (seen.size() < 8) seen.emplace_back(what, 1);
}

std::string LoopWatch::Tally::to_string() const {
  auto sorted = seen;
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string out;
  for (const auto& [name, count] : sorted) {
    if (!out.empty()) out += ", ";
    out += name + " x" + std::to_string(count);
  }
  return out;
}

LoopWatch::LoopWatch(LoopWatchOptions options) : options_(std::move(options)) {
  ring_.reserve(kRing);
}

LoopWatch::~LoopWatch() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (sampler_.joinable()) sampler_.join();
}

std::int64_t LoopWatch::now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void LoopWatch::attach() {
  if (tid_ != 0) return;
  tid_ = static_cast<int>(::syscall(SYS_gettid));
  if (options_.sample_interval_ms > 0) sampler_ = std::thread([this] {
      name_this_thread("rmq-loopwatch");
      sampler_main();
    });
}

LoopWatch::Section::Section(LoopWatch* watch, const char* what, std::string_view detail)
    : watch_(watch) {
  if (watch_ != nullptr) watch_->enter(what, detail);
}

LoopWatch::Section::~Section() {
  if (watch_ != nullptr) watch_->leave();
}

void LoopWatch::mark_tick(std::int64_t next_tick_ms) {
  next_tick_ns_.store(std::max<std::int64_t>(0, next_tick_ms) * kNsPerMs,
                      std::memory_order_relaxed);
  tick_ns_.store(now_ns(), std::memory_order_relaxed);
}

void LoopWatch::enter(const char* what, std::string_view detail) {
  if (depth_ >= kDepthMax) {
    ++depth_;  // too deep: only counted, so that leave() stays balanced
    return;
  }
  Frame& f = frames_[depth_];
  f.what = what;
  const std::size_t n = std::min(detail.size(), kDetailBytes - 1);
  std::memcpy(f.detail, detail.data(), n);
  f.detail[n] = '\0';
  f.longest_child_ns = 0;
  f.longest_child.clear();
  f.children = 0;
  f.start_ns = now_ns();
  if (depth_ == 0 && tid_ != 0) {
    labels_used_ = 0;
    serial_.fetch_add(1, std::memory_order_relaxed);
    section_start_ns_.store(f.start_ns, std::memory_order_release);
  }
  ++depth_;
}

namespace {
std::string describe(const char* what, const char* detail) {
  std::string out = what;
  if (detail[0] != '\0') out += std::string(" ") + detail;
  return out;
}
}  // namespace

void LoopWatch::leave() {
  --depth_;
  if (depth_ >= kDepthMax) return;
  Frame& f = frames_[depth_];
  const std::int64_t took = now_ns() - f.start_ns;
  if (options_.count_sections) ++section_counts_[f.what];
  if (depth_ > 0) {
    int slot = 0;
    while (slot < labels_used_ && labels_[slot].what != f.what) ++slot;
    if (slot == labels_used_ && labels_used_ < kLabelsMax) labels_[labels_used_++] = {f.what, 0, 0};
    if (slot < labels_used_) {
      labels_[slot].ns += took;
      ++labels_[slot].count;
    }
    Frame& parent = frames_[depth_ - 1];
    ++parent.children;
    if (took > parent.longest_child_ns) {
      parent.longest_child_ns = took;
      parent.longest_child.clear();
      if (took >= kChainMinNs) {
        parent.longest_child = describe(f.what, f.detail);
        if (2 * f.longest_child_ns >= took && !f.longest_child.empty()) {
          parent.longest_child += " > " + f.longest_child;
        }
      }
    }
    return;
  }
  if (tid_ == 0) return;
  section_start_ns_.store(0, std::memory_order_release);
  if (took >= options_.stall_threshold_ms * kNsPerMs) report(f, took);
}

void LoopWatch::report(const Frame& f, std::int64_t took_ns) {
  const std::int64_t took_ms = took_ns / kNsPerMs;
  std::string what = describe(f.what, f.detail);
  const bool chain = !f.longest_child.empty() && 2 * f.longest_child_ns >= took_ns;
  if (chain) what += " > " + f.longest_child;
  ++stats_.stalls;
  if (took_ms >= options_.severe_threshold_ms) ++stats_.severe_stalls;
  if (took_ms > stats_.longest_ms) {
    stats_.longest_ms = took_ms;
    stats_.longest = what;
  }
  if (!options_.log) return;
  Tally tally;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (section_tally_.key == serial_.load(std::memory_order_relaxed)) tally = section_tally_;
  }
  std::string line = "loop stall: " + describe(f.what, f.detail) + " held the loop " +
                     std::to_string(took_ms) + " ms";
  if (chain) {
    line += " (most in " + f.longest_child + ": " +
            std::to_string(f.longest_child_ns / kNsPerMs) + " ms)";
  } else if (f.children > 0) {
    line += " (" + std::to_string(f.children) + " parts, longest " +
            std::to_string(f.longest_child_ns / kNsPerMs) + " ms)";
  }
  std::string inside;
  for (int i = 0; i < labels_used_; ++i) {
    if (labels_[i].ns < kChainMinNs) continue;
    if (!inside.empty()) inside += ", ";
    inside += std::string(labels_[i].what) + " " + std::to_string(labels_[i].ns / kNsPerMs) +
              " ms x" + std::to_string(labels_[i].count);
  }
  if (!inside.empty()) line += "; inside " + inside;
  line += "; " + split(f.start_ns, tally).to_string();
  options_.log(line);
}

LoopTimeSplit LoopWatch::explain_since(std::int64_t since_ns) {
  Tally tally;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (gap_tally_.key == static_cast<std::uint64_t>(tick_ns_.load(std::memory_order_relaxed))) {
      tally = gap_tally_;
    }
  }
  return split(since_ns, tally);
}

LoopTimeSplit LoopWatch::split(std::int64_t since_ns, const Tally& tally) {
  LoopTimeSplit out;
  Sample now;
  if (tid_ == 0 || !read_schedstat(&now)) return out;
  Sample base;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // The last sample at or before `since_ns`; else the oldest one kept.
    bool found = false;
    for (const Sample& s : ring_) {
      if (s.at_ns <= since_ns && (!found || s.at_ns > base.at_ns)) {
        base = s;
        found = true;
      }
    }
    if (!found) {
      for (const Sample& s : ring_) {
        if (!found || s.at_ns < base.at_ns) {
          base = s;
          found = true;
        }
      }
    }
    if (!found) return out;
  }
  out.known = true;
  out.wall_ms = (now.at_ns - base.at_ns) / kNsPerMs;
  out.cpu_ms = (now.cpu_ns - base.cpu_ns) / kNsPerMs;
  out.runqueue_wait_ms = (now.wait_ns - base.wait_ns) / kNsPerMs;
  out.sampled = tally.to_string();
  return out;
}

bool LoopWatch::read_schedstat(Sample* sample) const {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", tid_);
  std::string text = read_small_file(path);
  long long cpu = 0;
  long long wait = 0;
  if (text.empty() || std::sscanf(text.c_str(), "%lld %lld", &cpu, &wait) != 2) return false;
  sample->at_ns = now_ns();
  sample->cpu_ns = cpu;
  sample->wait_ns = wait;
  return true;
}

// "R" (running or runnable), or the sleeping state and the system call: "D fdatasync".
std::string LoopWatch::read_state() const {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid_);
  std::string stat = read_small_file(path);
  const std::size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return "?";
  std::string state(1, stat[paren + 2]);
  if (state == "R") return state;
  std::snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid_);
  std::string call = read_small_file(path);
  if (call.empty()) return state;
  if (call.rfind("running", 0) == 0) return state;
  char* end = nullptr;
  long number = std::strtol(call.c_str(), &end, 10);
  if (end == call.c_str()) return state;
  if (number < 0) return state + " (no syscall)";
  return state + " " + syscall_name(number);
}

void LoopWatch::sampler_main() {
  const std::int64_t half_threshold_ns = options_.stall_threshold_ms * kNsPerMs / 2;
  for (;;) {
    const std::int64_t next_tick_ns = next_tick_ns_.load(std::memory_order_relaxed);
    const auto interval = std::max(std::chrono::milliseconds(options_.sample_interval_ms),
                                   std::chrono::milliseconds(next_tick_ns / kNsPerMs));
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, interval, [this] { return stopping_; })) return;
    }
    Sample sample;
    if (!read_schedstat(&sample)) continue;
    const std::uint64_t serial = serial_.load(std::memory_order_relaxed);
    const std::int64_t start = section_start_ns_.load(std::memory_order_acquire);
    const std::int64_t tick = tick_ns_.load(std::memory_order_relaxed);
    const std::int64_t gap_from_ns = std::max(
        half_threshold_ns, next_tick_ns_.load(std::memory_order_relaxed) + half_threshold_ns / 2);
    const bool in_stall = start != 0 && sample.at_ns - start >= half_threshold_ns;
    const bool in_gap = tick != 0 && sample.at_ns - tick >= gap_from_ns;
    std::string state;
    if (in_stall || in_gap) state = read_state();
    std::lock_guard<std::mutex> lock(mu_);
    if (ring_.size() < kRing) {
      ring_.push_back(sample);
    } else {
      ring_[ring_next_] = sample;
      ring_next_ = (ring_next_ + 1) % kRing;
    }
    if (in_stall) {
      if (section_tally_.key != serial) section_tally_ = Tally{serial, {}};
      section_tally_.add(state);
    }
    if (in_gap) {
      const auto key = static_cast<std::uint64_t>(tick);
      if (gap_tally_.key != key) gap_tally_ = Tally{key, {}};
      gap_tally_.add(state);
    }
  }
}

}  // namespace mq::cluster
