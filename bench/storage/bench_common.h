// Helpers shared by the storage_bench sections (storage_bench.cc, append_vs_raw.cc).
#pragma once

#include <fcntl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "storage/log.h"

namespace mq::storage::bench {

using BenchClock = std::chrono::steady_clock;

inline double seconds_since(BenchClock::time_point start) {
  return std::chrono::duration<double>(BenchClock::now() - start).count();
}

// A field of /proc/self/status in KiB ("VmRSS:", "VmHWM:"); -1 if unavailable.
inline long proc_status_kib(const char* field) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kib = -1;
  std::size_t len = std::strlen(field);
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, field, len) == 0) kib = std::atol(line + len);
  }
  std::fclose(f);
  return kib;
}
inline long rss_kib() { return proc_status_kib("VmRSS:"); }
inline long vm_hwm_kib() { return proc_status_kib("VmHWM:"); }

inline long peak_rss_kib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// The 1-minute load average (from /proc/loadavg), -1 if unknown.
inline double load_average() {
  double load = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = -1;
    std::fclose(f);
  }
  return load;
}

// The calling thread's CPU time and, where Linux reports it (/proc/thread-self/schedstat),
// its time spent runnable but waiting for a CPU (-1 if unknown), in seconds.
struct ThreadTimes {
  double cpu_s = 0;
  double runqueue_s = -1;
};
inline ThreadTimes thread_times() {
  ThreadTimes t;
  timespec ts{};
  if (::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0) {
    t.cpu_s = static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
  }
  if (FILE* f = std::fopen("/proc/thread-self/schedstat", "r")) {
    unsigned long long run_ns = 0, wait_ns = 0;
    if (std::fscanf(f, "%llu %llu", &run_ns, &wait_ns) == 2) {
      t.runqueue_s = static_cast<double>(wait_ns) * 1e-9;
    }
    std::fclose(f);
  }
  return t;
}

// One record batch of `records` records holding `payload`, appended after the log's end.
inline AppendEntry batch_entry(Log& log, const Buffer& payload, std::uint32_t records) {
  return AppendEntry{Term(1), log.last_index() + 1, EntryKind::kRecordBatch, log.next_offset(),
                     records - 1, 1'700'000'000'000 + static_cast<std::int64_t>(log.last_index().value()),
                     payload.view()};
}

// The median of `values` (by copy); 0 when empty.
double median(std::vector<double> values);

}  // namespace mq::storage::bench
