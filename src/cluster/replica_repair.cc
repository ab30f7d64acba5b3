// Replica repair (replica_repair.h): the abstention file and Node's repairing open.
#include "cluster/replica_repair.h"

#include <algorithm>
#include <cstdlib>

#include "base/crc32c.h"
#include "base/le_codec.h"
#include "cluster/node.h"
#include "storage/metadata.h"

namespace mq::cluster {
namespace replica_repair {

Status save_abstention(storage::FileSystem* fs, const std::string& dir, LogIndex until) {
  std::uint8_t bytes[kAbstainFileBytes] = {};
  le::encode_u32(bytes, kAbstainMagic);
  le::encode_u16(bytes + 4, kAbstainVersion);
  le::encode_u16(bytes + 6, 0);
  le::encode_u64(bytes + 8, until.value());
  le::encode_u32(bytes + 16, crc32c::value(bytes, 16));
  const BufferView pieces[1] = {BufferView(bytes, sizeof bytes)};
  return storage::write_file_atomically(fs, dir, kAbstainFileName, pieces);
}

Result<std::optional<LogIndex>> load_abstention(storage::FileSystem* fs, const std::string& dir) {
  const std::string path = storage::join_path(dir, kAbstainFileName);
  MQ_ASSIGN_OR_RETURN(auto bytes, storage::read_whole_file(fs, path, 4096));
  if (!bytes) return std::optional<LogIndex>();
  const std::uint8_t* p = bytes->data();
  if (bytes->size() != kAbstainFileBytes || le::decode_u32(p) != kAbstainMagic ||
      le::decode_u32(p + 16) != crc32c::value(p, 16)) {
    return Status::corruption(path + ": not a valid abstention file");
  }
  if (le::decode_u16(p + 4) != kAbstainVersion) {
    return Status::corruption(path + ": unknown version " + std::to_string(le::decode_u16(p + 4)));
  }
  return std::optional<LogIndex>(LogIndex(le::decode_u64(p + 8)));
}

Status remove_abstention(storage::FileSystem* fs, const std::string& dir) {
  const std::string path = storage::join_path(dir, kAbstainFileName);
  MQ_ASSIGN_OR_RETURN(bool present, fs->exists(path));
  if (!present) return Status::ok();
  MQ_RETURN_IF_ERROR(fs->remove(path));
  return fs->sync_dir(dir);
}

}  // namespace replica_repair

// ---- Node ----

Status Node::apply_abstention(PartitionGroup& group, const std::string& dir) {
  MQ_ASSIGN_OR_RETURN(auto until, replica_repair::load_abstention(partition_file_system(), dir));
  if (!until) return Status::ok();
  // If the log already holds the bound (caught up just before a restart) the core does not
  // abstain, and finish_repairs removes the file.
  group.node().set_abstain_until(*until);
  repair_bounds_[group.id()] = *until;
  log(group.name() + ": replica abstains (no vote, no campaign) until its log reaches index " +
      std::to_string(until->value()) + " again (it was repaired after losing entries)");
  return Status::ok();
}

Status Node::open_sync_ledger() {
  // RAFTMQ_SYNC_LEDGER=off runs without it (A/B measurements of its cost only: a replica
  // that lost synced entries then cannot tell, as before the ledger existed).
  const char* env = std::getenv("RAFTMQ_SYNC_LEDGER");
  if (env != nullptr && std::string(env) == "off") {
    log("sync ledger DISABLED (RAFTMQ_SYNC_LEDGER=off): lost synced entries go undetected");
    return Status::ok();
  }
  storage::SyncLedgerOptions options;
  options.directory = config_.data_dir + "/partitions";
  auto ledger = storage::SyncLedger::open(partition_file_system(), options);
  if (!ledger.has_value()) {
    return Status(ledger.error().code(), "sync ledger: " + ledger.error().message());
  }
  for (const std::string& warning : (*ledger)->open_warnings()) {
    log("sync ledger: " + warning + " (replicas with a lost record open without the check)");
  }
  sync_ledger_ = std::move(*ledger);
  return Status::ok();
}

Status Node::abstain_for_lost_synced_entries(PartitionGroup& group, const std::string& dir) {
  auto lost = group.storage().lost_synced_end();
  if (!lost) return Status::ok();
  // The bound is durable before the replica takes part in anything (it has not run yet).
  storage::FileSystem* fs = partition_file_system();
  MQ_ASSIGN_OR_RETURN(auto previous, replica_repair::load_abstention(fs, dir));
  LogIndex until = std::max(*lost, previous.value_or(LogIndex(0)));
  MQ_RETURN_IF_ERROR(replica_repair::save_abstention(fs, dir, until));
  ++metrics_.replicas_lost_synced;
  log(group.name() + ": LOST SYNCED ENTRIES: its log ends at index " +
      std::to_string(group.storage().last_index().value()) +
      " but the sync ledger records it synced up to index " + std::to_string(lost->value()) +
      " (it may have acknowledged them: a truncated segment, or a replica of this group deleted "
      "here earlier and now re-created empty); the leader re-sends them, and "
      "the replica abstains until it holds index " + std::to_string(until.value()) + " again");
  return Status::ok();
}

Result<std::unique_ptr<PartitionGroup>> Node::open_partition_repairing(const TopicRecord& topic,
                                                                       std::int32_t partition) {
  auto group = open_partition(topic, partition, nullptr);
  if (group.has_value() || group.error().code() != ErrorCode::kCorruption) return group;
  // Maybe a damaged tail entry with valid ones after it: re-open in the explicit cut mode,
  // which repairs only that (any other corruption stays an error) and records the bound
  // before it cuts anything.
  std::optional<storage::DamagedTailCut> cut;
  auto repaired = open_partition(topic, partition, &cut);
  const std::string name = topic.name + "-" + std::to_string(partition);
  if (!cut) return group.error();  // not that kind of damage: report the first error
  if (!repaired.has_value()) {
    log(name + ": REPAIR FAILED after cutting the damaged tail: " + repaired.error().to_string());
    return repaired.error();
  }
  ++metrics_.replicas_repaired;
  log(name + ": REPAIRED a damaged log: cut " + std::to_string(cut->bytes_removed) +
      " bytes of " + cut->segment + " at position " + std::to_string(cut->position) +
      " (entries " + std::to_string(cut->first_cut.value()) + ".." +
      std::to_string(cut->last_index_before.value()) + ": " + cut->damage +
      "); the leader re-sends them, and the replica abstains until it holds index " +
      std::to_string(cut->last_index_before.value()) + " again");
  return repaired;
}

void Node::finish_repairs() {
  for (auto it = repair_bounds_.begin(); it != repair_bounds_.end();) {
    auto hosted = partitions_.find(it->first);
    if (hosted == partitions_.end()) {  // closed (removed, or stopped and held)
      it = repair_bounds_.erase(it);
      continue;
    }
    PartitionGroup& g = *hosted->second;
    if (g.failed() || g.storage().durable_index() < it->second) {
      ++it;
      continue;
    }
    Status removed = replica_repair::remove_abstention(partition_file_system(),
                                                       g.storage().options().directory);
    if (!removed.is_ok()) {
      log(g.name() + ": cannot remove the abstention file (retrying): " + removed.to_string());
      ++it;
      continue;
    }
    g.node().set_abstain_until(LogIndex(0));
    log(g.name() + ": repaired replica caught up to index " + std::to_string(it->second.value()) +
        ": it votes and campaigns again");
    it = repair_bounds_.erase(it);
  }
}

}  // namespace mq::cluster
