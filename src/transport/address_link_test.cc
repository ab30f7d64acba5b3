// Links to an address rather than a broker id (negative peer keys, transport.h): used by a
// joining broker to reach a seed whose id it does not know (docs/cluster.md "Adding a
// broker"). Real transports on 127.0.0.1; every wait is bounded.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "transport/transport.h"

namespace mq::transport {
namespace {

using namespace std::chrono_literals;

struct Endpoint {
  explicit Endpoint(std::int32_t id)
      : transport(options(id),
                  TransportCallbacks{[this](BrokerId from, GroupId, raft::Message m) {
                                       std::lock_guard lock(mu);
                                       received.emplace_back(from, m.context);
                                     },
                                     [this](BrokerId peer) {
                                       std::lock_guard lock(mu);
                                       unreachable.push_back(peer);
                                     },
                                     [](LogLevel, std::string_view) {}}) {
    EXPECT_TRUE(transport.start().is_ok());
    auto bound = transport.listen("127.0.0.1", 0);
    EXPECT_TRUE(bound.has_value());
    port = bound.has_value() ? *bound : 0;
  }
  static TransportOptions options(std::int32_t id) {
    TransportOptions o;
    o.self = BrokerId(id);
    o.cluster_id = "address-link-test";
    o.backoff_initial = 10ms;
    o.backoff_max = 50ms;
    o.connect_timeout = 300ms;
    return o;
  }
  std::vector<std::pair<BrokerId, std::uint64_t>> received_copy() {
    std::lock_guard lock(mu);
    return received;
  }
  // Declared before the transport: its thread (callbacks) stops before these go.
  std::mutex mu;
  std::vector<std::pair<BrokerId, std::uint64_t>> received;
  std::vector<BrokerId> unreachable;
  std::uint16_t port = 0;
  Transport transport;
};

bool eventually(const std::function<bool()>& pred) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

raft::Message message(std::uint64_t context) {
  raft::Message m;
  m.type = raft::MessageType::kReadIndex;
  m.from = NodeId(1);
  m.context = context;
  return m;
}

TEST(AddressLink, ReachesWhicheverBrokerListensThere) {
  Endpoint seed(2);
  Endpoint joiner(7);
  // The joiner does not know the seed's id: key -1 names the address.
  ASSERT_TRUE(joiner.transport.add_peer(BrokerId(-1), "127.0.0.1", seed.port).is_ok());
  ASSERT_TRUE(joiner.transport.send(BrokerId(-1), GroupId(5), message(42)));
  ASSERT_TRUE(eventually([&] {
    auto r = seed.received_copy();
    return r.size() == 1 && r[0].first == BrokerId(7) && r[0].second == 42;
  }));
  auto stats = joiner.transport.peer_stats(BrokerId(-1));
  ASSERT_TRUE(stats.has_value());
  EXPECT_TRUE(stats->connected);
  // The seed answers on its own link to the joiner's address (another negative key).
  ASSERT_TRUE(seed.transport.add_peer(BrokerId(-100000), "127.0.0.1", joiner.port).is_ok());
  ASSERT_TRUE(seed.transport.send(BrokerId(-100000), GroupId(5), message(43)));
  ASSERT_TRUE(eventually([&] {
    auto r = joiner.received_copy();
    return r.size() == 1 && r[0].first == BrokerId(2) && r[0].second == 43;
  }));
}

TEST(AddressLink, FailuresAreNotReportedAsABrokerLoss) {
  Endpoint joiner(7);
  std::uint16_t nobody = 0;
  {
    Endpoint gone(3);
    nobody = gone.port;
    gone.transport.stop();
  }
  ASSERT_TRUE(joiner.transport.add_peer(BrokerId(-1), "127.0.0.1", nobody).is_ok());
  ASSERT_TRUE(eventually([&] { return joiner.transport.stats().connect_failures >= 2; }));
  auto stats = joiner.transport.peer_stats(BrokerId(-1));
  ASSERT_TRUE(stats.has_value());
  EXPECT_FALSE(stats->connected);
  EXPECT_EQ(stats->connects_succeeded, 0u);
  std::lock_guard lock(joiner.mu);
  EXPECT_TRUE(joiner.unreachable.empty());
}

TEST(AddressLink, ANamedBrokerIsStillChecked) {
  Endpoint a(1);
  Endpoint b(2);
  // A link that names broker 5 at b's address is refused (a stale address book).
  ASSERT_TRUE(a.transport.add_peer(BrokerId(5), "127.0.0.1", b.port).is_ok());
  ASSERT_TRUE(eventually([&] { return b.transport.stats().inbound_refused >= 1; }));
  auto stats = a.transport.peer_stats(BrokerId(5));
  ASSERT_TRUE(stats.has_value());
  EXPECT_FALSE(stats->connected);
  EXPECT_TRUE(b.received_copy().empty());
}

}  // namespace
}  // namespace mq::transport
