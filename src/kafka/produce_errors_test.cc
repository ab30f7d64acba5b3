#include "kafka/produce_errors.h"

#include <gtest/gtest.h>

#include "protocol/gen/error_codes.h"

namespace mq::kafka {
namespace {

constexpr std::int16_t kNotLeader =
    static_cast<std::int16_t>(protocol::ErrorCode::kNotLeaderOrFollower);
constexpr std::int16_t kTimedOut = static_cast<std::int16_t>(protocol::ErrorCode::kRequestTimedOut);

TEST(ProduceErrorsTest, CountsPerPartitionAndErrorAndStartsANewInterval) {
  ProduceErrors e;
  int armed = 0;
  e.on_first = [&] { ++armed; };
  EXPECT_TRUE(e.take(1000).empty());
  e.record("orders", 3, kNotLeader, "p1", "not the leader of orders");
  e.record("orders", 3, kNotLeader, "p2", "other text");
  e.record("orders", 3, kTimedOut, "p1", "");
  e.record("orders", 0, kNotLeader, "p1", "not the leader of orders");
  EXPECT_EQ(armed, 1);  // the interval's first answer only
  std::string line = e.take(1000);
  EXPECT_EQ(line,
            "produce errors (1000 ms): orders/0 NOT_LEADER_OR_FOLLOWER x1 [p1] \"not the leader of "
            "orders\"; orders/3 NOT_LEADER_OR_FOLLOWER x2 [p1] \"not the leader of orders\"; "
            "orders/3 REQUEST_TIMED_OUT x1 [p1]");
  EXPECT_TRUE(e.empty());
  EXPECT_TRUE(e.take(1000).empty());
  e.record("orders", 1, kTimedOut, "p3", "");
  EXPECT_EQ(armed, 2);  // a new interval arms the timer again
  EXPECT_EQ(e.take(500), "produce errors (500 ms): orders/1 REQUEST_TIMED_OUT x1 [p3]");
}

TEST(ProduceErrorsTest, KeysAndFieldsAreBounded) {
  ProduceErrors e;
  const std::size_t partitions = ProduceErrors::kKeysMax + 10;
  for (std::size_t p = 0; p < partitions; ++p) {
    for (int i = 0; i < 3; ++i) {
      e.record("t", static_cast<std::int32_t>(p), kNotLeader, std::string(500, 'c'),
               std::string(1000, 'm'));
    }
  }
  std::string line = e.take(1000);
  EXPECT_NE(line.find("t/0 NOT_LEADER_OR_FOLLOWER x3"), std::string::npos);
  EXPECT_EQ(line.find("t/" + std::to_string(partitions - 1) + " "), std::string::npos);
  EXPECT_NE(line.find("; 30 more answers of other partitions"), std::string::npos) << line;
  EXPECT_EQ(line.find(std::string(121, 'm')), std::string::npos);  // cut to 120 bytes
  EXPECT_NE(line.find(std::string(120, 'm') + "..."), std::string::npos);
  EXPECT_LT(line.size(), ProduceErrors::kKeysMax * 300 + 100);
  EXPECT_TRUE(e.empty());
}

TEST(ProduceErrorsTest, SeparatorsInsideAMessageAreReplaced) {
  ProduceErrors e;
  e.record("t", 1, kNotLeader, "c;1", "t-1 is not led here; leader is \"broker 3\"");
  e.record("t", 2, kNotLeader, "c", "x");
  EXPECT_EQ(e.take(1000),
            "produce errors (1000 ms): t/1 NOT_LEADER_OR_FOLLOWER x1 [c,1] \"t-1 is not led here, "
            "leader is 'broker 3'\"; t/2 NOT_LEADER_OR_FOLLOWER x1 [c] \"x\"");
}

TEST(ProduceErrorsTest, AnUnknownCodeIsNamedUnknown) {
  ProduceErrors e;
  e.record("t", 0, 9999, "c", "");
  EXPECT_EQ(e.take(1000), "produce errors (1000 ms): t/0 UNKNOWN x1 [c]");
}

}  // namespace
}  // namespace mq::kafka
