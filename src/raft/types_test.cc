// describe() renderings are what the scenario tests print: pin them.
#include "raft/types.h"

#include <gtest/gtest.h>

#include "raft/config.h"

namespace mq::raft {
namespace {

TEST(RaftDescribe, Entries) {
  EXPECT_EQ(describe(Entry{Term(1), LogIndex(5), EntryType::kNormal, SharedBuffer(std::string_view("abc"))}),
            "1/5 EntryNormal 'abc'");
  EXPECT_EQ(describe(Entry{Term(2), LogIndex(6), EntryType::kNoop, {}}), "2/6 EntryNoop");
  Buffer binary;
  binary.push_back(0);
  binary.push_back(0xff);
  EXPECT_EQ(describe(Entry{Term(2), LogIndex(7), EntryType::kNormal, SharedBuffer(binary.view())}),
            "2/7 EntryNormal 0x00ff");
  ConfChange cc{ConfChangeTransition::kAuto, {{ConfChangeType::kAddNode, NodeId(4)},
                                              {ConfChangeType::kRemoveNode, NodeId(1)}}};
  EXPECT_EQ(describe(Entry{Term(3), LogIndex(8), EntryType::kConfChange, cc.encode()}),
            "3/8 EntryConfChange v4 r1");
  EXPECT_EQ(describe(Entry{Term(3), LogIndex(9), EntryType::kConfChange, SharedBuffer(std::string_view("x"))}),
            "3/9 EntryConfChange <malformed 1 bytes>");
  const std::string long_text(100, 'a');
  EXPECT_EQ(describe(Entry{Term(1), LogIndex(1), EntryType::kNormal, SharedBuffer(long_text)}),
            "1/1 EntryNormal '" + std::string(64, 'a') + "'...(100 bytes)");
}

TEST(RaftDescribe, Messages) {
  Message m;
  m.type = MessageType::kAppend;
  m.from = NodeId(1);
  m.to = NodeId(2);
  m.term = Term(3);
  m.index = LogIndex(4);
  m.log_term = Term(2);
  m.commit = LogIndex(4);
  m.entries.push_back(Entry{Term(3), LogIndex(5), EntryType::kNormal, SharedBuffer(std::string_view("x"))});
  EXPECT_EQ(describe(m), "1->2 MsgApp Term:3 Log:2/4 Commit:4 Entries:[3/5 EntryNormal 'x']");
  Message r;
  r.type = MessageType::kAppendResponse;
  r.from = NodeId(2);
  r.to = NodeId(1);
  r.term = Term(3);
  r.index = LogIndex(4);
  r.log_term = Term(1);
  r.reject = true;
  r.reject_hint = LogIndex(2);
  EXPECT_EQ(describe(r), "2->1 MsgAppResp Term:3 Log:1/4 Rejected (Hint: 2)");
  Message hb;
  hb.type = MessageType::kHeartbeat;
  hb.from = NodeId(1);
  hb.to = NodeId(3);
  hb.term = Term(3);
  hb.context = 7;
  EXPECT_EQ(describe(hb), "1->3 MsgHeartbeat Term:3 Log:0/0 Context:7");
  Message snap;
  snap.type = MessageType::kSnapshot;
  snap.from = NodeId(1);
  snap.to = NodeId(2);
  snap.term = Term(3);
  snap.snapshot = Snapshot{SnapshotMeta{LogIndex(9), Term(2), ConfState{{NodeId(1), NodeId(2)}, {}, {}, {}, false}}, {}};
  EXPECT_EQ(describe(snap),
            "1->2 MsgSnap Term:3 Log:0/0 Snapshot: Index:9 Term:2 ConfState:Voters:[1 2] "
            "VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false");
}

TEST(RaftDescribe, StatesAndNames) {
  EXPECT_EQ(describe(HardState{Term(2), NodeId(1), LogIndex(5)}), "Term:2 Vote:1 Commit:5");
  EXPECT_EQ(describe(SoftState{NodeId(1), Role::kLeader}), "Lead:1 State:StateLeader");
  EXPECT_EQ(describe(ReadState{LogIndex(5), 7}), "Index:5 Context:7");
  EXPECT_STREQ(role_name(Role::kPreCandidate), "StatePreCandidate");
  EXPECT_STREQ(message_type_name(MessageType::kTimeoutNow), "MsgTimeoutNow");
  EXPECT_STREQ(message_type_name(MessageType::kReadIndexResponse), "MsgReadIndexResp");
}

TEST(RaftConfig, ValidateNamesTheProblem) {
  Config ok;
  ok.id = NodeId(1);
  EXPECT_TRUE(ok.validate().is_ok());
  Config no_id;
  EXPECT_EQ(no_id.validate().code(), ErrorCode::kInvalidArgument);
  Config ticks = ok;
  ticks.election_ticks = 1;
  ticks.heartbeat_ticks = 1;
  EXPECT_NE(ticks.validate().message().find("election_ticks"), std::string::npos);
  Config window = ok;
  window.max_inflight_msgs = 0;
  EXPECT_EQ(window.validate().code(), ErrorCode::kInvalidArgument);
  Config bytes = ok;
  bytes.max_inflight_bytes = 0;
  EXPECT_EQ(bytes.validate().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace mq::raft
