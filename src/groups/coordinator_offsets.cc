// Coordinator: committed offsets (OffsetCommit/OffsetFetch), DescribeGroups, ListGroups,
// DeleteGroups. Checks follow Kafka's GroupCoordinator.handleCommitOffsets.
#include <algorithm>
#include <chrono>

#include "groups/coordinator.h"
#include "protocol/gen/error_codes.h"

namespace mq::groups {
namespace {

using KErr = protocol::ErrorCode;
constexpr std::int16_t kcode(KErr e) { return static_cast<std::int16_t>(e); }

std::int64_t wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void fail_all(CommitArgs& args, std::int16_t error) {
  for (CommitPartition& p : args.partitions) p.error = error;
}

}  // namespace

void Coordinator::commit_offsets(CommitArgs args, std::function<void(CommitArgs)> done) {
  if (args.group_id.empty()) {
    fail_all(args, kcode(KErr::kInvalidGroupId));
    return done(std::move(args));
  }
  std::int32_t partition = 0;
  if (std::int16_t e = check_group(args.group_id, &partition); e != 0) {
    fail_all(args, e);
    return done(std::move(args));
  }
  if (args.partitions.size() > config_.offsets_per_commit_max) {
    fail_all(args, kcode(KErr::kInvalidCommitOffsetSize));
    return done(std::move(args));
  }
  Group* group = group_of(args.group_id);
  std::int16_t error = 0;
  if (group == nullptr) {
    if (args.generation >= 0) {
      // A generation of a group that does not exist: an old or made-up member.
      error = kcode(KErr::kIllegalGeneration);
    } else if (groups_.size() >= config_.groups_max) {
      error = kcode(KErr::kCoordinatorNotAvailable);
    } else {
      group = &create_group(args.group_id, partition);  // simple (non-member) commits
    }
  } else if (group->state == GroupState::kDead) {
    error = kcode(KErr::kCoordinatorNotAvailable);
  } else if (args.instance_id && group->static_members.count(*args.instance_id) != 0 &&
             group->static_members.at(*args.instance_id) != args.member_id) {
    error = kcode(KErr::kFencedInstanceId);
  } else if (args.generation < 0 && group->state == GroupState::kEmpty) {
    // a simple commit for a group without members
  } else if (group->state == GroupState::kCompletingRebalance) {
    error = kcode(KErr::kRebalanceInProgress);
  } else if (group->members.count(args.member_id) == 0) {
    error = kcode(KErr::kUnknownMemberId);
  } else if (args.generation != group->generation) {
    error = kcode(KErr::kIllegalGeneration);
  }
  if (error != 0) {
    fail_all(args, error);
    return done(std::move(args));
  }
  if (auto m = group->members.find(args.member_id); m != group->members.end()) {
    m->second.heartbeat_deadline_ms = clock_() + m->second.session_timeout_ms;
  }
  cluster::MetadataSnapshot md = cluster_.metadata();
  std::int64_t now = wall_now_ms();
  std::vector<std::pair<Buffer, std::optional<Buffer>>> records;
  std::vector<std::size_t> written;
  for (std::size_t i = 0; i < args.partitions.size(); ++i) {
    CommitPartition& p = args.partitions[i];
    const cluster::TopicInfo* topic = find_topic(md, p.topic);
    if (p.metadata.size() > config_.offset_metadata_bytes_max) {
      p.error = kcode(KErr::kOffsetMetadataTooLarge);
    } else if (topic == nullptr || p.partition < 0 ||
               static_cast<std::size_t>(p.partition) >= topic->partitions.size()) {
      p.error = kcode(KErr::kUnknownTopicOrPartition);
    } else if (p.offset < 0) {
      p.error = kcode(KErr::kInvalidCommitOffsetSize);
    } else {
      protocol::OffsetCommitValue v;
      v.offset = p.offset;
      v.leader_epoch = p.leader_epoch;
      v.metadata = p.metadata;
      v.commit_timestamp = now;
      records.emplace_back(encode_offset_key(args.group_id, p.topic, p.partition),
                           encode_offset_value(v));
      written.push_back(i);
    }
  }
  if (records.empty()) return done(std::move(args));
  // Answered only once the records are committed (acks=all): a committed offset survives the
  // coordinator's crash.
  write(partition, std::move(records),
        [this, args = std::move(args), written = std::move(written), now,
         done = std::move(done)](std::int16_t error) mutable {
          Group* g = group_of(args.group_id);
          for (std::size_t i : written) {
            CommitPartition& p = args.partitions[i];
            p.error = error;
            if (error != 0 || g == nullptr) continue;
            CommittedOffset& c = g->offsets[{p.topic, p.partition}];
            c.offset = p.offset;
            c.leader_epoch = p.leader_epoch;
            c.metadata = p.metadata;
            c.commit_timestamp_ms = now;
          }
          done(std::move(args));
        });
}

OffsetsResult Coordinator::fetch_offsets(
    const std::string& group_id,
    const std::optional<std::vector<std::pair<std::string, std::vector<std::int32_t>>>>& topics) {
  OffsetsResult out;
  if (std::int16_t e = check_group(group_id, nullptr); e != 0) {
    out.error = e;
    return out;
  }
  const Group* group = group_of(group_id);
  if (!topics.has_value()) {
    if (group == nullptr) return out;
    for (const auto& [key, c] : group->offsets) {
      out.offsets.push_back(FetchedOffset{key.first, key.second, c.offset, c.leader_epoch,
                                          c.metadata, 0});
    }
    return out;
  }
  for (const auto& [topic, partitions] : *topics) {
    for (std::int32_t p : partitions) {
      FetchedOffset f;
      f.topic = topic;
      f.partition = p;
      if (group != nullptr) {
        auto it = group->offsets.find({topic, p});
        if (it != group->offsets.end()) {
          f.offset = it->second.offset;
          f.leader_epoch = it->second.leader_epoch;
          f.metadata = it->second.metadata;
        }
      }
      out.offsets.push_back(std::move(f));
    }
  }
  return out;
}

GroupDescription Coordinator::describe(const std::string& group_id) {
  GroupDescription out;
  out.group_id = group_id;
  if (std::int16_t e = check_group(group_id, nullptr); e != 0) {
    out.error = e;
    return out;
  }
  const Group* group = group_of(group_id);
  if (group == nullptr) {
    out.state = std::string(state_name(GroupState::kDead));
    return out;
  }
  out.state = std::string(state_name(group->state));
  out.protocol_type = group->protocol_type;
  bool stable = group->state == GroupState::kStable;
  if (stable) out.protocol = group->protocol;
  for (const auto& [id, m] : group->members) {
    DescribedMember& d = out.members.emplace_back();
    d.member_id = id;
    d.instance_id = m.instance_id;
    d.client_id = m.client_id;
    d.client_host = m.client_host;
    if (stable) {
      // Kafka describes metadata and assignment only for a Stable group.
      if (const Buffer* md = m.metadata_for(group->protocol); md != nullptr) d.metadata = *md;
      d.assignment = m.assignment;
    }
  }
  return out;
}

std::pair<std::int16_t, std::vector<ListedGroup>> Coordinator::list(
    const std::vector<std::string>& states_filter) {
  std::int16_t error = any_loading() ? kcode(KErr::kCoordinatorLoadInProgress) : 0;
  std::vector<GroupState> states;
  for (const std::string& s : states_filter) {
    if (auto parsed = parse_state(s)) states.push_back(*parsed);
  }
  std::vector<ListedGroup> out;
  for (const auto& [id, g] : groups_) {
    if (!loaded(g.partition)) continue;
    if (!states_filter.empty() && std::find(states.begin(), states.end(), g.state) == states.end()) {
      continue;
    }
    out.push_back(ListedGroup{id, g.protocol_type, std::string(state_name(g.state))});
  }
  return {error, std::move(out)};
}

void Coordinator::delete_groups(
    std::vector<std::string> group_ids,
    std::function<void(std::vector<std::pair<std::string, std::int16_t>>)> done) {
  struct Gather {
    std::vector<std::pair<std::string, std::int16_t>> results;
    std::size_t pending = 0;
    std::function<void(std::vector<std::pair<std::string, std::int16_t>>)> done;
  };
  auto gather = std::make_shared<Gather>();
  gather->done = std::move(done);
  gather->results.reserve(group_ids.size());
  for (std::string& id : group_ids) gather->results.emplace_back(std::move(id), 0);
  gather->pending = gather->results.size() + 1;
  auto finish_one = [gather] {
    if (--gather->pending == 0) gather->done(std::move(gather->results));
  };
  for (std::size_t i = 0; i < gather->results.size(); ++i) {
    const std::string& id = gather->results[i].first;
    std::int32_t partition = 0;
    std::int16_t error = check_group(id, &partition);
    Group* group = error == 0 ? group_of(id) : nullptr;
    if (error == 0 && (group == nullptr || group->state == GroupState::kDead)) {
      error = kcode(KErr::kGroupIdNotFound);
    } else if (error == 0 && group->state != GroupState::kEmpty) {
      error = kcode(KErr::kNonEmptyGroup);
    }
    if (error != 0) {
      gather->results[i].second = error;
      finish_one();
      continue;
    }
    // Tombstones for every offset, then for the group (Kafka's deleteGroups): readers of the
    // topic, the loader included, forget the group.
    std::vector<std::pair<Buffer, std::optional<Buffer>>> records;
    for (const auto& [key, c] : group->offsets) {
      records.emplace_back(encode_offset_key(id, key.first, key.second), std::nullopt);
    }
    records.emplace_back(encode_group_key(id), std::nullopt);
    group->state = GroupState::kDead;
    write(partition, std::move(records), [this, gather, i, finish_one](std::int16_t e) {
      const std::string& gid = gather->results[i].first;
      Group* g = group_of(gid);
      if (e == 0) {
        if (g != nullptr) groups_.erase(gid);
      } else if (g != nullptr && g->state == GroupState::kDead) {
        g->state = GroupState::kEmpty;
      }
      gather->results[i].second = e;
      finish_one();
    });
  }
  finish_one();
}

}  // namespace mq::groups
