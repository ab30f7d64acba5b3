// Commit throughput of a 3-node Raft group in memory: MemoryStorage as the disk, messages
// delivered by a loop, no I/O. Measures committed entries per second with batching (many
// proposals per Ready round) and without (one proposal per round), and heap allocations per
// committed entry (a replaced global operator new counts them).
//
//   build/bin/raft_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "raft/memory_storage.h"
#include "raft/raw_node.h"

// ---- allocation counting ----
namespace {
std::atomic<std::uint64_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace mq::raft {
namespace {

constexpr std::size_t kNodes = 3;

// A minimal host: persist, deliver, apply (count), advance.
class Group {
 public:
  Group() {
    ConfState cs;
    for (std::size_t i = 1; i <= kNodes; ++i) cs.voters.push_back(NodeId(i));
    for (std::size_t i = 0; i < kNodes; ++i) {
      storages_.push_back(std::make_unique<MemoryStorage>(cs));
      Config config;
      config.id = NodeId(i + 1);
      config.random_seed = 1;
      config.max_inflight_msgs = 1024;
      config.max_uncommitted_bytes = 1ull << 32;
      config.max_committed_bytes_per_ready = 64ull << 20;
      auto node = RawNode::create(config, storages_.back().get());
      if (!node.has_value()) std::abort();
      nodes_.push_back(std::move(node).value());
    }
    nodes_[0]->campaign();
    run();
    if (nodes_[0]->status().soft_state.role != Role::kLeader) std::abort();
  }

  RawNode& leader() { return *nodes_[0]; }
  std::uint64_t applied_on_leader() const { return applied_[0]; }

  // Processes Readies and delivers messages until nothing moves.
  void run() {
    for (int round = 0; round < 1000000; ++round) {
      bool moved = false;
      for (std::size_t i = 0; i < kNodes; ++i) moved |= process(i);
      if (!queue_.empty()) {
        moved = true;
        inflight_.swap(queue_);
        for (Message& m : inflight_) {
          (void)nodes_[m.to.value() - 1]->step(m);
        }
        inflight_.clear();
      }
      if (!moved) return;
    }
    std::abort();
  }

  // Compacts the storages now and then so the benchmark's memory stays bounded.
  void maybe_compact() {
    for (std::size_t i = 0; i < kNodes; ++i) {
      const LogIndex applied = nodes_[i]->status().applied;
      MemoryStorage& s = *storages_[i];
      if (applied > s.first_index() + 100000) {
        (void)s.compact(applied - 1000);
      }
    }
  }

 private:
  bool process(std::size_t i) {
    RawNode& node = *nodes_[i];
    if (!node.has_ready()) return false;
    Ready rd = node.ready();
    for (Message& m : rd.messages) queue_.push_back(std::move(m));
    MemoryStorage& s = *storages_[i];
    if (rd.snapshot) (void)s.apply_snapshot(*rd.snapshot);
    if (!rd.entries_to_persist.empty()) (void)s.append(rd.entries_to_persist);
    if (rd.hard_state) s.set_hard_state(*rd.hard_state);
    for (Message& m : rd.messages_after_persist) queue_.push_back(std::move(m));
    applied_[i] += rd.committed_entries.size();
    node.advance(rd);
    return true;
  }

  std::vector<std::unique_ptr<MemoryStorage>> storages_;
  std::vector<std::unique_ptr<RawNode>> nodes_;
  std::vector<Message> queue_;
  std::vector<Message> inflight_;
  std::uint64_t applied_[kNodes] = {};
};

// state.range(0): payload bytes; state.range(1): proposals per Ready round.
void BM_Commit(benchmark::State& state) {
  const std::size_t payload_bytes = static_cast<std::size_t>(state.range(0));
  const std::size_t batch = static_cast<std::size_t>(state.range(1));
  Group group;
  // One payload buffer shared by all proposals (the host would hand over the client's bytes
  // without copying: SharedBuffer).
  const SharedBuffer payload{std::string(payload_bytes, 'x')};
  std::uint64_t committed = 0;
  std::uint64_t allocations = 0;
  for (auto _ : state) {
    const std::uint64_t allocs_before = g_allocations.load(std::memory_order_relaxed);
    const std::uint64_t applied_before = group.applied_on_leader();
    for (std::size_t i = 0; i < batch; ++i) {
      if (!group.leader().propose(payload).has_value()) std::abort();
    }
    group.run();
    committed += group.applied_on_leader() - applied_before;
    allocations += g_allocations.load(std::memory_order_relaxed) - allocs_before;
    state.PauseTiming();
    group.maybe_compact();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(committed));
  state.SetBytesProcessed(static_cast<std::int64_t>(committed * payload_bytes));
  state.counters["allocs_per_entry"] =
      committed == 0 ? 0.0 : static_cast<double>(allocations) / static_cast<double>(committed);
}

BENCHMARK(BM_Commit)
    ->ArgNames({"bytes", "batch"})
    ->Args({100, 1})
    ->Args({1024, 1})
    ->Args({100, 256})
    ->Args({1024, 256})
    ->Args({100, 4096})
    ->Args({1024, 4096})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace mq::raft

BENCHMARK_MAIN();
