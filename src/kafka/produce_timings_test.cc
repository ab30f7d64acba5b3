#include "kafka/produce_timings.h"

#include <gtest/gtest.h>

namespace mq::kafka {
namespace {

TEST(ProduceTimingsTest, SummarisesOneIntervalAndStartsTheNext) {
  ProduceTimings t;
  t.on_read(1);
  t.on_read(2);
  t.on_read(6);
  for (int i = 1; i <= 100; ++i) t.on_answered(i * 1'000'000LL);  // 1..100 ms
  t.on_queued(0);
  t.on_queued(7'000'000);
  ProduceTimings::Summary s = t.take();
  EXPECT_EQ(s.requests, 3u);
  EXPECT_DOUBLE_EQ(s.inflight_avg, 3.0);
  EXPECT_EQ(s.inflight_max, 6u);
  EXPECT_EQ(s.answered, 100u);
  EXPECT_EQ(s.answer_p50_us, 51'000);
  EXPECT_EQ(s.answer_p99_us, 100'000);
  EXPECT_EQ(s.answer_max_us, 100'000);
  EXPECT_EQ(s.hol_p50_us, 7'000);
  EXPECT_EQ(s.hol_max_us, 7'000);
  EXPECT_NE(ProduceTimings::format(s).find("read->answer p50 51000 p99 100000"), std::string::npos)
      << ProduceTimings::format(s);
  ProduceTimings::Summary next = t.take();
  EXPECT_EQ(next.requests, 0u);
  EXPECT_EQ(next.answered, 0u);
  EXPECT_EQ(next.inflight_max, 0u);
  EXPECT_EQ(next.answer_p99_us, 0);
}

TEST(ProduceTimingsTest, SamplesAreBoundedCountsAreNot) {
  ProduceTimings t;
  const std::size_t n = ProduceTimings::kSamplesMax + 10;
  for (std::size_t i = 0; i < n; ++i) t.on_answered(5'000);
  t.on_answered(999'000'000);  // beyond the bound: counted, not sampled
  ProduceTimings::Summary s = t.take();
  EXPECT_EQ(s.answered, n + 1);
  EXPECT_EQ(s.answer_max_us, 5);
}

}  // namespace
}  // namespace mq::kafka
