// Latency tracer for the produce path (docs/benchmarks.md, "Where a single produce's time
// goes"). Off unless the process starts with RAFTMQ_TRACE_FILE=<path prefix> in its
// environment; then every trace point appends (CLOCK_MONOTONIC ns, stage, a, b) to an
// in-memory buffer (fixed capacity, lock-free) that is written to "<prefix>.<pid>" at exit.
// CLOCK_MONOTONIC is shared by all processes of a machine, so the files of the brokers of
// one cluster line up (tools/trace_produce.py merges them).
//
// Cost when off: one relaxed atomic load and a not-taken branch per point; no allocation, no
// clock read, no output.
//
// Under load the buffer fills within seconds: RAFTMQ_TRACE_EVENTS=<n> sets its capacity
// (default 1 Mi events of 32 bytes) and RAFTMQ_TRACE_DELAY_MS=<ms> drops the events of the
// first <ms> after start (cluster start-up, warm-up), so a window of a loaded run fits
// (bench/broker/trace_stages.py reads such traces).
#pragma once

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace mq::trace {

// Stages, in the order a produce meets them. The numbers are the file format.
enum class Stage : std::uint8_t {
  kKafkaRead = 1,        // a Kafka request frame is being handled (loop)
  kPropose = 2,          // PartitionGroup::produce proposed: a = index, b = group
  kReady = 3,            // RaftGroup::process: a = group, b = last entry index to persist (0: none)
  kMessagesSent = 4,     // step-1 messages handed to the transport: a = group, b = count
  kAppended = 5,         // entries appended to the log (page cache): a = group, b = last index
  kParked = 6,           // the Ready waits for the flusher: a = group, b = index
  kFlushEnqueue = 7,     // Flusher::enqueue (caller's thread)
  kFlusherWake = 8,      // the flusher thread took a round
  kSyncStart = 9,        // one log's sync starts (flusher thread)
  kSyncEnd = 10,         // one log's sync ended (its on_durable callback ran)
  kOnDurable = 11,       // RaftGroup::on_durable on the loop: a = group, b = index
  kAfterPersistSent = 12,  // step-3 messages handed to the transport: a = group, b = count
  kTransportEnqueue = 13,  // PeerLink::enqueue: a = group, b = message type
  kTransportWrite = 14,  // bytes handed to the peer socket (transport thread): a = messages
  kTransportRecv = 15,   // a Raft message decoded from a peer socket: a = group, b = type
  kStep = 16,            // RaftGroup::step (loop): a = group, b = message type
  kApply = 17,           // PartitionGroup::on_apply: a = index
  kProduceDone = 18,     // a produce waiter completed: a = index
  kKafkaWritten = 19,    // a Kafka response was written to the socket (loop): a = bytes
  kCommit = 20,          // RaftGroup applied entries: a = group, b = applied index
};

struct Event {
  std::int64_t ns;
  std::uint64_t a;
  std::uint64_t b;
  std::uint8_t stage;
};

inline constexpr std::size_t kCapacity = 1u << 20;

struct State {
  std::atomic<bool> on{false};
  std::atomic<std::size_t> next{0};
  Event* events = nullptr;
  std::size_t capacity = 0;
  std::int64_t start_ns = 0;  // events before this time are dropped
  char path[512] = {};
};

inline State& state() {
  static State s;
  return s;
}

inline std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

inline void dump() {
  State& s = state();
  if (!s.on.exchange(false)) return;
  std::FILE* f = std::fopen(s.path, "w");
  if (f == nullptr) return;
  const std::size_t n = std::min(s.next.load(), s.capacity);
  for (std::size_t i = 0; i < n; ++i) {
    const Event& e = s.events[i];
    std::fprintf(f, "%lld %u %llu %llu\n", static_cast<long long>(e.ns), e.stage,
                 static_cast<unsigned long long>(e.a), static_cast<unsigned long long>(e.b));
  }
  std::fclose(f);
}

inline bool init_from_env() {
  const char* prefix = std::getenv("RAFTMQ_TRACE_FILE");
  if (prefix == nullptr || *prefix == '\0') return false;
  State& s = state();
  std::snprintf(s.path, sizeof s.path, "%s.%d", prefix, static_cast<int>(::getpid()));
  s.capacity = kCapacity;
  if (const char* n = std::getenv("RAFTMQ_TRACE_EVENTS"); n != nullptr && std::atoll(n) > 0) {
    s.capacity = static_cast<std::size_t>(std::atoll(n));
  }
  if (const char* d = std::getenv("RAFTMQ_TRACE_DELAY_MS"); d != nullptr && std::atoll(d) > 0) {
    s.start_ns = now_ns() + std::atoll(d) * 1000000;
  }
  s.events = new Event[s.capacity]();  // lives until exit
  std::atexit(dump);
  s.on.store(true);
  return true;
}

// Runs once per process (before main, or at the first use of this header's state).
inline const bool kInitialized = init_from_env();

inline void record(Stage stage, std::uint64_t a, std::uint64_t b) {
  State& s = state();
  const std::int64_t ns = now_ns();
  if (ns < s.start_ns) return;
  const std::size_t i = s.next.fetch_add(1, std::memory_order_relaxed);
  if (i >= s.capacity) return;
  s.events[i] = Event{ns, a, b, static_cast<std::uint8_t>(stage)};
}

inline void point(Stage stage, std::uint64_t a = 0, std::uint64_t b = 0) {
  if (__builtin_expect(state().on.load(std::memory_order_relaxed), 0)) record(stage, a, b);
}

}  // namespace mq::trace
