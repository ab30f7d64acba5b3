// Test harness: in-process brokers, each a cluster::Node on its own io_context thread, on
// loopback with ephemeral ports and temporary data directories. Test-only.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cluster/node.h"
#include "storage/memory_file_system.h"

namespace mq::cluster::testing {

// A free loopback TCP port (bound then released; a tiny race that tests accept).
std::uint16_t free_port();
std::string make_temp_dir(const std::string& prefix);

class TestBroker {
 public:
  explicit TestBroker(NodeConfig config);
  ~TestBroker();

  Status start();
  // Stops as a crash would (no leadership transfer, no checkpoint) and joins the thread.
  void kill();
  // Graceful shutdown (transfer leadership), then joins the thread.
  void shutdown();
  bool running() const { return node_ != nullptr; }

  // Runs fn on the broker's loop and returns its result.
  template <typename F>
  auto call(F fn) -> decltype(fn(std::declval<Node&>())) {
    using R = decltype(fn(std::declval<Node&>()));
    std::promise<R> promise;
    auto future = promise.get_future();
    asio::post(*io_, [&] {
      if constexpr (std::is_void_v<R>) {
        fn(*node_);
        promise.set_value();
      } else {
        promise.set_value(fn(*node_));
      }
    });
    return future.get();
  }
  // Runs an asynchronous operation (it calls `reply` on the loop) and waits for the reply.
  template <typename T>
  T call_async(std::function<void(Node&, std::function<void(T)>)> start) {
    auto promise = std::make_shared<std::promise<T>>();
    auto future = promise->get_future();
    asio::post(*io_, [&, promise] { start(*node_, [promise](T value) { promise->set_value(std::move(value)); }); });
    return future.get();
  }

  const NodeConfig& config() const { return config_; }
  Node& node_unsafe() { return *node_; }

 private:
  void join();
  NodeConfig config_;
  std::unique_ptr<asio::io_context> io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
  std::unique_ptr<Node> node_;
  std::thread thread_;
};

// Polls `predicate` every 10 ms until it holds or `timeout` passes.
bool wait_until(std::function<bool()> predicate, std::chrono::milliseconds timeout);

// The running broker among `brokers` that hosts the ready leader of topic/p, waiting up to
// `timeout` for one; nullptr if none by then.
TestBroker* wait_partition_leader(const std::vector<std::unique_ptr<TestBroker>>& brokers,
                                  const std::string& topic, std::int32_t p,
                                  std::chrono::milliseconds timeout);

// Every committed, non-control record of topic/partition, read from this broker's replica
// (its leader's, for a leader): (offset, value) pairs in offset order.
std::vector<std::pair<std::int64_t, std::string>> read_committed(TestBroker& b,
                                                                 const std::string& topic,
                                                                 std::int32_t partition);

// Produces one batch to topic/partition on `b` (which must lead it) and waits for the answer.
Result<ProduceResult> produce_batch(TestBroker& b, const std::string& topic,
                                    std::int32_t partition, SharedBuffer batch,
                                    Acks acks = Acks::kAll);

// Produces one record with `value` (acks=all) to topic/partition on `b`, its leader.
Status produce_value(TestBroker& b, const std::string& topic, std::int32_t partition,
                     const std::string& value);

// Creates one topic through `b` (the controller, or forwarded by it) and waits for the result.
std::vector<AdminResult> create_topic(TestBroker& b, const std::string& name, int partitions,
                                      int replication_factor,
                                      std::map<std::string, std::string> configs = {});

// The leader of topic/p in `b`'s metadata, or -1 (also while Metadata names only the replica
// expected to win an election under way: PartitionInfo::leader_expected).
BrokerId metadata_leader(TestBroker& b, const std::string& topic, std::int32_t p);

// A fixture of n in-process brokers with ids 0..n-1 on loopback (every one a controller voter),
// each with its data directory under one temporary root removed at the end.
class ClusterFixture : public ::testing::Test {
 protected:
  // Starts the brokers; `tweak` edits each configuration before its broker starts.
  void make(int n, std::function<void(NodeConfig&)> tweak = {});
  void TearDown() override;

  // The broker that currently leads the controller (and applied its term's no-op), or null.
  TestBroker* controller_leader();
  TestBroker* wait_controller(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The broker that currently leads topic/p (hosts it as leader), or null.
  TestBroker* partition_leader(const std::string& topic, std::int32_t p);
  TestBroker* wait_partition_leader(const std::string& topic, std::int32_t p,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Status of the replica of topic/p hosted on `b`, if it hosts one.
  static std::optional<PartitionStatus> replica_status(TestBroker& b, const std::string& topic,
                                                       std::int32_t p);
  // The controller group's membership as `b` applied it.
  static raft::ConfState controller_conf(TestBroker& b) {
    return b.call([](Node& n) { return n.controller()->node().conf_state(); });
  }
  static bool has_node(const std::vector<NodeId>& v, NodeId n) {
    return std::find(v.begin(), v.end(), n) != v.end();
  }

  std::string root_;
  std::vector<std::unique_ptr<TestBroker>> brokers_;
};

// A ClusterFixture whose brokers keep their data (logs, controller, ledger) in in-memory file
// systems the test can fill, damage or crash: fs_[id] is broker id's. They outlive the brokers.
class MemoryFsClusterFixture : public ClusterFixture {
 protected:
  void make_on_memory(int n, std::function<void(NodeConfig&)> tweak = {});
  void TearDown() override;
  // Re-open stopped replicas quickly (100-400 ms back-off, 1 MiB free-space gate).
  static void fast_replica_recovery(NodeConfig& c);

  std::vector<std::unique_ptr<storage::MemoryFileSystem>> fs_;
};

// The synced end the sync ledger of the broker whose data directory is `data_dir` records for
// `key` (a group id; 0 the controller group), read from `fs` with the broker stopped.
Result<std::optional<LogIndex>> ledger_synced_end(storage::FileSystem& fs,
                                                  const std::string& data_dir, std::uint64_t key);

// Position of entry `index` in a segment file of `fs` (walking the entry headers), if there.
std::optional<std::uint64_t> entry_position(storage::MemoryFileSystem& fs,
                                            const std::string& segment, LogIndex index);

}  // namespace mq::cluster::testing
