// The window of appends sent to one follower and not yet acknowledged (etcd
// tracker/inflights.go), bounded by message count AND by entry bytes: the leader stops
// pipelining to a follower when either bound is reached (flow control, thesis §10.2.1).
#pragma once

#include <cstdint>
#include <vector>

#include "base/strong_id.h"

namespace mq::raft::tracker {

class Inflights {
 public:
  // max_count >= 1; max_bytes >= 1 (checked by Config::validate).
  Inflights(std::uint32_t max_count, std::uint64_t max_bytes);

  // Records an append whose last entry is `index` carrying `bytes` of entries. Indexes must
  // be added in increasing order. Precondition: !full().
  void add(LogIndex index, std::uint64_t bytes);
  // Frees every append whose last index is <= index (they were acknowledged).
  void free_le(LogIndex index);
  void reset();

  // No more appends may be sent: the count or the byte bound is reached.
  bool full() const { return count_ == max_count_ || bytes_ >= max_bytes_; }
  std::uint32_t count() const { return count_; }
  std::uint64_t bytes() const { return bytes_; }
  std::uint32_t max_count() const { return max_count_; }
  std::uint64_t max_bytes() const { return max_bytes_; }

 private:
  struct Inflight {
    LogIndex index;
    std::uint64_t bytes = 0;
  };
  std::uint32_t max_count_;
  std::uint64_t max_bytes_;
  // Ring buffer of up to max_count_ entries, grown lazily (most followers never fill it).
  // Invariant: count_ <= buffer_.size() <= max_count_; bytes_ = sum of live entries' bytes.
  std::vector<Inflight> buffer_;
  std::uint32_t start_ = 0;
  std::uint32_t count_ = 0;
  std::uint64_t bytes_ = 0;
};

}  // namespace mq::raft::tracker
