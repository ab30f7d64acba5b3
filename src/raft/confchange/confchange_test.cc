// Membership changes: simple, joint (enter/leave), learners and learners_next; ConfChange
// encoding.
#include "raft/confchange/confchange.h"

#include <gtest/gtest.h>

#include "base/prng.h"

namespace mq::raft::confchange {
namespace {

ConfChangeSingle add(std::uint64_t id) { return {ConfChangeType::kAddNode, NodeId(id)}; }
ConfChangeSingle learner(std::uint64_t id) { return {ConfChangeType::kAddLearner, NodeId(id)}; }
ConfChangeSingle rm(std::uint64_t id) { return {ConfChangeType::kRemoveNode, NodeId(id)}; }

tracker::ProgressTracker make(std::vector<std::uint64_t> voters) {
  tracker::ProgressTracker trk(8, 1 << 20);
  ConfState cs;
  for (auto v : voters) cs.voters.push_back(NodeId(v));
  auto r = restore(trk, LogIndex(10), cs);
  EXPECT_TRUE(r.has_value());
  trk.config = r->config;
  trk.progress = r->progress;
  return trk;
}

void install(tracker::ProgressTracker& trk, Result<ChangeResult> r) {
  ASSERT_TRUE(r.has_value()) << r.status().to_string();
  trk.config = r->config;
  trk.progress = r->progress;
}

TEST(RaftConfChange, SimpleAddAndRemoveOneVoter) {
  auto trk = make({1, 2, 3});
  Changer c(trk, LogIndex(10));
  install(trk, c.simple({add(4)}));
  EXPECT_EQ(trk.config.describe(), "voters=(1 2 3 4)");
  EXPECT_EQ(trk.progress.at(NodeId(4)).next, LogIndex(11));
  install(trk, Changer(trk, LogIndex(10)).simple({rm(1)}));
  EXPECT_EQ(trk.config.describe(), "voters=(2 3 4)");
  EXPECT_EQ(trk.progress.count(NodeId(1)), 0u);
}

TEST(RaftConfChange, SimpleRefusesTwoVoterChanges) {
  auto trk = make({1, 2, 3});
  auto r = Changer(trk, LogIndex(10)).simple({add(4), add(5)});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.status().message().find("more than one voter"), std::string::npos);
  // Adding learners alongside one voter change is fine.
  EXPECT_TRUE(Changer(trk, LogIndex(10)).simple({add(4), learner(5), learner(6)}).has_value());
}

TEST(RaftConfChange, RemovingAllVotersRefused) {
  auto trk = make({1});
  EXPECT_FALSE(Changer(trk, LogIndex(1)).simple({rm(1)}).has_value());
}

TEST(RaftConfChange, JointEnterAndLeave) {
  auto trk = make({1, 2, 3});
  install(trk, Changer(trk, LogIndex(10)).enter_joint(true, {add(4), add(5), rm(1)}));
  EXPECT_EQ(trk.config.describe(), "voters=(2 3 4 5)&&(1 2 3) autoleave");
  EXPECT_EQ(trk.progress.count(NodeId(1)), 1u);  // still an outgoing voter
  EXPECT_FALSE(Changer(trk, LogIndex(10)).enter_joint(false, {add(6)}).has_value());
  EXPECT_FALSE(Changer(trk, LogIndex(10)).simple({add(6)}).has_value());
  install(trk, Changer(trk, LogIndex(10)).leave_joint());
  EXPECT_EQ(trk.config.describe(), "voters=(2 3 4 5)");
  EXPECT_EQ(trk.progress.count(NodeId(1)), 0u);
  EXPECT_FALSE(Changer(trk, LogIndex(10)).leave_joint().has_value());
}

TEST(RaftConfChange, DemotedVoterBecomesLearnerOnLeave) {
  auto trk = make({1, 2, 3});
  install(trk, Changer(trk, LogIndex(10)).enter_joint(false, {learner(3)}));
  EXPECT_EQ(trk.config.describe(), "voters=(1 2)&&(1 2 3) learners_next=(3)");
  EXPECT_FALSE(trk.progress.at(NodeId(3)).is_learner);
  install(trk, Changer(trk, LogIndex(10)).leave_joint());
  EXPECT_EQ(trk.config.describe(), "voters=(1 2) learners=(3)");
  EXPECT_TRUE(trk.progress.at(NodeId(3)).is_learner);
}

TEST(RaftConfChange, PromoteLearner) {
  auto trk = make({1, 2, 3});
  install(trk, Changer(trk, LogIndex(10)).simple({learner(4)}));
  EXPECT_EQ(trk.config.describe(), "voters=(1 2 3) learners=(4)");
  trk.progress.at(NodeId(4)).match = LogIndex(7);
  install(trk, Changer(trk, LogIndex(10)).simple({add(4)}));
  EXPECT_EQ(trk.config.describe(), "voters=(1 2 3 4)");
  EXPECT_EQ(trk.progress.at(NodeId(4)).match, LogIndex(7));  // progress kept
  EXPECT_FALSE(trk.progress.at(NodeId(4)).is_learner);
}

TEST(RaftConfChange, ApplyConfChangeDispatchesOnTransition) {
  auto trk = make({1, 2, 3});
  ConfChange single{ConfChangeTransition::kAuto, {add(4)}};
  install(trk, apply_conf_change(trk, LogIndex(10), single));
  EXPECT_FALSE(trk.config.voters.joint());
  ConfChange multi{ConfChangeTransition::kAuto, {add(5), add(6)}};
  install(trk, apply_conf_change(trk, LogIndex(10), multi));
  EXPECT_TRUE(trk.config.voters.joint());
  EXPECT_TRUE(trk.config.auto_leave);
  install(trk, apply_conf_change(trk, LogIndex(10), ConfChange{}));
  EXPECT_FALSE(trk.config.voters.joint());
  ConfChange explicit_one{ConfChangeTransition::kExplicit, {rm(6)}};
  install(trk, apply_conf_change(trk, LogIndex(10), explicit_one));
  EXPECT_TRUE(trk.config.voters.joint());
  EXPECT_FALSE(trk.config.auto_leave);
}

TEST(RaftConfChange, RestoreRejectsBrokenConfState) {
  tracker::ProgressTracker trk(8, 1 << 20);
  ConfState both{{NodeId(1)}, {}, {NodeId(1)}, {}, false};
  EXPECT_FALSE(restore(trk, LogIndex(1), both).has_value());
  ConfState next_outside_joint{{NodeId(1)}, {}, {}, {NodeId(2)}, false};
  EXPECT_FALSE(restore(trk, LogIndex(1), next_outside_joint).has_value());
  ConfState zero{{NodeId(0)}, {}, {}, {}, false};
  EXPECT_FALSE(restore(trk, LogIndex(1), zero).has_value());
  ConfState joint{{NodeId(1), NodeId(2)}, {NodeId(1), NodeId(3)}, {}, {NodeId(3)}, true};
  auto r = restore(trk, LogIndex(1), joint);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->config.to_conf_state(), joint);
}

TEST(RaftConfChangeCodec, RoundTrip) {
  ConfChange cc{ConfChangeTransition::kExplicit, {add(4), learner(5), rm(1)}};
  auto decoded = ConfChange::decode(cc.encode().view());
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded, cc);
  EXPECT_EQ(describe(cc), "explicit v4 l5 r1");
  auto empty = ConfChange::decode(ConfChange{}.encode().view());
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->leave_joint());
}

TEST(RaftConfChangeCodec, TruncationAndGarbageRejected) {
  ConfChange cc{ConfChangeTransition::kAuto, {add(4), rm(2)}};
  SharedBuffer bytes = cc.encode();
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(ConfChange::decode(bytes.view().first(n)).has_value()) << n;
  }
  Buffer longer(bytes.view());
  longer.push_back(0);
  EXPECT_FALSE(ConfChange::decode(longer.view()).has_value());
  Buffer bad_version(bytes.view());
  bad_version[0] = 9;
  EXPECT_FALSE(ConfChange::decode(bad_version.view()).has_value());
  Buffer bad_type(bytes.view());
  bad_type[6] = 7;
  EXPECT_FALSE(ConfChange::decode(bad_type.view()).has_value());
  Buffer huge_count(bytes.view());
  huge_count[2] = 0xff;
  huge_count[5] = 0xff;
  EXPECT_FALSE(ConfChange::decode(huge_count.view()).has_value());
  Prng prng(9);
  for (int i = 0; i < 2000; ++i) {
    Buffer junk(prng.uniform(40));
    for (std::size_t j = 0; j < junk.size(); ++j) junk[j] = static_cast<std::uint8_t>(prng.next());
    auto d = ConfChange::decode(junk.view());  // must not crash; rarely valid
    if (d) {
      EXPECT_EQ(ConfChange::decode(d->encode().view()), d);
    }
  }
}

}  // namespace
}  // namespace mq::raft::confchange
