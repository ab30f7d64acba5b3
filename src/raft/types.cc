#include "raft/types.h"

#include <algorithm>

namespace mq::raft {

const char* message_type_name(MessageType type) {
  switch (type) {
    case MessageType::kAppend: return "MsgApp";
    case MessageType::kAppendResponse: return "MsgAppResp";
    case MessageType::kHeartbeat: return "MsgHeartbeat";
    case MessageType::kHeartbeatResponse: return "MsgHeartbeatResp";
    case MessageType::kVote: return "MsgVote";
    case MessageType::kVoteResponse: return "MsgVoteResp";
    case MessageType::kPreVote: return "MsgPreVote";
    case MessageType::kPreVoteResponse: return "MsgPreVoteResp";
    case MessageType::kSnapshot: return "MsgSnap";
    case MessageType::kTimeoutNow: return "MsgTimeoutNow";
    case MessageType::kReadIndex: return "MsgReadIndex";
    case MessageType::kReadIndexResponse: return "MsgReadIndexResp";
  }
  return "MsgUnknown";
}

const char* role_name(Role role) {
  switch (role) {
    case Role::kFollower: return "StateFollower";
    case Role::kPreCandidate: return "StatePreCandidate";
    case Role::kCandidate: return "StateCandidate";
    case Role::kLeader: return "StateLeader";
  }
  return "StateUnknown";
}

namespace {

constexpr std::size_t kDescribePayloadMax = 64;  // bytes of payload shown in traces

std::string num(std::uint64_t v) { return std::to_string(v); }

std::string describe_payload(BufferView bytes) {
  bool printable = true;
  for (std::uint8_t b : bytes) {
    if (b < 0x20 || b > 0x7e || b == '\'') {
      printable = false;
      break;
    }
  }
  const std::size_t shown = std::min(bytes.size(), kDescribePayloadMax);
  std::string out;
  if (printable) {
    out = "'" + std::string(as_chars(bytes.first(shown))) + "'";
  } else {
    out = "0x" + to_hex(bytes.first(shown));
  }
  if (shown < bytes.size()) out += "...(" + num(bytes.size()) + " bytes)";
  return out;
}

std::string describe_ids(const std::vector<NodeId>& ids) {
  std::string out = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ' ';
    out += num(ids[i].value());
  }
  return out + "]";
}

}  // namespace

std::string describe(const ConfChange& change) {
  std::string out;
  switch (change.transition) {
    case ConfChangeTransition::kAuto: break;
    case ConfChangeTransition::kImplicit: out = "implicit "; break;
    case ConfChangeTransition::kExplicit: out = "explicit "; break;
  }
  if (change.changes.empty()) return out + "leave-joint";
  for (std::size_t i = 0; i < change.changes.size(); ++i) {
    if (i > 0) out += ' ';
    const ConfChangeSingle& c = change.changes[i];
    switch (c.type) {
      case ConfChangeType::kAddNode: out += 'v'; break;
      case ConfChangeType::kAddLearner: out += 'l'; break;
      case ConfChangeType::kRemoveNode: out += 'r'; break;
      default: out += '?'; break;
    }
    out += num(c.node_id.value());
  }
  return out;
}

std::string describe(const Entry& entry) {
  std::string out = num(entry.term.value()) + "/" + num(entry.index.value());
  switch (entry.type) {
    case EntryType::kNormal:
      out += " EntryNormal " + describe_payload(entry.payload.view());
      break;
    case EntryType::kNoop:
      out += " EntryNoop";
      break;
    case EntryType::kConfChange: {
      auto change = ConfChange::decode(entry.payload.view());
      out += " EntryConfChange ";
      out += change ? describe(*change) : "<malformed " + num(entry.payload.size()) + " bytes>";
      break;
    }
    default:
      out += " EntryType" + num(static_cast<int>(entry.type));
      break;
  }
  return out;
}

std::string describe(const ConfState& cs) {
  return "Voters:" + describe_ids(cs.voters) + " VotersOutgoing:" +
         describe_ids(cs.voters_outgoing) + " Learners:" + describe_ids(cs.learners) +
         " LearnersNext:" + describe_ids(cs.learners_next) +
         " AutoLeave:" + (cs.auto_leave ? "true" : "false");
}

std::string describe(const SnapshotMeta& meta) {
  return "Index:" + num(meta.index.value()) + " Term:" + num(meta.term.value()) +
         " ConfState:" + describe(meta.conf_state);
}

std::string describe(const HardState& hs) {
  return "Term:" + num(hs.term.value()) + " Vote:" + num(hs.vote.value()) +
         " Commit:" + num(hs.commit.value());
}

std::string describe(const SoftState& ss) {
  return std::string("Lead:") + num(ss.leader.value()) + " State:" + role_name(ss.role);
}

std::string describe(const ReadState& rs) {
  return "Index:" + num(rs.index.value()) + " Context:" + num(rs.request_context);
}

std::string describe(const Message& m) {
  std::string out = num(m.from.value()) + "->" + num(m.to.value()) + " " +
                    message_type_name(m.type) + " Term:" + num(m.term.value()) +
                    " Log:" + num(m.log_term.value()) + "/" + num(m.index.value());
  if (m.reject) out += " Rejected (Hint: " + num(m.reject_hint.value()) + ")";
  if (m.commit != LogIndex(0)) out += " Commit:" + num(m.commit.value());
  if (m.context != 0) out += " Context:" + num(m.context);
  if (!m.entries.empty()) {
    out += " Entries:[";
    for (std::size_t i = 0; i < m.entries.size(); ++i) {
      if (i > 0) out += ", ";
      out += describe(m.entries[i]);
    }
    out += "]";
  }
  if (m.snapshot) out += " Snapshot: " + describe(m.snapshot->meta);
  return out;
}

}  // namespace mq::raft
