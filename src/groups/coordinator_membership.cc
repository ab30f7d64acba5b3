// Coordinator: the classic group membership protocol (Kafka's GroupCoordinator): JoinGroup,
// SyncGroup, Heartbeat, LeaveGroup and the session/rebalance deadlines (KIP-62), member ids
// handed out before the first join (KIP-394), static membership (KIP-345).
#include <algorithm>

#include "groups/coordinator.h"
#include "protocol/gen/error_codes.h"

namespace mq::groups {
namespace {

using KErr = protocol::ErrorCode;
constexpr std::int16_t kcode(KErr e) { return static_cast<std::int16_t>(e); }

JoinResult join_error(KErr e, std::string member_id = {}) {
  JoinResult r;
  r.error = kcode(e);
  r.member_id = std::move(member_id);
  return r;
}

bool same_protocols(const std::vector<Protocol>& a, const std::vector<Protocol>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || !(a[i].metadata == b[i].metadata)) return false;
  }
  return true;
}

// Whether member `m` would present the same metadata for the group's current protocol.
bool same_metadata_for(const Member& m, const std::vector<Protocol>& protocols,
                       const std::string& protocol) {
  const Buffer* old = m.metadata_for(protocol);
  for (const Protocol& p : protocols) {
    if (p.name == protocol) return old != nullptr && *old == p.metadata;
  }
  return false;
}

// KIP-345: a request naming a group.instance.id whose current member is another member id
// comes from a fenced (older) incarnation. Requests without an instance id are not checked
// (Kafka's isStaticMemberFenced).
bool fenced(const Group& group, const std::optional<std::string>& instance_id,
            const std::string& member_id) {
  if (!instance_id) return false;
  auto it = group.static_members.find(*instance_id);
  return it != group.static_members.end() && it->second != member_id;
}

}  // namespace

void Coordinator::join(JoinArgs args, JoinCallback done) {
  if (args.group_id.empty()) return done(join_error(KErr::kInvalidGroupId, args.member_id));
  std::int32_t partition = 0;
  if (std::int16_t e = check_group(args.group_id, &partition); e != 0) {
    JoinResult r;
    r.error = e;
    r.member_id = args.member_id;
    return done(r);
  }
  if (args.session_timeout_ms < config_.session_timeout_min_ms ||
      args.session_timeout_ms > config_.session_timeout_max_ms) {
    return done(join_error(KErr::kInvalidSessionTimeout, args.member_id));
  }
  if (args.rebalance_timeout_ms <= 0) args.rebalance_timeout_ms = args.session_timeout_ms;
  if (args.protocol_type.empty() || args.protocols.empty()) {
    return done(join_error(KErr::kInconsistentGroupProtocol, args.member_id));
  }
  std::size_t metadata_bytes = 0;
  for (const Protocol& p : args.protocols) metadata_bytes += p.name.size() + p.metadata.size();
  if (metadata_bytes > config_.member_metadata_bytes_max) {
    return done(join_error(KErr::kInvalidRequest, args.member_id));
  }
  Group* group = group_of(args.group_id);
  if (group == nullptr) {
    if (!args.member_id.empty()) return done(join_error(KErr::kUnknownMemberId, args.member_id));
    if (groups_.size() >= config_.groups_max) {
      return done(join_error(KErr::kCoordinatorNotAvailable, args.member_id));
    }
    group = &create_group(args.group_id, partition);
  }
  if (group->state == GroupState::kDead) {
    return done(join_error(KErr::kCoordinatorNotAvailable, args.member_id));
  }
  if (!group->supports(args.protocol_type, args.protocols, args.member_id)) {
    return done(join_error(KErr::kInconsistentGroupProtocol, args.member_id));
  }
  if (args.member_id.empty()) {
    join_new_member(*group, std::move(args), std::move(done));
  } else {
    join_known_member(*group, std::move(args), std::move(done));
  }
}

void Coordinator::join_new_member(Group& group, JoinArgs args, JoinCallback done) {
  if (args.instance_id && group.static_members.count(*args.instance_id) != 0) {
    return replace_static_member(group, std::move(args), std::move(done));
  }
  if (group.members.size() + group.pending_members.size() >= config_.group_members_max) {
    return done(join_error(KErr::kGroupMaxSizeReached));
  }
  std::string id = new_member_id(args.instance_id ? *args.instance_id : args.client_id);
  if (args.require_known_member_id && !args.instance_id) {
    // KIP-394: the member must come back with this id; until then it is only pending.
    group.pending_members[id] = clock_() + args.session_timeout_ms;
    return done(join_error(KErr::kMemberIdRequired, id));
  }
  Member m;
  m.member_id = id;
  m.instance_id = args.instance_id;
  m.client_id = std::move(args.client_id);
  m.client_host = std::move(args.client_host);
  m.session_timeout_ms = args.session_timeout_ms;
  m.rebalance_timeout_ms = args.rebalance_timeout_ms;
  m.protocol_type = std::move(args.protocol_type);
  m.protocols = std::move(args.protocols);
  add_member_and_rebalance(group, std::move(m), std::move(done));
}

void Coordinator::replace_static_member(Group& group, JoinArgs args, JoinCallback done) {
  const std::string old_id = group.static_members.at(*args.instance_id);
  auto node = group.members.extract(old_id);
  Member m = std::move(node.mapped());
  std::string new_id = new_member_id(*args.instance_id);
  // The old incarnation is fenced (KIP-345): its parked requests fail.
  if (m.pending_join) {
    JoinCallback cb = std::move(m.pending_join);
    m.pending_join = nullptr;
    cb(join_error(KErr::kFencedInstanceId, old_id));
  }
  if (m.pending_sync) {
    SyncCallback cb = std::move(m.pending_sync);
    m.pending_sync = nullptr;
    SyncResult r;
    r.error = kcode(KErr::kFencedInstanceId);
    cb(r);
  }
  bool was_leader = group.leader == old_id;
  bool unchanged = m.protocol_type == args.protocol_type &&
                   same_metadata_for(m, args.protocols, group.protocol);
  m.member_id = new_id;
  m.client_id = std::move(args.client_id);
  m.client_host = std::move(args.client_host);
  m.session_timeout_ms = args.session_timeout_ms;
  m.rebalance_timeout_ms = args.rebalance_timeout_ms;
  m.heartbeat_deadline_ms = clock_() + m.session_timeout_ms;
  group.static_members[*args.instance_id] = new_id;
  if (was_leader) group.leader = new_id;
  if (group.state == GroupState::kStable && unchanged && !was_leader) {
    // Rejoin of a static member without a rebalance: it gets the current generation and its
    // assignment through SyncGroup. The new member id is recorded before answering.
    m.protocols = std::move(args.protocols);
    group.members.emplace(new_id, std::move(m));
    std::int32_t generation = group.generation;
    write_group(group, [this, gid = group.id, new_id, generation,
                        done = std::move(done)](std::int16_t error) {
      Group* g = group_of(gid);
      if (error == 0 && (g == nullptr || g->members.count(new_id) == 0 ||
                         g->generation != generation)) {
        error = kcode(KErr::kRebalanceInProgress);
      }
      if (error != 0) return done(join_error(static_cast<KErr>(error), new_id));
      done(join_result(*g, new_id));
    });
    return;
  }
  m.protocols = std::move(args.protocols);
  m.protocol_type = std::move(args.protocol_type);
  group.members.emplace(new_id, std::move(m));
  Member& member = group.members.at(new_id);
  member.pending_join = std::move(done);
  if (group.state == GroupState::kPreparingRebalance) {
    maybe_complete_join(group);
  } else {
    prepare_rebalance(group);
  }
}

void Coordinator::join_known_member(Group& group, JoinArgs args, JoinCallback done) {
  const std::string id = args.member_id;
  if (auto pending = group.pending_members.find(id); pending != group.pending_members.end()) {
    group.pending_members.erase(pending);
    Member m;
    m.member_id = id;
    m.instance_id = args.instance_id;
    m.client_id = std::move(args.client_id);
    m.client_host = std::move(args.client_host);
    m.session_timeout_ms = args.session_timeout_ms;
    m.rebalance_timeout_ms = args.rebalance_timeout_ms;
    m.protocol_type = std::move(args.protocol_type);
    m.protocols = std::move(args.protocols);
    return add_member_and_rebalance(group, std::move(m), std::move(done));
  }
  auto it = group.members.find(id);
  if (it == group.members.end()) {
    // An instance id whose current member is someone else: this one is an old incarnation.
    if (args.instance_id && group.static_members.count(*args.instance_id) != 0) {
      return done(join_error(KErr::kFencedInstanceId, id));
    }
    return done(join_error(KErr::kUnknownMemberId, id));
  }
  Member& m = it->second;
  if (fenced(group, args.instance_id, id)) return done(join_error(KErr::kFencedInstanceId, id));
  bool changed = m.protocol_type != args.protocol_type || !same_protocols(m.protocols, args.protocols);
  m.session_timeout_ms = args.session_timeout_ms;
  m.rebalance_timeout_ms = args.rebalance_timeout_ms;
  m.heartbeat_deadline_ms = clock_() + m.session_timeout_ms;
  auto update_and_park = [&] {
    m.protocol_type = std::move(args.protocol_type);
    m.protocols = std::move(args.protocols);
    if (m.pending_join) {
      JoinCallback old = std::move(m.pending_join);
      m.pending_join = nullptr;
      old(join_error(KErr::kRebalanceInProgress, id));  // superseded by this request
    }
    m.pending_join = std::move(done);
  };
  switch (group.state) {
    case GroupState::kPreparingRebalance:
      update_and_park();
      return maybe_complete_join(group);
    case GroupState::kCompletingRebalance:
      if (!changed) return done(join_result(group, id));  // a retried join: same answer
      update_and_park();
      return prepare_rebalance(group);
    case GroupState::kStable:
      // The leader rejoining, or changed metadata, starts a rebalance (new subscriptions);
      // a follower rejoining unchanged gets the current generation back.
      if (changed || id == group.leader) {
        update_and_park();
        return prepare_rebalance(group);
      }
      return done(join_result(group, id));
    case GroupState::kEmpty:
    case GroupState::kDead:
      return done(join_error(KErr::kUnknownMemberId, id));
  }
}

void Coordinator::add_member_and_rebalance(Group& group, Member member, JoinCallback done) {
  const std::string id = member.member_id;
  if (group.members.empty()) group.protocol_type = member.protocol_type;
  member.is_new = true;
  member.heartbeat_deadline_ms = clock_() + member.session_timeout_ms;
  member.pending_join = std::move(done);
  if (member.instance_id) group.static_members[*member.instance_id] = id;
  group.members.emplace(id, std::move(member));
  if (group.state == GroupState::kPreparingRebalance) {
    maybe_complete_join(group);
  } else {
    prepare_rebalance(group);
  }
}

void Coordinator::prepare_rebalance(Group& group) {
  std::vector<SyncCallback> syncs;
  if (group.state == GroupState::kCompletingRebalance || group.state == GroupState::kStable) {
    for (auto& [id, m] : group.members) {
      if (m.pending_sync) {
        syncs.push_back(std::move(m.pending_sync));
        m.pending_sync = nullptr;
      }
    }
  }
  bool from_empty = group.state == GroupState::kEmpty;
  group.state = GroupState::kPreparingRebalance;
  std::int64_t now = clock_();
  // The members have their largest rebalance timeout to rejoin; from Empty the join also
  // waits the initial delay for more members (Kafka's group.initial.rebalance.delay.ms).
  group.rebalance_deadline_ms = now + group.max_rebalance_timeout_ms();
  group.join_not_before_ms =
      from_empty ? now + std::min(config_.initial_rebalance_delay_ms, group.max_rebalance_timeout_ms())
                 : 0;
  for (SyncCallback& cb : syncs) {
    SyncResult r;
    r.error = kcode(KErr::kRebalanceInProgress);
    cb(r);
  }
  maybe_complete_join(group);
}

void Coordinator::maybe_complete_join(Group& group) {
  if (group.state != GroupState::kPreparingRebalance) return;
  if (group.all_members_joined() && clock_() >= group.join_not_before_ms) complete_join(group);
}

void Coordinator::complete_join(Group& group) {
  // Dynamic members that did not rejoin in time are removed; static ones stay (KIP-345) and
  // are handed to the leader with their last metadata.
  std::vector<std::string> gone;
  for (const auto& [id, m] : group.members) {
    if (!m.pending_join && !m.instance_id) gone.push_back(id);
  }
  for (const std::string& id : gone) remove_member(group, id, kcode(KErr::kUnknownMemberId));
  std::int64_t now = clock_();
  ++group.generation;
  if (group.members.empty()) {
    group.state = GroupState::kEmpty;
    group.protocol.clear();
    group.leader.clear();
    write_group(group, [](std::int16_t) {});  // best effort: an Empty generation
    return;
  }
  std::optional<std::string> protocol = group.select_protocol();
  if (!protocol) {
    // Cannot happen when every join is checked with supports(); refuse rather than guess.
    std::vector<std::string> ids;
    for (const auto& [id, m] : group.members) ids.push_back(id);
    for (const std::string& id : ids) remove_member(group, id, kcode(KErr::kInconsistentGroupProtocol));
    group.state = GroupState::kEmpty;
    return;
  }
  group.protocol = *protocol;
  group.state = GroupState::kCompletingRebalance;
  group.rebalance_deadline_ms = now + group.max_rebalance_timeout_ms();
  auto leader = group.members.find(group.leader);
  if (leader == group.members.end() || !leader->second.pending_join) {
    group.leader.clear();
    for (const auto& [id, m] : group.members) {
      if (m.pending_join) {
        group.leader = id;
        break;
      }
    }
  }
  std::vector<std::pair<JoinCallback, JoinResult>> replies;
  for (auto& [id, m] : group.members) {
    m.assignment = Buffer();
    m.is_new = false;
    m.heartbeat_deadline_ms = now + m.session_timeout_ms;
    if (!m.pending_join) continue;
    replies.emplace_back(std::move(m.pending_join), join_result(group, id));
    m.pending_join = nullptr;
  }
  for (auto& [cb, result] : replies) cb(std::move(result));
}

JoinResult Coordinator::join_result(const Group& group, const std::string& member_id) const {
  JoinResult r;
  r.generation = group.generation;
  r.protocol_type = group.protocol_type;
  r.protocol_name = group.protocol;
  r.leader = group.leader;
  r.member_id = member_id;
  if (member_id == group.leader) {
    for (const auto& [id, m] : group.members) {
      JoinResult::Member& out = r.members.emplace_back();
      out.member_id = id;
      out.instance_id = m.instance_id;
      if (const Buffer* md = m.metadata_for(group.protocol); md != nullptr) out.metadata = *md;
    }
  }
  return r;
}

void Coordinator::sync(SyncArgs args, SyncCallback done) {
  auto fail = [&](KErr e) {
    SyncResult r;
    r.error = kcode(e);
    done(r);
  };
  if (std::int16_t e = check_group(args.group_id, nullptr); e != 0) return fail(static_cast<KErr>(e));
  Group* group = group_of(args.group_id);
  if (group == nullptr) return fail(KErr::kUnknownMemberId);
  auto it = group->members.find(args.member_id);
  if (it == group->members.end()) {
    if (args.instance_id && group->static_members.count(*args.instance_id) != 0) {
      return fail(KErr::kFencedInstanceId);
    }
    return fail(KErr::kUnknownMemberId);
  }
  Member& m = it->second;
  if (fenced(*group, args.instance_id, args.member_id)) return fail(KErr::kFencedInstanceId);
  if (args.generation != group->generation) return fail(KErr::kIllegalGeneration);
  if ((args.protocol_type && *args.protocol_type != group->protocol_type) ||
      (args.protocol_name && *args.protocol_name != group->protocol)) {
    return fail(KErr::kInconsistentGroupProtocol);
  }
  switch (group->state) {
    case GroupState::kEmpty:
    case GroupState::kDead:
      return fail(KErr::kUnknownMemberId);
    case GroupState::kPreparingRebalance:
      return fail(KErr::kRebalanceInProgress);
    case GroupState::kStable: {
      m.heartbeat_deadline_ms = clock_() + m.session_timeout_ms;
      SyncResult r;
      r.protocol_type = group->protocol_type;
      r.protocol_name = group->protocol;
      r.assignment = m.assignment;
      return done(std::move(r));
    }
    case GroupState::kCompletingRebalance:
      break;
  }
  m.heartbeat_deadline_ms = clock_() + m.session_timeout_ms;
  if (args.member_id != group->leader) {
    m.pending_sync = std::move(done);
    return;
  }
  for (const auto& [member_id, assignment] : args.assignments) {
    if (assignment.size() > config_.member_assignment_bytes_max) {
      // Refused before anything changes; the group rebalances when the sync deadline passes.
      return fail(KErr::kInvalidRequest);
    }
  }
  m.pending_sync = std::move(done);
  for (auto& [member_id, assignment] : args.assignments) {
    auto target = group->members.find(member_id);
    if (target != group->members.end()) target->second.assignment = std::move(assignment);
  }
  // The assignment is recorded (acks=all) before any member learns it.
  std::int32_t generation = group->generation;
  write_group(*group, [this, gid = group->id, generation](std::int16_t error) {
    Group* g = group_of(gid);
    if (g == nullptr || g->generation != generation || g->state != GroupState::kCompletingRebalance) {
      return;  // superseded: a later rebalance answered the parked syncs
    }
    if (error == 0) return complete_sync(*g);
    std::vector<SyncCallback> syncs;
    for (auto& [id, mm] : g->members) {
      mm.assignment = Buffer();
      if (mm.pending_sync) syncs.push_back(std::move(mm.pending_sync));
      mm.pending_sync = nullptr;
    }
    prepare_rebalance(*g);
    for (SyncCallback& cb : syncs) {
      SyncResult r;
      r.error = error;
      cb(r);
    }
  });
}

void Coordinator::complete_sync(Group& group) {
  group.state = GroupState::kStable;
  std::vector<std::pair<SyncCallback, SyncResult>> replies;
  std::int64_t now = clock_();
  for (auto& [id, m] : group.members) {
    m.heartbeat_deadline_ms = now + m.session_timeout_ms;
    if (!m.pending_sync) continue;
    SyncResult r;
    r.protocol_type = group.protocol_type;
    r.protocol_name = group.protocol;
    r.assignment = m.assignment;
    replies.emplace_back(std::move(m.pending_sync), std::move(r));
    m.pending_sync = nullptr;
  }
  for (auto& [cb, r] : replies) cb(std::move(r));
}

std::int16_t Coordinator::heartbeat(const std::string& group_id, std::int32_t generation,
                                    const std::string& member_id,
                                    const std::optional<std::string>& instance_id) {
  if (std::int16_t e = check_group(group_id, nullptr); e != 0) return e;
  Group* group = group_of(group_id);
  if (group == nullptr) return kcode(KErr::kUnknownMemberId);
  if (group->state == GroupState::kDead) return kcode(KErr::kCoordinatorNotAvailable);
  auto it = group->members.find(member_id);
  if (it == group->members.end()) {
    if (instance_id && group->static_members.count(*instance_id) != 0) {
      return kcode(KErr::kFencedInstanceId);
    }
    return kcode(KErr::kUnknownMemberId);
  }
  if (fenced(*group, instance_id, member_id)) return kcode(KErr::kFencedInstanceId);
  if (generation != group->generation) return kcode(KErr::kIllegalGeneration);
  it->second.heartbeat_deadline_ms = clock_() + it->second.session_timeout_ms;
  if (group->state == GroupState::kPreparingRebalance) return kcode(KErr::kRebalanceInProgress);
  return 0;
}

LeaveResult Coordinator::leave(const std::string& group_id,
                               const std::vector<MemberIdentity>& members) {
  LeaveResult out;
  if (std::int16_t e = check_group(group_id, nullptr); e != 0) {
    out.error = e;
    out.member_errors.assign(members.size(), e);
    return out;
  }
  Group* group = group_of(group_id);
  bool removed = false;
  for (const MemberIdentity& who : members) {
    std::int16_t error = 0;
    std::string id = who.member_id;
    if (group == nullptr) {
      error = kcode(KErr::kUnknownMemberId);
    } else if (who.instance_id) {
      auto s = group->static_members.find(*who.instance_id);
      if (s == group->static_members.end()) {
        error = kcode(KErr::kUnknownMemberId);
      } else if (!id.empty() && id != s->second) {
        error = kcode(KErr::kFencedInstanceId);
      } else {
        id = s->second;
      }
    } else if (group->pending_members.erase(id) != 0) {
      out.member_errors.push_back(0);
      continue;
    } else if (group->members.count(id) == 0) {
      error = kcode(KErr::kUnknownMemberId);
    }
    if (error == 0) {
      remove_member(*group, id, kcode(KErr::kUnknownMemberId));
      removed = true;
    }
    out.member_errors.push_back(error);
  }
  if (removed) after_member_removed(*group);
  return out;
}

void Coordinator::remove_member(Group& group, const std::string& member_id, std::int16_t error) {
  auto it = group.members.find(member_id);
  if (it == group.members.end()) return;
  Member m = std::move(it->second);
  group.members.erase(it);
  if (m.instance_id) {
    auto s = group.static_members.find(*m.instance_id);
    if (s != group.static_members.end() && s->second == member_id) group.static_members.erase(s);
  }
  if (group.leader == member_id) group.leader.clear();
  if (m.pending_join) m.pending_join(join_error(static_cast<KErr>(error), member_id));
  if (m.pending_sync) {
    SyncResult r;
    r.error = error;
    m.pending_sync(r);
  }
}

void Coordinator::after_member_removed(Group& group) {
  switch (group.state) {
    case GroupState::kStable:
    case GroupState::kCompletingRebalance:
      return prepare_rebalance(group);
    case GroupState::kPreparingRebalance:
      return maybe_complete_join(group);
    case GroupState::kEmpty:
    case GroupState::kDead:
      return;
  }
}

void Coordinator::check_deadlines(Group& group, std::int64_t now) {
  for (auto it = group.pending_members.begin(); it != group.pending_members.end();) {
    it = it->second <= now ? group.pending_members.erase(it) : std::next(it);
  }
  std::vector<std::string> expired;
  for (const auto& [id, m] : group.members) {
    // A member parked in a join or sync is alive (Kafka's shouldKeepAlive).
    if (!m.pending_join && !m.pending_sync && m.heartbeat_deadline_ms <= now) expired.push_back(id);
  }
  for (const std::string& id : expired) remove_member(group, id, kcode(KErr::kUnknownMemberId));
  if (!expired.empty()) after_member_removed(group);
  if (group.state == GroupState::kPreparingRebalance) {
    if (now >= group.rebalance_deadline_ms) {
      complete_join(group);
    } else {
      maybe_complete_join(group);
    }
  } else if (group.state == GroupState::kCompletingRebalance && now >= group.rebalance_deadline_ms) {
    // The leader did not send its assignment in time: start over (members that are alive
    // rejoin on REBALANCE_IN_PROGRESS).
    prepare_rebalance(group);
  }
}

}  // namespace mq::groups
