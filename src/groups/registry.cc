#include "groups/registry.h"

#include <chrono>
#include <map>
#include <memory>

namespace mq::groups {
namespace {

// Never destroyed: coordinators of a broker process live as long as it (their timers run on
// the broker's loop, which main() owns; destroying them at exit would touch a dead loop).
std::map<cluster::ClusterApi*, std::unique_ptr<Coordinator>>& registry() {
  static auto* map = new std::map<cluster::ClusterApi*, std::unique_ptr<Coordinator>>();
  return *map;
}

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Coordinator& coordinator_for(cluster::ClusterApi& cluster, asio::io_context& io) {
  auto& map = registry();
  auto it = map.find(&cluster);
  if (it != map.end()) return *it->second;
  auto coordinator = std::make_unique<Coordinator>(cluster, io, CoordinatorConfig{}, steady_ms);
  Coordinator& ref = *coordinator;
  map.emplace(&cluster, std::move(coordinator));
  ref.tick();
  ref.run_ticks();
  return ref;
}

void forget_coordinator(cluster::ClusterApi& cluster) { registry().erase(&cluster); }

}  // namespace mq::groups
