// Identifier mappings of the cluster layer.
//
// Raft node ids are BrokerId + 1: the Raft core reserves node id 0 for "none", while Kafka
// broker ids start at 0. Kafka leader epochs are int32; they are the group's Raft term,
// saturated (a term beyond INT32_MAX would need 2^31 elections).
#pragma once

#include <cstdint>
#include <limits>

#include "base/strong_id.h"

namespace mq::cluster {

inline NodeId node_of(BrokerId broker) {
  return NodeId(static_cast<std::uint64_t>(broker.value()) + 1);
}
inline BrokerId broker_of(NodeId node) {
  return BrokerId(static_cast<std::int32_t>(node.value() - 1));
}
inline std::int32_t epoch_of_term(Term term) {
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max());
  return term.value() > kMax ? std::numeric_limits<std::int32_t>::max()
                             : static_cast<std::int32_t>(term.value());
}

// The controller group (cluster metadata) is group 0; partition groups get ids from 1, handed
// out by the controller. The control-plane channel (leader hints between brokers) uses the
// largest id, which no Raft group ever has.
inline constexpr GroupId kControllerGroup{0};
inline constexpr GroupId kControlPlaneGroup{std::numeric_limits<std::uint64_t>::max()};
// Requests for producer id blocks to the controller leader (producer_id_allocator.h).
inline constexpr GroupId kProducerIdChannel{std::numeric_limits<std::uint64_t>::max() - 1};

}  // namespace mq::cluster
