#include "base/strong_id.h"

#include <type_traits>
#include <unordered_set>

#include <gtest/gtest.h>

namespace mq {
namespace {

static_assert(!std::is_convertible_v<Term, LogIndex>, "Term must not become a LogIndex");
static_assert(!std::is_convertible_v<LogIndex, KafkaOffset>, "Raft index is not a Kafka offset");
static_assert(!std::is_convertible_v<std::uint64_t, Term>, "no implicit construction");
static_assert(sizeof(Term) == sizeof(std::uint64_t));

TEST(StrongId, ArithmeticAndOrder) {
  LogIndex a(5);
  LogIndex b = a + 3;
  EXPECT_EQ(b.value(), 8u);
  EXPECT_EQ(b - a, 3u);
  EXPECT_LT(a, b);
  ++a;
  EXPECT_EQ(a, LogIndex(6));
  std::unordered_set<NodeId> ids{NodeId(1), NodeId(2), NodeId(1)};
  EXPECT_EQ(ids.size(), 2u);
  EXPECT_EQ(kNoNode.value(), 0u);
}

}  // namespace
}  // namespace mq
