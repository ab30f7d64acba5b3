// End-to-end: whole seeds through run_seed (the CLI sweeps run thousands; these pin the API).
#include "sim/simulation.h"

#include <gtest/gtest.h>

namespace mq::sim {
namespace {

TEST(Simulation, SameSeedSameRun) {
  RunOptions options;
  options.seed = 3;
  const SeedResult a = run_seed(options);
  const SeedResult b = run_seed(options);
  EXPECT_EQ(a.passed, b.passed);
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.messages, b.messages);
  EXPECT_EQ(a.committed, b.committed);
  EXPECT_EQ(a.scenario, b.scenario);
  EXPECT_GT(a.events, 1000u);
}

TEST(Simulation, CorrectCorePassesAndDoesRealWork) {
  std::uint64_t acked = 0;
  std::uint64_t reads = 0;
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    RunOptions options;
    options.seed = seed;
    options.nodes = seed % 2 == 0 ? 5 : 3;
    const SeedResult result = run_seed(options);
    EXPECT_TRUE(result.passed) << "seed " << seed << ": " << result.invariant << ": "
                               << result.detail;
    acked += result.writes_acked;
    reads += result.reads_checked;
  }
  EXPECT_GT(acked, 100u);
  EXPECT_GT(reads, 100u);
}

TEST(Simulation, MutationsAreCaughtByTheirInvariant) {
  // The first seed among 1..20 that fails must fail on the invariant the mutation breaks
  // (which seed catches it first shifts whenever the core's behaviour changes).
  RunOptions options;
  options.bugs = static_cast<std::uint32_t>(raft::Bug::kNoCheckQuorumStepDown);
  bool caught = false;
  for (std::uint64_t seed = 1; seed <= 20 && !caught; ++seed) {
    options.seed = seed;
    const SeedResult result = run_seed(options);
    if (result.passed) continue;
    caught = true;
    EXPECT_EQ(result.invariant, "check-quorum") << "seed " << seed;
  }
  EXPECT_TRUE(caught) << "no seed in 1..20 caught no-check-quorum-step-down";
}

TEST(Simulation, BugNamesRoundTrip) {
  EXPECT_EQ(bug_table().size(), 8u);
  for (const BugInfo& info : bug_table()) {
    auto bug = bug_by_name(info.name);
    ASSERT_TRUE(bug.has_value()) << info.name;
    EXPECT_EQ(*bug, info.bug);
  }
  EXPECT_FALSE(bug_by_name("no-such-bug").has_value());
}

}  // namespace
}  // namespace mq::sim
