#include "cluster/test_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "base/assert.h"
#include "protocol/record_batch.h"

namespace mq::cluster::testing {

std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  MQ_ASSERT(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  MQ_ASSERT(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  MQ_ASSERT(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string make_temp_dir(const std::string& prefix) {
  std::string templ = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
  char* made = ::mkdtemp(templ.data());
  MQ_ASSERT(made != nullptr);
  return templ;
}

TestBroker::TestBroker(NodeConfig config) : config_(std::move(config)) {}

TestBroker::~TestBroker() {
  if (running()) kill();
}

Status TestBroker::start() {
  MQ_ASSERT(!running());
  io_ = std::make_unique<asio::io_context>();
  guard_.emplace(io_->get_executor());
  node_ = std::make_unique<Node>(*io_, config_);
  thread_ = std::thread([this] { io_->run(); });
  Status started = call([](Node& n) { return n.start(); });
  if (!started.is_ok()) kill();
  return started;
}

void TestBroker::join() {
  guard_.reset();
  io_->stop();
  thread_.join();
  node_.reset();
  io_.reset();
}

void TestBroker::kill() {
  call([](Node& n) { n.stop(); });
  join();
}

void TestBroker::shutdown() {
  auto promise = std::make_shared<std::promise<void>>();
  auto future = promise->get_future();
  asio::post(*io_, [this, promise] { node_->shutdown([promise] { promise->set_value(); }); });
  future.get();
  join();
}

bool wait_until(std::function<bool()> predicate, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return predicate();
}

std::vector<std::pair<std::int64_t, std::string>> read_committed(TestBroker& b,
                                                                 const std::string& topic,
                                                                 std::int32_t partition) {
  return b.call([&](Node& n) {
    std::vector<std::pair<std::int64_t, std::string>> out;
    auto p = n.local_partition(topic, partition);
    if (!p.has_value()) return out;
    KafkaOffset next = (*p)->log_start_offset();
    for (int rounds = 0; rounds < 10000 && next < (*p)->high_watermark(); ++rounds) {
      auto f = (*p)->fetch(next, 64 * 1024);
      MQ_ASSERT(f.has_value(), "%s", f.error().to_string().c_str());
      Buffer bytes;
      for (const RecordsChunk& c : f->records) {
        if (c.fd >= 0) {
          Buffer part(c.length);
          MQ_ASSERT(::pread(c.fd, part.data(), c.length, static_cast<off_t>(c.file_offset)) ==
                    static_cast<ssize_t>(c.length));
          bytes.append(part.view());
        } else {
          bytes.append(c.bytes.view());
        }
      }
      auto batches = protocol::parse_record_batches(bytes.view());
      MQ_ASSERT(batches.has_value() && !batches->empty());
      for (const auto& batch : *batches) {
        next = KafkaOffset(batch.header().last_offset() + 1);
        if (batch.header().is_control()) continue;
        auto records = batch.decode_records();
        MQ_ASSERT(records.has_value());
        for (const auto& r : records->records) {
          out.emplace_back(batch.header().base_offset + r.offset_delta,
                           std::string(as_chars(*r.value)));
        }
      }
    }
    return out;
  });
}

}  // namespace mq::cluster::testing
