// LoopWatch: an always-on stall detector for one event-loop thread (tests/chaos/FINDINGS.md
// F2 "Remaining: leader event-loop stalls").
//
// A leader's heartbeats, its followers' acknowledgements and every Ready are handled on the
// broker's single event loop. When one handler holds that thread for longer than about half
// the minimum election timeout (300 ms), followers elsewhere stop hearing from the leader, their
// lease runs out and a PreVote can win (thesis §4.2.3, §9.6). LoopWatch tells which handler held
// the loop, and why:
//
//   - the loop code marks its handlers with `LoopWatch::Section` (RAII: a static label and an
//     optional detail, e.g. the group's name). Sections nest; an outermost section that lasts
//     at least `stall_threshold_ms` is a *stall*: it is counted and logged once, with the
//     chain of nested sections that took most of its time ("pump chaos-2 > ready.append");
//   - a sampler thread reads the loop thread's scheduler statistics every `sample_interval_ms`
//     (/proc/self/task/TID/schedstat: time on a CPU, time runnable but waiting for one), so a
//     stall is split into *cpu* (the handler computed), *run-queue wait* (the process was
//     starved of CPU: a loaded machine) and *off-cpu* (the thread slept: blocked in a system
//     call or on a lock); while a stall lasts, the sampler also notes the thread's state and
//     the system call it is in (/proc/self/task/TID/{stat,syscall}), e.g. "D in fdatasync x12";
//   - the same split explains the gap between two ticks (`explain_since`), for time spent in
//     handlers that are not sections (Kafka requests, asio itself).
//
// Cost on the loop: two steady-clock reads per section (vDSO) and a few stores; the sampler
// reads one small /proc file per interval. Without attach() (unit tests), sections only count
// nesting and never log.
//
// Threading: sections, attach(), stats() and explain_since() on the loop thread; the sampler
// thread only reads /proc and the published atomics.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace mq::cluster {

struct LoopWatchOptions {
  // An outermost section at least this long is a stall: logged and counted.
  std::int64_t stall_threshold_ms = 100;
  // Stalls at least this long are counted separately (they can cost a leader its lease).
  std::int64_t severe_threshold_ms = 400;
  // Sampler period; 0: no sampler thread (no cpu/run-queue split, no syscall evidence).
  std::int64_t sample_interval_ms = 50;
  // Receives one line per stall (on the loop thread).
  std::function<void(std::string_view)> log;
  // Tests: count every section by label (sections()); off in brokers (a map update each).
  bool count_sections = false;
};

struct LoopStallStats {
  std::uint64_t stalls = 0;         // outermost sections >= stall_threshold_ms
  std::uint64_t severe_stalls = 0;  // >= severe_threshold_ms
  std::int64_t longest_ms = 0;
  std::string longest;  // what the longest stall was ("pump chaos-2 > ready.append")
};

// Where the wall time of an interval of the loop thread went.
struct LoopTimeSplit {
  bool known = false;  // false: no scheduler statistics (no sampler, no /proc)
  std::int64_t wall_ms = 0;
  std::int64_t cpu_ms = 0;            // running
  std::int64_t runqueue_wait_ms = 0;  // runnable, waiting for a CPU (starvation)
  // Sleeping (blocked or idle). The scheduler accounts a wait when it ends, so a wait that
  // began just before the interval can make the sum exceed the wall time: clamped at 0.
  std::int64_t off_cpu_ms() const {
    return std::max<std::int64_t>(0, wall_ms - cpu_ms - runqueue_wait_ms);
  }
  std::string sampled;  // states and system calls seen by the sampler ("D fdatasync x12, R x3")
  std::string to_string() const;
};

class LoopWatch {
 public:
  explicit LoopWatch(LoopWatchOptions options);
  ~LoopWatch();
  LoopWatch(const LoopWatch&) = delete;
  LoopWatch& operator=(const LoopWatch&) = delete;

  // Binds the watch to the calling thread (the loop) and starts the sampler. Idempotent.
  void attach();
  bool attached() const { return tid_ != 0; }

  class Section {
   public:
    // `what` must be a string literal (or outlive the watch); `detail` is copied (truncated).
    Section(LoopWatch* watch, const char* what, std::string_view detail = {});
    ~Section();
    Section(const Section&) = delete;
    Section& operator=(const Section&) = delete;

   private:
    LoopWatch* watch_;
  };

  // The loop ticked (Node::on_tick): starts the interval explain_since() measures by default.
  // `next_tick_ms`: when the loop means to tick again (an idle broker's stride, 100 ms; 0: as
  // soon as possible). The sampler counts the loop as going without ticks only from half the
  // stall threshold past that (at least half the threshold after the tick), and samples no
  // more often than that interval: an idle loop is not sampled every 50 ms for nothing.
  void mark_tick(std::int64_t next_tick_ms = 0);
  // Milliseconds since the last mark_tick() (since the epoch of the steady clock if none).
  std::int64_t ms_since_tick() const {
    return (now_ns() - tick_ns_.load(std::memory_order_relaxed)) / 1'000'000;
  }
  // The loop thread's time split since the steady-clock time `since_ns` (at most the sampler's
  // history, ~5 s), with the states/syscalls sampled while the loop went without a tick.
  LoopTimeSplit explain_since(std::int64_t since_ns);
  LoopStallStats stats() const { return stats_; }
  // Sections labelled `what` left so far (LoopWatchOptions::count_sections; else 0).
  std::uint64_t sections(const std::string& what) const {
    auto it = section_counts_.find(what);
    return it == section_counts_.end() ? 0 : it->second;
  }

  static std::int64_t now_ns();

 private:
  static constexpr int kDepthMax = 8;
  static constexpr std::size_t kDetailBytes = 40;
  struct Frame {
    const char* what = "";
    char detail[kDetailBytes] = {};
    std::int64_t start_ns = 0;
    std::int64_t longest_child_ns = 0;
    std::string longest_child;  // the chain below this frame that took longest
    std::uint32_t children = 0;
  };
  // Time inside each label nested in the current outermost section (all depths, so a parent
  // includes its children): many short sections add up where no single one stands out.
  struct LabelTotal {
    const char* what = nullptr;
    std::int64_t ns = 0;
    std::uint32_t count = 0;
  };
  static constexpr int kLabelsMax = 12;
  struct Sample {
    std::int64_t at_ns = 0;
    std::int64_t cpu_ns = 0;
    std::int64_t wait_ns = 0;
  };
  // What the sampler saw during one episode (a stall in progress or a tick gap).
  struct Tally {
    std::uint64_t key = 0;  // section serial or tick time
    std::vector<std::pair<std::string, std::uint32_t>> seen;
    void add(const std::string& what);
    std::string to_string() const;
  };

  void enter(const char* what, std::string_view detail);
  void leave();
  void report(const Frame& frame, std::int64_t wall_ns);
  LoopTimeSplit split(std::int64_t since_ns, const Tally& tally);
  void sampler_main();
  bool read_schedstat(Sample* sample) const;
  std::string read_state() const;

  LoopWatchOptions options_;
  int tid_ = 0;
  // Loop thread only.
  Frame frames_[kDepthMax];
  int depth_ = 0;
  std::map<std::string, std::uint64_t> section_counts_;
  LabelTotal labels_[kLabelsMax];
  int labels_used_ = 0;
  LoopStallStats stats_;
  // Published for the sampler.
  std::atomic<std::uint64_t> serial_{0};         // outermost sections entered
  std::atomic<std::int64_t> section_start_ns_{0};  // 0: no outermost section active
  std::atomic<std::int64_t> tick_ns_{0};
  std::atomic<std::int64_t> next_tick_ns_{0};  // mark_tick's next_tick_ms, in ns
  // Sampler state, under mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<Sample> ring_;  // the last kRing samples
  std::size_t ring_next_ = 0;
  Tally section_tally_;
  Tally gap_tally_;
  std::thread sampler_;
};

}  // namespace mq::cluster
