// Node: the reconciliation loop (desired assignment in the controller state vs. hosted
// groups), partition membership changes (moves), retention, broker registration, graceful
// shutdown. docs/cluster.md describes each.
#include <algorithm>
#include <cstring>
#include <asio/post.hpp>
#include <filesystem>

#include "cluster/ids.h"
#include "cluster/internal_topics.h"
#include "cluster/node.h"
#include "cluster/replica_repair.h"

namespace mq::cluster {
namespace {

constexpr const char* kDeletedSuffix = ".deleted";
constexpr std::int64_t kMoveStepIntervalMs = 200;
// A new partition's preferred replica campaigns this long after creating it (reconcile).
constexpr std::int64_t kPreferredCampaignDelayMs = 100;

bool contains(const std::vector<BrokerId>& v, BrokerId b) {
  return std::find(v.begin(), v.end(), b) != v.end();
}
bool contains_node(const std::vector<NodeId>& v, NodeId n) {
  return std::find(v.begin(), v.end(), n) != v.end();
}

// "<topic>-<partition>-g<group>" -> group; nullopt when the name has another shape.
std::optional<GroupId> group_of_dir(const std::string& name) {
  auto pos = name.rfind("-g");
  if (pos == std::string::npos || pos + 2 >= name.size()) return std::nullopt;
  std::uint64_t v = 0;
  for (std::size_t i = pos + 2; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(name[i] - '0');
  }
  return GroupId(v);
}

std::int64_t config_number(const std::map<std::string, std::string>& configs,
                           const std::string& key, std::int64_t fallback) {
  auto it = configs.find(key);
  if (it == configs.end()) return fallback;
  try {
    return std::stoll(it->second);
  } catch (...) {
    return fallback;
  }
}

// Log compaction of one replica (compaction.h; docs/cluster.md "Compaction"), on the event
// loop, bounded per run by CompactionOptions. Returns a line for the broker log, if any.
std::optional<std::string> run_compaction(PartitionGroup& g,
                                          const std::map<std::string, std::string>& configs) {
  CompactionOptions options;
  options.delete_retention_ms = std::max<std::int64_t>(
      0, config_number(configs, "delete.retention.ms", options.delete_retention_ms));
  // Only internal topics (__consumer_offsets: read by its coordinator alone) may lose their
  // emptied prefix; a user consumer below a moved log start would be reset (docs/cluster.md).
  options.trim_empty_prefix = g.partition_options().topic.starts_with("__");
  auto stats = g.compact(storage::SystemClock::instance()->now_ms(), options);
  if (!stats.has_value()) return g.name() + ": compaction failed: " + stats.error().to_string();
  if (!*stats || ((*stats)->segments_rewritten == 0 && !(*stats)->prefix_trimmed)) {
    return std::nullopt;
  }
  const CompactionStats& s = **stats;
  return g.name() + ": compacted " + std::to_string(s.segments_rewritten) + " segments, " +
         std::to_string(s.bytes_before) + " -> " + std::to_string(s.bytes_after) + " bytes, " +
         std::to_string(s.records_removed) + " records removed" +
         (s.prefix_trimmed ? ", empty prefix removed" : "");
}

}  // namespace

std::string Node::partition_dir(const std::string& topic, std::int32_t partition,
                                GroupId group) const {
  return config_.data_dir + "/partitions/" + topic + "-" + std::to_string(partition) + "-g" +
         std::to_string(group.value());
}

Result<std::unique_ptr<PartitionGroup>> Node::open_partition(
    const TopicRecord& topic, std::int32_t partition,
    std::optional<storage::DamagedTailCut>* cut) {
  const PartitionRecord& record = topic.partitions[static_cast<std::size_t>(partition)];
  raft::ConfState bootstrap;
  // Every replica bootstraps with the group's creation membership (etcd's static
  // bootstrap), including one added later by a move: the bootstrap membership is not a log
  // entry, so a newcomer replays the log's configuration changes on top of it and reaches
  // the leader's membership (docs/raft_driver.md). Starting it empty would make it apply
  // "add learner 3" to an empty configuration and later believe it is a single voter.
  // A newcomer that is not an initial voter is not promotable until the change adding it
  // is applied.
  for (BrokerId b : record.initial_replicas) bootstrap.voters.push_back(node_of(b));
  std::sort(bootstrap.voters.begin(), bootstrap.voters.end());
  std::string name = topic.name + "-" + std::to_string(partition);
  GroupStorageOptions so;
  so.directory = partition_dir(topic.name, partition, record.group);
  so.name = name;
  so.format = PayloadFormat::kKafkaBatches;
  so.bootstrap = bootstrap;
  so.segment_size_bytes_max = static_cast<std::uint64_t>(
      config_number(topic.configs, "segment.bytes", static_cast<std::int64_t>(config_.segment_size_bytes)));
  so.entry_payload_bytes_max = config_.max_batch_bytes + 4096;  // room for a control batch
  so.zero_fill_window_bytes = config_.zero_fill_window_bytes;
  so.direct_write_depth = config_.direct_write_depth;
  GroupId gid = record.group;
  so.sync_ledger = sync_ledger_.get();  // replica_repair.cc: lost synced entries
  so.sync_ledger_key = gid.value();
  auto alive = alive_;
  so.on_durable = [this, alive, gid](LogIndex index) {
    asio::post(loop_, [this, alive, gid, index] {
      if (!*alive) return;
      auto it = partitions_.find(gid);
      if (it != partitions_.end()) it->second->on_durable(index);
    });
  };
  if (cut != nullptr) {
    // Repair mode (replica_repair.h): the abstention bound is durable before the cut.
    so.on_damaged_tail_cut = [fs = partition_file_system(), dir = so.directory,
                              cut](const storage::DamagedTailCut& c) -> Status {
      MQ_ASSIGN_OR_RETURN(auto previous, replica_repair::load_abstention(fs, dir));
      LogIndex until = std::max(c.last_index_before, previous.value_or(LogIndex(0)));
      MQ_RETURN_IF_ERROR(replica_repair::save_abstention(fs, dir, until));
      *cut = c;
      return Status::ok();
    };
  }
  const std::string dir = so.directory;
  MQ_ASSIGN_OR_RETURN(auto storage, GroupStorage::open(partition_file_system(),
                                                       storage::SystemClock::instance(),
                                                       flusher_.get(), std::move(so)));
  RaftGroupOptions go;
  go.group = gid;
  go.name = name;
  go.raft = raft_config(bootstrap.voters);
  go.raft.lazy_commit_broadcast = config_.lazy_commit_broadcast;
  go.send_while_parked = config_.send_while_parked;
  PartitionOptions po;
  po.topic = topic.name;
  po.partition = partition;
  po.produce_timeout_ms = config_.produce_timeout_ms;
  po.produce_waiters_max = config_.produce_waiters_max;
  po.fetch_waiters_max = config_.fetch_waiters_max;
  po.batch_bytes_max = config_.max_batch_bytes;
  po.producer_state = config_.producer_state;
  auto group = std::make_unique<PartitionGroup>(this, go, po, std::move(storage));
  MQ_RETURN_IF_ERROR(group->start());
  MQ_RETURN_IF_ERROR(abstain_for_lost_synced_entries(*group, dir));
  MQ_RETURN_IF_ERROR(apply_abstention(*group, dir));
  MQ_RETURN_IF_ERROR(group->init());
  group->on_proposed = [this](PartitionGroup* g) { schedule_pump(g->id()); };
  return group;
}

const Node::Hint* Node::fresh_hint(GroupId group, std::int64_t now_ms) const {
  auto hint = hints_.find(group);
  std::int64_t fresh_ms = 3 * static_cast<std::int64_t>(config_.leader_hint_interval_ms) + 500;
  if (hint == hints_.end() || now_ms - hint->second.received_ms > fresh_ms) return nullptr;
  return &hint->second;
}

void Node::reconcile() {
  if (!controller_ || shutting_down_) return;
  ensure_internal_topics(*this);  // __consumer_offsets (docs/groups.md)
  const ControllerState& state = controller_->state();
  std::set<GroupId> desired;
  std::int64_t now = steady_now_ms();
  for (const auto& [name, topic] : state.topics()) {
    for (std::size_t p = 0; p < topic.partitions.size(); ++p) {
      const PartitionRecord& record = topic.partitions[p];
      auto hosted = partitions_.find(record.group);
      if (!contains(record.replicas, config_.id)) {
        if (hosted != partitions_.end()) reconcile_membership(*hosted->second, record);
        continue;
      }
      desired.insert(record.group);
      if (hosted != partitions_.end()) {
        reconcile_membership(*hosted->second, record);
        continue;
      }
      if (partitions_.size() >= config_.partitions_hosted_max) continue;
      if (recovery_.held(record.group)) continue;  // re-opened by recover_replicas only
      auto group = open_partition_repairing(topic, static_cast<std::int32_t>(p));
      if (!group.has_value()) {
        log("cannot open " + name + "-" + std::to_string(p) + ": " + group.error().to_string());
        continue;
      }
      by_name_[{name, static_cast<std::int32_t>(p)}] = record.group;
      bool fresh = (*group)->node().status().hard_state.term == Term(0);
      partitions_[record.group] = std::move(*group);
      ++metrics_.groups_created;
      // A new group's first election: its preferred replica (the first of its replicas,
      // which assign_replicas rotates over the brokers) campaigns kPreferredCampaignDelayMs
      // (at most a third of the election timeout) after creating it, before any replica's
      // election timeout (300-600 ms by default) can fire, so that a new topic's leaders are
      // spread like its replicas (Kafka's preferred leader) instead of wherever a timer
      // fired first. The delay lets the other brokers create their replicas (they apply the
      // same controller entry moments apart). Best effort: a campaign that finds a leader,
      // or loses, changes nothing.
      if (fresh && !record.replicas.empty() && record.replicas.front() == config_.id) {
        campaign_due_ms_[record.group] =
            now +
            std::min<std::int64_t>(kPreferredCampaignDelayMs,
                                   std::int64_t{config_.election_ticks} * config_.tick_ms / 3);
      }
      schedule_pump(record.group);
    }
  }
  // Hosted groups no longer assigned here.
  std::vector<GroupId> remove;
  std::vector<GroupId> gone;
  for (auto& [gid, g] : partitions_) {
    if (desired.count(gid) != 0) {
      orphan_since_ms_.erase(gid);
      continue;
    }
    // Deleted: the topic (or this incarnation of it: another group id) is gone.
    const TopicRecord* t = state.find_topic(g->partition_options().topic);
    auto index = static_cast<std::size_t>(g->partition_options().partition);
    bool deleted = t == nullptr || index >= t->partitions.size() || t->partitions[index].group != gid;
    // Moved away: wait until the group's membership no longer has us (we applied our own
    // removal), or a grace period (we may never learn it once removed: a replica removed
    // while it was down hears from no leader afterwards).
    auto [it, fresh] = orphan_since_ms_.emplace(gid, now);
    raft::ConfState cs = g->node().conf_state();
    NodeId me = node_of(config_.id);
    bool voter = contains_node(cs.voters, me) || contains_node(cs.voters_outgoing, me);
    bool member = voter || contains_node(cs.learners, me);
    // A voter the group may still count keeps its log: its acknowledgements may be part of a
    // committed entry's majority, and deleting it would leave that entry on fewer replicas
    // than Raft assumes (and a voter re-created empty here could grant votes to a candidate
    // lacking it; GroupStorage keeps the sync-ledger record for that case). It goes only on
    // positive evidence that the group moved on without it: a leader on another broker kept
    // reporting its leadership (fresh reports, sent every leader_hint_interval_ms) for a whole
    // grace period during which it replicated nothing here. A leader that counts this voter
    // heartbeats it far more often. A leaderless group, a stalled leader (its reports stop
    // too) or a quiesced group (no heartbeats by design) is no such evidence.
    bool grace_over = now - it->second >= config_.orphan_grace_ms;
    bool counted = voter;
    if (voter && !g->is_raft_leader() && !g->quiesced()) {
      const Hint* hint = fresh_hint(gid, now);
      std::int64_t silent_since = std::max(g->last_leader_message_ms(), it->second);
      counted = hint == nullptr || hint->leader == config_.id ||
                hint->received_ms - silent_since < config_.orphan_grace_ms;
    }
    if (deleted || !member || (grace_over && !counted)) remove.push_back(gid);
    if (deleted) gone.push_back(gid);
  }
  for (GroupId gid : remove) remove_partition(gid);
  // A deleted group's sync-ledger record goes with it (a moved-away replica's stays:
  // GroupStorage::check_sync_ledger).
  for (GroupId gid : gone) {
    if (sync_ledger_) (void)sync_ledger_->forget(gid.value());
  }
  if (metadata_changed_) {
    metadata_changed_ = false;
    remove_stray_directories();
    std::set<GroupId> listed;
    for (const auto& [name, topic] : state.topics()) {
      for (const PartitionRecord& record : topic.partitions) listed.insert(record.group);
    }
    for (auto it = hints_.begin(); it != hints_.end();) {
      it = listed.count(it->first) == 0 ? hints_.erase(it) : std::next(it);
    }
  }
}

void Node::reconcile_membership(PartitionGroup& g, const PartitionRecord& record) {
  if (!g.is_raft_leader() || g.failed()) return;
  std::int64_t now = steady_now_ms();
  auto& last = move_step_ms_[g.id()];
  if (now - last < kMoveStepIntervalMs) return;
  raft::NodeStatus ns = g.node().status();
  const raft::ConfState& cs = ns.conf_state;
  if (cs.joint()) return;  // the core leaves the joint configuration by itself (auto leave)
  std::vector<NodeId> desired;
  for (BrokerId b : record.replicas) desired.push_back(node_of(b));
  std::sort(desired.begin(), desired.end());
  std::vector<NodeId> voters = cs.voters;
  std::sort(voters.begin(), voters.end());
  if (voters == desired && cs.learners.empty()) return;
  NodeId me = node_of(config_.id);
  if (!contains_node(desired, me)) {
    // Hand leadership to a caught-up replica that stays; it then performs the change.
    for (NodeId n : desired) {
      auto p = ns.progress.find(n);
      if (p != ns.progress.end() && !p->second.learner && p->second.match >= ns.hard_state.commit) {
        (void)g.node().transfer_leader(n);
        last = now;
        schedule_pump(g.id());
        return;
      }
    }
  }
  raft::ConfChange change;
  for (NodeId n : desired) {
    if (!contains_node(cs.voters, n) && !contains_node(cs.learners, n)) {
      change.changes.push_back({raft::ConfChangeType::kAddLearner, n});
    }
  }
  if (change.changes.empty()) {
    // Every new replica is a learner now: promote those caught up with the commit index
    // and remove the voters that go, in one joint change (thesis §4.3).
    for (NodeId n : cs.learners) {
      auto p = ns.progress.find(n);
      bool caught_up = p != ns.progress.end() && p->second.match >= ns.hard_state.commit;
      if (!contains_node(desired, n)) {
        change.changes.push_back({raft::ConfChangeType::kRemoveNode, n});
      } else if (!caught_up) {
        return;  // wait for it
      } else {
        change.changes.push_back({raft::ConfChangeType::kAddNode, n});
      }
    }
    for (NodeId n : cs.voters) {
      if (!contains_node(desired, n)) change.changes.push_back({raft::ConfChangeType::kRemoveNode, n});
    }
    change.transition = raft::ConfChangeTransition::kImplicit;
  }
  if (change.changes.empty()) return;
  auto proposed = g.node().propose_conf_change(change);
  last = now;
  if (proposed.has_value()) {
    log(g.name() + ": membership change " + raft::describe(change));
    schedule_pump(g.id());
  }
}

void Node::remove_partition(GroupId gid) {
  auto it = partitions_.find(gid);
  if (it == partitions_.end()) return;
  std::string dir = it->second->storage().options().directory;
  by_name_.erase({it->second->partition_options().topic, it->second->partition_options().partition});
  it->second->abort_all(Status::not_found("partition removed from this broker"));
  partitions_.erase(it);  // closes the log (the flusher forgets it)
  campaign_due_ms_.erase(gid);
  leaderless_since_ms_.erase(gid);
  orphan_since_ms_.erase(gid);
  move_step_ms_.erase(gid);
  hints_.erase(gid);
  ++metrics_.groups_removed;
  // Rename first: a crash during the recursive delete leaves a "*.deleted" directory that the
  // next reconciliation removes, never a half-deleted replica that would be reopened.
  std::error_code ec;
  std::filesystem::rename(dir, dir + kDeletedSuffix, ec);
  if (ec) {
    log("cannot rename " + dir + ": " + ec.message());
    return;
  }
  std::filesystem::remove_all(dir + kDeletedSuffix, ec);
  if (ec) log("cannot delete " + dir + kDeletedSuffix + ": " + ec.message());
  log("removed replica directory " + dir);
}

void Node::remove_stray_directories() {
  std::string root = config_.data_dir + "/partitions";
  auto names = storage::posix_file_system()->list(root);
  if (!names.has_value()) return;
  const ControllerState& state = controller_->state();
  for (const std::string& name : *names) {
    std::error_code ec;
    std::string path = root + "/" + name;
    if (name.size() > std::strlen(kDeletedSuffix) &&
        name.compare(name.size() - std::strlen(kDeletedSuffix), std::string::npos, kDeletedSuffix) == 0) {
      std::filesystem::remove_all(path, ec);
      continue;
    }
    auto gid = group_of_dir(name);
    // Only ids the metadata has handed out and no longer lists are surely deleted; an id at
    // or above next_group means our metadata is behind: keep the data.
    if (!gid || partitions_.count(*gid) != 0 || *gid >= state.next_group()) continue;
    const TopicRecord* owner = nullptr;
    std::int32_t index = -1;
    for (const auto& [tname, t] : state.topics()) {
      for (std::size_t p = 0; p < t.partitions.size(); ++p) {
        if (t.partitions[p].group != *gid) continue;
        owner = &t;
        index = static_cast<std::int32_t>(p);
      }
    }
    if (owner == nullptr) {
      std::filesystem::rename(path, path + kDeletedSuffix, ec);
      if (!ec) std::filesystem::remove_all(path + kDeletedSuffix, ec);
      log("removed stray replica directory " + path);
      continue;
    }
    // Listed but not hosted. Assigned here: reconcile() opens it (or holds it back on purpose).
    // Not assigned here: a replica moved away while this broker was down. The group may still
    // count it (the move still in flight), so it is opened again to take part; reconcile()'s
    // moved-away rule then decides when it goes (once it applied its removal, or on evidence
    // that the group moved on without it).
    const PartitionRecord& record = owner->partitions[static_cast<std::size_t>(index)];
    if (contains(record.replicas, config_.id) || recovery_.held(*gid) ||
        partition_dir(owner->name, index, *gid) != path ||
        partitions_.size() >= config_.partitions_hosted_max) {
      continue;
    }
    auto group = open_partition_repairing(*owner, index);
    if (!group.has_value()) {
      log("cannot open moved-away replica " + path + ": " + group.error().to_string());
      continue;
    }
    log("opened moved-away replica " + path + " (its group may still count it)");
    by_name_[{owner->name, index}] = *gid;
    partitions_[*gid] = std::move(*group);
    schedule_pump(*gid);
  }
}

void Node::register_brokers() {
  // Proposed as soon as this broker leads the controller, and again before every admin
  // command: proposals of one leader commit in order, so a topic created right after a
  // leader change still finds every broker registered when it is applied.
  if (!controller_ || !controller_->leader_ready()) return;
  const auto& registered = controller_->state().brokers();
  for (const BrokerAddress& b : config_.brokers) {
    BrokerRecord r;
    r.id = b.id;
    r.host = b.id == config_.id ? config_.advertised_host : b.host;
    r.kafka_port = b.id == config_.id ? config_.advertised_kafka_port : b.kafka_port;
    r.rpc_host = b.host;
    r.rpc_port = b.id == config_.id ? rpc_port_ : b.rpc_port;
    auto it = registered.find(b.id);
    if (it != registered.end() && it->second == r) continue;
    // Removed (node_membership.cc prunes it from config_.brokers too), or the id joined again.
    if (controller_->state().find_removed(b.id) != nullptr) continue;
    if (it != registered.end() && it->second.incarnation != 0) continue;
    if (!registering_.insert(b.id).second) continue;  // in flight
    controller_->propose(RegisterBroker{r}, 5000, [this, alive = alive_, id = b.id](Status s) {
      if (!*alive) return;
      registering_.erase(id);
      if (!s.is_ok() && s.code() != ErrorCode::kNotLeader) {
        log("broker registration failed: " + s.to_string());
      }
    });
  }
}

void Node::run_retention() {
  if (!controller_) return;
  for (auto& [gid, g] : partitions_) {
    const TopicRecord* t = controller_->state().find_topic(g->partition_options().topic);
    if (t == nullptr) continue;
    auto policy = t->configs.find("cleanup.policy");
    if (policy != t->configs.end() && cleanup_policy_compacts(policy->second)) {
      if (auto message = run_compaction(*g, t->configs)) log(*message);
      // Kafka: a compact-only topic is never trimmed by size or age ("compact,delete" is).
      if (policy->second.find("delete") == std::string::npos) continue;
    }
    std::int64_t bytes = config_number(t->configs, "retention.bytes", config_.default_retention_bytes);
    std::int64_t ms = config_number(t->configs, "retention.ms", config_.default_retention_ms);
    auto removed = g->apply_retention(bytes < 0 ? UINT64_MAX : static_cast<std::uint64_t>(bytes),
                                      ms < 0 ? INT64_MAX : ms);
    if (!removed.has_value()) {
      log(g->name() + ": retention failed: " + removed.error().to_string());
    } else if (*removed) {
      ++metrics_.retention_runs;
    }
  }
}

// Leader balancing (docs/cluster.md "Leader balancing"): a partition's preferred replica is
// the first of its replicas (assign_replicas rotates it over the brokers, so preferred
// leaders are spread like the replicas); a new group elects it first ("Reconciliation"), but
// after a failover the leadership stays wherever it went, and a broker restarted after a
// crash leads nothing. Every leader_rebalance_interval_ms each broker hands the partitions it
// leads but does not prefer back to their preferred replica, when that replica is a voter of
// the group, live as this broker sees it, not back within the clients' reconnect back-off
// window (15 s: they may not reach it yet), and caught up with the commit index (Raft's
// transfer then brings it to the leader's last index before it campaigns: thesis §3.10).
// Kafka's auto.leader.rebalance.enable does the same from its controller every 300 s.
// Not while shutting down, nor for a group in a joint configuration or already transferring.
void Node::rebalance_leaders() {
  if (shutting_down_ || !controller_) return;
  const std::int64_t now = steady_now_ms();
  const ControllerState& state = controller_->state();
  for (auto& [gid, g] : partitions_) {
    if (!g->is_raft_leader() || g->failed()) continue;
    const TopicRecord* t = state.find_topic(g->partition_options().topic);
    auto index = static_cast<std::size_t>(g->partition_options().partition);
    if (t == nullptr || index >= t->partitions.size()) continue;
    const PartitionRecord& record = t->partitions[index];
    if (record.group != gid || record.replicas.empty()) continue;
    BrokerId preferred = record.replicas.front();
    if (preferred == config_.id || peer_down(preferred) || !broker_alive(preferred)) continue;
    // A broker back within the clients' reconnect back-off may not be reachable by them yet
    // (node_failover.cc, kClientBackoffWindowMs): leading there would be a pause for them.
    if (recently_restarted(preferred, now)) continue;
    raft::NodeStatus ns = g->node().status();
    if (ns.conf_state.joint() || ns.lead_transferee != kNoNode) continue;
    NodeId target = node_of(preferred);
    if (!contains_node(ns.conf_state.voters, target)) continue;
    auto p = ns.progress.find(target);
    if (p == ns.progress.end() || p->second.learner || p->second.match < ns.hard_state.commit) {
      continue;
    }
    g->wake();
    if (!g->node().transfer_leader(target).is_ok()) continue;
    ++metrics_.leader_transfers;
    ++metrics_.leader_rebalances;
    log(g->name() + ": handing the leadership to its preferred replica, broker " +
        std::to_string(preferred.value()));
    schedule_pump(gid);
  }
}

void Node::shutdown(std::function<void()> done) {
  if (stopped_ || !started_) {
    stop();
    return done();
  }
  shutting_down_ = true;
  auto transfer = [this](RaftGroup& g) {
    if (!g.is_raft_leader() || g.failed()) return;
    raft::NodeStatus ns = g.node().status();
    NodeId best = kNoNode;
    LogIndex best_match;
    for (const auto& [n, p] : ns.progress) {
      if (n == ns.id || p.learner) continue;
      if (best == kNoNode || p.match > best_match) {
        best = n;
        best_match = p.match;
      }
    }
    if (best != kNoNode && g.node().transfer_leader(best).is_ok()) {
      ++metrics_.leader_transfers;
      schedule_pump(g.id());
    }
  };
  if (controller_) transfer(*controller_);
  for (auto& [gid, g] : partitions_) transfer(*g);
  shutdown_step(steady_now_ms() + config_.shutdown_transfer_timeout_ms, std::move(done));
}

void Node::shutdown_step(std::int64_t deadline_ms, std::function<void()> done) {
  bool leading = controller_ && controller_->is_raft_leader() && config_.brokers.size() > 1;
  for (auto& [gid, g] : partitions_) {
    leading |= g->is_raft_leader() && g->node().conf_state().voters.size() > 1;
  }
  if (!leading || steady_now_ms() >= deadline_ms) {
    if (controller_) controller_->checkpoint_now();
    for (auto& [gid, g] : partitions_) g->checkpoint_now();
    stop();
    return done();
  }
  auto timer = std::make_shared<asio::steady_timer>(loop_, std::chrono::milliseconds(config_.tick_ms));
  timer->async_wait([this, timer, deadline_ms, done = std::move(done)](const std::error_code&) mutable {
    shutdown_step(deadline_ms, std::move(done));
  });
}

}  // namespace mq::cluster
