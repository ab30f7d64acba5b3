// Simulation: one seed, start to verdict. The seed's Prng first draws the scenario (cluster
// size, Raft options, clock skews, disk speeds, network quality, fault mix, workload), then
// drives the run:
//   1. safety phase: workload + nemesis, every invariant checked after every event;
//   2. liveness phase: faults stop, the network heals, every member restarts; a leader must
//      emerge and a new write must commit within a bound;
//   3. convergence: every member must apply up to that write within a bound.
// The verdict names the first invariant violated, if any.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "raft/config.h"

namespace mq::sim {

struct BugInfo {
  const char* name;
  raft::Bug bug;
  const char* description;
};
// The core's mutation knobs (raft::Bug), by their command-line names.
const std::vector<BugInfo>& bug_table();
std::optional<raft::Bug> bug_by_name(std::string_view name);

struct RunOptions {
  std::uint64_t seed = 1;
  std::uint32_t nodes = 0;  // initial voters: 3, 5, or 0 to let the seed choose
  std::uint32_t bugs = 0;   // raft::Bug bits enabled on every node
  bool lease_reads = true;  // let scenarios draw ReadOnlyOption::kLeaseBased
  std::FILE* trace = nullptr;
  bool print_scenario = false;  // one line describing the drawn scenario (to `trace` or stdout)
};

struct SeedResult {
  bool passed = true;
  std::string invariant;  // empty when passed
  std::string detail;
  std::uint64_t failed_at_us = 0;
  std::string scenario;  // one-line description
  // Statistics.
  std::uint64_t sim_time_us = 0;
  std::uint64_t events = 0;
  std::uint64_t messages = 0;
  std::uint64_t writes_acked = 0;
  std::uint64_t reads_checked = 0;
  std::uint64_t leaders = 0;
  std::uint64_t committed = 0;
};

SeedResult run_seed(const RunOptions& options);

// The narrated demonstration for scripts/run (5 nodes, leader crash, catch-up).
int run_demo(std::FILE* out);

}  // namespace mq::sim
