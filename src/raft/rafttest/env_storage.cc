// The storage side of the env: persisting a Ready into MemoryStorage and making snapshots.
// Every call into MemoryStorage is in this file.
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {

std::string encode_state_machine(const Node& n, LogIndex index) {
  std::string data;
  for (const auto& [entry_index, payload] : n.state_machine) {
    if (entry_index > index) break;
    data += std::to_string(entry_index.value()) + " " + payload + "\n";
  }
  return data;
}

Result<std::vector<std::pair<LogIndex, std::string>>> decode_state_machine(BufferView data) {
  std::vector<std::pair<LogIndex, std::string>> out;
  std::string_view text = as_chars(data);
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    if (end == std::string_view::npos) return Status::corruption("snapshot data: no final '\\n'");
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end + 1);
    const std::size_t space = line.find(' ');
    if (space == 0 || space == std::string_view::npos) {
      return Status::corruption("snapshot data: bad line '" + std::string(line) + "'");
    }
    std::uint64_t index = 0;
    for (char c : line.substr(0, space)) {
      if (c < '0' || c > '9') return Status::corruption("snapshot data: bad index");
      index = index * 10 + static_cast<std::uint64_t>(c - '0');
    }
    out.emplace_back(LogIndex(index), std::string(line.substr(space + 1)));
  }
  return out;
}

Result<std::unique_ptr<MemoryStorage>> make_storage(const Bootstrap& bootstrap) {
  std::unique_ptr<MemoryStorage> storage;
  if (bootstrap.has_config && bootstrap.snapshot.meta.index == LogIndex(0)) {
    storage = std::make_unique<MemoryStorage>(bootstrap.snapshot.meta.conf_state);
  } else {
    storage = std::make_unique<MemoryStorage>();
    if (bootstrap.has_config) MQ_RETURN_IF_ERROR(storage->apply_snapshot(bootstrap.snapshot));
  }
  if (!bootstrap.preload.empty()) MQ_RETURN_IF_ERROR(storage->append(bootstrap.preload));
  if (!bootstrap.hard_state.empty()) storage->set_hard_state(bootstrap.hard_state);
  return storage;
}

// Step 2 of the Ready contract: snapshot, then entries (replacing any suffix), then hard state.
Status InteractionEnv::persist(Node& n, const Ready& ready) {
  if (ready.snapshot) {
    MQ_RETURN_IF_ERROR(n.storage->apply_snapshot(*ready.snapshot));
    MQ_ASSIGN_OR_RETURN(n.state_machine, decode_state_machine(ready.snapshot->data));
    n.applied = ready.snapshot->meta.index;
    if (!quiet_) {
      out_ << "  state machine restored at " << n.applied << ":";
      for (const auto& [index, payload] : n.state_machine) out_ << " " << index << "=" << payload;
      if (n.state_machine.empty()) out_ << " (empty)";
      out_ << "\n";
    }
  }
  if (!ready.entries_to_persist.empty()) {
    MQ_RETURN_IF_ERROR(n.storage->append(ready.entries_to_persist));
  }
  if (ready.hard_state) n.storage->set_hard_state(*ready.hard_state);
  return Status::ok();
}

void InteractionEnv::persist_conf_state(Node& n) {
  n.storage->set_conf_state(n.raw_node->status().conf_state);
}

// As etcd's env (its History + snapOverrideStorage): after each applied batch the host records
// a snapshot of its state machine at the applied index, with the membership in force there, so
// a leader that must send a snapshot sends a recent one that includes the recipient.
Status InteractionEnv::snapshot_applied(Node& n) {
  auto current_or = n.storage->snapshot();
  if (!current_or.has_value() && current_or.error().code() == ErrorCode::kUnavailable) {
    return Status::ok();  // the host is "still producing" one (snapshot-unavailable)
  }
  MQ_ASSIGN_OR_RETURN(Snapshot current, std::move(current_or));
  if (n.applied <= current.meta.index) return Status::ok();
  return n.storage
      ->create_snapshot(n.applied, n.raw_node->status().conf_state,
                        SharedBuffer(encode_state_machine(n, n.applied)))
      .status();
}

Status InteractionEnv::restore_from_storage(Node& n) {
  MQ_ASSIGN_OR_RETURN(Snapshot snapshot, n.storage->snapshot());
  MQ_ASSIGN_OR_RETURN(n.state_machine, decode_state_machine(snapshot.data));
  n.applied = snapshot.meta.index;
  return Status::ok();
}

void InteractionEnv::set_snapshot_unavailable(Node& n, bool unavailable) {
  n.storage->set_snapshot_unavailable(unavailable);
}

Status InteractionEnv::create_snapshot_and_compact(Node& n, LogIndex index, bool compact) {
  if (index > n.applied) {
    return Status::invalid_argument("index " + std::to_string(index.value()) +
                                    " is beyond applied " + std::to_string(n.applied.value()));
  }
  MQ_ASSIGN_OR_RETURN(Snapshot snapshot, n.storage->snapshot());
  if (snapshot.meta.index < index) {
    const ConfState conf_state = n.raw_node->status().conf_state;
    MQ_ASSIGN_OR_RETURN(snapshot, n.storage->create_snapshot(
                                      index, conf_state,
                                      SharedBuffer(encode_state_machine(n, index))));
  }
  if (!quiet_) out_ << "snapshot " << describe(snapshot.meta) << "\n";
  if (compact) {
    MQ_RETURN_IF_ERROR(n.storage->compact(index));
    if (!quiet_) {
      out_ << "log: first index " << n.storage->first_index() << ", last index "
           << n.storage->last_index() << "\n";
    }
  }
  return Status::ok();
}

}  // namespace mq::raft::rafttest
