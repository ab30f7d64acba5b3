#include "groups/group.h"

#include <algorithm>
#include <cctype>

namespace mq::groups {
namespace {

constexpr std::pair<GroupState, std::string_view> kStateNames[] = {
    {GroupState::kEmpty, "Empty"},
    {GroupState::kPreparingRebalance, "PreparingRebalance"},
    {GroupState::kCompletingRebalance, "CompletingRebalance"},
    {GroupState::kStable, "Stable"},
    {GroupState::kDead, "Dead"},
};

bool equal_ignore_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool has_protocol(const std::vector<Protocol>& protocols, std::string_view name) {
  return std::any_of(protocols.begin(), protocols.end(),
                     [&](const Protocol& p) { return p.name == name; });
}

}  // namespace

std::string_view state_name(GroupState state) {
  for (const auto& [s, name] : kStateNames) {
    if (s == state) return name;
  }
  return "Unknown";
}

std::optional<GroupState> parse_state(std::string_view name) {
  for (const auto& [s, n] : kStateNames) {
    if (equal_ignore_case(n, name)) return s;
  }
  return std::nullopt;
}

const Buffer* Member::metadata_for(std::string_view protocol) const {
  for (const Protocol& p : protocols) {
    if (p.name == protocol) return &p.metadata;
  }
  return nullptr;
}

std::size_t Member::metadata_bytes() const {
  std::size_t n = 0;
  for (const Protocol& p : protocols) n += p.name.size() + p.metadata.size();
  return n;
}

bool Group::all_members_joined() const {
  if (!pending_members.empty()) return false;
  return std::all_of(members.begin(), members.end(),
                     [](const auto& m) { return static_cast<bool>(m.second.pending_join); });
}

std::int32_t Group::max_rebalance_timeout_ms() const {
  std::int32_t t = 0;
  for (const auto& [id, m] : members) t = std::max(t, m.rebalance_timeout_ms);
  return t;
}

std::optional<std::string> Group::select_protocol() const {
  if (members.empty()) return std::nullopt;
  // Candidates: the protocols of the first member that every member supports.
  std::vector<std::string> candidates;
  for (const Protocol& p : members.begin()->second.protocols) {
    bool all = std::all_of(members.begin(), members.end(), [&](const auto& m) {
      return has_protocol(m.second.protocols, p.name);
    });
    if (all) candidates.push_back(p.name);
  }
  if (candidates.empty()) return std::nullopt;
  // Each member votes for its most preferred candidate; most votes wins, ties in the first
  // member's preference order.
  std::map<std::string, int> votes;
  for (const auto& [id, m] : members) {
    for (const Protocol& p : m.protocols) {
      if (std::find(candidates.begin(), candidates.end(), p.name) != candidates.end()) {
        ++votes[p.name];
        break;
      }
    }
  }
  std::string best = candidates.front();
  for (const std::string& c : candidates) {
    if (votes[c] > votes[best]) best = c;
  }
  return best;
}

bool Group::supports(std::string_view type, const std::vector<Protocol>& protocols,
                     std::string_view except_member) const {
  if (protocols.empty() || type.empty()) return false;
  bool others = false;
  for (const auto& [id, m] : members) {
    if (id != except_member) others = true;
  }
  if (!others) return true;
  if (type != protocol_type) return false;
  // Some protocol of the newcomer must be supported by every other member.
  return std::any_of(protocols.begin(), protocols.end(), [&](const Protocol& p) {
    return std::all_of(members.begin(), members.end(), [&](const auto& m) {
      return m.first == except_member || has_protocol(m.second.protocols, p.name);
    });
  });
}

protocol::GroupMetadataValue Group::to_record() const {
  protocol::GroupMetadataValue v;
  v.protocol_type = protocol_type;
  v.generation = generation;
  v.protocol = protocol.empty() ? std::nullopt : std::optional<std::string>(protocol);
  v.leader = leader.empty() ? std::nullopt : std::optional<std::string>(leader);
  v.current_state_timestamp = state_timestamp_ms;
  for (const auto& [id, m] : members) {
    auto& out = v.members.emplace_back();
    out.member_id = id;
    out.group_instance_id = m.instance_id;
    out.client_id = m.client_id;
    out.client_host = m.client_host;
    out.rebalance_timeout = m.rebalance_timeout_ms;
    out.session_timeout = m.session_timeout_ms;
    if (const Buffer* md = m.metadata_for(protocol); md != nullptr) {
      out.subscription = Buffer(BufferView(*md));
    }
    out.assignment = Buffer(BufferView(m.assignment));
  }
  return v;
}

}  // namespace mq::groups
