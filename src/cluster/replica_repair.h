// Replica repair: a partition replica whose tail segment holds a damaged entry followed by
// valid ones (corruption, not a torn write: storage::LogOptions::on_damaged_tail_cut) is
// re-opened with its log cut at the damaged entry and then repaired by the leader (§5.3).
// It may have acknowledged entries it no longer holds, so until its log again reaches the
// highest index the damaged log held it abstains: no PreVote/vote, no campaign
// (raft::RawNode::set_abstain_until, src/raft/abstain.cc). The bound is persisted in
// "<partition dir>/abstain" (docs/formats/abstain_format.md) BEFORE the log is cut, so a
// crash at any point leaves either the damaged log (repaired again at the next open) or the
// cut log with its bound; the file is removed once the log is durable up to the bound.
// Node's side: replica_repair.cc (open_partition_repairing, finish_repairs). docs/cluster.md
// "Replica repair".
#pragma once

#include <optional>
#include <string>

#include "base/result.h"
#include "base/strong_id.h"
#include "storage/file_system.h"

namespace mq::cluster::replica_repair {

inline constexpr const char* kAbstainFileName = "abstain";
inline constexpr std::uint32_t kAbstainMagic = 0x4241514d;  // "MQAB" little-endian
inline constexpr std::uint16_t kAbstainVersion = 1;
inline constexpr std::size_t kAbstainFileBytes = 20;

// Writes the bound atomically (write, fsync, rename, fsync the directory).
Status save_abstention(storage::FileSystem* fs, const std::string& dir, LogIndex until);
// The bound, nullopt if there is no file; kCorruption for a damaged or unknown file.
Result<std::optional<LogIndex>> load_abstention(storage::FileSystem* fs, const std::string& dir);
// Removes the file durably (OK if it is already gone).
Status remove_abstention(storage::FileSystem* fs, const std::string& dir);

}  // namespace mq::cluster::replica_repair
