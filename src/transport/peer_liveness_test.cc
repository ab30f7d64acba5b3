// Transport::peer_connection_lost_now: a peer's close is visible to any thread as soon as the
// kernel has it, before the transport thread handles it (fast failover's Metadata answers,
// docs/cluster.md "Failover"). Real transports on 127.0.0.1; every wait is bounded.
#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "transport/transport.h"

namespace mq::transport {
namespace {

using namespace std::chrono_literals;

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

TransportOptions options(BrokerId self) {
  TransportOptions o;
  o.self = self;
  o.cluster_id = "liveness-test";
  o.backoff_initial = 10ms;
  o.backoff_max = 100ms;
  o.connect_timeout = 500ms;
  return o;
}

raft::Message heartbeat() {
  raft::Message m;
  m.type = raft::MessageType::kHeartbeat;
  m.from = NodeId(2);
  m.to = NodeId(1);
  m.term = Term(1);
  return m;
}

TEST(PeerLiveness, ClosedConnectionIsSeenBeforeTheTransportThreadHandlesIt) {
  // A's transport thread can be held inside its message callback: then only the kernel knows
  // that B went away.
  std::atomic<bool> hold{false};
  std::atomic<bool> holding{false};
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  TransportCallbacks a_callbacks;
  a_callbacks.on_message = [&](BrokerId, GroupId, raft::Message) {
    if (!hold.load()) return;
    holding = true;
    released.wait_for(20s);
  };
  Transport a(options(BrokerId(1)), std::move(a_callbacks));
  Transport b(options(BrokerId(2)), TransportCallbacks{});
  ASSERT_TRUE(a.start().is_ok());
  ASSERT_TRUE(b.start().is_ok());
  auto a_port = a.listen("127.0.0.1", 0);
  auto b_port = b.listen("127.0.0.1", 0);
  ASSERT_TRUE(a_port.has_value() && b_port.has_value());
  ASSERT_TRUE(a.add_peer(BrokerId(2), "127.0.0.1", *b_port).is_ok());
  ASSERT_TRUE(b.add_peer(BrokerId(1), "127.0.0.1", *a_port).is_ok());
  ASSERT_TRUE(eventually([&] {
    auto s = a.peer_stats(BrokerId(2));
    return s.has_value() && s->connected;
  }));
  EXPECT_FALSE(a.peer_connection_lost_now(BrokerId(2)));  // a live peer
  EXPECT_FALSE(a.peer_connection_lost_now(BrokerId(7)));  // an unknown one

  hold = true;
  ASSERT_TRUE(eventually([&] {
    b.send(BrokerId(1), GroupId(5), heartbeat());
    return holding.load();
  }));
  b.stop();  // closes every socket of B, among them the one A's link to B is connected to
  EXPECT_TRUE(eventually([&] { return a.peer_connection_lost_now(BrokerId(2)); }, 5s));
  auto stats = a.peer_stats(BrokerId(2));
  ASSERT_TRUE(stats.has_value());
  EXPECT_TRUE(stats->connected) << "the transport thread was held: it cannot have seen the close";

  release.set_value();
  EXPECT_TRUE(eventually([&] { return !a.peer_stats(BrokerId(2))->connected; }));
  // Once handled, the closed descriptor is forgotten (never polled after it is closed).
  EXPECT_FALSE(a.peer_connection_lost_now(BrokerId(2)));
  a.stop();
}

}  // namespace
}  // namespace mq::transport
