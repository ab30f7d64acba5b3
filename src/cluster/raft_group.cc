#include "cluster/raft_group.h"

#include <chrono>

#include "base/trace.h"

namespace mq::cluster {
namespace {
std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
constexpr std::int64_t kLongTickGapMs = 150;
// Work done on this loop thread by all its groups (for the "no tick" diagnostic).
struct LoopWork {
  std::uint64_t steps = 0;
  std::uint64_t readies = 0;
  std::uint64_t sent = 0;
  std::uint64_t entries_sent = 0;
  std::int64_t last_tick_ms = 0;
};
thread_local LoopWork loop_work;
thread_local LoopWork loop_work_at_tick;
// The steady clock in seconds (CLOCK_MONOTONIC, as Python's time.monotonic()), to line log
// lines up with the chaos harness's timeline.
std::string steady_seconds(std::int64_t ms) {
  return std::to_string(ms / 1000) + "." + std::to_string(1000 + ms % 1000).substr(1);
}
}  // namespace

RaftGroup::RaftGroup(GroupHost* host, RaftGroupOptions options,
                     std::unique_ptr<GroupStorage> storage)
    : host_(host), options_(std::move(options)), storage_(std::move(storage)) {
  MQ_ASSERT(host_ != nullptr);
  MQ_ASSERT(storage_ != nullptr);
}

RaftGroup::~RaftGroup() = default;

Status RaftGroup::start() {
  MQ_ASSERT(node_ == nullptr, "RaftGroup::start called twice");
  raft::Config config = options_.raft;
  config.applied = storage_->restart_applied();
  view_ = std::make_unique<CachingStorageView>(storage_.get(), options_.entry_cache_bytes);
  view_->on_applied(config.applied);
  MQ_ASSIGN_OR_RETURN(node_, raft::RawNode::create(config, view_.get()));
  applied_ = config.applied;
  commit_ = config.applied;
  last_checkpoint_ = config.applied;
  term_ = storage_->hard_state().term;
  host_->on_awake(options_.group);
  return Status::ok();
}

// The loop thread's time split over the gap between two ticks (loop_watch.h): whether the
// loop computed, waited for a CPU (starved) or slept (blocked), and in which system call.
std::string RaftGroup::explain_gap(std::int64_t gap_ms) {
  LoopWatch* watch = host_->loop_watch();
  if (watch == nullptr || !watch->attached()) return "";
  return "; " + watch->explain_since(LoopWatch::now_ns() - gap_ms * 1'000'000).to_string();
}

void RaftGroup::tick(std::uint32_t ticks) {
  if (node_ == nullptr || failed() || quiesced_) return;
  if (parked_) {
    // Waiting for the flusher: a failed fdatasync (ENOSPC or EIO reported at sync time, as with
    // delayed allocation) puts the log in a failed state without any durability report, so
    // look, or the group would wait for that report forever, silently.
    Status health = storage_->log().health();
    if (!health.is_ok()) return fail(std::move(health));
  }
  std::int64_t now = now_ms();
  if (last_tick_ms_ != 0) {
    const std::int64_t gap = now - last_tick_ms_;
    max_tick_gap_ms_ = std::max(max_tick_gap_ms_, gap);
    // Half the minimum election timeout without a tick: the event loop was blocked or the
    // process starved; followers elsewhere may time out meanwhile.
    // The loop's own tick (LoopWatch::mark_tick, Node::on_tick) decides whether the loop went
    // without ticks: without it, a stopped controller and quiesced partitions (no group
    // ticked) looked like a stalled loop.
    LoopWatch* watch = host_->loop_watch();
    const bool watched = watch != nullptr && watch->attached();
    const std::int64_t loop_gap = watched ? watch->ms_since_tick() : gap;
    if (gap >= kLongTickGapMs && now - loop_work.last_tick_ms >= kLongTickGapMs &&
        loop_gap >= kLongTickGapMs) {
      // First group to notice: the whole loop went without ticks.
      host_->log(options_.name + ": no tick for " + std::to_string(loop_gap) + " ms (until " +
                 steady_seconds(now) + "); meanwhile on this loop " +
                 std::to_string(loop_work.steps - loop_work_at_tick.steps) + " messages stepped, " +
                 std::to_string(loop_work.readies - loop_work_at_tick.readies) + " Readies, " +
                 std::to_string(loop_work.sent - loop_work_at_tick.sent) + " messages sent (" +
                 std::to_string(loop_work.entries_sent - loop_work_at_tick.entries_sent) +
                 " entries)" + explain_gap(loop_gap));
    }
    loop_work.last_tick_ms = now;
    loop_work_at_tick = loop_work;
  }
  last_tick_ms_ = now;
  node_->tick(ticks);
}

void RaftGroup::step(const raft::Message& message) {
  if (node_ == nullptr || failed()) return;
  if (message.type == raft::MessageType::kAppend || message.type == raft::MessageType::kHeartbeat ||
      message.type == raft::MessageType::kSnapshot) {
    last_leader_message_ms_ = now_ms();
  }
  ++loop_work.steps;
  LoopWatch::Section section(host_->loop_watch(), "step", options_.name);
  trace::point(trace::Stage::kStep, options_.group.value(), static_cast<std::uint64_t>(message.type));
  // A heartbeat response does not wake a quiesced leader (the last round's answers arrive
  // after it quiesced); if it calls for an append, the Ready wakes it in pump().
  if (quiesced_ && message.type != raft::MessageType::kHeartbeatResponse) wake();
  Status s = node_->step(message);
  if (!s.is_ok()) {
    host_->log(options_.name + ": dropped message " + raft::describe(message) + ": " + s.to_string());
  }
}

void RaftGroup::report_unreachable(NodeId node) {
  if (node_ == nullptr || failed()) return;
  node_->report_unreachable(node);
}

bool RaftGroup::forget_leader_if(NodeId node) {
  if (node_ == nullptr || failed() || node == kNoNode) return false;
  if (soft_state_.role != raft::Role::kFollower || soft_state_.leader != node) return false;
  node_->forget_leader();
  wake();
  return true;
}

Status RaftGroup::read_index(std::uint64_t request_context) {
  if (node_ == nullptr || failed()) return Status::unavailable(options_.name + ": not running");
  return node_->read_index(request_context);
}

void RaftGroup::campaign_if_leaderless() {
  if (node_ == nullptr || failed()) return;
  if (soft_state_.role != raft::Role::kFollower || soft_state_.leader != kNoNode) return;
  wake();
  node_->campaign();
}

// ---- Quiescing ----
namespace {
// Consecutive quiescable ticks before a leader quiesces: more than a heartbeat interval, so
// that a heartbeat carrying the final commit index has reached every follower (the followers
// quiesce only with the whole log committed and applied).
std::uint32_t quiesce_after_ticks(const raft::Config& config) {
  return 2 * config.heartbeat_ticks + 2;
}
}  // namespace

void RaftGroup::wake() {
  quiescable_ticks_ = 0;
  if (!quiesced_) return;
  quiesced_ = false;
  if (node_ != nullptr) node_->unquiesce();  // fresh election timer; a leader heartbeats
  host_->on_awake(options_.group);
}

bool RaftGroup::maybe_quiesce_as_leader(std::span<const NodeId> down) {
  if (node_ == nullptr || failed() || quiesced_ || parked_ || node_->has_ready() ||
      !node_->quiescable_as_leader(down)) {
    quiescable_ticks_ = 0;
    return false;
  }
  if (++quiescable_ticks_ < quiesce_after_ticks(options_.raft)) return false;
  raft::NodeStatus status = node_->status();
  view_->clear();  // everything is applied and replicated: nobody reads these entries
  quiesced_ = true;
  quiesced_term_ = status.hard_state.term;
  quiesced_index_ = status.last_index;
  return true;
}

bool RaftGroup::quiesce_as_follower(NodeId leader, Term term, LogIndex index) {
  if (node_ == nullptr || failed() || quiesced_ || parked_ || node_->has_ready() ||
      !node_->quiescable_as_follower(leader, term, index)) {
    return false;
  }
  view_->clear();
  quiesced_ = true;
  quiescable_ticks_ = 0;
  quiesced_term_ = term;
  quiesced_index_ = index;
  return true;
}

void RaftGroup::pump() {
  // Bounded in rounds (each either parks, waiting for the flusher, or advances the core) and
  // in time: a returning follower's catch-up (megabytes to append and apply per Ready, on
  // either side) held the loop for hundreds of milliseconds in one go.
  const std::int64_t started = now_ms();
  for (int round = 0; round < 64; ++round) {
    if (parked_ && !failed()) {
      // A leader's appends of proposals made since go out now, not after its fsync (they
      // never depend on it); the followers' fsyncs then overlap the leader's.
      if (options_.send_while_parked) {
        std::vector<raft::Message> early = node_->take_leader_messages();
        if (!early.empty()) {
          LoopWatch::Section section(host_->loop_watch(), "send_parked", options_.name);
          trace::point(trace::Stage::kMessagesSent, options_.group.value(), early.size());
          send_all(early);
        }
      }
      // Entries the followers' acknowledgements committed while the leader's own fsync runs
      // are applied (and answered) now; the rest of the Ready waits for the flusher.
      LoopWatch::Section section(host_->loop_watch(), "apply_parked", options_.name);
      return apply_committed_while_parked();
    }
    if (node_ == nullptr || failed() || !node_->has_ready()) return;
    if (round > 0 && options_.pump_budget_ms > 0 &&
        now_ms() - started >= options_.pump_budget_ms) {
      break;
    }
    if (quiesced_) wake();  // a proposal, a read, a transfer, an answer to send
    ++loop_work.readies;
    // A Ready that holds the loop is reported by the loop's stall detector, with the step
    // of the contract that took the time (loop_watch.h).
    LoopWatch::Section section(host_->loop_watch(), "ready", options_.name);
    process(node_->ready());
  }
  if (node_ != nullptr && !failed() && !parked_ && node_->has_ready()) {
    host_->on_ready_pending(options_.group);
  }
}

void RaftGroup::send_all(std::vector<raft::Message>& messages) {
  for (raft::Message& m : messages) {
    ++loop_work.sent;
    loop_work.entries_sent += m.entries.size();
    bool is_snapshot = m.type == raft::MessageType::kSnapshot;
    NodeId to = m.to;
    bool sent = host_->send_message(options_.group, std::move(m));
    // The transport streams the snapshot in chunks; the follower acknowledges it with an
    // append response, and a lost one is retried after the leader's probe (etcd
    // ReportSnapshot semantics).
    if (is_snapshot) node_->report_snapshot(to, sent);
  }
  if (!messages.empty()) host_->flush_messages();
  messages.clear();
}

void RaftGroup::process(raft::Ready rd) {
  trace::point(trace::Stage::kReady, options_.group.value(),
               rd.entries_to_persist.empty() ? 0 : rd.entries_to_persist.back().index.value());
  if (rd.soft_state) {
    log_role_change(soft_state_, *rd.soft_state);
    bool leader_changed = soft_state_.leader != rd.soft_state->leader;
    soft_state_ = *rd.soft_state;
    on_soft_state(soft_state_);
    if (leader_changed) host_->on_leader_changed(options_.group, soft_state_.leader);
  }
  LoopWatch* watch = host_->loop_watch();
  {
    LoopWatch::Section section(watch, "send");
    if (!rd.messages.empty()) {
      trace::point(trace::Stage::kMessagesSent, options_.group.value(), rd.messages.size());
    }
    send_all(rd.messages);
  }
  if (rd.snapshot) {
    LoopWatch::Section section(watch, "install_snapshot");
    view_->clear();
    Status s = storage_->install_snapshot(*rd.snapshot);
    if (!s.is_ok()) return fail(std::move(s));
    on_snapshot_installed(*rd.snapshot);
    applied_ = std::max(applied_, rd.snapshot->meta.index);
  }
  if (!rd.entries_to_persist.empty()) {
    LoopWatch::Section section(watch, "append");
    std::vector<AppendedEntry> appended;
    Status s = storage_->append(rd.entries_to_persist, &appended);
    if (!s.is_ok()) return fail(std::move(s));
    view_->on_appended(rd.entries_to_persist);
    trace::point(trace::Stage::kAppended, options_.group.value(),
                 rd.entries_to_persist.back().index.value());
    on_appended(appended);
  }
  if (rd.hard_state) {
    LoopWatch::Section section(watch, "save_hard_state");
    auto written = storage_->save_hard_state(*rd.hard_state);
    if (!written.has_value()) return fail(written.error());
    term_ = rd.hard_state->term;
    commit_ = std::max(commit_, rd.hard_state->commit);
  }
  if (!rd.entries_to_persist.empty()) {
    LogIndex need = rd.entries_to_persist.back().index;
    if (storage_->durable_index() < need) {
      LoopWatch::Section section(watch, "apply_durable_prefix");
      apply_durable_prefix(rd);
      if (failed()) return;
      parked_until_ = need;
      trace::point(trace::Stage::kParked, options_.group.value(), need.value());
      parked_ = std::move(rd);
      apply_committed_while_parked();
      return;
    }
  }
  finish(std::move(rd));
}

// Under load almost every Ready carries new entries to persist *and* entries committed
// meanwhile. Applying the committed ones only after the new entries' fsync (step 4 after step
// 2) charged every commit one more fsync and one more flusher round trip before its produce
// acknowledgement and before a parked Fetch saw it. The committed entries that are already
// durable here are applied before waiting: applying needs the entry committed (durable on a
// majority, §5.3/§5.4) and, as before, the leader's own copy written (docs/raft_driver.md:
// "the leader's own write is still ordered before applying"); the new entries of this Ready
// are not needed for it. Configuration changes and what follows them wait for advance() as
// before (they take effect there). finish() skips what was applied here.
void RaftGroup::apply_durable_prefix(const raft::Ready& rd) {
  const LogIndex durable = storage_->durable_index();
  bool any = false;
  for (const raft::Entry& e : rd.committed_entries) {
    if (e.index <= applied_) continue;
    if (e.index > durable || e.type == raft::EntryType::kConfChange) break;
    applied_ = e.index;
    on_apply(e);
    any = true;
    if (failed()) return;
  }
  LoopWatch::Section hook(host_->loop_watch(), "on_applied");
  if (any) trace::point(trace::Stage::kCommit, options_.group.value(), applied_.value());
  if (any) on_applied();
}

// The Ready contract orders applying after step 2 only for entries that rely on this replica's
// copy to be committed; an entry the core reports committed is durable on a majority already
// (§5.3, §5.4: the leader counts its own log only after advance(), so a commit reached while
// its fsync runs was reached on followers' fsynced acknowledgements alone; acks=all keeps its
// meaning). Applying needs the entry written locally (the state machine reads it back from the
// log: fetches, offsets), which every entry of the parked Ready is. Without this, an
// acknowledgement that arrives while the leader's own fsync runs waited for that fsync, for
// the flusher's report to cross back to the loop, and for one more Ready: on a disk where the
// leader's fdatasync takes as long as a follower's round trip, that was most produces.
// Configuration changes still wait for advance() (they take effect there). The applied index
// is checkpointed only up to what is locally durable (GroupStorage::checkpoint). An entry of the
// parked Ready is applied only while the core still holds it (same index and term): a newer
// leader's append stepped meanwhile may have replaced it, and what is committed at that index
// is then the new entry, applied by a later Ready.
void RaftGroup::apply_committed_while_parked() {
  const LogIndex commit = node_->committed();
  if (commit <= applied_) return;
  // Bounded in time like a pump (pump_budget_ms): a follower's catch-up commits megabytes at
  // once, and applying them here in one go held the loop as before the budget. What is left
  // is applied on a later turn (the host pumps again).
  const std::int64_t started = now_ms();
  bool any = false;
  bool out_of_budget = false;
  auto apply_from = [&](const std::vector<raft::Entry>& entries) {
    for (const raft::Entry& e : entries) {
      if (e.index <= applied_) continue;
      if (e.index != applied_ + 1 || e.index > commit || e.type == raft::EntryType::kConfChange) {
        return false;
      }
      // The parked Ready's copy may be stale: a newer leader's append, stepped while this
      // Ready waits for its fsync, can have replaced the entry at that index and committed its
      // own there (tests/chaos/FINDINGS.md F11: a paused leader answered its replaced entry's
      // produce as committed). Only the same entry (same term) is the committed one.
      if (!node_->holds(e.index, e.term)) return false;
      if (any && options_.pump_budget_ms > 0 && now_ms() - started >= options_.pump_budget_ms) {
        out_of_budget = true;
        return false;
      }
      applied_ = e.index;
      on_apply(e);
      any = true;
      if (failed()) return false;
    }
    return true;
  };
  if (apply_from(parked_->committed_entries) && !failed()) apply_from(parked_->entries_to_persist);
  if (!any || failed()) return;
  if (out_of_budget) host_->on_ready_pending(options_.group);
  trace::point(trace::Stage::kCommit, options_.group.value(), applied_.value());
  on_applied();
}

void RaftGroup::finish(raft::Ready rd) {
  LoopWatch* watch = host_->loop_watch();
  {
    LoopWatch::Section section(watch, "send_after_persist");
    if (!rd.messages_after_persist.empty()) {
      trace::point(trace::Stage::kAfterPersistSent, options_.group.value(),
                   rd.messages_after_persist.size());
    }
    send_all(rd.messages_after_persist);
  }
  bool conf_changed = rd.snapshot.has_value();
  {
    LoopWatch::Section section(watch, "apply");
    bool any = false;
    for (const raft::Entry& e : rd.committed_entries) {
      if (e.index <= applied_) continue;  // applied before the fsync wait (apply_durable_prefix)
      conf_changed |= e.type == raft::EntryType::kConfChange;
      applied_ = e.index;
      on_apply(e);
      any = true;
    }
    if (!rd.committed_entries.empty()) {
      view_->on_applied(applied_, node_->lowest_active_follower_next());
    }
    LoopWatch::Section hook(watch, "on_applied");
    if (any) trace::point(trace::Stage::kCommit, options_.group.value(), applied_.value());
    if (any && !failed()) on_applied();
  }
  for (const raft::ReadState& rs : rd.read_states) host_->on_read_state(options_.group, rs);
  {
    LoopWatch::Section section(watch, "advance");
    node_->advance(rd);
  }
  conf_changed_since_checkpoint_ |= conf_changed;
  if (conf_changed_since_checkpoint_ ||
      applied_ - last_checkpoint_ >= options_.checkpoint_interval_entries) {
    LoopWatch::Section section(watch, "checkpoint");
    checkpoint_now();
  }
}

void RaftGroup::checkpoint_now() {
  if (node_ == nullptr || failed()) return;
  if (Status hook = on_checkpoint(applied_); !hook.is_ok()) return fail(std::move(hook));
  Status s = storage_->checkpoint(applied_, node_->conf_state(), conf_changed_since_checkpoint_);
  if (!s.is_ok()) return fail(std::move(s));
  conf_changed_since_checkpoint_ = false;
  last_checkpoint_ = applied_;
}

void RaftGroup::on_durable(LogIndex index) {
  if (node_ == nullptr || failed()) return;
  LoopWatch::Section section(host_->loop_watch(), "durable", options_.name);
  // A report posted by an earlier incarnation of this replica's log (closed and re-opened,
  // replica_recovery.h) must not vouch for entries of this one.
  index = std::min(index, storage_->durable_index());
  trace::point(trace::Stage::kOnDurable, options_.group.value(), index.value());
  on_local_durable(index);
  if (parked_ && index >= parked_until_) {
    raft::Ready rd = std::move(*parked_);
    parked_.reset();
    finish(std::move(rd));
    pump();
  }
}

void RaftGroup::log_role_change(const raft::SoftState& before, const raft::SoftState& after) {
  if (before.role == after.role) return;  // a leader learned or lost: not an election event
  std::int64_t now = now_ms();
  std::string line = options_.name + " [" + steady_seconds(now) + "]: " + raft::role_name(after.role) + " at term " +
                     std::to_string(node_->status().hard_state.term.value());
  if (after.leader != kNoNode) line += ", leader node " + std::to_string(after.leader.value());
  line += "; last leader message " +
          (last_leader_message_ms_ == 0 ? std::string("never")
                                        : std::to_string(now - last_leader_message_ms_) + " ms ago") +
          ", longest tick gap " + std::to_string(max_tick_gap_ms_) + " ms";
  host_->log(line);
  max_tick_gap_ms_ = 0;
}

void RaftGroup::fail(Status status) {
  // A storage failure (disk full, EIO, fsync error) stops this replica: it neither acks nor
  // votes any more, and the rest of the group carries on without it (docs/cluster.md).
  host_->log(options_.name + ": replica stopped: " + status.to_string());
  failed_ = std::move(status);
  parked_.reset();
  soft_state_ = raft::SoftState{};
  on_failed(failed_);
}

}  // namespace mq::cluster
