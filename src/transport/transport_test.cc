// Transport tests: real Transport instances on 127.0.0.1 (ephemeral ports) and raw TCP clients
// that misbehave. Every wait is bounded (kWait); a test that times out fails instead of
// hanging.
#include "transport/transport.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <asio.hpp>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "base/le_codec.h"
#include "transport/raft_rpc_codec.h"

namespace mq::transport {
namespace {

using namespace std::chrono_literals;
using raft::Message;
using raft::MessageType;

constexpr auto kWait = 10s;
const std::string kCluster = "test-cluster";

struct Received {
  BrokerId from;
  GroupId group;
  Message message;
};

TransportOptions fast_options(BrokerId self) {
  TransportOptions o;
  o.self = self;
  o.cluster_id = kCluster;
  o.backoff_initial = 10ms;
  o.backoff_max = 100ms;
  o.connect_timeout = 500ms;
  return o;
}

// Polls pred() (which may take locks) until it holds; false on timeout.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = kWait) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// One broker's transport plus everything its callbacks saw.
class Node {
 public:
  explicit Node(TransportOptions options)
      : id_(options.self),
        transport_(std::move(options), TransportCallbacks{
                                           [this](BrokerId from, GroupId group, Message m) {
                                             std::lock_guard lock(mu_);
                                             received_.push_back({from, group, std::move(m)});
                                             cv_.notify_all();
                                           },
                                           [this](BrokerId peer) {
                                             std::lock_guard lock(mu_);
                                             unreachable_.push_back(peer);
                                           },
                                           [this](LogLevel, std::string_view line) {
                                             std::lock_guard lock(mu_);
                                             logs_.emplace_back(line);
                                             cv_.notify_all();
                                           }}) {
    EXPECT_TRUE(transport_.start().is_ok());
  }
  explicit Node(BrokerId id, std::uint16_t port = 0) : Node(fast_options(id)) {
    auto bound = transport_.listen("127.0.0.1", port);
    EXPECT_TRUE(bound.has_value()) << bound.error().to_string();
    port_ = bound.value_or(0);
  }

  Transport& transport() { return transport_; }
  BrokerId id() const { return id_; }
  std::uint16_t port() const { return port_; }
  void connect_to(const Node& other) {
    ASSERT_TRUE(transport_.add_peer(other.id(), "127.0.0.1", other.port()).is_ok());
  }

  // Waits until pred() holds (checked under mu_: it must not call the locking accessors).
  template <typename Pred>
  bool wait_until(Pred pred, std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return pred(); });
  }
  bool wait_received(std::size_t n) {
    return wait_until([&] { return received_.size() >= n; });
  }
  bool wait_log(const std::string& needle) {
    return wait_until([&] {
      for (const auto& line : logs_) {
        if (line.find(needle) != std::string::npos) return true;
      }
      return false;
    });
  }
  bool wait_context(std::uint64_t context) {
    return wait_until([&] {
      for (const Received& r : received_) {
        if (r.message.context == context) return true;
      }
      return false;
    });
  }
  std::vector<Received> received() {
    std::lock_guard lock(mu_);
    return received_;
  }
  std::size_t received_count() {
    std::lock_guard lock(mu_);
    return received_.size();
  }
  std::size_t unreachable_count(BrokerId peer) {
    std::lock_guard lock(mu_);
    return std::count(unreachable_.begin(), unreachable_.end(), peer);
  }

 private:
  BrokerId id_;
  std::uint16_t port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Received> received_;
  std::vector<BrokerId> unreachable_;
  std::vector<std::string> logs_;
  Transport transport_;  // last: stopped (joined) before the vectors above are destroyed
};

Message append_message(std::uint64_t from, std::uint64_t to, std::uint64_t sequence,
                       std::size_t payload_bytes = 16) {
  Message m;
  m.type = MessageType::kAppend;
  m.from = NodeId(from);
  m.to = NodeId(to);
  m.term = Term(3);
  m.index = LogIndex(sequence);
  m.commit = LogIndex(sequence / 2);
  raft::Entry e;
  e.term = Term(3);
  e.index = LogIndex(sequence + 1);
  e.payload = SharedBuffer(std::string(payload_bytes, static_cast<char>('a' + sequence % 26)));
  m.entries.push_back(e);
  m.context = sequence;  // per-sender sequence number, to check order
  return m;
}

Message heartbeat(MessageType type, std::uint64_t group) {
  Message m;
  m.type = type;
  m.from = NodeId(1);
  m.to = NodeId(2);
  m.term = Term(4 + group % 3);
  m.commit = LogIndex(group * 10);
  m.context = group % 5;
  return m;
}

// Names of this process's threads (/proc/self/task/*/comm).
std::multiset<std::string> thread_names() {
  std::multiset<std::string> names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(task.path() / "comm");
    std::string name;
    if (std::getline(in, name)) names.insert(name);
  }
  return names;
}

TEST(Transport, ItsThreadIsNamedWhileItRuns) {
  const auto before = thread_names().count("rmq-transport");
  {
    Node a(fast_options(BrokerId(1)));
    EXPECT_TRUE(eventually([&] { return thread_names().count("rmq-transport") == before + 1; }));
  }
  EXPECT_EQ(thread_names().count("rmq-transport"), before);  // joined by stop()
}

TEST(Transport, ThreeBrokersManyGroupsAllArriveInOrderPerPeer) {
  Node a(BrokerId(1)), b(BrokerId(2)), c(BrokerId(3));
  std::vector<Node*> nodes = {&a, &b, &c};
  for (Node* from : nodes) {
    for (Node* to : nodes) {
      if (from != to) from->connect_to(*to);
    }
  }
  constexpr std::uint64_t kGroups = 1000;
  constexpr std::uint64_t kRounds = 3;
  for (std::uint64_t round = 0; round < kRounds; ++round) {
    for (std::uint64_t g = 0; g < kGroups; ++g) {
      const std::uint64_t sequence = round * kGroups + g;
      for (Node* from : nodes) {
        for (Node* to : nodes) {
          if (from == to) continue;
          ASSERT_TRUE(from->transport().send(
              to->id(), GroupId(g),
              append_message(from->id().value(), to->id().value(), sequence)));
        }
      }
    }
  }
  const std::size_t expected = 2 * kGroups * kRounds;
  for (Node* node : nodes) {
    ASSERT_TRUE(node->wait_received(expected)) << "broker " << node->id().value() << " got "
                                               << node->received_count();
    std::map<std::int32_t, std::uint64_t> next_sequence;  // per sender
    for (const Received& r : node->received()) {
      const std::uint64_t sequence = r.message.context;
      EXPECT_EQ(sequence, next_sequence[r.from.value()]++) << "from " << r.from.value();
      EXPECT_EQ(r.group, GroupId(sequence % kGroups));
      EXPECT_EQ(r.message, append_message(r.from.value(), node->id().value(), sequence));
    }
    EXPECT_EQ(next_sequence.size(), 2u);
    // A write's completion may run after the peer already read its bytes.
    EXPECT_TRUE(eventually([&] { return node->transport().stats().messages_sent == expected; }));
    const TransportStats s = node->transport().stats();
    EXPECT_EQ(s.messages_sent, expected);
    EXPECT_EQ(s.messages_received, expected);
    EXPECT_LT(s.frames_sent, s.messages_sent) << "messages must be batched into frames";
    EXPECT_EQ(s.dropped_queue_full, 0u);
    EXPECT_EQ(s.decode_errors, 0u);
  }
}

TEST(Transport, HeartbeatsForManyGroupsAreCoalesced) {
  Node a(BrokerId(1)), b(BrokerId(2));
  a.connect_to(b);
  ASSERT_TRUE(eventually([&] { return a.transport().peer_stats(b.id())->connected; }));
  constexpr std::uint64_t kGroups = 2000;
  for (std::uint64_t g = 0; g < kGroups; ++g) {
    ASSERT_TRUE(a.transport().send(b.id(), GroupId(g), heartbeat(MessageType::kHeartbeat, g)));
    ASSERT_TRUE(
        a.transport().send(b.id(), GroupId(g), heartbeat(MessageType::kHeartbeatResponse, g)));
  }
  ASSERT_TRUE(b.wait_received(2 * kGroups));
  std::map<std::pair<std::uint64_t, MessageType>, int> seen;
  for (const Received& r : b.received()) {
    EXPECT_EQ(r.message, heartbeat(r.message.type, r.group.value()));
    ++seen[{r.group.value(), r.message.type}];
  }
  EXPECT_EQ(seen.size(), 2 * kGroups);
  const TransportStats s = a.transport().stats();
  EXPECT_EQ(s.heartbeats_coalesced, 2 * kGroups);
  // 4000 heartbeats leave in a few writes (2 to ~35 frames measured); the bound leaves room for a
  // loaded machine where the transport thread wakes up between sends.
  std::printf("%llu heartbeats in %llu heartbeat frames\n",
              static_cast<unsigned long long>(s.heartbeats_coalesced),
              static_cast<unsigned long long>(s.heartbeat_frames_sent));
  EXPECT_LT(s.heartbeat_frames_sent, 2 * kGroups / 10) << "heartbeats were not coalesced";
  EXPECT_LT(s.bytes_sent, 2 * kGroups * 20) << "coalesced heartbeats must be compact";
}

TEST(Transport, RestartedPeerIsReconnectedAndTrafficResumes) {
  Node a(BrokerId(1));
  auto b = std::make_unique<Node>(BrokerId(2));
  const std::uint16_t port = b->port();
  a.connect_to(*b);
  ASSERT_TRUE(a.transport().send(b->id(), GroupId(1), append_message(1, 2, 0)));
  ASSERT_TRUE(b->wait_received(1));
  b.reset();  // broker 2 goes away
  ASSERT_TRUE(eventually([&] { return a.unreachable_count(BrokerId(2)) > 0; }))
      << "the unreachable callback must fire";
  // Messages sent while it is down wait in the bounded queue (or are lost: Raft retries).
  for (std::uint64_t i = 1; i <= 10; ++i) a.transport().send(BrokerId(2), GroupId(1), append_message(1, 2, i));
  b = std::make_unique<Node>(BrokerId(2), port);
  ASSERT_EQ(b->port(), port);
  ASSERT_TRUE(eventually([&] { return a.transport().stats().reconnects >= 1; }));
  ASSERT_TRUE(a.transport().send(b->id(), GroupId(1), append_message(1, 2, 11)));
  ASSERT_TRUE(b->wait_context(11));
  const TransportStats s = a.transport().stats();
  EXPECT_GE(s.disconnects, 1u);
  EXPECT_GE(s.unreachable_reports, 1u);
}

TEST(Transport, DeadPeerQueueStaysBoundedWhileOthersKeepReceiving) {
  TransportOptions options = fast_options(BrokerId(1));
  options.queue_messages_max = 100;
  options.queue_bytes_max = 1u << 20;
  options.message_bytes_max = 1u << 20;
  options.write_bytes_max = 1u << 20;
  options.chunk_bytes = 64u << 10;
  Node a(options);
  Node b(BrokerId(2));
  // Broker 3 "exists" at a port where nothing listens (bound then closed).
  std::uint16_t dead_port;
  {
    asio::io_context io;
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    dead_port = acceptor.local_endpoint().port();
  }
  // Broker 4 accepts TCP connections but never answers or reads (a stalled process).
  asio::io_context stall_io;
  asio::ip::tcp::acceptor stall(stall_io, {asio::ip::make_address("127.0.0.1"), 0});
  ASSERT_TRUE(a.transport().add_peer(BrokerId(3), "127.0.0.1", dead_port).is_ok());
  ASSERT_TRUE(a.transport().add_peer(BrokerId(4), "127.0.0.1", stall.local_endpoint().port()).is_ok());
  a.connect_to(b);
  constexpr std::uint64_t kMessages = 5000;
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < kMessages; ++i) {
    a.transport().send(BrokerId(3), GroupId(i % 100), append_message(1, 3, i));
    a.transport().send(BrokerId(4), GroupId(i % 100), append_message(1, 4, i));
    ASSERT_TRUE(a.transport().send(b.id(), GroupId(i % 100), append_message(1, 2, i)));
    // Broker 2's queue has the same small bound: stay within it (a live peer drains it).
    if (i % 50 == 49) {
      ASSERT_TRUE(b.wait_received(i + 1));
    }
  }
  ASSERT_TRUE(b.wait_received(kMessages));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, 5s) << "a dead peer must not slow the others down";
  for (BrokerId dead : {BrokerId(3), BrokerId(4)}) {
    const PeerStats p = *a.transport().peer_stats(dead);
    EXPECT_FALSE(p.connected);
    EXPECT_LE(p.queued_messages, options.queue_messages_max);
    EXPECT_LE(p.queued_bytes, options.queue_bytes_max);
    EXPECT_EQ(p.dropped, kMessages - p.queued_messages) << "broker " << dead.value();
  }
  EXPECT_EQ(a.transport().stats().dropped_queue_full, 2 * (kMessages - options.queue_messages_max));
  EXPECT_EQ(a.transport().peer_stats(b.id())->dropped, 0u);
  ASSERT_TRUE(eventually([&] { return a.unreachable_count(BrokerId(3)) >= 2; }))
      << "a dead peer is retried and reported each time";
  ASSERT_TRUE(a.wait_log("cannot connect to broker 4"));  // handshake timed out
}

// ---- Raw clients that misbehave ----

class RawClient {
 public:
  explicit RawClient(std::uint16_t port) : socket_(io_) {
    socket_.connect({asio::ip::make_address("127.0.0.1"), port});
    timeval tv{5, 0};  // bounded reads: a test never hangs
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  void write(BufferView bytes) { asio::write(socket_, asio::buffer(bytes.data(), bytes.size())); }
  void hello(BrokerId source, BrokerId target, const std::string& cluster = kCluster,
             std::uint16_t version = kMaxProtocolVersion) {
    Buffer out;
    encode_hello(Hello{version, source, target, cluster}, out);
    write(out);
  }
  std::optional<HelloAck> read_ack() {
    Buffer ack(kHelloAckSize);
    asio::error_code error;
    asio::read(socket_, asio::buffer(ack.data(), ack.size()), error);
    if (error) return std::nullopt;
    auto decoded = decode_hello_ack(ack);
    if (!decoded.has_value()) return std::nullopt;
    return *decoded;
  }
  // True if the server closed the connection (EOF or reset) within the receive timeout.
  bool closed_by_server() {
    std::uint8_t byte;
    asio::error_code error;
    socket_.read_some(asio::buffer(&byte, 1), error);
    return error == asio::error::eof || error == asio::error::connection_reset;
  }

 private:
  asio::io_context io_;
  asio::ip::tcp::socket socket_;
};

Buffer batch_frame(GroupId group, const Message& m) {
  Buffer out;
  const std::size_t frame = begin_frame(out);
  std::size_t count_offset;
  begin_batch(out, &count_offset);
  append_batch_item(out, group, m);
  finish_batch(out, count_offset, 1);
  finish_frame(out, frame, FrameType::kMessageBatch);
  return out;
}

TEST(Transport, BadPeersAreDisconnectedAndGoodPeersContinue) {
  Node a(BrokerId(1)), b(BrokerId(2));
  a.connect_to(b);
  ASSERT_TRUE(a.transport().send(b.id(), GroupId(1), append_message(1, 2, 0)));
  ASSERT_TRUE(b.wait_received(1));
  {
    RawClient garbage(b.port());
    garbage.write(as_bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_TRUE(garbage.closed_by_server());
    EXPECT_TRUE(b.wait_log("not a raftmq peer: bad hello magic"));
  }
  {
    RawClient future(b.port());
    future.hello(BrokerId(9), b.id(), kCluster, 99);
    auto ack = future.read_ack();
    ASSERT_TRUE(ack.has_value());
    EXPECT_EQ(ack->status, HelloStatus::kUnsupportedVersion);
    EXPECT_EQ(ack->version, kMaxProtocolVersion);
    EXPECT_TRUE(future.closed_by_server());
    EXPECT_TRUE(b.wait_log("unsupported protocol version 99 (we speak 1..1)"));
  }
  {
    RawClient stranger(b.port());
    stranger.hello(BrokerId(9), b.id(), "other-cluster");
    auto ack = stranger.read_ack();
    ASSERT_TRUE(ack.has_value());
    EXPECT_EQ(ack->status, HelloStatus::kClusterMismatch);
    EXPECT_TRUE(stranger.closed_by_server());
  }
  {
    RawClient lost(b.port());
    lost.hello(BrokerId(9), BrokerId(5));
    EXPECT_EQ(lost.read_ack()->status, HelloStatus::kWrongTarget);
  }
  {
    RawClient oversized(b.port());
    oversized.hello(BrokerId(9), b.id());
    EXPECT_EQ(oversized.read_ack()->status, HelloStatus::kOk);
    Buffer header(kFrameHeaderSize);
    le::encode_u32(header.data() + 4, 0x7fffffff);
    header[8] = static_cast<std::uint8_t>(FrameType::kMessageBatch);
    oversized.write(header);
    EXPECT_TRUE(oversized.closed_by_server());
    EXPECT_TRUE(b.wait_log("exceeds the limit of 67108864"));
  }
  {
    RawClient flipped(b.port());
    flipped.hello(BrokerId(9), b.id());
    EXPECT_EQ(flipped.read_ack()->status, HelloStatus::kOk);
    Buffer frame = batch_frame(GroupId(1), append_message(9, 2, 0));
    frame[frame.size() - 3] ^= 0x10;
    flipped.write(frame);
    EXPECT_TRUE(flipped.closed_by_server());
    EXPECT_TRUE(b.wait_log("crc mismatch"));
  }
  {
    RawClient truncated(b.port());
    truncated.hello(BrokerId(9), b.id());
    EXPECT_EQ(truncated.read_ack()->status, HelloStatus::kOk);
    Buffer frame = batch_frame(GroupId(1), append_message(9, 2, 0));
    truncated.write(frame.view(0, frame.size() / 2));
  }  // closed mid-frame
  EXPECT_TRUE(b.wait_log("truncated frame"));
  {
    // A well-formed frame whose message has an impossible entry count.
    RawClient hostile(b.port());
    hostile.hello(BrokerId(9), b.id());
    EXPECT_EQ(hostile.read_ack()->status, HelloStatus::kOk);
    Buffer body;
    le::put_u32(body, 1);
    le::put_u64(body, 1);
    Buffer message;
    encode_message(heartbeat(MessageType::kVote, 1), message);
    le::encode_u32(message.data() + kMessageFixedSize - 4, 0xffffffff);
    le::put_u32(body, static_cast<std::uint32_t>(message.size()));
    body.append(message.view());
    Buffer frame;
    append_frame(frame, FrameType::kMessageBatch, body);
    hostile.write(frame);
    EXPECT_TRUE(hostile.closed_by_server());
    EXPECT_TRUE(b.wait_log("bad MessageBatch frame"));
  }
  EXPECT_GE(b.transport().stats().decode_errors, 5u);
  EXPECT_GE(b.transport().stats().inbound_refused, 3u);
  // The good peer never noticed.
  for (std::uint64_t i = 1; i <= 100; ++i) {
    ASSERT_TRUE(a.transport().send(b.id(), GroupId(i), append_message(1, 2, i)));
  }
  ASSERT_TRUE(b.wait_received(101));
  EXPECT_EQ(a.transport().stats().disconnects, 0u);
  for (const Received& r : b.received()) EXPECT_EQ(r.from, BrokerId(1));
}

TEST(Transport, PeerThatStopsReadingHitsTheWriteTimeoutAndIsRetried) {
  // A "broker 2" that completes the handshake and then never reads (a stalled process).
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  std::atomic<int> accepted{0};
  std::atomic<bool> done{false};
  std::thread server([&] {
    std::vector<std::unique_ptr<asio::ip::tcp::socket>> held;
    acceptor.non_blocking(true);
    while (!done) {
      auto socket = std::make_unique<asio::ip::tcp::socket>(io);
      asio::error_code error;
      acceptor.accept(*socket, error);
      if (error) {
        std::this_thread::sleep_for(2ms);
        continue;
      }
      socket->non_blocking(false);
      Buffer hello(kHelloPrefixSize + kHelloFixedBodySize + kCluster.size() + 4);
      asio::read(*socket, asio::buffer(hello.data(), hello.size()), error);
      Buffer ack;
      encode_hello_ack(HelloAck{kMaxProtocolVersion, HelloStatus::kOk, BrokerId(2)}, ack);
      asio::write(*socket, asio::buffer(ack.data(), ack.size()), error);
      ++accepted;
      held.push_back(std::move(socket));  // never read again
    }
  });
  TransportOptions o = fast_options(BrokerId(1));
  o.write_timeout = 300ms;
  Node a(o);
  ASSERT_TRUE(a.transport().add_peer(BrokerId(2), "127.0.0.1", acceptor.local_endpoint().port()).is_ok());
  // 64 MiB: far more than the loopback socket buffers hold.
  for (std::uint64_t i = 0; i < 256; ++i) {
    ASSERT_TRUE(a.transport().send(BrokerId(2), GroupId(i), append_message(1, 2, i, 256u << 10)));
  }
  EXPECT_TRUE(eventually([&] { return a.transport().stats().write_timeouts >= 1; }));
  EXPECT_TRUE(eventually([&] { return accepted.load() >= 2; })) << "reconnected after the timeout";
  EXPECT_TRUE(a.wait_log("lost connection to broker 2"));
  EXPECT_GE(a.transport().stats().dropped_connection_lost, 1u);
  EXPECT_GE(a.unreachable_count(BrokerId(2)), 1u);
  a.transport().stop();
  done = true;
  server.join();
}

TEST(Transport, InboundConnectionLimitAndReplacedConnections) {
  TransportOptions o = fast_options(BrokerId(2));
  o.inbound_connections_max = 2;
  Node b(o);
  auto port = b.transport().listen("127.0.0.1", 0);
  ASSERT_TRUE(port.has_value());
  RawClient first(*port);
  first.hello(BrokerId(5), BrokerId(2));
  EXPECT_EQ(first.read_ack()->status, HelloStatus::kOk);
  // The same broker connecting again replaces its older connection.
  RawClient second(*port);
  second.hello(BrokerId(5), BrokerId(2));
  EXPECT_EQ(second.read_ack()->status, HelloStatus::kOk);
  EXPECT_TRUE(first.closed_by_server());
  EXPECT_TRUE(b.wait_log("replaced by a newer connection"));
  RawClient third(*port);
  third.hello(BrokerId(6), BrokerId(2));
  EXPECT_EQ(third.read_ack()->status, HelloStatus::kOk);
  RawClient fourth(*port);  // two are open: over the limit
  fourth.hello(BrokerId(7), BrokerId(2));
  EXPECT_EQ(fourth.read_ack()->status, HelloStatus::kTooManyConnections);
  EXPECT_TRUE(fourth.closed_by_server());
  // The connections within the limit still deliver.
  second.write(batch_frame(GroupId(3), append_message(5, 2, 0)));
  third.write(batch_frame(GroupId(4), append_message(6, 2, 1)));
  ASSERT_TRUE(b.wait_received(2));
  std::set<std::int32_t> senders;
  for (const Received& r : b.received()) senders.insert(r.from.value());
  EXPECT_EQ(senders, (std::set<std::int32_t>{5, 6}));
}

TEST(Transport, IdleInboundConnectionIsClosedButKeepaliveHoldsARealLink) {
  TransportOptions ob = fast_options(BrokerId(2));
  ob.idle_timeout = 300ms;
  ob.keepalive_interval = 50ms;
  Node b(ob);
  auto port = b.transport().listen("127.0.0.1", 0);
  ASSERT_TRUE(port.has_value());
  TransportOptions oa = fast_options(BrokerId(1));
  oa.keepalive_interval = 50ms;
  Node a(oa);
  ASSERT_TRUE(a.transport().add_peer(BrokerId(2), "127.0.0.1", *port).is_ok());
  RawClient silent(*port);
  silent.hello(BrokerId(9), BrokerId(2));
  EXPECT_EQ(silent.read_ack()->status, HelloStatus::kOk);
  EXPECT_TRUE(silent.closed_by_server());
  EXPECT_TRUE(b.wait_log("idle for 300 ms"));
  std::this_thread::sleep_for(400ms);  // longer than the idle timeout
  ASSERT_TRUE(a.transport().send(BrokerId(2), GroupId(1), append_message(1, 2, 0)));
  ASSERT_TRUE(b.wait_received(1));
  EXPECT_EQ(a.transport().stats().disconnects, 0u);
  EXPECT_EQ(a.transport().stats().connects_succeeded, 1u);
  EXPECT_GE(b.transport().stats().idle_timeouts, 1u);
}

TEST(Transport, LargeSnapshotTravelsInChunksBesideOtherTraffic) {
  Node a(BrokerId(1)), b(BrokerId(2));
  a.connect_to(b);
  Message snap;
  snap.type = MessageType::kSnapshot;
  snap.from = NodeId(1);
  snap.to = NodeId(2);
  snap.term = Term(9);
  raft::Snapshot s;
  s.meta.index = LogIndex(500);
  s.meta.term = Term(8);
  s.meta.conf_state.voters = {NodeId(1), NodeId(2), NodeId(3)};
  Buffer data(5u << 20);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 7 + (i >> 12));
  s.data = SharedBuffer(std::move(data));
  snap.snapshot = s;
  ASSERT_TRUE(a.transport().send(b.id(), GroupId(42), snap));
  for (std::uint64_t g = 0; g < 50; ++g) {
    ASSERT_TRUE(a.transport().send(b.id(), GroupId(g), heartbeat(MessageType::kHeartbeat, g)));
  }
  ASSERT_TRUE(b.wait_received(51));
  bool found = false;
  for (const Received& r : b.received()) {
    if (r.message.type == MessageType::kSnapshot) {
      found = true;
      EXPECT_EQ(r.group, GroupId(42));
      EXPECT_EQ(r.message, snap);
    }
  }
  EXPECT_TRUE(found);
  EXPECT_GE(a.transport().stats().chunks_sent, 5u);
  EXPECT_EQ(b.transport().stats().chunks_received, a.transport().stats().chunks_sent);
}

TEST(Transport, CallbacksMaySendAndRemovePeers) {
  // Broker 2 echoes every message back from its on_message callback, and broker 1 forgets an
  // unreachable peer from its on_unreachable callback: both run on the transport thread.
  std::atomic<Transport*> b_transport{nullptr};
  std::atomic<int> echoed{0};
  TransportOptions ob = fast_options(BrokerId(2));
  Transport b(ob, TransportCallbacks{[&](BrokerId from, GroupId group, Message m) {
                                       std::swap(m.from, m.to);
                                       if (b_transport.load()->send(from, group, std::move(m))) ++echoed;
                                     },
                                     {}, [](LogLevel, std::string_view) {}});
  b_transport = &b;
  ASSERT_TRUE(b.start().is_ok());
  auto b_port = b.listen("127.0.0.1", 0);
  ASSERT_TRUE(b_port.has_value());
  std::atomic<Transport*> a_transport{nullptr};
  std::mutex mu;
  std::vector<Message> replies;
  Transport a(fast_options(BrokerId(1)),
              TransportCallbacks{[&](BrokerId, GroupId, Message m) {
                                   std::lock_guard lock(mu);
                                   replies.push_back(std::move(m));
                                 },
                                 [&](BrokerId peer) { a_transport.load()->remove_peer(peer); },
                                 [](LogLevel, std::string_view) {}});
  a_transport = &a;
  ASSERT_TRUE(a.start().is_ok());
  auto a_port = a.listen("127.0.0.1", 0);
  ASSERT_TRUE(a_port.has_value());
  ASSERT_TRUE(b.add_peer(BrokerId(1), "127.0.0.1", *a_port).is_ok());
  ASSERT_TRUE(a.add_peer(BrokerId(2), "127.0.0.1", *b_port).is_ok());
  ASSERT_TRUE(a.add_peer(BrokerId(3), "127.0.0.1", 1).is_ok());  // nothing listens on port 1
  for (std::uint64_t i = 0; i < 100; ++i) {
    ASSERT_TRUE(a.send(BrokerId(2), GroupId(i), append_message(1, 2, i)));
  }
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return replies.size() == 100;
  }));
  EXPECT_EQ(echoed.load(), 100);
  EXPECT_EQ(replies[7].from, NodeId(2));
  ASSERT_TRUE(eventually([&] { return !a.peer_stats(BrokerId(3)).has_value(); }))
      << "the unreachable callback removed broker 3";
  a.stop();
  b.stop();
}

TEST(Transport, SendToUnknownPeerOrTooLargeIsRefusedAndCounted) {
  TransportOptions o = fast_options(BrokerId(1));
  o.message_bytes_max = 64u << 10;
  o.chunk_bytes = 16u << 10;
  o.write_bytes_max = 64u << 10;
  o.queue_bytes_max = 64u << 10;
  Node a(o);
  EXPECT_FALSE(a.transport().send(BrokerId(7), GroupId(1), append_message(1, 7, 0)));
  EXPECT_EQ(a.transport().stats().dropped_unknown_peer, 1u);
  ASSERT_TRUE(a.transport().add_peer(BrokerId(7), "127.0.0.1", 1).is_ok());
  EXPECT_FALSE(a.transport().send(BrokerId(7), GroupId(1), append_message(1, 7, 0, 100u << 10)));
  EXPECT_EQ(a.transport().stats().dropped_too_large, 1u);
  EXPECT_FALSE(a.transport().add_peer(BrokerId(1), "127.0.0.1", 1).is_ok()) << "self";
}

TEST(Transport, OptionsAreValidated) {
  TransportOptions o = fast_options(BrokerId(1));
  EXPECT_TRUE(o.validate().is_ok());
  TransportOptions bad = o;
  bad.chunk_bytes = bad.frame_bytes_max;
  EXPECT_FALSE(bad.validate().is_ok());
  bad = o;
  bad.cluster_id = std::string(300, 'x');
  EXPECT_FALSE(bad.validate().is_ok());
  bad = o;
  bad.keepalive_interval = bad.idle_timeout;
  EXPECT_FALSE(bad.validate().is_ok());
  bad = o;
  bad.queue_bytes_max = bad.message_bytes_max - 1;
  EXPECT_FALSE(bad.validate().is_ok());
  Transport t(bad, {});
  EXPECT_EQ(t.start().code(), ErrorCode::kInvalidArgument);
}

TEST(Transport, StopWhileSendingIsClean) {
  for (int round = 0; round < 3; ++round) {
    auto a = std::make_unique<Node>(BrokerId(1));
    auto b = std::make_unique<Node>(BrokerId(2));
    a->connect_to(*b);
    b->connect_to(*a);
    std::atomic<bool> go{true};
    std::vector<std::thread> senders;
    for (int t = 0; t < 3; ++t) {
      senders.emplace_back([&, t] {
        std::uint64_t i = 0;
        while (go.load()) {
          a->transport().send(BrokerId(2), GroupId(i % 64), append_message(1, 2, i, 512));
          b->transport().send(BrokerId(1), GroupId(i % 64), heartbeat(MessageType::kHeartbeat, i));
          if (++i % 256 == 0) std::this_thread::yield();
          if (t == 0 && i == 2000) break;
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + 20 * round));
    // Stop one side while both are busy, then the other, while the senders keep going.
    if (round % 2 == 0) b->transport().stop(); else a->transport().stop();
    std::this_thread::sleep_for(20ms);
    a->transport().stop();
    b->transport().stop();
    EXPECT_FALSE(a->transport().send(BrokerId(2), GroupId(1), append_message(1, 2, 0)));
    go = false;
    for (auto& s : senders) s.join();
    a.reset();
    b.reset();
  }
}

// A restarted peer that connects to us is reconnected at once, not after our link's back-off
// (tests/chaos/FINDINGS.md F2: meanwhile the restarted broker heard no leader).
TEST(Transport, PeerThatConnectsToUsCutsOurReconnectBackoffShort) {
  TransportOptions slow = fast_options(BrokerId(1));
  slow.backoff_initial = 4000ms;  // one failure: the next attempt in 2-4 s
  slow.backoff_max = 8000ms;
  Node a(slow);
  auto port_of_b = [] {
    Node probe(BrokerId(9));  // an ephemeral port nobody listens on once probe is gone
    return probe.port();
  }();
  ASSERT_TRUE(a.transport().add_peer(BrokerId(2), "127.0.0.1", port_of_b).is_ok());
  ASSERT_TRUE(eventually([&] { return a.unreachable_count(BrokerId(2)) > 0; }));
  // a's link to 2 now waits 2-4 s. Broker 2 starts on that port and connects to a.
  auto listening_a = a.transport().listen("127.0.0.1", 0);
  ASSERT_TRUE(listening_a.has_value());
  const auto started = std::chrono::steady_clock::now();
  Node b(BrokerId(2), port_of_b);
  ASSERT_EQ(b.port(), port_of_b);
  ASSERT_TRUE(b.transport().add_peer(BrokerId(1), "127.0.0.1", *listening_a).is_ok());
  ASSERT_TRUE(eventually([&] {
    auto s = a.transport().peer_stats(BrokerId(2));
    return s && s->connected;
  }, 1500ms)) << "a's link to 2 still waiting out its back-off";
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1500ms);
  ASSERT_TRUE(a.transport().send(BrokerId(2), GroupId(1), append_message(1, 2, 7)));
  EXPECT_TRUE(b.wait_context(7));
}

}  // namespace
}  // namespace mq::transport

namespace mq::transport {
namespace {

// An idle link: the sending thread writes the message to the socket itself (no hand-over to
// the transport thread on the path of a single produce); a burst right after is queued and
// batched by the transport thread as before, and the peer sees every message once, in order.
TEST(Transport, IdleLinkWritesDirectlyAndBurstsStayBatchedAndOrdered) {
  Node a(BrokerId(1)), b(BrokerId(2));
  a.connect_to(b);
  ASSERT_TRUE(eventually([&] { return a.transport().peer_stats(b.id())->connected; }));
  // The transport thread opens the direct path after its first flush on the new connection.
  std::uint64_t sequence = 0;
  ASSERT_TRUE(eventually([&] {
    EXPECT_TRUE(a.transport().send(b.id(), GroupId(7), append_message(1, 2, sequence++)));
    std::this_thread::sleep_for(5ms);
    return a.transport().stats().direct_writes >= 1;
  }));
  ASSERT_TRUE(b.wait_received(sequence));
  const TransportStats before = a.transport().stats();
  constexpr std::uint64_t kBurst = 2000;
  for (std::uint64_t i = 0; i < kBurst; ++i) {
    ASSERT_TRUE(a.transport().send(b.id(), GroupId(7), append_message(1, 2, sequence++)));
  }
  ASSERT_TRUE(b.wait_received(sequence));
  std::uint64_t expect = 0;
  for (const Received& r : b.received()) {
    EXPECT_EQ(r.message.context, expect);
    EXPECT_EQ(r.message, append_message(1, 2, expect));
    ++expect;
  }
  EXPECT_EQ(expect, sequence);
  ASSERT_TRUE(eventually([&] { return a.transport().stats().messages_sent == sequence; }));
  const TransportStats after = a.transport().stats();
  // At most one direct write per transport-thread flush: the burst is mostly batched.
  EXPECT_LT(after.direct_writes - before.direct_writes, kBurst / 2);
  EXPECT_LT(after.frames_sent - before.frames_sent, kBurst);
  EXPECT_EQ(after.decode_errors, 0u);
}

}  // namespace
}  // namespace mq::transport
