#include "cluster/entry_cache.h"

#include <algorithm>

namespace mq::cluster {

LogIndex CachingStorageView::cache_end() const {
  return cache_.empty() ? LogIndex(0) : cache_.back().index + 1;
}

Result<std::vector<raft::Entry>> CachingStorageView::entries(LogIndex lo, LogIndex hi,
                                                             std::uint64_t bytes_max) const {
  // Bounds and compaction are the storage's to judge; only a range starting inside the cache
  // is served from it.
  if (cache_.empty() || lo < cache_.front().index || hi > cache_end() ||
      lo < storage_->first_index() || hi > storage_->last_index() + 1 || lo >= hi) {
    ++misses_;
    return storage_->entries(lo, hi, bytes_max);
  }
  ++hits_;
  std::vector<raft::Entry> out;
  std::uint64_t bytes = 0;
  for (std::size_t i = lo - cache_.front().index; i < cache_.size(); ++i) {
    const raft::Entry& e = cache_[i];
    if (e.index >= hi) break;
    bytes += e.size_bytes();
    if (!out.empty() && bytes > bytes_max) break;  // at least one entry (storage_view.h)
    out.push_back(e);
  }
  return out;
}

Result<Term> CachingStorageView::term(LogIndex i) const {
  if (!cache_.empty() && i >= cache_.front().index && i < cache_end() &&
      i >= storage_->first_index()) {
    return cache_[i - cache_.front().index].term;
  }
  return storage_->term(i);
}

void CachingStorageView::on_appended(const std::vector<raft::Entry>& entries) {
  if (entries.empty()) return;
  const LogIndex first = entries.front().index;
  if (!cache_.empty() && (first < cache_.front().index || first > cache_end())) {
    clear();  // not contiguous with what is cached
  }
  while (!cache_.empty() && cache_.back().index >= first) {  // §5.3 suffix truncation
    bytes_ -= cache_.back().size_bytes();
    cache_.pop_back();
  }
  for (const raft::Entry& e : entries) {
    bytes_ += e.size_bytes();
    cache_.push_back(e);
  }
  evict();
}

void CachingStorageView::on_applied(LogIndex applied, LogIndex needed_from) {
  keep_from_ = std::min(applied + 1, needed_from);
  evict();
}

void CachingStorageView::evict() {
  while (!cache_.empty() && bytes_ > bytes_max_ &&
         (cache_.front().index < keep_from_ || bytes_ > pinned_bytes_max_)) {
    bytes_ -= cache_.front().size_bytes();
    cache_.pop_front();
  }
}

void CachingStorageView::clear() {
  cache_.clear();
  bytes_ = 0;
}

}  // namespace mq::cluster
