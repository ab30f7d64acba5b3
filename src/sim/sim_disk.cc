#include "sim/sim_disk.h"

#include <string>

namespace mq::sim {

namespace {
std::uint64_t finalize(std::uint64_t z) {  // splitmix64's finaliser: a bijection on 64 bits
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace

std::uint64_t mix_hash(std::uint64_t a, std::uint64_t b) {
  // For a fixed a this is a bijection in b, and different a's land on unrelated offsets, so
  // small inputs (indexes, terms) do not collide the way a linear combination would.
  return finalize(finalize(a + 0x9e3779b97f4a7c15ull) ^ b);
}

std::uint64_t entry_hash(const raft::Entry& entry) {
  std::uint64_t h = mix_hash(entry.term.value(), entry.index.value());
  h = mix_hash(h, static_cast<std::uint64_t>(entry.type));
  // FNV-1a over the payload, folded into the mix.
  std::uint64_t f = 0xcbf29ce484222325ull;
  for (std::uint8_t byte : entry.payload.view()) {
    f ^= byte;
    f *= 0x100000001b3ull;
  }
  return mix_hash(h, f ^ entry.payload.size());
}

std::uint64_t chain_next(std::uint64_t previous_chain, const raft::Entry& entry) {
  return mix_hash(previous_chain, entry_hash(entry));
}

SimDisk::SimDisk(raft::ConfState bootstrap) : bootstrap_(std::move(bootstrap)) {}

void SimDisk::bootstrap_with(const raft::Snapshot& snapshot, std::uint64_t chain) {
  MQ_ASSERT(log_.empty() && snapshot_.empty());
  snapshot_ = snapshot;
  snapshot_chain_ = chain;
  hard_state_.term = snapshot.meta.term;
  hard_state_.commit = snapshot.meta.index;
}

std::pair<raft::HardState, raft::ConfState> SimDisk::initial_state() const {
  // The configuration at start-up is the one in the snapshot; a disk without a snapshot holds
  // the bootstrap membership (conf-change entries after it are re-applied by the core).
  if (!snapshot_.empty()) return {hard_state_, snapshot_.meta.conf_state};
  return {hard_state_, bootstrap_};
}

LogIndex SimDisk::first_index() const { return snapshot_.meta.index + 1; }

LogIndex SimDisk::last_index() const { return snapshot_.meta.index + log_.size(); }

Result<Term> SimDisk::term(LogIndex i) const {
  if (i < snapshot_.meta.index) {
    return Status::out_of_range("term(" + std::to_string(i.value()) + "): compacted");
  }
  if (i > last_index()) {
    return Status::out_of_range("term(" + std::to_string(i.value()) + "): beyond last index " +
                                std::to_string(last_index().value()));
  }
  if (i == snapshot_.meta.index) return snapshot_.meta.term;
  return entry_at(i).term;
}

Result<std::vector<raft::Entry>> SimDisk::entries(LogIndex lo, LogIndex hi,
                                                  std::uint64_t bytes_max) const {
  if (lo <= snapshot_.meta.index) {
    return Status::out_of_range("entries from " + std::to_string(lo.value()) + ": compacted");
  }
  if (hi > last_index() + 1 || lo > hi) {
    return Status::out_of_range("entries [" + std::to_string(lo.value()) + ", " +
                                std::to_string(hi.value()) + ") beyond last index " +
                                std::to_string(last_index().value()));
  }
  std::vector<raft::Entry> out;
  std::uint64_t bytes = 0;
  for (LogIndex i = lo; i < hi; ++i) {
    const raft::Entry& entry = entry_at(i);
    if (!out.empty() && bytes + entry.size_bytes() > bytes_max) break;
    bytes += entry.size_bytes();
    out.push_back(entry);
  }
  return out;
}

Result<raft::Snapshot> SimDisk::snapshot() const { return snapshot_; }

std::uint64_t SimDisk::chain_at(LogIndex i) const {
  MQ_ASSERT(i >= snapshot_.meta.index && i <= last_index());
  if (i == snapshot_.meta.index) return snapshot_chain_;
  return chain_[i - snapshot_.meta.index - 1];
}

const raft::Entry& SimDisk::entry_at(LogIndex i) const {
  MQ_ASSERT(i > snapshot_.meta.index && i <= last_index());
  return log_[i - snapshot_.meta.index - 1];
}

Status SimDisk::install_snapshot(const raft::Snapshot& snapshot, std::uint64_t chain) {
  // An incoming snapshot replaces the whole log (etcd MemoryStorage.ApplySnapshot): entries
  // after it that agree with it could be kept, but the core re-sends what it needs.
  if (snapshot.meta.index < snapshot_.meta.index) {
    return Status::internal("snapshot at " + std::to_string(snapshot.meta.index.value()) +
                            " older than the durable one at " +
                            std::to_string(snapshot_.meta.index.value()));
  }
  snapshot_ = snapshot;
  snapshot_chain_ = chain;
  log_.clear();
  chain_.clear();
  if (hard_state_.commit < snapshot.meta.index) hard_state_.commit = snapshot.meta.index;
  return Status::ok();
}

Status SimDisk::append(const std::vector<raft::Entry>& entries, std::size_t count) {
  if (count == 0) return Status::ok();
  const LogIndex first = entries.front().index;
  if (first <= snapshot_.meta.index) {
    return Status::internal("write of entry " + std::to_string(first.value()) +
                            " at or below the snapshot index " +
                            std::to_string(snapshot_.meta.index.value()));
  }
  if (first > last_index() + 1) {
    return Status::internal("write of entry " + std::to_string(first.value()) +
                            " leaves a gap after last index " +
                            std::to_string(last_index().value()));
  }
  // Ready contract: entries replace any persisted entries at the same or higher index.
  const std::size_t keep = first - snapshot_.meta.index - 1;
  log_.resize(keep);
  chain_.resize(keep);
  std::uint64_t chain = keep == 0 ? snapshot_chain_ : chain_.back();
  for (std::size_t k = 0; k < count; ++k) {
    const raft::Entry& entry = entries[k];
    if (entry.index != last_index() + 1) {
      return Status::internal("write of non-contiguous entry " + std::to_string(entry.index.value()));
    }
    chain = chain_next(chain, entry);
    log_.push_back(entry);
    chain_.push_back(chain);
  }
  return Status::ok();
}

std::size_t SimDisk::write_parts(const PendingWrite& write) {
  return (write.snapshot ? 1 : 0) + (write.hard_state ? 2 : 0) + write.entries.size();
}

Status SimDisk::commit_write(const PendingWrite& write) {
  return commit_torn_write(write, write_parts(write));
}

Status SimDisk::commit_torn_write(const PendingWrite& write, std::size_t durable_parts) {
  std::size_t left = durable_parts;
  if (write.snapshot) {
    if (left == 0) return Status::ok();
    --left;
    MQ_RETURN_IF_ERROR(install_snapshot(*write.snapshot, write.snapshot_chain));
  }
  if (write.hard_state) {
    if (left == 0) return Status::ok();
    --left;
    hard_state_.term = write.hard_state->term;
    hard_state_.vote = write.hard_state->vote;
  }
  const std::size_t count = std::min(left, write.entries.size());
  MQ_RETURN_IF_ERROR(append(write.entries, count));
  left -= count;
  if (write.hard_state && left > 0) hard_state_.commit = write.hard_state->commit;
  return Status::ok();
}

Status SimDisk::compact(LogIndex index, raft::ConfState conf_state, SharedBuffer data) {
  if (index <= snapshot_.meta.index) return Status::ok();
  if (index > last_index()) {
    return Status::out_of_range("compact to " + std::to_string(index.value()) +
                                " beyond last index " + std::to_string(last_index().value()));
  }
  const std::size_t drop = index - snapshot_.meta.index;
  const Term term_at = entry_at(index).term;
  snapshot_chain_ = chain_at(index);
  snapshot_.meta.index = index;
  snapshot_.meta.term = term_at;
  snapshot_.meta.conf_state = std::move(conf_state);
  snapshot_.data = std::move(data);
  log_.erase(log_.begin(), log_.begin() + static_cast<std::ptrdiff_t>(drop));
  chain_.erase(chain_.begin(), chain_.begin() + static_cast<std::ptrdiff_t>(drop));
  return Status::ok();
}

}  // namespace mq::sim
