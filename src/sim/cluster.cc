#include "sim/cluster.h"

#include <algorithm>

#include "base/le_codec.h"

namespace mq::sim {

namespace {
constexpr std::uint32_t kStateMagic = 0x31534d51;  // "QMS1": simulated state machine image
constexpr std::size_t kStateBytes = 4 + 3 * 8;
constexpr int kReadyLoopMax = 64;  // Readies handled per drive() before yielding to events

bool conf_contains(const raft::ConfState& conf, NodeId id) {
  for (const auto* set : {&conf.voters, &conf.voters_outgoing, &conf.learners, &conf.learners_next}) {
    if (std::find(set->begin(), set->end(), id) != set->end()) return true;
  }
  return false;
}
}  // namespace

SharedBuffer encode_state(const StateDigest& state) {
  Buffer out;
  le::put_u32(out, kStateMagic);
  le::put_u64(out, state.applied.value());
  le::put_u64(out, state.digest);
  le::put_u64(out, state.normal_count);
  return SharedBuffer(std::move(out));
}

std::optional<StateDigest> decode_state(BufferView bytes) {
  if (bytes.size() != kStateBytes || le::decode_u32(bytes.data()) != kStateMagic) {
    return std::nullopt;
  }
  StateDigest state;
  state.applied = LogIndex(le::decode_u64(bytes.data() + 4));
  state.digest = le::decode_u64(bytes.data() + 12);
  state.normal_count = le::decode_u64(bytes.data() + 20);
  return state;
}

Cluster::Cluster(Prng* prng, ClusterOptions options, const Trace* trace)
    : prng_(prng), options_(options), trace_(trace), network_(prng, options.network) {}

Cluster::~Cluster() = default;

void Cluster::trace_line(std::string_view actor, const std::string& text) const {
  trace_->line(now_, actor, text);
}

void Cluster::push(Event event) {
  event.seq = next_seq_++;
  queue_.push_back(std::move(event));
  std::push_heap(queue_.begin(), queue_.end(), EventLater{});
}

void Cluster::schedule(SimTime delay, std::function<void()> action) {
  Event event;
  event.time = now_ + delay;
  event.kind = EventKind::kAction;
  event.action = std::move(action);
  push(std::move(event));
}

SimNode* Cluster::node(NodeId id) {
  auto it = nodes_.find(id.value());
  return it == nodes_.end() ? nullptr : it->second.get();
}

void Cluster::bootstrap(std::uint32_t count, const std::vector<NodeTiming>& timings) {
  MQ_ASSERT(timings.size() >= count);
  raft::ConfState conf;
  for (std::uint32_t i = 1; i <= count; ++i) conf.voters.push_back(NodeId(i));
  checker_.on_conf_state(conf);
  // The group starts from a snapshot at index 1 holding the initial membership and an empty
  // state machine, so that nodes joining later learn the membership from a snapshot.
  raft::Snapshot genesis;
  genesis.meta.index = LogIndex(1);
  genesis.meta.term = Term(1);
  genesis.meta.conf_state = conf;
  StateDigest genesis_state;
  genesis_state.applied = LogIndex(1);
  genesis.data = encode_state(genesis_state);
  const std::uint64_t genesis_chain = mix_hash(0x6765'6e65'7369'73ull, 1);
  checker_.on_bootstrap(genesis.meta, genesis_chain, genesis_state);
  for (std::uint32_t i = 1; i <= count; ++i) {
    auto node = std::make_unique<SimNode>();
    node->id = NodeId(i);
    node->timing = timings[i - 1];
    node->disk = std::make_unique<SimDisk>(conf);
    node->disk->bootstrap_with(genesis, genesis_chain);
    node->conf_state = conf;
    checker_.register_disk(node->id, node->disk.get());
    ever_member_.insert(i);
    nodes_[i] = std::move(node);
  }
  for (std::uint32_t i = 1; i <= count; ++i) start(*nodes_[i]);
}

SimNode& Cluster::add_node(NodeId id, NodeTiming timing) {
  MQ_ASSERT(nodes_.count(id.value()) == 0);
  auto node = std::make_unique<SimNode>();
  node->id = id;
  node->timing = timing;
  node->disk = std::make_unique<SimDisk>(raft::ConfState{});
  checker_.register_disk(id, node->disk.get());
  SimNode& ref = *node;
  nodes_[id.value()] = std::move(node);
  if (tracing()) trace_line(node_name(id), "created with an empty disk (joining node)");
  start(ref);
  return ref;
}

void Cluster::start(SimNode& node) {
  raft::Config config;
  config.id = node.id;
  config.election_ticks = options_.election_ticks;
  config.heartbeat_ticks = options_.heartbeat_ticks;
  config.max_msg_bytes = options_.max_msg_bytes;
  config.max_inflight_msgs = options_.max_inflight_msgs;
  config.max_uncommitted_bytes = options_.max_uncommitted_bytes;
  config.pre_vote = options_.pre_vote;
  config.check_quorum = options_.check_quorum;
  config.lazy_commit_broadcast = options_.lazy_commit_broadcast;
  config.read_only = options_.read_only;
  config.random_seed = prng_->next();
  config.bugs = options_.bugs;
  node.state = StateDigest{};
  if (!node.disk->durable_snapshot().empty()) {
    auto state = decode_state(node.disk->durable_snapshot().data);
    if (!state || state->applied != node.disk->snapshot_index()) {
      checker_.fail("host", node_name(node.id) + " cannot decode its snapshot");
      return;
    }
    node.state = *state;
  }
  config.applied = node.state.applied;
  auto created = raft::RawNode::create(config, node.disk.get());
  if (!created.has_value()) {
    checker_.fail("host", node_name(node.id) + " failed to start: " + created.error().to_string());
    return;
  }
  node.raft = std::move(created).value();
  node.up = true;
  ++node.incarnation;
  node.known_term = node.disk->hard_state().term;
  node.soft = raft::SoftState{};
  node.applied_since_snapshot = 0;
  node.in_progress.reset();
  node.pending = PendingWrite{};
  node.conf_state = node.raft->conf_state();
  node.ticks = 0;
  node.leader_since_tick = 0;
  node.grace_since_tick = 0;
  node.heard_tick.clear();
  checker_.on_restore(node.id, node.state);
  if (tracing()) {
    trace_line(node_name(node.id),
               "start term=" + std::to_string(node.known_term.value()) +
                   " vote=" + std::to_string(node.disk->hard_state().vote.value()) +
                   " commit=" + std::to_string(node.disk->hard_state().commit.value()) +
                   " snapshot=" + std::to_string(node.disk->snapshot_index().value()) +
                   " last=" + std::to_string(node.disk->last_index().value()));
  }
  Event tick;
  tick.kind = EventKind::kTick;
  tick.node = node.id.value();
  tick.incarnation = node.incarnation;
  tick.time = now_ + 1 + prng_->uniform(node.timing.tick_us);  // random phase
  push(std::move(tick));
  drive(node);
}

void Cluster::crash(NodeId id) {
  SimNode* node_ptr = node(id);
  if (node_ptr == nullptr || !node_ptr->up) return;
  SimNode& node = *node_ptr;
  std::size_t kept = 0;
  const std::size_t parts = SimDisk::write_parts(node.pending);
  if (node.in_progress && parts > 0 && options_.torn_write_per_mille > 0 &&
      prng_->chance(options_.torn_write_per_mille, 1000)) {
    kept = prng_->uniform(parts + 1);
    Status status = node.disk->commit_torn_write(node.pending, kept);
    if (!status.is_ok()) checker_.fail("host", node_name(id) + " torn write: " + status.to_string());
    if (!node.pending.entries.empty()) {
      checker_.on_durable_entries(id, *node.disk, node.pending.entries.front().index);
    }
  }
  if (tracing()) {
    trace_line(node_name(id), "CRASH (unsynced write: " + std::to_string(parts) +
                                  " part(s), " + std::to_string(kept) + " survived torn)");
  }
  node.raft.reset();
  node.up = false;
  node.in_progress.reset();
  node.pending = PendingWrite{};
  node.soft = raft::SoftState{};
  ++node.incarnation;
  if (listener_ != nullptr) listener_->on_crash(node);
}

void Cluster::restart(NodeId id) {
  SimNode* node_ptr = node(id);
  if (node_ptr == nullptr || node_ptr->up || node_ptr->removed) return;
  if (tracing()) trace_line(node_name(id), "RESTART");
  start(*node_ptr);
}

void Cluster::pause(NodeId id, SimTime duration) {
  SimNode* node_ptr = node(id);
  if (node_ptr == nullptr || !node_ptr->up) return;
  node_ptr->paused_until = std::max(node_ptr->paused_until, now_ + duration);
  if (tracing()) trace_line(node_name(id), "PAUSE until " + format_time(node_ptr->paused_until));
}

void Cluster::shutdown_removed(NodeId id) {
  SimNode* node_ptr = node(id);
  if (node_ptr == nullptr || node_ptr->removed) return;
  if (tracing()) trace_line(node_name(id), "removed from the membership: shut down");
  crash(id);
  node_ptr->removed = true;
}

void Cluster::run_until(SimTime until) {
  while (!queue_.empty() && !checker_.failed() && queue_.front().time <= until) {
    std::pop_heap(queue_.begin(), queue_.end(), EventLater{});
    Event event = std::move(queue_.back());
    queue_.pop_back();
    now_ = event.time;
    ++events_processed_;
    dispatch(event);
  }
  if (!checker_.failed()) now_ = std::max(now_, until);
}

void Cluster::dispatch(Event& event) {
  switch (event.kind) {
    case EventKind::kAction:
      event.action();
      return;
    case EventKind::kTick: {
      SimNode* n = node(NodeId(event.node));
      if (n == nullptr || !n->up || n->incarnation != event.incarnation) return;
      on_tick(*n);
      event.time = now_ + n->timing.tick_us;
      push(std::move(event));
      return;
    }
    case EventKind::kFsync: {
      SimNode* n = node(NodeId(event.node));
      if (n == nullptr || !n->up || n->incarnation != event.incarnation || !n->in_progress) return;
      if (n->paused_until > now_) {  // a paused process completes its I/O when it resumes
        event.time = n->paused_until;
        push(std::move(event));
        return;
      }
      finish_ready(*n);
      drive(*n);
      return;
    }
    case EventKind::kDeliver:
      on_deliver(event);
      return;
  }
}

void Cluster::on_tick(SimNode& node) {
  if (node.paused_until > now_) return;  // a stalled process misses its timer ticks
  ++node.ticks;
  node.raft->tick();
  drive(node);
  check_node(node);
  if (options_.check_quorum && node.up && node.soft.role == raft::Role::kLeader) {
    check_quorum_contact(node);
  }
}

void Cluster::check_node(SimNode& node) {
  // Between Readies the core may already consider entries committed: they must be durable
  // on a quorum by then (the leader counts itself only after its own fsync, ready.h step 5).
  if (!options_.check_commit_durability || !node.up || checker_.failed() ||
      node.soft.role != raft::Role::kLeader || !node.in_progress) {
    return;
  }
  checker_.on_commit_index(node.id, node.raft->status().hard_state.commit);
}

// Thesis §6.2 (CheckQuorum): a leader that has not heard from a quorum for an election
// timeout steps down. The core checks every election_ticks, so a leader may last up to two
// timeouts after the last contact; one still leading after 2*election_ticks+2 of its own
// ticks without contact from a quorum (counting from when it became leader, its membership
// changed or a transfer was requested, whichever is latest) has failed to step down.
void Cluster::check_quorum_contact(SimNode& node) {
  const std::uint64_t window = 2ull * options_.election_ticks + 2;
  const std::uint64_t since = std::max(node.leader_since_tick, node.grace_since_tick);
  if (node.ticks < since + window) return;
  auto heard = [&](NodeId peer) {
    if (peer == node.id) return true;
    auto it = node.heard_tick.find(peer.value());
    return it != node.heard_tick.end() && node.ticks - it->second <= window;
  };
  auto quorum_heard = [&](const std::vector<NodeId>& voters) {
    if (voters.empty()) return true;
    std::size_t count = 0;
    for (NodeId voter : voters) count += heard(voter) ? 1 : 0;
    return count >= voters.size() / 2 + 1;
  };
  if (quorum_heard(node.conf_state.voters) && quorum_heard(node.conf_state.voters_outgoing)) {
    return;
  }
  const raft::NodeStatus status = node.raft->status();
  if (status.soft_state.role != raft::Role::kLeader) return;  // stepped down; Ready pending
  checker_.fail("check-quorum", node_name(node.id) + " still leads term " +
                                    std::to_string(status.hard_state.term.value()) + " after " +
                                    std::to_string(window) +
                                    " ticks without hearing from a quorum of " +
                                    raft::describe(node.conf_state));
}

void Cluster::send(SimNode& from, const raft::Message& message) {
  ++messages_sent_;
  const bool linked = network_.connected(from.id, message.to);
  std::vector<SimTime> delays;
  if (linked) delays = network_.fate();
  if (tracing()) {
    std::string fate = !linked ? " DROP(partition)" : delays.empty() ? " DROP" : "";
    if (delays.size() == 2) fate = " DUP";
    trace_line(node_name(from.id), "send " + raft::describe(message) + fate);
  }
  if (delays.empty()) {
    if (message.type == raft::MessageType::kSnapshot) {
      from.raft->report_snapshot(message.to, false);
    }
    if (!linked) from.raft->report_unreachable(message.to);
    return;
  }
  for (SimTime delay : delays) {
    Event event;
    event.time = now_ + delay;
    event.kind = EventKind::kDeliver;
    event.node = message.to.value();
    event.sender_incarnation = from.incarnation;
    event.message = message;
    push(std::move(event));
  }
}

void Cluster::report_snapshot_outcome(NodeId from, std::uint64_t incarnation, NodeId to,
                                      bool success) {
  SimNode* sender = node(from);
  if (sender == nullptr || !sender->up || sender->incarnation != incarnation) return;
  sender->raft->report_snapshot(to, success);
  drive(*sender);
}

void Cluster::on_deliver(Event& event) {
  const raft::Message& message = event.message;
  SimNode* to = node(message.to);
  const bool snapshot = message.type == raft::MessageType::kSnapshot;
  if (to == nullptr || !to->up || !network_.connected(message.from, message.to)) {
    if (tracing()) trace_line("net", "lost " + raft::describe(message));
    if (snapshot) report_snapshot_outcome(message.from, event.sender_incarnation, message.to, false);
    return;
  }
  if (to->paused_until > now_) {  // delivered when the process resumes, in order
    event.time = to->paused_until;
    push(std::move(event));
    return;
  }
  if (tracing()) trace_line(node_name(to->id), "recv " + raft::describe(message));
  to->heard_tick[message.from.value()] = to->ticks;
  Status status = to->raft->step(message);
  if (!status.is_ok() && tracing()) {
    trace_line(node_name(to->id), "step rejected: " + status.to_string());
  }
  drive(*to);
  check_node(*to);
  if (snapshot) report_snapshot_outcome(message.from, event.sender_incarnation, message.to, true);
}

void Cluster::drive(SimNode& node) {
  if (node.up && node.in_progress && options_.send_while_persisting && !checker_.failed()) {
    for (const raft::Message& message : node.raft->take_leader_messages()) send(node, message);
  }
  for (int i = 0; i < kReadyLoopMax; ++i) {
    if (!node.up || node.in_progress || checker_.failed() || !node.raft->has_ready()) return;
    take_ready(node);
  }
}

void Cluster::note_soft_state(SimNode& node, const raft::SoftState& soft) {
  node.soft = soft;
  if (soft.role != raft::Role::kLeader) {
    if (tracing()) {
      trace_line(node_name(node.id), std::string("role ") + raft::role_name(soft.role) +
                                         " leader=" + std::to_string(soft.leader.value()));
    }
    return;
  }
  const Term term = node.raft->status().hard_state.term;
  node.known_term = std::max(node.known_term, term);
  node.leader_term = term;
  node.leader_since_tick = node.ticks;
  if (tracing()) trace_line(node_name(node.id), "LEADER of term " + std::to_string(term.value()));
  checker_.on_leader(node.id, term);
}

void Cluster::take_ready(SimNode& node) {
  raft::Ready ready = node.raft->ready();
  if (ready.hard_state) node.known_term = std::max(node.known_term, ready.hard_state->term);
  if (ready.soft_state) note_soft_state(node, *ready.soft_state);
  for (const raft::Message& message : ready.messages) send(node, message);
  PendingWrite write;
  if (ready.snapshot) {
    auto chain = checker_.chain_for_snapshot(node.id, ready.snapshot->meta);
    if (!chain) return;
    write.snapshot = *ready.snapshot;
    write.snapshot_chain = *chain;
  }
  write.entries = ready.entries_to_persist;
  write.hard_state = ready.hard_state;
  node.in_progress = std::move(ready);
  node.pending = std::move(write);
  if (node.pending.empty()) {
    finish_ready(node);
    return;
  }
  if (tracing()) {
    trace_line(node_name(node.id),
               "write " + std::to_string(node.pending.entries.size()) + " entr(y/ies)" +
                   (node.pending.hard_state
                        ? " hs{term=" + std::to_string(node.pending.hard_state->term.value()) +
                              " vote=" + std::to_string(node.pending.hard_state->vote.value()) +
                              " commit=" + std::to_string(node.pending.hard_state->commit.value()) +
                              "}"
                        : "") +
                   (node.pending.snapshot ? " snapshot@" + std::to_string(
                                                node.pending.snapshot->meta.index.value())
                                          : ""));
  }
  Event fsync;
  fsync.kind = EventKind::kFsync;
  fsync.node = node.id.value();
  fsync.incarnation = node.incarnation;
  const SimTime delay = prng_->range(node.timing.fsync_min_us, node.timing.fsync_max_us);
  fsync.time = now_ + delay;
  push(std::move(fsync));
  const auto& hs = node.pending.hard_state;
  if (options_.crash_on_vote_write_per_mille > 0 && hs && hs->vote != kNoNode &&
      hs->vote != node.id && prng_->chance(options_.crash_on_vote_write_per_mille, 1000)) {
    const NodeId id = node.id;
    const std::uint64_t incarnation = node.incarnation;
    const SimTime restart_after = prng_->range(1'000, 50'000);
    schedule(prng_->uniform(delay), [this, id, incarnation, restart_after] {
      SimNode* victim = this->node(id);
      if (victim == nullptr || !victim->up || victim->incarnation != incarnation) return;
      if (tracing()) trace_line("nemesis", "power loss at n" + std::to_string(id.value()) +
                                               " while it persists a vote");
      crash(id);
      schedule(restart_after, [this, id] { restart(id); });
    });
  }
}

void Cluster::finish_ready(SimNode& node) {
  raft::Ready ready = std::move(*node.in_progress);
  node.in_progress.reset();
  PendingWrite write = std::move(node.pending);
  node.pending = PendingWrite{};
  if (!write.empty()) {
    Status status = node.disk->commit_write(write);
    if (!status.is_ok()) {
      checker_.fail("host", node_name(node.id) + " cannot persist its Ready: " + status.to_string());
      return;
    }
    if (!write.entries.empty()) {
      checker_.on_durable_entries(node.id, *node.disk, write.entries.front().index);
    }
    if (tracing()) trace_line(node_name(node.id), "fsync done, last=" +
                                                      std::to_string(node.disk->last_index().value()));
  }
  if (node.soft.role == raft::Role::kLeader) checker_.on_leader_log(node.id, node.leader_term, *node.disk);
  if (ready.snapshot) {
    auto state = decode_state(ready.snapshot->data);
    if (!state || state->applied != ready.snapshot->meta.index) {
      checker_.fail("host", node_name(node.id) + " received an undecodable snapshot");
      return;
    }
    node.state = *state;
    checker_.on_restore(node.id, node.state);
    if (tracing()) trace_line(node_name(node.id), "installed snapshot at " +
                                                      std::to_string(state->applied.value()));
  }
  for (const raft::Message& message : ready.messages_after_persist) send(node, message);
  apply_committed(node, ready);
  if (checker_.failed()) return;
  node.raft->advance(ready);
  bool conf_changed = ready.snapshot.has_value();
  for (const raft::Entry& entry : ready.committed_entries) {
    if (entry.type == raft::EntryType::kConfChange) conf_changed = true;
  }
  if (conf_changed) note_conf_state(node);
  // Host policy: snapshot after every membership change (besides the periodic ones), so the
  // snapshot a joining node receives names it — a node refuses a snapshot whose membership
  // does not include it (etcd raft.restore), and the group's bootstrap membership is not in
  // the log.
  maybe_compact(node, conf_changed && !ready.snapshot);
  if (listener_ != nullptr) {
    for (const raft::ReadState& read_state : ready.read_states) {
      listener_->on_read_state(node, read_state);
    }
  }
}

void Cluster::apply_committed(SimNode& node, const raft::Ready& ready) {
  for (const raft::Entry& entry : ready.committed_entries) {
    checker_.on_apply(node.id, node.known_term, node.state, entry);
    if (checker_.failed()) return;
    node.state = apply_to_state(node.state, entry);
    ++node.applied_since_snapshot;
    if (tracing() && entry.type != raft::EntryType::kNormal) {
      trace_line(node_name(node.id), "apply " + raft::describe(entry));
    }
    if (listener_ != nullptr) listener_->on_applied(node, entry);
  }
}

void Cluster::note_conf_state(SimNode& node) {
  node.conf_state = node.raft->conf_state();
  node.grace_since_tick = node.ticks;
  if (node.conf_state.voters.empty()) return;  // a joiner that has not learned it yet
  checker_.on_conf_state(node.conf_state);
  if (tracing()) trace_line(node_name(node.id), "conf " + raft::describe(node.conf_state));
  // Membership as the cluster knows it: only a node further ahead than any before it decides.
  if (node.state.applied <= last_conf_applied_) return;
  last_conf_applied_ = node.state.applied;
  for (auto& [id, other] : nodes_) {
    const bool member = conf_contains(node.conf_state, other->id);
    if (member) ever_member_.insert(id);
    if (!member && ever_member_.count(id) != 0 && !other->removed) {
      removed_pending_.push_back(other->id);
    }
  }
  for (NodeId id : removed_pending_) {
    // Give the removed node a moment to learn of its removal, as an operator would.
    schedule(200'000, [this, id] { shutdown_removed(id); });
  }
  removed_pending_.clear();
}

void Cluster::maybe_compact(SimNode& node, bool force) {
  if (!force && (options_.snapshot_every_entries == 0 ||
                 node.applied_since_snapshot < options_.snapshot_every_entries)) {
    return;
  }
  if (node.state.applied <= node.disk->snapshot_index() ||
      node.state.applied > node.disk->last_index()) {
    return;
  }
  node.applied_since_snapshot =
      options_.snapshot_every_entries == 0 ? 0 : prng_->uniform(options_.snapshot_every_entries / 2 + 1);
  const raft::ConfState conf = node.raft->conf_state();
  Status status = node.disk->compact(node.state.applied, conf, encode_state(node.state));
  if (!status.is_ok()) {
    checker_.fail("host", node_name(node.id) + " compaction failed: " + status.to_string());
    return;
  }
  if (tracing()) {
    trace_line(node_name(node.id),
               "snapshot+compact at " + std::to_string(node.state.applied.value()));
  }
}

Result<LogIndex> Cluster::propose(NodeId id, SharedBuffer payload) {
  SimNode* n = node(id);
  if (n == nullptr || !n->up) return Status::unavailable("node down");
  auto result = n->raft->propose(std::move(payload));
  drive(*n);
  check_node(*n);
  return result;
}

Result<LogIndex> Cluster::propose_conf_change(NodeId id, const raft::ConfChange& change) {
  SimNode* n = node(id);
  if (n == nullptr || !n->up) return Status::unavailable("node down");
  auto result = n->raft->propose_conf_change(change);
  drive(*n);
  return result;
}

Status Cluster::read_index(NodeId id, std::uint64_t context) {
  SimNode* n = node(id);
  if (n == nullptr || !n->up) return Status::unavailable("node down");
  Status status = n->raft->read_index(context);
  drive(*n);
  return status;
}

Status Cluster::transfer_leader(NodeId id, NodeId transferee) {
  SimNode* n = node(id);
  if (n == nullptr || !n->up) return Status::unavailable("node down");
  Status status = n->raft->transfer_leader(transferee);
  if (status.is_ok()) n->grace_since_tick = n->ticks;  // the core restarts its timeout (§3.10)
  drive(*n);
  return status;
}

std::vector<NodeId> Cluster::leaders() const {
  std::vector<const SimNode*> found;
  for (const auto& [id, n] : nodes_) {
    if (n->up && n->soft.role == raft::Role::kLeader) found.push_back(n.get());
  }
  std::stable_sort(found.begin(), found.end(), [](const SimNode* a, const SimNode* b) {
    return a->leader_term > b->leader_term;
  });
  std::vector<NodeId> out;
  for (const SimNode* n : found) out.push_back(n->id);
  return out;
}

std::vector<NodeId> Cluster::up_nodes() const {
  std::vector<NodeId> out;
  for (const auto& [id, n] : nodes_) {
    if (n->up) out.push_back(n->id);
  }
  return out;
}

std::vector<NodeId> Cluster::member_ids() const {
  std::vector<NodeId> out;
  for (const auto& [id, n] : nodes_) {
    if (!n->removed) out.push_back(n->id);
  }
  return out;
}

}  // namespace mq::sim
