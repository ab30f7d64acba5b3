#include "raft/tracker/inflights.h"

#include <algorithm>

#include "base/assert.h"

namespace mq::raft::tracker {

Inflights::Inflights(std::uint32_t max_count, std::uint64_t max_bytes)
    : max_count_(max_count), max_bytes_(max_bytes) {
  MQ_ASSERT(max_count_ >= 1);
  MQ_ASSERT(max_bytes_ >= 1);
}

void Inflights::add(LogIndex index, std::uint64_t bytes) {
  MQ_ASSERT(!full(), "Inflights::add on a full window (count %u, bytes %llu)", count_,
            static_cast<unsigned long long>(bytes_));
  std::uint32_t slot = start_ + count_;
  if (slot >= max_count_) slot -= max_count_;
  if (slot >= buffer_.size()) {
    // Grow: the ring has not wrapped while it is smaller than max_count_ (start_ == 0 or the
    // live entries are contiguous), so appending at the end keeps the order.
    MQ_DASSERT(slot == buffer_.size());
    buffer_.push_back(Inflight{index, bytes});
  } else {
    buffer_[slot] = Inflight{index, bytes};
  }
  if (count_ > 0) {
    std::uint32_t prev = start_ + count_ - 1;
    if (prev >= max_count_) prev -= max_count_;
    MQ_DASSERT(buffer_[prev].index < index, "inflight indexes must increase");
  }
  ++count_;
  bytes_ += bytes;
}

void Inflights::free_le(LogIndex index) {
  while (count_ > 0 && buffer_[start_].index <= index) {
    MQ_DASSERT(bytes_ >= buffer_[start_].bytes);
    bytes_ -= buffer_[start_].bytes;
    ++start_;
    if (start_ >= max_count_) start_ = 0;
    --count_;
  }
  if (count_ == 0) {
    start_ = 0;  // keep the ring unwrapped while it can still grow
    bytes_ = 0;
  }
}

void Inflights::reset() {
  start_ = 0;
  count_ = 0;
  bytes_ = 0;
}

}  // namespace mq::raft::tracker
