// Workload: the simulated clients and operator. Clients propose writes and ReadIndex reads
// to whichever node they believe leads (stale leaders included: that is how stale reads are
// caught), an operator transfers leadership and changes the membership (add a learner,
// promote it, remove a voter, replace the leader through a joint configuration). It reports
// every acknowledged write and completed read to the checker.
//
// A write is acknowledged when the node it was proposed to applies, at the index propose()
// returned, the very payload the client sent. A read completes when the node that asked
// has received its ReadState and applied up to its index; it is served from that node's
// state machine.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "sim/cluster.h"

namespace mq::sim {

struct WorkloadOptions {
  SimTime write_interval_max_us = 20'000;  // next write after uniform [1, max]
  SimTime read_interval_max_us = 20'000;
  SimTime admin_interval_min_us = 300'000;
  SimTime admin_interval_max_us = 1'000'000;
  bool transfers = false;
  bool membership = false;
  std::uint32_t max_extra_nodes = 3;  // nodes added beyond the initial voters
  std::uint32_t min_voters = 3;
  NodeTiming joiner_timing;
};

class Workload final : public ClusterListener {
 public:
  Workload(Cluster* cluster, WorkloadOptions options);

  void start();
  // Liveness phase: no more operator actions, and no more client writes (with a capped
  // uncommitted backlog they would starve the probe's marker write); reads go on.
  void stop_admin_and_writes() {
    admin_ = false;
    writing_ = false;
  }
  // Liveness phase: keep proposing a marker to the current leader until one is acknowledged.
  void start_liveness_probe();
  bool marker_acked() const { return marker_index_ != LogIndex(0); }
  LogIndex marker_index() const { return marker_index_; }

  void on_applied(SimNode& node, const raft::Entry& entry) override;
  void on_read_state(SimNode& node, const raft::ReadState& read_state) override;
  void on_crash(SimNode& node) override;

  std::uint64_t writes_proposed() const { return writes_proposed_; }
  std::uint64_t writes_acked() const { return writes_acked_; }
  std::uint64_t reads_completed() const { return reads_completed_; }
  std::uint64_t conf_changes_proposed() const { return conf_changes_proposed_; }
  std::uint64_t transfers_requested() const { return transfers_requested_; }

 private:
  struct PendingWrite {
    std::uint64_t id = 0;
    std::uint64_t incarnation = 0;
    SharedBuffer payload;
    bool marker = false;
  };
  struct PendingRead {
    NodeId node;
    std::uint64_t incarnation = 0;
    LogIndex acked_before;
    SimTime invoked = 0;
    LogIndex read_index;
    bool has_index = false;
  };

  NodeId pick_target();
  void write_once(bool marker);
  void read_once();
  void admin_once();
  void change_membership(NodeId leader);
  void propose_change(NodeId leader, const raft::ConfChange& change, const std::string& what);
  void complete_reads(SimNode& node);
  void loop_writes();
  void loop_reads();
  void loop_admin();
  void loop_marker();

  Cluster* cluster_;
  WorkloadOptions options_;
  bool admin_ = true;
  bool writing_ = true;
  bool probing_ = false;
  std::map<std::pair<std::uint64_t, std::uint64_t>, PendingWrite> writes_;  // (node, index)
  std::map<std::uint64_t, PendingRead> reads_;                              // by context
  std::uint64_t next_write_id_ = 1;
  std::uint64_t next_read_id_ = 1;
  std::uint32_t extra_nodes_created_ = 0;
  LogIndex marker_index_;
  std::uint64_t writes_proposed_ = 0;
  std::uint64_t writes_acked_ = 0;
  std::uint64_t reads_completed_ = 0;
  std::uint64_t conf_changes_proposed_ = 0;
  std::uint64_t transfers_requested_ = 0;
};

}  // namespace mq::sim
