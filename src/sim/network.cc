#include "sim/network.h"

namespace mq::sim {

SimTime SimNetwork::delay() {
  if (options_.long_delay_per_mille > 0 && prng_->chance(options_.long_delay_per_mille, 1000)) {
    return prng_->range(options_.delay_max_us, options_.long_delay_max_us);
  }
  return prng_->range(options_.delay_min_us, options_.delay_max_us);
}

std::vector<SimTime> SimNetwork::fate() {
  std::vector<SimTime> delays;
  if (options_.drop_per_mille > 0 && prng_->chance(options_.drop_per_mille, 1000)) return delays;
  delays.push_back(delay());
  if (options_.duplicate_per_mille > 0 && prng_->chance(options_.duplicate_per_mille, 1000)) {
    delays.push_back(delay());
  }
  return delays;
}

bool SimNetwork::connected(NodeId from, NodeId to) const {
  return blocked_.empty() || blocked_.count({from.value(), to.value()}) == 0;
}

void SimNetwork::split(const std::vector<NodeId>& side_a, const std::vector<NodeId>& side_b) {
  for (NodeId a : side_a) {
    for (NodeId b : side_b) {
      block(a, b);
      block(b, a);
    }
  }
}

void SimNetwork::one_way(NodeId from, const std::vector<NodeId>& to) {
  for (NodeId b : to) {
    if (b != from) block(from, b);
  }
}

void SimNetwork::bridge(const std::vector<NodeId>& side_a, NodeId bridge_node,
                        const std::vector<NodeId>& side_b) {
  for (NodeId a : side_a) {
    for (NodeId b : side_b) {
      if (a == bridge_node || b == bridge_node) continue;
      block(a, b);
      block(b, a);
    }
  }
}

void SimNetwork::isolate(NodeId node, const std::vector<NodeId>& others) {
  for (NodeId other : others) {
    if (other == node) continue;
    block(node, other);
    block(other, node);
  }
}

std::string SimNetwork::describe_partition() const {
  if (blocked_.empty()) return "none";
  std::string out;
  for (const auto& [from, to] : blocked_) {
    if (!out.empty()) out += ' ';
    out += std::to_string(from) + "-x->" + std::to_string(to);
  }
  return out;
}

}  // namespace mq::sim
