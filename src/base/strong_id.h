// Strong integer types for identifiers and positions (the idea of Redpanda's named_type and
// ScyllaDB's tagged_uint64). A Term cannot be passed where a LogIndex is expected, and a Raft
// LogIndex is never a KafkaOffset: they count different things (DESIGN.md, "Indexes and
// offsets"). Arithmetic is limited to what positions need: +/- an integer, comparison.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>

namespace mq {

template <typename Tag, typename Rep = std::uint64_t>
class StrongInt {
 public:
  using rep = Rep;
  constexpr StrongInt() = default;
  constexpr explicit StrongInt(Rep value) : value_(value) {}

  constexpr Rep value() const { return value_; }
  static constexpr StrongInt max() { return StrongInt(std::numeric_limits<Rep>::max()); }
  static constexpr StrongInt min() { return StrongInt(std::numeric_limits<Rep>::min()); }

  constexpr auto operator<=>(const StrongInt&) const = default;

  constexpr StrongInt operator+(Rep delta) const { return StrongInt(value_ + delta); }
  constexpr StrongInt operator-(Rep delta) const { return StrongInt(value_ - delta); }
  // Distance between two positions of the same kind.
  constexpr Rep operator-(StrongInt other) const { return value_ - other.value_; }
  constexpr StrongInt& operator+=(Rep delta) {
    value_ += delta;
    return *this;
  }
  constexpr StrongInt& operator-=(Rep delta) {
    value_ -= delta;
    return *this;
  }
  constexpr StrongInt& operator++() {
    ++value_;
    return *this;
  }
  constexpr StrongInt operator++(int) {
    StrongInt old = *this;
    ++value_;
    return old;
  }
  constexpr StrongInt& operator--() {
    --value_;
    return *this;
  }

  friend std::ostream& operator<<(std::ostream& out, StrongInt id) { return out << id.value_; }

 private:
  Rep value_{};
};

// Raft.
using Term = StrongInt<struct TermTag, std::uint64_t>;
using LogIndex = StrongInt<struct LogIndexTag, std::uint64_t>;  // dense, counts Raft entries
using NodeId = StrongInt<struct NodeIdTag, std::uint64_t>;      // 0 means "none"
using GroupId = StrongInt<struct GroupIdTag, std::uint64_t>;    // one Raft group
// Kafka and storage.
using KafkaOffset = StrongInt<struct KafkaOffsetTag, std::int64_t>;  // counts records
using PartitionId = StrongInt<struct PartitionIdTag, std::int32_t>;
using SegmentId = StrongInt<struct SegmentIdTag, std::uint64_t>;
using BrokerId = StrongInt<struct BrokerIdTag, std::int32_t>;

inline constexpr NodeId kNoNode{0};

}  // namespace mq

template <typename Tag, typename Rep>
struct std::hash<mq::StrongInt<Tag, Rep>> {
  std::size_t operator()(mq::StrongInt<Tag, Rep> id) const noexcept {
    return std::hash<Rep>{}(id.value());
  }
};
