// LoopWatch (loop_watch.h): stalls are counted and explained (which nested section, and whether
// the thread slept, computed or waited for a CPU); short sections and an unattached watch are
// silent.
#include "cluster/loop_watch.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace mq::cluster {
namespace {

struct Captured {
  std::vector<std::string> lines;
};

LoopWatchOptions options(Captured* captured) {
  LoopWatchOptions o;
  o.stall_threshold_ms = 40;
  o.severe_threshold_ms = 120;
  o.sample_interval_ms = 5;
  o.log = [captured](std::string_view line) { captured->lines.emplace_back(line); };
  return o;
}

void spin_for(std::chrono::milliseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  volatile std::uint64_t x = 0;
  while (std::chrono::steady_clock::now() < until) x = x + 1;
}

TEST(LoopWatch, ShortSectionsAreNotStalls) {
  Captured c;
  LoopWatch w(options(&c));
  w.attach();
  for (int i = 0; i < 1000; ++i) {
    LoopWatch::Section s(&w, "step", "g");
    LoopWatch::Section inner(&w, "append");
  }
  EXPECT_EQ(w.stats().stalls, 0u);
  EXPECT_TRUE(c.lines.empty());
}

TEST(LoopWatch, ABlockedSectionIsReportedWithItsLongestPartAndTheSleep) {
  Captured c;
  LoopWatch w(options(&c));
  w.attach();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // sampler history
  {
    LoopWatch::Section outer(&w, "ready", "chaos-2");
    { LoopWatch::Section quick(&w, "send"); }
    {
      LoopWatch::Section slow(&w, "append");
      std::this_thread::sleep_for(std::chrono::milliseconds(90));
    }
  }
  const LoopStallStats stats = w.stats();
  EXPECT_EQ(stats.stalls, 1u);
  EXPECT_EQ(stats.severe_stalls, 0u);
  EXPECT_GE(stats.longest_ms, 90);
  EXPECT_EQ(stats.longest, "ready chaos-2 > append");
  ASSERT_EQ(c.lines.size(), 1u);
  const std::string& line = c.lines[0];
  EXPECT_NE(line.find("loop stall: ready chaos-2 held the loop"), std::string::npos) << line;
  EXPECT_NE(line.find("most in append"), std::string::npos) << line;
  EXPECT_NE(line.find("inside append "), std::string::npos) << line;
  EXPECT_NE(line.find(" ms x1"), std::string::npos) << line;
  // The thread slept: not computing, and the sampler saw it in nanosleep ("blocked", or
  // "starved" if waking up waited long for a CPU on a loaded machine).
  EXPECT_EQ(line.find("busy:"), std::string::npos) << line;
  EXPECT_NE(line.find("nanosleep"), std::string::npos) << line;
}

TEST(LoopWatch, AComputingSectionIsNotCalledBlocked) {
  Captured c;
  LoopWatch w(options(&c));
  w.attach();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  {
    LoopWatch::Section outer(&w, "on_tick");
    spin_for(std::chrono::milliseconds(130));
  }
  const LoopStallStats stats = w.stats();
  EXPECT_EQ(stats.stalls, 1u);
  EXPECT_EQ(stats.severe_stalls, 1u);
  EXPECT_EQ(stats.longest, "on_tick");
  ASSERT_EQ(c.lines.size(), 1u);
  // Busy, or starved on a loaded machine; never asleep.
  EXPECT_EQ(c.lines[0].find("blocked:"), std::string::npos) << c.lines[0];
  EXPECT_TRUE(c.lines[0].find("busy:") != std::string::npos ||
              c.lines[0].find("starved:") != std::string::npos ||
              c.lines[0].find("mixed:") != std::string::npos)
      << c.lines[0];
}

TEST(LoopWatch, ManyShortPartsAreSummedPerLabel) {
  Captured c;
  LoopWatch w(options(&c));
  w.attach();
  {
    LoopWatch::Section outer(&w, "ready", "g");
    for (int i = 0; i < 20; ++i) {
      LoopWatch::Section part(&w, "answer_produce");
      std::this_thread::sleep_for(std::chrono::milliseconds(3));
    }
  }
  ASSERT_EQ(c.lines.size(), 1u);
  // No single part stands out (3 ms each), but together they took the stall.
  EXPECT_EQ(c.lines[0].find("most in"), std::string::npos) << c.lines[0];
  EXPECT_NE(c.lines[0].find("20 parts"), std::string::npos) << c.lines[0];
  EXPECT_NE(c.lines[0].find("inside answer_produce"), std::string::npos) << c.lines[0];
  EXPECT_NE(c.lines[0].find(" ms x20"), std::string::npos) << c.lines[0];
}

TEST(LoopWatch, ExplainsATickGap) {
  Captured c;
  LoopWatch w(options(&c));
  w.attach();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  const std::int64_t since = LoopWatch::now_ns();
  w.mark_tick();
  std::this_thread::sleep_for(std::chrono::milliseconds(80));  // not in any section
  LoopTimeSplit split = w.explain_since(since);
  ASSERT_TRUE(split.known);
  EXPECT_GE(split.wall_ms, 80);
  EXPECT_GE(split.off_cpu_ms(), 40);
  EXPECT_NE(split.sampled.find("nanosleep"), std::string::npos) << split.to_string();
}

// A loop that announced its next tick (an idle broker's stride) is not going without ticks
// while it waits for it: nothing is sampled as a gap, and the sampler wakes at most once per
// announced interval.
TEST(LoopWatch, AnAnnouncedTickIntervalIsNoGap) {
  Captured c;
  LoopWatch w(options(&c));  // stall threshold 40 ms: a gap from 20 ms without the interval
  w.attach();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  const std::int64_t since = LoopWatch::now_ns();
  w.mark_tick(200);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  LoopTimeSplit split = w.explain_since(since);
  ASSERT_TRUE(split.known);
  EXPECT_GE(split.wall_ms, 150);
  EXPECT_TRUE(split.sampled.empty()) << split.to_string();
  // Past the interval plus half the threshold, the wait is a gap again.
  w.mark_tick(20);
  const std::int64_t since2 = LoopWatch::now_ns();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the sampler's wait ends first
  LoopTimeSplit late = w.explain_since(since2);
  EXPECT_NE(late.sampled.find("nanosleep"), std::string::npos) << late.to_string();
}

TEST(LoopWatch, UnattachedWatchNeverReports) {
  Captured c;
  LoopWatch w(options(&c));
  {
    LoopWatch::Section outer(&w, "ready");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  LoopWatch::Section null_watch(nullptr, "ignored");
  EXPECT_EQ(w.stats().stalls, 0u);
  EXPECT_TRUE(c.lines.empty());
}

TEST(LoopWatch, DeepNestingStaysBalanced) {
  Captured c;
  LoopWatch w(options(&c));
  w.attach();
  {
    std::vector<std::unique_ptr<LoopWatch::Section>> stack;
    for (int i = 0; i < 12; ++i) stack.push_back(std::make_unique<LoopWatch::Section>(&w, "deep"));
    while (!stack.empty()) stack.pop_back();
  }
  {
    LoopWatch::Section outer(&w, "after");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(w.stats().stalls, 1u);
  EXPECT_EQ(w.stats().longest, "after");
}

}  // namespace
}  // namespace mq::cluster
