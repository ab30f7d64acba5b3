// SimNetwork: the simulated network between the nodes of one cluster. It decides, with the
// cluster's one Prng, the fate of every message the hosts send: dropped, delayed (which
// reorders messages), duplicated; and it applies partitions, which block directed links.
// It does not deliver anything itself: the cluster schedules a delivery event for each
// (copy of a) message at the time the network returns.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/prng.h"
#include "base/strong_id.h"

namespace mq::sim {

using SimTime = std::uint64_t;  // simulated microseconds since the start of the run

struct NetworkOptions {
  std::uint32_t drop_per_mille = 0;       // probability a message is lost
  std::uint32_t duplicate_per_mille = 0;  // probability a message is delivered twice
  SimTime delay_min_us = 200;             // one-way delay, uniform in [min, max]
  SimTime delay_max_us = 2'000;
  std::uint32_t long_delay_per_mille = 0;  // probability of a delay in [max, long_max]
  SimTime long_delay_max_us = 50'000;
};

class SimNetwork {
 public:
  SimNetwork(Prng* prng, NetworkOptions options) : prng_(prng), options_(options) {}

  // The delivery delays of the copies of one message sent now on a connected link: empty
  // when it is dropped, two entries when duplicated.
  std::vector<SimTime> fate();

  // Partitions are sets of blocked directed links (from, to).
  bool connected(NodeId from, NodeId to) const;
  void block(NodeId from, NodeId to) { blocked_.insert({from.value(), to.value()}); }
  void unblock(NodeId from, NodeId to) { blocked_.erase({from.value(), to.value()}); }
  void heal() { blocked_.clear(); }
  bool partitioned() const { return !blocked_.empty(); }

  // Symmetric partition: no link between the groups `side_a` and `side_b`.
  void split(const std::vector<NodeId>& side_a, const std::vector<NodeId>& side_b);
  // Asymmetric: messages from `from` to every node of `to` are lost, the reverse direction works.
  void one_way(NodeId from, const std::vector<NodeId>& to);
  // Bridge: `side_a` and `side_b` cannot talk to each other, but both talk to `bridge`.
  void bridge(const std::vector<NodeId>& side_a, NodeId bridge_node,
              const std::vector<NodeId>& side_b);
  // `node` can reach nobody and nobody reaches it.
  void isolate(NodeId node, const std::vector<NodeId>& others);

  void set_options(NetworkOptions options) { options_ = options; }
  const NetworkOptions& options() const { return options_; }
  std::string describe_partition() const;  // "1->2 2->1 ..." in a stable order

 private:
  SimTime delay();
  Prng* prng_;
  NetworkOptions options_;
  std::set<std::pair<std::uint64_t, std::uint64_t>> blocked_;  // ordered: deterministic
};

}  // namespace mq::sim
