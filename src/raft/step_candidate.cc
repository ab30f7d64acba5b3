// (Pre)candidates: tallying votes (§5.2, thesis §9.6) and yielding to a leader.
#include "raft/raft.h"

namespace mq::raft {

Status Raft::step_candidate(Candidate& candidate, const Message& m) {
  switch (m.type) {
    case MessageType::kAppend:
      // §5.2: a leader of our term exists; return to follower.
      become_follower(m.term, m.from);
      return handle_append(m);
    case MessageType::kHeartbeat:
      become_follower(m.term, m.from);
      handle_heartbeat(m);
      return Status::ok();
    case MessageType::kSnapshot:
      become_follower(m.term, m.from);
      handle_snapshot(m);
      return Status::ok();
    case MessageType::kVoteResponse:
      if (!candidate.pre_vote) record_vote_and_tally(candidate, m.from, !m.reject);
      return Status::ok();
    case MessageType::kPreVoteResponse:
      if (candidate.pre_vote) record_vote_and_tally(candidate, m.from, !m.reject);
      return Status::ok();
    default:
      return Status::ok();  // kTimeoutNow while campaigning, stale responses
  }
}

void Raft::record_vote_and_tally(Candidate& candidate, NodeId from, bool granted) {
  // Only the first answer of each node counts (duplicates are ignored).
  candidate.votes.emplace(from, granted);
  const quorum::VoteResult result = tracker_.config.voters.vote_result(candidate.votes);
  if (result == quorum::VoteResult::kWon) {
    if (candidate.pre_vote) {
      start_campaign(CampaignType::kElection);  // pre-vote won: now the real election
    } else {
      become_leader();
      bcast_append();
    }
  } else if (result == quorum::VoteResult::kLost) {
    // §5.2: stay follower in this term (a pre-candidate keeps its term).
    become_follower(term_, kNoNode);
  }
}

}  // namespace mq::raft
