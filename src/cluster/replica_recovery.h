// ReplicaRecovery: when and how often a partition replica stopped by a storage error is
// re-opened (docs/cluster.md "A storage error stops that replica"; tests/chaos/FINDINGS.md F1).
//
// A storage error (ENOSPC, EIO, a failed fsync) stops a replica: RaftGroup::fail() freezes it,
// because after a failed write or fsync the in-memory log no longer says what is on disk
// (the fsync-gate lesson: retrying the same write on the same handle may report success for
// data the kernel already dropped). The only safe way back is the crash path: close the
// replica and open it again from its directory, whose recovery validates every segment and
// truncates a torn tail. Raft then treats it as a restarted follower (§5.3 log repair: the
// leader overwrites or appends what is missing).
//
// This class is the policy; Node::recover_replicas (replica_recovery.cc) applies it to the
// partition replicas and Node::recover_controller (controller_recovery.cc) to the controller
// replica (group 0: it keeps its state machine across the re-open, see ControllerGroup::Carry):
//   - kNoSpace: re-open once the data directory has at least `free_bytes_min` free again,
//     never more often than the back-off allows (doubling from backoff_initial_ms up to
//     backoff_max_ms while re-opened replicas keep failing). No attempt limit: space may come
//     back at any time.
//   - any other error (kIoError, ...): re-open with the same back-off, at most
//     `other_errors_attempts_max` times; then the replica stays stopped and says so once
//     (a failing disk needs an operator; the broker keeps serving its other replicas).
//   - a replica that re-opened and then ran `stable_ms` without failing starts again from a
//     clean record (first back-off, full attempt budget).
// A replica whose re-open itself fails is "held": closed, not hosted, and reconciliation must
// not open it behind the policy's back (Node::reconcile asks held()).
//
// Not thread-safe: event loop only. Deterministic: the caller passes the clock.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "base/result.h"
#include "base/strong_id.h"

namespace mq::cluster {

struct ReplicaRecoveryOptions {
  bool enabled = true;
  std::int64_t backoff_initial_ms = 500;
  std::int64_t backoff_max_ms = 10000;
  std::uint64_t free_bytes_min = 16u << 20;    // kNoSpace: free space needed to retry
  std::uint32_t other_errors_attempts_max = 3;  // kIoError & co: re-opens before giving up
  std::int64_t stable_ms = 60000;               // running this long resets the record

  Status validate() const;
};

class ReplicaRecovery {
 public:
  enum class Decision : std::uint8_t {
    kWait,    // not yet (back-off, or not enough free space)
    kReopen,  // close and re-open from the directory now
    kGiveUp,  // attempts exhausted: report once, then kStopped
    kStopped  // gave up earlier: nothing to do
  };

  explicit ReplicaRecovery(ReplicaRecoveryOptions options) : options_(options) {}

  // For a replica that is stopped (hosted and failed, or held) with `failure`.
  // `free_bytes`: free space of its file system, nullopt when unknown (statvfs failed).
  Decision decide(GroupId group, const Status& failure, std::int64_t now_ms,
                  std::optional<std::uint64_t> free_bytes);
  // The caller re-opened it (ok) or could not (the error); either counts as an attempt.
  // A replica whose re-open failed is held: `topic`/`partition` say which one to re-open.
  void reopened(GroupId group, std::int64_t now_ms);
  void reopen_failed(GroupId group, const std::string& topic, std::int32_t partition,
                     const Status& error, std::int64_t now_ms);
  // A hosted replica that is running: forgets its record once it has been stable long enough.
  void running(GroupId group, std::int64_t now_ms);
  void forget(GroupId group) { records_.erase(group); }

  // Closed after a failed re-open: only the policy may open it again.
  // No record: nothing stopped, nothing re-opened within stable_ms.
  bool empty() const { return records_.empty(); }
  bool held(GroupId group) const;
  // The error that keeps a held replica closed, and which partition it is (null if not held).
  const Status* held_error(GroupId group) const;
  const std::pair<std::string, std::int32_t>* held_partition(GroupId group) const;
  std::uint32_t attempts(GroupId group) const;
  // Every group with a record (held or not), for the caller's sweep.
  template <typename F>
  void for_each(F fn) const {
    for (const auto& [group, record] : records_) fn(group, record.held);
  }

  const ReplicaRecoveryOptions& options() const { return options_; }

 private:
  struct Record {
    std::uint32_t attempts = 0;      // re-opens tried since the record was created
    std::int64_t next_attempt_ms = 0;
    std::int64_t reopened_ms = -1;   // last successful re-open
    bool held = false;
    bool gave_up = false;
    Status held_error;
    std::pair<std::string, std::int32_t> partition;  // valid when held
  };
  std::int64_t backoff_ms(std::uint32_t attempts) const;

  ReplicaRecoveryOptions options_;
  std::map<GroupId, Record> records_;
};

}  // namespace mq::cluster
