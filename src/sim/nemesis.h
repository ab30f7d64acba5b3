// Nemesis: the fault schedule of the safety phase. At random intervals it crashes a node
// (often the leader) and restarts it later, partitions the network (symmetric split,
// asymmetric one-way loss, a bridge node between two halves, an isolated leader) and heals
// it later, and stalls a process (a GC-like pause). stop() ends the faults for the liveness
// phase: the network heals and becomes reliable, every member restarts.
#pragma once

#include <cstdint>

#include "sim/cluster.h"

namespace mq::sim {

struct NemesisOptions {
  SimTime interval_min_us = 50'000;
  SimTime interval_max_us = 400'000;
  std::uint32_t crash_weight = 3;
  std::uint32_t partition_weight = 3;
  std::uint32_t pause_weight = 1;
  std::uint32_t quiet_weight = 1;        // do nothing this round
  std::uint32_t leader_bias_percent = 50;  // crashes and isolations aimed at a leader
  std::uint32_t unsynced_bias_percent = 30;  // crashes aimed at a node with an unsynced write
  SimTime down_min_us = 20'000;            // how long a crashed node stays down
  SimTime down_max_us = 1'500'000;
  SimTime partition_min_us = 50'000;
  SimTime partition_max_us = 1'500'000;
  SimTime pause_max_us = 300'000;
};

class Nemesis {
 public:
  Nemesis(Cluster* cluster, NemesisOptions options) : cluster_(cluster), options_(options) {}

  void start();
  // Ends the faults: heals the network, makes it reliable, restarts every member.
  void stop(NetworkOptions reliable);

  std::uint64_t crashes() const { return crashes_; }
  std::uint64_t partitions() const { return partitions_; }
  std::uint64_t pauses() const { return pauses_; }

 private:
  void loop();
  void act();
  NodeId pick_victim();
  void partition();

  Cluster* cluster_;
  NemesisOptions options_;
  bool active_ = false;
  std::uint64_t partition_generation_ = 0;
  std::uint64_t crashes_ = 0;
  std::uint64_t partitions_ = 0;
  std::uint64_t pauses_ = 0;
};

}  // namespace mq::sim
