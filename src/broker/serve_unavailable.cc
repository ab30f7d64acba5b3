// Built when the cluster layer (cluster::Node) is not part of the build yet: `raftmq serve`
// explains that instead of pretending to be a broker.
#include <cstdio>

#include "broker/serve.h"

namespace mq::broker {

bool cluster_layer_available() { return false; }

int run_serve(const BrokerConfig& config) {
  std::fprintf(stderr,
               "raftmq serve: this build has no cluster layer (cluster::Node); broker %d cannot "
               "start. Build a tree that includes src/cluster.\n",
               config.broker_id);
  return 1;
}

}  // namespace mq::broker
