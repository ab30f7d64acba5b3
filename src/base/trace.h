// Latency tracer for the produce path (docs/benchmarks.md, "Where a single produce's time
// goes"). Off unless the process starts with RAFTMQ_TRACE_FILE=<path prefix> in its
// environment; then every trace point appends (CLOCK_MONOTONIC ns, stage, a, b) to an
// in-memory buffer (fixed capacity, lock-free) that is written to "<prefix>.<pid>" at exit.
// CLOCK_MONOTONIC is shared by all processes of a machine, so the files of the brokers of
// one cluster line up (tools/trace_produce.py merges them).
//
// Cost when off: one relaxed atomic load and a not-taken branch per point; no allocation, no
// clock read, no output.
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
  kPropose = 2,          // PartitionGroup::produce proposed: a = index
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
  kCommit = 20,          // RaftGroup: the commit index moved: a = group, b = commit
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
  const std::size_t n = std::min(s.next.load(), kCapacity);
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
  s.events = new Event[kCapacity]();  // lives until exit
  std::atexit(dump);
  s.on.store(true);
  return true;
}

// Runs once per process (before main, or at the first use of this header's state).
inline const bool kInitialized = init_from_env();

inline void record(Stage stage, std::uint64_t a, std::uint64_t b) {
  State& s = state();
  const std::size_t i = s.next.fetch_add(1, std::memory_order_relaxed);
  if (i >= kCapacity) return;
  s.events[i] = Event{now_ns(), a, b, static_cast<std::uint8_t>(stage)};
}

inline void point(Stage stage, std::uint64_t a = 0, std::uint64_t b = 0) {
  if (__builtin_expect(state().on.load(std::memory_order_relaxed), 0)) record(stage, a, b);
}

}  // namespace mq::trace
