// transport_bench: messages/s and MB/s between two Transports over loopback, next to the
// machine's limit measured in the same run (one raw TCP stream over loopback, 256 KiB writes).
//
//   build/bin/transport_bench [--messages N] [--payload BYTES] [--entries K] [--groups G]
//                             [--window W]
//
// Broker 1 sends N MsgApp messages, each with K entries of BYTES bytes, round-robin over G
// groups, to broker 2, keeping at most W messages in flight (sent, not yet delivered) so the
// bounded queue never drops; the clock runs from the first send to the last delivery.
#include <sys/resource.h>

#include <asio.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "transport/transport.h"

namespace {

using namespace mq;
using namespace mq::transport;
using Clock = std::chrono::steady_clock;

struct Args {
  std::uint64_t messages = 200000;
  std::size_t payload = 1024;
  std::size_t entries = 1;
  std::uint64_t groups = 1000;
  std::uint64_t window = 8192;
  std::uint64_t write_bytes = 1u << 20;  // TransportOptions::write_bytes_max
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::uint64_t v = std::strtoull(argv[i + 1], nullptr, 10);
    if (flag == "--messages") a.messages = v;
    else if (flag == "--payload") a.payload = v;
    else if (flag == "--entries") a.entries = v;
    else if (flag == "--groups") a.groups = v;
    else if (flag == "--window") a.window = v;
    else if (flag == "--write-bytes") a.write_bytes = v;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  if (a.messages == 0 || a.entries == 0 || a.groups == 0 || a.window == 0) {
    std::fprintf(stderr, "every value must be positive\n");
    std::exit(2);
  }
  // Keep the in-flight bytes well inside the peer queue's byte bound (no drops).
  const std::uint64_t message_bytes = 70 + a.entries * (21 + a.payload);
  a.window = std::max<std::uint64_t>(1, std::min(a.window, (32u << 20) / message_bytes));
  return a;
}

double cpu_seconds();

struct RawResult {
  double mb_per_s = 0;
  double mb_per_cpu_s = 0;
};

// The machine's limit: one TCP stream over loopback, 256 KiB writes, for ~1 s.
RawResult raw_loopback() {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket reader(io);
  asio::ip::tcp::socket writer(io);
  writer.connect(acceptor.local_endpoint());
  acceptor.accept(reader);
  std::atomic<bool> done{false};
  std::uint64_t received = 0;
  std::thread reader_thread([&] {
    std::vector<char> buffer(1 << 20);
    asio::error_code error;
    while (true) {
      const std::size_t n = reader.read_some(asio::buffer(buffer), error);
      if (error) break;
      received += n;
    }
  });
  std::vector<char> chunk(256 << 10, 'x');
  const auto start = Clock::now();
  const double cpu_start = cpu_seconds();
  while (Clock::now() - start < std::chrono::seconds(1)) asio::write(writer, asio::buffer(chunk));
  writer.shutdown(asio::ip::tcp::socket::shutdown_send);
  reader_thread.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = cpu_seconds() - cpu_start;
  done = true;
  return {static_cast<double>(received) / seconds / 1e6, static_cast<double>(received) / cpu / 1e6};
}

// User + system CPU seconds of the whole process so far.
double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

raft::Message make_message(const Args& a, const SharedBuffer& payload, std::uint64_t i) {
  raft::Message m;
  m.type = raft::MessageType::kAppend;
  m.from = NodeId(1);
  m.to = NodeId(2);
  m.term = Term(1);
  m.index = LogIndex(i * a.entries);
  m.log_term = Term(1);
  m.commit = LogIndex(i * a.entries);
  for (std::size_t e = 0; e < a.entries; ++e) {
    raft::Entry entry;
    entry.term = Term(1);
    entry.index = LogIndex(i * a.entries + e + 1);
    entry.payload = payload;  // shared: the bench measures the transport, not allocation
    m.entries.push_back(entry);
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  std::atomic<std::uint64_t> delivered{0};
  TransportOptions ob;
  ob.self = BrokerId(2);
  ob.cluster_id = "bench";
  ob.write_bytes_max = std::max<std::uint64_t>(a.write_bytes, ob.chunk_bytes);
  Transport b(ob, TransportCallbacks{[&](BrokerId, GroupId, raft::Message) {
                                       delivered.fetch_add(1, std::memory_order_relaxed);
                                     },
                                     {}, {}});
  TransportOptions oa = ob;
  oa.self = BrokerId(1);
  Transport t(oa, TransportCallbacks{});
  if (!b.start().is_ok() || !t.start().is_ok()) return 1;
  auto port = b.listen("127.0.0.1", 0);
  if (!port.has_value()) {
    std::fprintf(stderr, "%s\n", port.error().to_string().c_str());
    return 1;
  }
  if (!t.add_peer(BrokerId(2), "127.0.0.1", *port).is_ok()) return 1;
  while (!t.peer_stats(BrokerId(2))->connected) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  const SharedBuffer payload(std::string(a.payload, 'p'));
  const auto start = Clock::now();
  const double cpu_start = cpu_seconds();
  for (std::uint64_t i = 0; i < a.messages; ++i) {
    while (i - delivered.load(std::memory_order_relaxed) >= a.window) std::this_thread::yield();
    t.send(BrokerId(2), GroupId(i % a.groups), make_message(a, payload, i));
  }
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (delivered.load() < a.messages && Clock::now() < deadline) std::this_thread::yield();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = cpu_seconds() - cpu_start;
  const TransportStats s = t.stats();
  t.stop();
  b.stop();
  if (delivered.load() < a.messages) {
    std::fprintf(stderr, "only %llu of %llu messages delivered (dropped %llu)\n",
                 static_cast<unsigned long long>(delivered.load()),
                 static_cast<unsigned long long>(a.messages),
                 static_cast<unsigned long long>(s.dropped_queue_full));
    return 1;
  }
  const double payload_mb = static_cast<double>(a.messages * a.entries * a.payload) / 1e6;
  const double wire_mb = static_cast<double>(s.bytes_sent) / 1e6;
  const RawResult raw = raw_loopback();
  std::printf("transport_bench: %llu messages x %zu entries x %zu B over %llu groups, window %llu\n",
              static_cast<unsigned long long>(a.messages), a.entries, a.payload,
              static_cast<unsigned long long>(a.groups), static_cast<unsigned long long>(a.window));
  std::printf("  %.3f s  %.0f messages/s  %.0f entries/s  payload %.1f MB/s  wire %.1f MB/s\n",
              seconds, a.messages / seconds, a.messages * a.entries / seconds, payload_mb / seconds,
              wire_mb / seconds);
  std::printf("  CPU (both brokers and the sending thread, user+sys): %.3f s, %.2f us/message, "
              "%.0f MB payload per CPU-second\n",
              cpu, cpu * 1e6 / static_cast<double>(a.messages), payload_mb / cpu);
  std::printf("  %llu writes, %llu frames, %.1f messages/write, drops %llu\n",
              static_cast<unsigned long long>(s.writes),
              static_cast<unsigned long long>(s.frames_sent),
              static_cast<double>(s.messages_sent) / static_cast<double>(s.writes),
              static_cast<unsigned long long>(s.dropped_queue_full));
  std::printf("  raw loopback TCP (one stream, 256 KiB writes): %.1f MB/s, %.0f MB per CPU-second\n",
              raw.mb_per_s, raw.mb_per_cpu_s);
  std::printf("  transport / raw: wall %.2f, per CPU-second (wire bytes) %.2f\n",
              wire_mb / seconds / raw.mb_per_s, wire_mb / cpu / raw.mb_per_cpu_s);
  return 0;
}
