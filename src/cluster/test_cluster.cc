#include "cluster/test_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

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

}  // namespace mq::cluster::testing
