// ConsumeMeter (bench_util.h): the consume loops' stop conditions and rate arithmetic.
#include "bench_util.h"

#include <gtest/gtest.h>

namespace mq::bench {
namespace {

TEST(ConsumeMeterTest, StopsAtCountAndRatesWhatCameAfterTheFirstCall) {
  ConsumeMeter meter(/*seconds=*/60, /*idle_ms=*/10'000, /*count=*/3000);
  EXPECT_TRUE(meter.more());
  EXPECT_EQ(meter.msgs_per_s(), 0);  // nothing yet: no interval
  meter.on_messages(1000, 1000 * 1024);
  EXPECT_EQ(meter.msgs_per_s(), 0);  // one call: still no interval
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  meter.on_messages(2000, 2000 * 1024);
  EXPECT_EQ(meter.msgs(), 3000);
  EXPECT_FALSE(meter.more());  // --count reached
  // 2,000 messages after the first call over >= 50 ms: at most 40,000 msgs/s (the first
  // call's 1,000 arrived before the interval and do not count).
  EXPECT_GT(meter.msgs_per_s(), 0);
  EXPECT_LE(meter.msgs_per_s(), 40'000.0 * 1.001);
  EXPECT_NEAR(meter.mb_per_s() / meter.msgs_per_s(), 1024 / 1e6, 1e-9);
}

TEST(ConsumeMeterTest, IdleCutOffOnlyAfterTheFirstMessage) {
  ConsumeMeter meter(/*seconds=*/60, /*idle_ms=*/100, /*count=*/0);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  meter.on_timeout();
  EXPECT_TRUE(meter.more());  // still waiting for the first message: no idle cut-off
  meter.on_message(100);
  EXPECT_TRUE(meter.more());
  meter.on_timeout();
  EXPECT_TRUE(meter.more());
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_TRUE(meter.more());  // the clock is read by the calls, not by more()
  meter.on_timeout();
  EXPECT_FALSE(meter.more());  // caught up with the end
}

TEST(ConsumeMeterTest, Deadline) {
  ConsumeMeter meter(/*seconds=*/0, /*idle_ms=*/10'000, /*count=*/0);
  meter.on_timeout();
  EXPECT_FALSE(meter.more());
}

}  // namespace
}  // namespace mq::bench
