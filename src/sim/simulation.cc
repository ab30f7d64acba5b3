#include "sim/simulation.h"

#include <memory>

#include "base/prng.h"
#include "sim/cluster.h"
#include "sim/nemesis.h"
#include "sim/workload.h"

namespace mq::sim {

namespace {

constexpr SimTime kSafetyPhaseUs = 4'000'000;
constexpr SimTime kLivenessBoundUs = 10'000'000;     // leader + a committed write after healing
constexpr SimTime kConvergenceBoundUs = 10'000'000;  // every member applied that write
constexpr SimTime kPollUs = 50'000;
constexpr SimTime kTickUs = 10'000;
constexpr std::uint32_t kNodesMax = 8;

struct Scenario {
  std::uint32_t voters = 3;
  ClusterOptions cluster;
  std::vector<NodeTiming> timings;
  NemesisOptions nemesis;
  WorkloadOptions workload;
  std::string description;
};

std::string per_mille(std::uint32_t v) { return std::to_string(v) + "\xe2\x80\xb0"; }

NodeTiming draw_timing(Prng& prng, bool tight_clocks, bool slow_disks) {
  NodeTiming timing;
  // Skewed tick rates: each node's clock runs at its own speed. Lease reads assume bounded
  // drift (raft/config.h), so lease scenarios keep it within 1%.
  const std::uint64_t skew_per_mille = tight_clocks ? prng.range(995, 1005) : prng.range(700, 1400);
  timing.tick_us = kTickUs * skew_per_mille / 1000;
  timing.fsync_min_us = prng.range(50, 500);
  timing.fsync_max_us = timing.fsync_min_us + prng.range(500, 3'000);
  if (prng.chance(slow_disks ? 2 : 1, 4)) timing.fsync_max_us = prng.range(10'000, 30'000);  // slow
  return timing;
}

bool has_bug(const RunOptions& options, raft::Bug bug) {
  return (options.bugs & static_cast<std::uint32_t>(bug)) != 0;
}

// Raft options, replication granularity, network quality, disk faults, snapshots. Returns
// whether reads are lease-based.
bool draw_cluster(Prng& prng, const RunOptions& options, ClusterOptions& c) {
  c.election_ticks = 10;
  c.heartbeat_ticks = static_cast<std::uint32_t>(prng.range(1, 3));
  c.pre_vote = prng.chance(3, 4);
  c.check_quorum = prng.chance(3, 4);
  bool lease = c.check_quorum && prng.chance(1, 3) && options.lease_reads;
  // Point the fault mix at the mutation under test (the checkers stay the same).
  if (has_bug(options, raft::Bug::kNoCheckQuorumStepDown)) c.check_quorum = true;
  if (has_bug(options, raft::Bug::kReadWithoutLeadershipCheck)) lease = false;
  c.read_only = lease ? raft::ReadOnlyOption::kLeaseBased : raft::ReadOnlyOption::kSafe;
  c.bugs = options.bugs;
  // Replication granularity: sometimes one entry per append and a short pipeline, so that
  // followers hold partial suffixes (a new leader's no-op arrives apart from older entries).
  if (prng.chance(1, 3) || has_bug(options, raft::Bug::kCommitPreviousTermByCount)) {
    c.max_msg_bytes = 1;
    c.max_inflight_msgs = static_cast<std::uint32_t>(prng.range(1, 8));
  }
  NetworkOptions& n = c.network;
  const std::uint64_t quality = prng.uniform(3);
  n.drop_per_mille =
      quality == 0 ? 0 : static_cast<std::uint32_t>(prng.uniform(quality == 1 ? 30 : 150));
  n.duplicate_per_mille = static_cast<std::uint32_t>(prng.uniform(50));
  n.delay_min_us = prng.range(100, 1'000);
  n.delay_max_us = n.delay_min_us + prng.range(500, 10'000);
  n.long_delay_per_mille = static_cast<std::uint32_t>(prng.uniform(30));
  n.long_delay_max_us = prng.range(20'000, 200'000);
  c.torn_write_per_mille = prng.chance(1, 2) ? 500 : 0;
  c.snapshot_every_entries = prng.chance(3, 4) ? prng.range(5, 60) : 0;
  return lease;
}

void draw_faults(Prng& prng, const RunOptions& options, bool lease, NemesisOptions& f) {
  f.interval_min_us = prng.range(30'000, 100'000);
  f.interval_max_us = f.interval_min_us + prng.range(100'000, 500'000);
  f.crash_weight = static_cast<std::uint32_t>(prng.uniform(5));
  f.partition_weight = static_cast<std::uint32_t>(prng.uniform(5));
  f.pause_weight = lease ? 0 : static_cast<std::uint32_t>(prng.uniform(3));
  f.quiet_weight = 1;
  f.leader_bias_percent = static_cast<std::uint32_t>(prng.range(30, 70));
  if (prng.chance(1, 3)) {  // a supervisor that restarts crashed processes at once
    f.down_min_us = 2'000;
    f.down_max_us = 60'000;
  }
  if (has_bug(options, raft::Bug::kVoteBeforePersist) ||
      has_bug(options, raft::Bug::kLeaderCountsSelfBeforePersist)) {
    f.crash_weight = std::max<std::uint32_t>(f.crash_weight, 4);
  }
  if (has_bug(options, raft::Bug::kVoteBeforePersist)) {
    // A forgotten vote matters when a voter crashes while persisting it and is back before
    // a rival candidate's request of the same term arrives.
    f.leader_bias_percent = 10;
  }
  if (has_bug(options, raft::Bug::kNoCheckQuorumStepDown)) {
    f.partition_weight = std::max<std::uint32_t>(f.partition_weight, 3);
  }
  if (has_bug(options, raft::Bug::kCommitPreviousTermByCount)) {
    // Figure 8 needs leaders to come and go while their entries are partially replicated.
    f.crash_weight = std::max<std::uint32_t>(f.crash_weight, 3);
    f.partition_weight = std::max<std::uint32_t>(f.partition_weight, 3);
    f.leader_bias_percent = 80;
    f.interval_max_us = f.interval_min_us + 150'000;
  }
}

std::string describe_scenario(const Scenario& s, bool lease) {
  const ClusterOptions& c = s.cluster;
  const NetworkOptions& n = c.network;
  const NemesisOptions& f = s.nemesis;
  const WorkloadOptions& w = s.workload;
  return std::to_string(s.voters) + " nodes, hb=" + std::to_string(c.heartbeat_ticks) +
         (c.max_msg_bytes == 1
              ? " 1-entry-appends inflight=" + std::to_string(c.max_inflight_msgs) +
                    " uncommitted<=" + std::to_string(c.max_uncommitted_bytes) + "B"
              : std::string()) +
         (c.pre_vote ? " prevote" : "") + (c.check_quorum ? " checkquorum" : "") +
         (c.lazy_commit_broadcast ? " lazy-commit" : "") +
         (c.send_while_persisting ? " send-while-persisting" : "") +
         (lease ? " lease-reads" : " readindex") + ", net drop=" + per_mille(n.drop_per_mille) +
         " dup=" + per_mille(n.duplicate_per_mille) + " delay=" + std::to_string(n.delay_min_us) +
         ".." + std::to_string(n.delay_max_us) + "us long=" + per_mille(n.long_delay_per_mille) +
         ", torn=" + per_mille(c.torn_write_per_mille) +
         ", snapshot-every=" + std::to_string(c.snapshot_every_entries) +
         (c.crash_on_vote_write_per_mille > 0 ? ", crash-on-vote" : "") +
         ", faults crash/partition/pause=" + std::to_string(f.crash_weight) + "/" +
         std::to_string(f.partition_weight) + "/" + std::to_string(f.pause_weight) +
         (w.transfers ? ", transfers" : "") + (w.membership ? ", membership" : "");
}

// The draw order is part of the seed's meaning: keep it when adding knobs (append new draws).
Scenario draw_scenario(Prng& prng, const RunOptions& options) {
  Scenario s;
  s.voters = options.nodes != 0 ? options.nodes : (prng.chance(1, 2) ? 3 : 5);
  const bool lease = draw_cluster(prng, options, s.cluster);
  // Persistence-ordering mutations show when a crash hits an unsynced write: slower disks.
  const bool slow_disks = has_bug(options, raft::Bug::kVoteBeforePersist) ||
                          has_bug(options, raft::Bug::kLeaderCountsSelfBeforePersist);
  for (std::uint32_t i = 0; i < kNodesMax; ++i) {
    s.timings.push_back(draw_timing(prng, lease, slow_disks));
  }
  draw_faults(prng, options, lease, s.nemesis);
  WorkloadOptions& w = s.workload;
  w.write_interval_max_us = prng.range(3'000, 30'000);
  w.read_interval_max_us = prng.range(3'000, 30'000);
  w.transfers = prng.chance(1, 3);
  w.membership = prng.chance(1, 3);
  w.joiner_timing = draw_timing(prng, lease, slow_disks);
  // Power loss while a granted vote is being persisted, in a quarter of the seeds (and in
  // many of the vote-persistence mutation's).
  s.cluster.crash_on_vote_write_per_mille = prng.chance(1, 4) ? 100 : 0;
  if (has_bug(options, raft::Bug::kVoteBeforePersist)) s.cluster.crash_on_vote_write_per_mille = 300;
  if (s.cluster.max_msg_bytes == 1) {
    // A one-entry, short pipeline replicates ~one entry per round trip, slower than the
    // clients write: cap the uncommitted backlog (the leader refuses proposals beyond it) so
    // the liveness phase is not spent draining thousands of queued entries.
    s.cluster.max_uncommitted_bytes = prng.range(256, 2'048);
  }
  // Drawn from its own generator: the seeds' other draws (and so their scenarios) stay
  // what they were before this option existed.
  Prng side(options.seed ^ 0x6c617a79636f6dULL);
  s.cluster.lazy_commit_broadcast = side.chance(1, 2);
  Prng side2(options.seed ^ 0x6561726c796d7367ULL);
  s.cluster.send_while_persisting = side2.chance(1, 2);
  s.description = describe_scenario(s, lease);
  return s;
}

}  // namespace

const std::vector<BugInfo>& bug_table() {
  static const std::vector<BugInfo> kTable = {
      {"vote-without-log-check", raft::Bug::kVoteWithoutLogCheck,
       "grant votes ignoring the election restriction (paper 5.4.1)"},
      {"commit-previous-term-by-count", raft::Bug::kCommitPreviousTermByCount,
       "commit earlier-term entries by counting replicas (paper Figure 8)"},
      {"vote-before-persist", raft::Bug::kVoteBeforePersist,
       "send vote responses before the vote is persisted"},
      {"no-check-quorum-step-down", raft::Bug::kNoCheckQuorumStepDown,
       "a leader that lost its quorum keeps serving lease reads"},
      {"read-without-leadership-check", raft::Bug::kReadWithoutLeadershipCheck,
       "answer ReadIndex without a heartbeat round"},
      {"accept-stale-leader-append", raft::Bug::kAcceptStaleLeaderAppend,
       "accept AppendEntries from an older term"},
      {"leader-counts-self-before-persist", raft::Bug::kLeaderCountsSelfBeforePersist,
       "the leader counts its own unpersisted entries towards commitment"},
      {"no-conflict-truncation", raft::Bug::kNoConflictTruncation,
       "append over a conflicting suffix without truncating it"},
  };
  return kTable;
}

std::optional<raft::Bug> bug_by_name(std::string_view name) {
  for (const BugInfo& info : bug_table()) {
    if (name == info.name) return info.bug;
  }
  return std::nullopt;
}

namespace {

// Runs the cluster in short slices until `done` or `deadline`; false on a failed check.
template <typename Done>
bool run_while(Cluster& cluster, SimTime deadline, Done done) {
  while (!cluster.checker().failed() && !done() && cluster.now() < deadline) {
    cluster.run_until(std::min(deadline, cluster.now() + kPollUs));
  }
  return !cluster.checker().failed() && done();
}

// Extra time for one-entry appends: entries then move one message at a time, and a
// follower takes one fsync per append, so allow two round trips plus the slowest fsync per
// entry that some member holds beyond the committed prefix (to be replicated or overwritten)
// or lacks below it (to be caught up).
SimTime backlog_allowance(Cluster& cluster, const Scenario& scenario) {
  if (scenario.cluster.max_msg_bytes != 1) return 0;
  const LogIndex committed = cluster.checker().committed_index();
  std::uint64_t backlog = 0;
  SimTime fsync_max_us = 0;
  for (const auto& [id, node] : cluster.nodes()) {
    if (node->removed) continue;
    const LogIndex last = node->disk->last_index();
    if (last > committed) backlog = std::max<std::uint64_t>(backlog, last - committed);
    if (node->state.applied < committed) {
      backlog = std::max<std::uint64_t>(backlog, committed - node->state.applied);
    }
    fsync_max_us = std::max(fsync_max_us, node->timing.fsync_max_us);
  }
  return backlog * (4 * scenario.cluster.network.delay_max_us + fsync_max_us);
}

std::string liveness_detail(Cluster& cluster) {
  std::string out = "up:";
  for (const auto& [id, node] : cluster.nodes()) {
    if (node->removed) continue;
    out += " n" + std::to_string(id) + (node->up ? "" : "(down)") + "[" +
           raft::role_name(node->soft.role) + " term=" + std::to_string(node->known_term.value()) +
           " applied=" + std::to_string(node->state.applied.value()) +
           (node->up ? " commit=" + std::to_string(node->raft->status().hard_state.commit.value()) +
                           " last=" + std::to_string(node->raft->status().last_index.value()) +
                           " conf=" + raft::describe(node->raft->conf_state())
                     : std::string()) +
           "]";
  }
  return out;
}

}  // namespace

SeedResult run_seed(const RunOptions& options) {
  Prng prng(options.seed);
  const Scenario scenario = draw_scenario(prng, options);
  Trace trace(options.trace);
  SeedResult result;
  result.scenario = scenario.description;
  if (options.print_scenario || trace.enabled()) {
    std::FILE* out = options.trace != nullptr ? options.trace : stdout;
    std::fprintf(out, "seed %llu: %s\n", static_cast<unsigned long long>(options.seed),
                 scenario.description.c_str());
  }

  Cluster cluster(&prng, scenario.cluster, &trace);
  Workload workload(&cluster, scenario.workload);
  Nemesis nemesis(&cluster, scenario.nemesis);
  cluster.set_listener(&workload);
  cluster.bootstrap(scenario.voters, scenario.timings);
  workload.start();
  nemesis.start();

  // 1. Safety phase.
  cluster.run_until(kSafetyPhaseUs);
  Checker& checker = cluster.checker();
  // 2. Liveness phase.
  if (!checker.failed()) {
    trace.line(cluster.now(), "sim", "liveness phase: faults stop, network heals");
    NetworkOptions reliable;
    reliable.delay_min_us = scenario.cluster.network.delay_min_us;
    reliable.delay_max_us = scenario.cluster.network.delay_max_us;
    nemesis.stop(reliable);
    workload.stop_admin_and_writes();
    workload.start_liveness_probe();
    // The bound grows with the uncommitted backlog when appends carry one entry: the new
    // leader's no-op commits only once a quorum holds everything before it.
    const SimTime bound = kLivenessBoundUs + backlog_allowance(cluster, scenario);
    const SimTime deadline = cluster.now() + bound;
    if (!run_while(cluster, deadline, [&] { return workload.marker_acked(); }) &&
        !checker.failed()) {
      checker.fail("liveness", "no write committed within " +
                                   std::to_string(bound / 1000) +
                                   " ms after the faults healed; " + liveness_detail(cluster));
    }
  }
  // 3. Convergence: every member applies the marker.
  if (!checker.failed()) {
    const LogIndex marker = workload.marker_index();
    auto converged = [&] {
      for (const auto& [id, node] : cluster.nodes()) {
        if (node->removed || !cluster.ever_member(node->id)) continue;
        if (!node->up || node->state.applied < marker) return false;
      }
      return true;
    };
    const SimTime bound = kConvergenceBoundUs + backlog_allowance(cluster, scenario);
    const SimTime deadline = cluster.now() + bound;
    if (!run_while(cluster, deadline, converged) && !checker.failed()) {
      checker.fail("convergence", "members did not apply index " +
                                      std::to_string(marker.value()) + " within " +
                                      std::to_string(bound / 1000) + " ms; " +
                                      liveness_detail(cluster));
    }
  }

  result.sim_time_us = cluster.now();
  result.events = cluster.events_processed();
  result.messages = cluster.messages_sent();
  result.writes_acked = workload.writes_acked();
  result.reads_checked = checker.reads_checked();
  result.leaders = checker.leaders_seen();
  result.committed = checker.committed_index().value();
  if (checker.failed()) {
    result.passed = false;
    result.invariant = checker.invariant();
    result.detail = checker.violation();
    result.failed_at_us = cluster.now();
    trace.line(cluster.now(), "check", "VIOLATION " + result.invariant + ": " + result.detail);
  } else {
    trace.line(cluster.now(), "check",
               "PASS: " + std::to_string(result.committed) + " entries committed, " +
                   std::to_string(result.writes_acked) + " writes acknowledged, " +
                   std::to_string(result.reads_checked) + " reads checked, " +
                   std::to_string(result.leaders) + " terms with a leader");
  }
  return result;
}

}  // namespace mq::sim
