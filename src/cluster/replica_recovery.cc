// ReplicaRecovery (policy) and Node::recover_replicas (its application on the loop).
#include "cluster/replica_recovery.h"

#include <algorithm>
#include <vector>

#include "cluster/ids.h"
#include "cluster/node.h"
#include "storage/file_system.h"

namespace mq::cluster {

Status ReplicaRecoveryOptions::validate() const {
  if (backoff_initial_ms <= 0 || backoff_initial_ms > 3600000) {
    return Status::invalid_argument("replica_recovery.backoff_initial_ms must be in [1, 3600000]");
  }
  if (backoff_max_ms < backoff_initial_ms || backoff_max_ms > 3600000) {
    return Status::invalid_argument(
        "replica_recovery.backoff_max_ms must be in [backoff_initial_ms, 3600000]");
  }
  if (stable_ms < 0) return Status::invalid_argument("replica_recovery.stable_ms must be >= 0");
  return Status::ok();
}

std::int64_t ReplicaRecovery::backoff_ms(std::uint32_t attempts) const {
  std::int64_t d = options_.backoff_initial_ms;
  for (std::uint32_t i = 0; i < attempts && d < options_.backoff_max_ms; ++i) d *= 2;
  return std::min(d, options_.backoff_max_ms);
}

ReplicaRecovery::Decision ReplicaRecovery::decide(GroupId group, const Status& failure,
                                                  std::int64_t now_ms,
                                                  std::optional<std::uint64_t> free_bytes) {
  auto [it, fresh] = records_.try_emplace(group);
  Record& r = it->second;
  if (fresh) r.next_attempt_ms = now_ms + backoff_ms(0);
  if (r.gave_up) return Decision::kStopped;
  if (now_ms < r.next_attempt_ms) return Decision::kWait;
  if (failure.code() == ErrorCode::kNoSpace) {
    // Re-opening into a still-full disk would only fail again (or worse, succeed and fail on
    // the first append): wait for the space to come back.
    if (!free_bytes.has_value() || *free_bytes < options_.free_bytes_min) return Decision::kWait;
    return Decision::kReopen;
  }
  if (r.attempts >= options_.other_errors_attempts_max) {
    r.gave_up = true;
    return Decision::kGiveUp;
  }
  return Decision::kReopen;
}

void ReplicaRecovery::reopened(GroupId group, std::int64_t now_ms) {
  Record& r = records_[group];
  ++r.attempts;
  r.held = false;
  r.held_error = Status::ok();
  r.reopened_ms = now_ms;
  r.next_attempt_ms = now_ms + backoff_ms(r.attempts);
}

void ReplicaRecovery::reopen_failed(GroupId group, const std::string& topic,
                                    std::int32_t partition, const Status& error,
                                    std::int64_t now_ms) {
  Record& r = records_[group];
  ++r.attempts;
  r.held = true;
  r.held_error = error;
  r.partition = {topic, partition};
  r.next_attempt_ms = now_ms + backoff_ms(r.attempts);
}

void ReplicaRecovery::running(GroupId group, std::int64_t now_ms) {
  auto it = records_.find(group);
  if (it == records_.end() || it->second.held) return;
  if (it->second.reopened_ms < 0 || now_ms - it->second.reopened_ms >= options_.stable_ms) {
    records_.erase(it);
  }
}

bool ReplicaRecovery::held(GroupId group) const {
  auto it = records_.find(group);
  return it != records_.end() && it->second.held;
}

const Status* ReplicaRecovery::held_error(GroupId group) const {
  auto it = records_.find(group);
  return it != records_.end() && it->second.held ? &it->second.held_error : nullptr;
}

const std::pair<std::string, std::int32_t>* ReplicaRecovery::held_partition(GroupId group) const {
  auto it = records_.find(group);
  return it != records_.end() && it->second.held ? &it->second.partition : nullptr;
}

std::uint32_t ReplicaRecovery::attempts(GroupId group) const {
  auto it = records_.find(group);
  return it == records_.end() ? 0 : it->second.attempts;
}

// ---- Node: applying the policy (called from on_tick, every sweep) ----

storage::FileSystem* Node::partition_file_system() const {
  return config_.file_system != nullptr ? config_.file_system : storage::posix_file_system();
}

void Node::recover_replicas(std::int64_t now_ms) {
  finish_repairs();  // replica_repair.cc: repaired replicas that caught up vote again
  recover_controller(now_ms);  // controller_recovery.cc: the same policy for group 0
  if (!controller_ || shutting_down_ || stopped_ || !config_.replica_recovery.enabled) return;
  struct Candidate {
    GroupId group;
    std::string topic;
    std::int32_t partition;
    Status failure;
    std::string directory;
  };
  std::vector<Candidate> candidates;
  for (auto& [gid, g] : partitions_) {
    if (!g->failed()) {
      recovery_.running(gid, now_ms);
      continue;
    }
    candidates.push_back(Candidate{gid, g->partition_options().topic,
                                   g->partition_options().partition, g->failure(),
                                   g->storage().options().directory});
  }
  std::vector<GroupId> stale;
  recovery_.for_each([&](GroupId gid, bool held) {
    if (gid == kControllerGroup) return;  // recover_controller's
    if (held) {
      const auto* where = recovery_.held_partition(gid);
      const TopicRecord* t = controller_->state().find_topic(where->first);
      candidates.push_back(Candidate{gid, where->first, where->second, *recovery_.held_error(gid),
                                     t == nullptr ? std::string()
                                                  : partition_dir(where->first, where->second, gid)});
    } else if (partitions_.count(gid) == 0) {
      stale.push_back(gid);  // removed by reconciliation meanwhile
    }
  });
  for (GroupId gid : stale) recovery_.forget(gid);
  for (const Candidate& c : candidates) {
    std::optional<std::uint64_t> free;
    if (!c.directory.empty()) {
      auto f = partition_file_system()->free_bytes(c.directory);
      if (f.has_value()) free = *f;
    }
    switch (recovery_.decide(c.group, c.failure, now_ms, free)) {
      case ReplicaRecovery::Decision::kWait:
      case ReplicaRecovery::Decision::kStopped:
        break;
      case ReplicaRecovery::Decision::kGiveUp:
        log(c.topic + "-" + std::to_string(c.partition) + ": replica stays stopped after " +
            std::to_string(recovery_.attempts(c.group)) + " re-open attempts: " +
            c.failure.to_string() + " (fix the disk, then restart the broker)");
        break;
      case ReplicaRecovery::Decision::kReopen:
        reopen_replica(c.group, c.topic, c.partition, now_ms);
        break;
    }
  }
}

void Node::reopen_replica(GroupId gid, const std::string& topic, std::int32_t partition,
                          std::int64_t now_ms) {
  const TopicRecord* t = controller_->state().find_topic(topic);
  bool assigned = t != nullptr && partition >= 0 &&
                  static_cast<std::size_t>(partition) < t->partitions.size() &&
                  t->partitions[static_cast<std::size_t>(partition)].group == gid;
  if (assigned) {
    const auto& replicas = t->partitions[static_cast<std::size_t>(partition)].replicas;
    assigned = std::find(replicas.begin(), replicas.end(), config_.id) != replicas.end();
  }
  if (!assigned) {
    // Deleted or moved away: reconciliation removes (or never re-creates) it.
    recovery_.forget(gid);
    return;
  }
  const std::string name = topic + "-" + std::to_string(partition);
  auto hosted = partitions_.find(gid);
  if (hosted != partitions_.end()) {
    // The crash path (see replica_recovery.h): drop the frozen replica, then recover it from
    // its directory. Its waiters already failed when it stopped.
    hosted->second->abort_all(Status::unavailable(name + ": replica re-opening"));
    partitions_.erase(hosted);  // closes the log (the flusher forgets it)
  }
  auto group = open_partition_repairing(*t, partition);
  if (!group.has_value()) {
    by_name_.erase({topic, partition});
    recovery_.reopen_failed(gid, topic, partition, group.error(), now_ms);
    log(name + ": re-opening the stopped replica failed (attempt " +
        std::to_string(recovery_.attempts(gid)) + "): " + group.error().to_string());
    return;
  }
  by_name_[{topic, partition}] = gid;
  partitions_[gid] = std::move(*group);
  recovery_.reopened(gid, now_ms);
  log(name + ": stopped replica re-opened from its directory (attempt " +
      std::to_string(recovery_.attempts(gid)) + ")");
  schedule_pump(gid);
}

}  // namespace mq::cluster
