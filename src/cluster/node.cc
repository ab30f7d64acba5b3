// Node: start/stop, the event-loop plumbing (transport and flusher posts, ticks, pumping),
// leader hints. Admin calls and metadata are in node_admin.cc, reconciliation and
// retention in node_reconcile.cc.
#include "cluster/node.h"

#include <algorithm>
#include <asio/post.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "base/le_codec.h"
#include "cluster/ids.h"
#include "storage/read_cache.h"

namespace mq::cluster {

Result<BrokerAddress> parse_broker_address(std::string_view text) {
  // id@host:rpc_port:kafka_port
  auto bad = [&] {
    return Status::invalid_argument("broker address '" + std::string(text) +
                                    "': expected id@host:rpc_port:kafka_port");
  };
  auto at = text.find('@');
  auto last = text.rfind(':');
  if (at == std::string_view::npos || last == std::string_view::npos || last < at) return bad();
  auto mid = text.rfind(':', last - 1);
  if (mid == std::string_view::npos || mid <= at + 1) return bad();
  auto parse_int = [](std::string_view s, std::int64_t lo, std::int64_t hi, std::int64_t* out) {
    std::int64_t v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size() || v < lo || v > hi) return false;
    *out = v;
    return true;
  };
  std::int64_t id = 0, rpc = 0, kafka = 0;
  if (!parse_int(text.substr(0, at), 0, INT32_MAX, &id) ||
      !parse_int(text.substr(mid + 1, last - mid - 1), 1, 65535, &rpc) ||
      !parse_int(text.substr(last + 1), 1, 65535, &kafka)) {
    return bad();
  }
  BrokerAddress a;
  a.id = BrokerId(static_cast<std::int32_t>(id));
  a.host = std::string(text.substr(at + 1, mid - at - 1));
  a.rpc_port = static_cast<std::uint16_t>(rpc);
  a.kafka_port = static_cast<std::uint16_t>(kafka);
  return a;
}

Status NodeConfig::validate() const {
  if (id.value() < 0) return Status::invalid_argument("broker id must be >= 0");
  if (data_dir.empty()) return Status::invalid_argument("data_dir is required");
  MQ_RETURN_IF_ERROR(replica_recovery.validate());
  if (tick_ms == 0 || tick_ms > 1000) return Status::invalid_argument("tick_ms must be in [1, 1000]");
  if (heartbeat_ticks == 0 || heartbeat_ticks >= election_ticks) {
    return Status::invalid_argument("heartbeat_ticks must be in [1, election_ticks)");
  }
  if (max_batch_bytes == 0 || max_batch_bytes > (64u << 20)) {
    return Status::invalid_argument("max_batch_bytes must be in [1, 64 MiB]");
  }
  if (inbound_queue_messages_max == 0 || produce_waiters_max == 0 || fetch_waiters_max == 0) {
    return Status::invalid_argument("queue bounds must be positive");
  }
  if (default_partitions < 1) return Status::invalid_argument("default_partitions must be >= 1");
  bool self_listed = brokers.empty();
  std::set<BrokerId> ids;
  for (const BrokerAddress& b : brokers) {
    if (!ids.insert(b.id).second) {
      return Status::invalid_argument("broker " + std::to_string(b.id.value()) + " listed twice");
    }
    self_listed |= b.id == id;
  }
  if (!join_seeds.empty() && !brokers.empty() && self_listed) {
    return Status::invalid_argument("a broker of the static list cannot join (join_seeds)");
  }
  if (!self_listed && join_seeds.empty()) {
    return Status::invalid_argument("this broker's id is not in the broker list");
  }
  return Status::ok();
}

Node::Node(asio::io_context& loop, NodeConfig config)
    : loop_(loop),
      config_(std::move(config)),
      alive_(std::make_shared<bool>(true)),
      inbound_pending_(std::make_shared<std::atomic<std::uint32_t>>(0)),
      tick_timer_(loop) {
  if (config_.loop_stall_threshold_ms > 0) {
    LoopWatchOptions watch;
    watch.stall_threshold_ms = config_.loop_stall_threshold_ms;
    watch.log = [this](std::string_view line) { log(line); };
    loop_watch_ = std::make_unique<LoopWatch>(std::move(watch));
  }
  if (config_.brokers.empty() && config_.join_seeds.empty()) {
    config_.brokers.push_back(BrokerAddress{config_.id, config_.rpc_listen_host,
                                            config_.rpc_listen_port, config_.advertised_kafka_port});
  }
}

Node::~Node() { stop(); }

void Node::log(std::string_view line) {
  // Wall-clock seconds with milliseconds, as librdkafka's log lines: broker and client logs
  // of a failover can be lined up.
  std::int64_t wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  std::fprintf(stderr, "%lld.%03lld cluster[broker %d] %.*s\n",
               static_cast<long long>(wall_ms / 1000), static_cast<long long>(wall_ms % 1000),
               config_.id.value(), static_cast<int>(line.size()), line.data());
}

bool default_lazy_commit_broadcast() {
  const char* env = std::getenv("RAFTMQ_LAZY_COMMIT");
  return env == nullptr || std::string_view(env) != "0";
}

bool default_send_while_parked() {
  const char* env = std::getenv("RAFTMQ_SEND_WHILE_PARKED");
  return env == nullptr || std::string_view(env) != "0";
}

raft::Config Node::raft_config(const std::vector<NodeId>& voters) const {
  (void)voters;
  raft::Config c;
  c.id = node_of(config_.id);
  c.election_ticks = config_.election_ticks;
  c.heartbeat_ticks = config_.heartbeat_ticks;
  c.random_seed = static_cast<std::uint64_t>(steady_now_ms()) * 1000003u + c.id.value();
  c.max_msg_bytes = config_.max_message_bytes;
  c.max_inflight_msgs = config_.max_inflight_msgs;
  c.max_inflight_bytes = config_.max_inflight_bytes;
  c.max_uncommitted_bytes = config_.max_uncommitted_bytes;
  c.max_committed_bytes_per_ready = config_.max_committed_bytes_per_ready;
  c.pre_vote = true;
  c.check_quorum = true;
  return c;
}

Status Node::start() {
  MQ_ASSERT(!started_, "Node::start called twice");
  MQ_RETURN_IF_ERROR(config_.validate());
  MQ_RETURN_IF_ERROR(prepare_join());  // node_join.cc: a joined broker's saved voters
  started_ = true;
  MQ_RETURN_IF_ERROR(storage::posix_file_system()->create_dirs(config_.data_dir + "/partitions"));
  flusher_ = std::make_unique<storage::Flusher>(storage::FlusherOptions{},
                                                storage::SystemClock::instance());
  flusher_->start();
  MQ_RETURN_IF_ERROR(open_sync_ledger());  // replica_repair.cc

  transport::TransportOptions topts;
  topts.self = config_.id;
  topts.cluster_id = config_.cluster_id;
  topts.queue_messages_max = config_.peer_queue_messages_max;
  topts.queue_bytes_max = config_.peer_queue_bytes_max;
  bool on_loop = config_.transport_on_loop;
  if (const char* env = std::getenv("RAFTMQ_TRANSPORT_ON_LOOP"); env != nullptr) {
    on_loop = std::string_view(env) == "1";
  }
  if (on_loop) topts.io = &loop_;
  transport::TransportCallbacks callbacks;
  auto alive = alive_;
  auto pending = inbound_pending_;
  const std::uint32_t pending_max = config_.inbound_queue_messages_max;
  callbacks.on_message = [this, alive, pending, pending_max](BrokerId from, GroupId group,
                                                               raft::Message message) {
    // Transport thread (or the loop itself, TransportOptions::io): hand over to the loop,
    // bounded.
    if (pending->fetch_add(1) >= pending_max) {
      pending->fetch_sub(1);
      return;  // dropped: Raft retransmits
    }
    asio::post(loop_, [this, alive, pending, from, group, m = std::move(message)]() mutable {
      pending->fetch_sub(1);
      if (!*alive) return;
      LoopWatch::Section section(loop_watch(), "deliver");
      deliver(from, group, std::move(m));
    });
  };
  callbacks.on_unreachable = [this, alive](BrokerId peer) {
    asio::post(loop_, [this, alive, peer] {
      if (!*alive) return;
      LoopWatch::Section section(loop_watch(), "peer_unreachable");
      on_peer_unreachable(peer);
    });
  };
  // RAFTMQ_LOG_TRANSPORT_INFO=1 also logs connections made and closed (tracing a failover).
  const bool transport_info = std::getenv("RAFTMQ_LOG_TRANSPORT_INFO") != nullptr;
  callbacks.on_log = [this, transport_info](transport::LogLevel level, std::string_view line) {
    if (level != transport::LogLevel::kInfo || transport_info) {
      log("transport: " + std::string(line));
    }
  };
  transport_ = std::make_unique<transport::Transport>(topts, std::move(callbacks));
  MQ_RETURN_IF_ERROR(transport_->start());
  MQ_ASSIGN_OR_RETURN(rpc_port_, transport_->listen(config_.rpc_listen_host, config_.rpc_listen_port));
  // A new broker opens its controller replica once the cluster answered its join.
  if (!join_pending_) MQ_RETURN_IF_ERROR(open_cluster());
  start_membership_timer();
  arm(tick_timer_, config_.tick_ms, &Node::on_tick);
  return Status::ok();
}

Status Node::open_cluster() {
  for (const BrokerAddress& b : config_.brokers) {
    if (b.id == config_.id) continue;
    MQ_RETURN_IF_ERROR(transport_->add_peer(b.id, b.host, b.rpc_port));
  }
  MQ_RETURN_IF_ERROR(open_controller());
  start_producer_ids();
  ready_started_ms_ = steady_now_ms();
  ready_deadline_ms_ = ready_started_ms_ + config_.ready_timeout_ms;
  return Status::ok();
}

// Node::open_controller: controller_recovery.cc.

void Node::arm(asio::steady_timer& timer, std::uint32_t ms, void (Node::*handler)()) {
  timer.expires_after(std::chrono::milliseconds(ms));
  auto alive = alive_;
  timer.async_wait([this, alive, handler](const std::error_code& ec) {
    if (ec || !*alive) return;
    (this->*handler)();
  });
}

void Node::stop() {
  if (stopped_) return;
  stopped_ = true;
  *alive_ = false;
  std::error_code ignored;
  tick_timer_.cancel();
  if (transport_) transport_->stop();
  if (auto ids = std::move(producer_ids_)) ids->abort_all(Status::unavailable("broker stopped"));
  fail_forwards(Status::unavailable("broker stopped"));
  fail_voter_waits(Status::unavailable("broker stopped"));
  fail_propagations();
  fail_status_gathers();
  // Groups go before the flusher: a Log deregisters itself from its flusher when destroyed.
  // They are detached first: destroying a group fails its waiters, whose callbacks may call
  // back into this Node (which then sees no groups, not a map being cleared).
  auto partitions = std::move(partitions_);
  partitions_.clear();
  by_name_.clear();
  auto controller = std::move(controller_);
  controller_.reset();
  partitions.clear();
  controller.reset();
  if (flusher_) {
    flusher_->stop();
    storage::FlusherStats fs = flusher_->stats();
    log("flusher: " + std::to_string(fs.rounds) + " rounds, " + std::to_string(fs.fdatasyncs) +
        " fdatasyncs, " + std::to_string(fs.shared_flush_logs) +
        " logs made durable by another log's fdatasync, " + std::to_string(fs.sync_errors) +
        " sync errors");
  }
  flusher_.reset();
  sync_ledger_.reset();  // after the logs and the flusher (a last fdatasync of the ledger)
  // The process's read cache (storage/read_cache.h): what it served, for the log's reader.
  storage::ReadCacheStats rc = storage::ReadCache::instance().stats();
  if (rc.budget_bytes > 0 || rc.kept > 0) {
    log("read cache: budget " + std::to_string(rc.budget_bytes >> 20) + " MiB, " +
        std::to_string(rc.kept) + " of " + std::to_string(rc.offered) + " written parts kept, " +
        std::to_string(rc.recycled) + " recycled, " + std::to_string(rc.hits) +
        " fetch extents served (" + std::to_string(rc.hit_bytes >> 20) + " MiB), " +
        std::to_string(rc.filled) + " blocks touched ahead, " +
        std::to_string(rc.low_memory_refusals) + " growths refused for low memory");
  }
}

bool Node::send_message(GroupId group, raft::Message message) {
  if (!transport_) return false;
  BrokerId to = broker_of(message.to);
  if (link_blocked(to)) {
    ++metrics_.messages_send_dropped;
    return false;
  }
  // Nothing is queued for a peer whose link is down (tests/chaos/FINDINGS.md F2): Raft
  // retransmits what it still needs once the link is back (§5.3), whereas a backlog of stale
  // heartbeats and appends flooded both event loops on reconnect (every queued heartbeat
  // answered, every answer re-sending the same entries), delaying the heartbeats to the other
  // followers past their election timeout while the returning broker had no leader yet.
  auto link = transport_->peer_stats(to);
  if (link.has_value() && !link->connected) {
    ++metrics_.messages_send_dropped;
    return false;
  }
  bool sent = transport_->send(to, group, std::move(message));
  if (sent) {
    ++metrics_.messages_sent;
  } else {
    ++metrics_.messages_send_dropped;
  }
  return sent;
}

void Node::flush_messages() {
  if (transport_) transport_->flush_on_caller();
}

RaftGroup* Node::find_group(GroupId group) {
  if (group == kControllerGroup) return controller_.get();
  auto it = partitions_.find(group);
  return it == partitions_.end() ? nullptr : it->second.get();
}

void Node::deliver(BrokerId from, GroupId group, raft::Message message) {
  ++metrics_.inbound_messages;
  if (!note_inbound(from)) return;
  if (refuse_removed_peer(from, group, message)) return;  // node_join.cc
  if (!peers_awaiting_back_.empty()) note_peer_heard(from);
  if (group == kControlPlaneGroup) {
    if (message.context == kQuiesceContext) return handle_quiesce(from, message);
    if (message.context == kPingContext) return;  // note_inbound() recorded it
    if (message.context == kAdminRequestContext) return handle_admin_request(from, message);
    if (message.context == kAdminResponseContext) return handle_admin_response(from, message);
    if (message.context == kStatusRequestContext) return handle_status_request(from, message);
    if (message.context == kStatusResponseContext) return handle_status_response(from, message);
    if (message.context == kJoinRequestContext) return handle_join_request(from, message);
    if (message.context == kJoinAnswerContext) return handle_join_answer(from, message);
    if (message.context == kRemovedNoticeContext) return handle_removed_notice(from, message);
    if (message.context == kAppliedQueryContext) return handle_applied_query(from, message);
    if (message.context == kAppliedAckContext) return handle_applied_ack(from, message);
    return handle_hints(from, message);
  }
  if (group == kProducerIdChannel) return handle_producer_id_request(from, message);
  if (group == kControllerGroup && controller_hold_until_ms_ != 0 &&
      steady_now_ms() < controller_hold_until_ms_) {
    return;  // hold_controller_for_test
  }
  RaftGroup* g = find_group(group);
  if (g == nullptr) {
    // Not (yet) hosted here: reconciliation creates it once the metadata says so; the
    // leader retransmits.
    ++metrics_.inbound_dropped;
    return;
  }
  g->step(message);
  schedule_pump(group);
}

void Node::schedule_pump(GroupId group) {
  dirty_.insert(group);
  if (pump_scheduled_) return;
  pump_scheduled_ = true;
  auto alive = alive_;
  asio::post(loop_, [this, alive] {
    if (!*alive) return;
    LoopWatch::Section section(loop_watch(), "drain_pumps");
    drain_pumps();
  });
}

void Node::drain_pumps() {
  pump_scheduled_ = false;
  std::set<GroupId> dirty;
  dirty.swap(dirty_);
  // Bounded in time like each pump (RaftGroupOptions::pump_budget_ms): the groups left over
  // go to a later turn of the loop, behind the inbound messages and the tick queued
  // meanwhile. Starting after the last group pumped keeps that fair.
  const std::int64_t started = steady_now_ms();
  auto first = dirty.upper_bound(drain_cursor_);
  if (first == dirty.end()) first = dirty.begin();
  auto it = first;
  for (std::size_t done = 0; done < dirty.size(); ++done) {
    if (done > 0 && steady_now_ms() - started >= kDrainBudgetMs) {
      for (; done < dirty.size(); ++done) {
        schedule_pump(*it);
        if (++it == dirty.end()) it = dirty.begin();
      }
      return;
    }
    drain_cursor_ = *it;
    if (RaftGroup* g = find_group(*it)) g->pump();
    if (++it == dirty.end()) it = dirty.begin();
  }
}

void Node::on_ready_pending(GroupId group) { schedule_pump(group); }

void Node::on_tick() {
  LoopWatch* watch = loop_watch();
  if (watch != nullptr) watch->attach();  // the tick runs on the loop thread (idempotent)
  LoopWatch::Section section(watch, "on_tick");
  std::int64_t now = steady_now_ms();
  last_tick_wake_ms_ = now;
  ++metrics_.tick_wakeups;
  if (controller_) {
    LoopWatch::Section part(watch, "controller_tick");
    controller_->tick(tick_stride_);  // one heartbeat round per wake-up
    controller_->pump();
  }
  {
    LoopWatch::Section part(watch, "tick_partitions");
    check_liveness(now);
    tick_partitions(now);
  }
  if (producer_ids_) producer_ids_->poll();
  if (now - last_sweep_ms_ >= sweep_interval_ms()) {
    last_sweep_ms_ = now;
    LoopWatch::Section part(watch, "sweep");
    if (controller_) controller_->sweep(now);
    sweep_forwards(now);
    sweep_propagations(now);  // node_propagation.cc
    sweep_partitions(now);
  }
  if (now - last_recover_ms_ >= recover_interval_ms()) {
    last_recover_ms_ = now;
    LoopWatch::Section recover(watch, "recover_replicas");
    recover_replicas(now);
  }
  if (now - last_reconcile_ms_ >= reconcile_interval_ms()) {
    last_reconcile_ms_ = now;
    LoopWatch::Section part(watch, "reconcile");
    register_brokers();
    reconcile();
  }
  run_due_campaigns(now);
  check_ready(now);
  if (hints_due_ || now - last_hint_ms_ >= config_.leader_hint_interval_ms) {
    last_hint_ms_ = now;
    hints_due_ = false;
    LoopWatch::Section part(watch, "broadcast_hints");
    broadcast_hints();
  }
  if (config_.leader_rebalance_interval_ms > 0 &&
      now - last_rebalance_ms_ >= config_.leader_rebalance_interval_ms) {
    last_rebalance_ms_ = now;
    LoopWatch::Section part(watch, "rebalance_leaders");
    rebalance_leaders();
  }
  if (now - last_retention_ms_ >= config_.retention_check_interval_ms) {
    last_retention_ms_ = now;
    LoopWatch::Section part(watch, "retention");
    run_retention();
  }
  tick_stride_ = idle_tick_stride();  // node_quiesce.cc
  if (watch != nullptr) watch->mark_tick(static_cast<std::int64_t>(tick_stride_) * config_.tick_ms);
  if (*alive_) arm(tick_timer_, tick_stride_ * config_.tick_ms, &Node::on_tick);
}

NodeMetrics Node::metrics() const {
  NodeMetrics m = metrics_;
  if (loop_watch_ != nullptr) {
    const LoopStallStats stalls = loop_watch_->stats();
    m.loop_stalls = stalls.stalls;
    m.loop_stalls_severe = stalls.severe_stalls;
    m.loop_stall_longest_ms = stalls.longest_ms;
    m.loop_stall_longest = stalls.longest;
  }
  return m;
}

void Node::on_leader_changed(GroupId group, NodeId leader) {
  // Wall-clock milliseconds: the failover test lines these up with its kill times.
  RaftGroup* g = find_group(group);
  auto wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  std::string name = g != nullptr ? g->name() : std::string("group");
  if (leader == kNoNode) {
    log("no leader known for " + name + " at " + std::to_string(wall_ms));
    leaderless_since_ms_.try_emplace(group, steady_now_ms());
    return;
  }
  leaderless_since_ms_.erase(group);
  if (leader == node_of(config_.id)) {
    log("elected leader of " + name + " at " + std::to_string(wall_ms));
  } else {
    log("broker " + std::to_string(broker_of(leader).value()) + " leads " + name + " at " +
        std::to_string(wall_ms));
  }
  campaign_due_ms_.erase(group);
  campaign_penalty_ms_.erase(group);
  if (leader == node_of(config_.id) && group != kControllerGroup) hints_due_ = true;
}

// ---- Readiness ----
namespace {
constexpr std::uint64_t kReadyReadContext = 0x7265616479ull;  // "ready"
constexpr std::int64_t kReadyRetryMs = 200;  // ReadIndex requests may be lost: ask again
}

void Node::when_ready(std::function<void()> ready) {
  if (ready_) return ready();
  ready_waiters_.push_back(std::move(ready));
}

void Node::on_read_state(GroupId group, const raft::ReadState& state) {
  if (group != kControllerGroup || state.request_context != kReadyReadContext) return;
  if (!ready_index_ || *ready_index_ < state.index) ready_index_ = state.index;
}

void Node::check_ready(std::int64_t now_ms) {
  if (ready_ || !controller_) return;
  bool caught_up = ready_index_.has_value() && controller_->applied() >= *ready_index_;
  if (!caught_up && now_ms < ready_deadline_ms_) {
    if (!ready_index_ && now_ms - ready_asked_ms_ >= kReadyRetryMs) {
      ready_asked_ms_ = now_ms;
      // kNotLeader while no controller leader is known: asked again later.
      if (controller_->read_index(kReadyReadContext).is_ok()) schedule_pump(kControllerGroup);
    }
    return;
  }
  ready_ = true;
  if (caught_up) {
    log("controller state caught up (applied index " +
        std::to_string(controller_->applied().value()) + ") after " +
        std::to_string(now_ms - ready_started_ms_) + " ms: ready");
  } else {
    log("controller state not confirmed current after " +
        std::to_string(config_.ready_timeout_ms) + " ms (no controller leader?): serving anyway");
  }
  auto waiters = std::move(ready_waiters_);
  ready_waiters_.clear();
  for (auto& w : waiters) w();
}

// ---- Leader hints: which broker leads which partition group (docs/cluster.md) ----
// Body of the control-plane message's single entry: count u32, then per group:
// group u64 | term u64 | leader i32.
void Node::broadcast_hints() {
  Buffer body;
  std::uint32_t count = 0;
  le::put_u32(body, 0);
  for (auto& [id, g] : partitions_) {
    if (!g->is_leader()) continue;
    le::put_u64(body, id.value());
    le::put_u64(body, g->term().value());
    le::put_u32(body, static_cast<std::uint32_t>(config_.id.value()));
    ++count;
  }
  le::encode_u32(body.data(), count);
  if (count == 0 || !transport_) return;
  SharedBuffer shared(std::move(body));
  for (BrokerId b : peer_ids()) {  // the static list and the brokers that joined
    raft::Message m;
    m.type = raft::MessageType::kReadIndex;
    m.from = node_of(config_.id);
    m.to = node_of(b);
    raft::Entry e;
    e.payload = shared;
    m.entries.push_back(std::move(e));
    transport_->send(b, kControlPlaneGroup, std::move(m));
  }
}

void Node::handle_hints(BrokerId from, const raft::Message& message) {
  if (message.entries.size() != 1) return;
  le::LeReader r(message.entries[0].payload.view());
  std::uint32_t count = 0;
  if (!r.read_u32(&count) || count > r.remaining() / 20) return;
  std::int64_t now = steady_now_ms();
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uint64_t group = 0, term = 0;
    std::uint32_t leader = 0;
    if (!r.read_u64(&group) || !r.read_u64(&term) || !r.read_u32(&leader)) return;
    if (BrokerId(static_cast<std::int32_t>(leader)) != from) continue;  // only self-reports
    Hint& h = hints_[GroupId(group)];
    if (Term(term) >= h.term) h = Hint{Term(term), from, now};
  }
}

}  // namespace mq::cluster
