#include "raft/rafttest/interaction_env.h"

#include <algorithm>
#include <functional>
#include <map>
#include <string_view>

namespace mq::raft::rafttest {
namespace {

using HandlerMethod = Status (InteractionEnv::*)(const TestData&);

const std::map<std::string, HandlerMethod, std::less<>>& handlers() {
  static const auto* table = new std::map<std::string, HandlerMethod, std::less<>>{
      {"add-nodes", &InteractionEnv::handle_add_nodes},
      {"campaign", &InteractionEnv::handle_campaign},
      {"propose", &InteractionEnv::handle_propose},
      {"propose-conf-change", &InteractionEnv::handle_propose_conf_change},
      {"tick", &InteractionEnv::handle_tick},
      {"tick-election", &InteractionEnv::handle_tick},
      {"tick-heartbeat", &InteractionEnv::handle_tick},
      {"process-ready", &InteractionEnv::handle_process_ready},
      {"ready-send", &InteractionEnv::handle_process_ready},
      {"ready-persist", &InteractionEnv::handle_process_ready},
      {"deliver-msgs", &InteractionEnv::handle_deliver_msgs},
      {"stabilize", &InteractionEnv::handle_stabilize},
      {"raft-log", &InteractionEnv::handle_raft_log},
      {"raft-state", &InteractionEnv::handle_raft_state},
      {"status", &InteractionEnv::handle_status},
      {"partition", &InteractionEnv::handle_partition},
      {"isolate", &InteractionEnv::handle_partition},
      {"heal", &InteractionEnv::handle_partition},
      {"read-index", &InteractionEnv::handle_read_index},
      {"transfer-leadership", &InteractionEnv::handle_transfer_leadership},
      {"compact", &InteractionEnv::handle_compact},
      {"snapshot", &InteractionEnv::handle_compact},
      {"snapshot-unavailable", &InteractionEnv::handle_compact},
      {"report-unreachable", &InteractionEnv::handle_report},
      {"report-snapshot", &InteractionEnv::handle_report},
      {"log-level", &InteractionEnv::handle_log_level},
      {"send-msg", &InteractionEnv::handle_send_msg},
      {"duplicate-msgs", &InteractionEnv::handle_duplicate_msgs},
      {"restart", &InteractionEnv::handle_restart},
  };
  return *table;
}

// Argument errors carry "file:line: "; expected outputs must not depend on line numbers.
std::string strip_position(const TestData& block, std::string message) {
  const std::string position = block.pos() + ": ";
  const std::size_t at = message.find(position);
  if (at != std::string::npos) message.erase(at, position.size());
  return message;
}

bool is_number(std::string_view text) {
  return !text.empty() && text.size() <= 19 &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::string InteractionEnv::handle(const TestData& block) {
  out_.str("");
  out_.clear();
  auto it = handlers().find(block.command);
  if (it == handlers().end()) return "error: unknown command '" + block.command + "'\n";
  Status status = (this->*(it->second))(block);
  if (!status.is_ok()) {
    out_ << "error: " << strip_position(block, status.to_string()) << "\n";
  }
  return out_.str();
}

Result<Node*> InteractionEnv::node(std::uint64_t id) {
  if (id == 0 || id > nodes_.size()) {
    return Status::invalid_argument("no node " + std::to_string(id));
  }
  return nodes_[id - 1].get();
}

Result<std::vector<std::uint64_t>> InteractionEnv::node_ids(const TestData& block,
                                                            bool default_all) const {
  std::vector<std::uint64_t> ids;
  for (const datadriven::CmdArg& arg : block.args) {
    if (!arg.values.empty() || !is_number(arg.key)) continue;
    const std::uint64_t id = std::stoull(arg.key);
    if (id == 0 || id > nodes_.size()) {
      return Status::invalid_argument("no node " + arg.key);
    }
    ids.push_back(id);
  }
  if (ids.empty() && default_all) {
    for (std::uint64_t id = 1; id <= nodes_.size(); ++id) ids.push_back(id);
    return ids;  // possibly none: "all nodes" of an empty env
  }
  if (ids.empty()) return Status::invalid_argument("command needs a node id");
  return ids;
}

bool InteractionEnv::partitioned(NodeId from, NodeId to) const {
  auto group_of = [&](NodeId id) -> int {
    for (std::size_t g = 0; g < partition_.size(); ++g) {
      if (partition_[g].count(id.value()) != 0) return static_cast<int>(g);
    }
    return -1;  // not listed: the "rest" group
  };
  return group_of(from) != group_of(to);
}

std::string InteractionEnv::describe_ready(const Ready& ready) {
  std::ostringstream s;
  s << "Ready MustSync=" << (ready.must_sync ? "true" : "false") << ":\n";
  if (ready.soft_state) s << describe(*ready.soft_state) << "\n";
  if (ready.hard_state) s << "HardState " << describe(*ready.hard_state) << "\n";
  if (ready.snapshot) s << "Snapshot " << describe(ready.snapshot->meta) << "\n";
  auto section = [&s](const char* title, const auto& items) {
    if (items.empty()) return;
    s << title << ":\n";
    for (const auto& item : items) s << describe(item) << "\n";
  };
  section("Entries", ready.entries_to_persist);
  section("CommittedEntries", ready.committed_entries);
  section("Messages", ready.messages);
  section("MessagesAfterPersist", ready.messages_after_persist);
  section("ReadStates", ready.read_states);
  return s.str();
}

std::string InteractionEnv::describe_state(std::uint64_t id) {
  Node* n = nodes_[id - 1].get();
  const NodeStatus st = n->raw_node->status();
  const ConfState& cs = st.conf_state;
  auto contains = [](const std::vector<NodeId>& v, NodeId x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  std::string membership = "(Non-Voter)";
  if (contains(cs.voters, st.id) || contains(cs.voters_outgoing, st.id)) {
    membership = "(Voter)";
  } else if (contains(cs.learners, st.id) || contains(cs.learners_next, st.id)) {
    membership = "(Learner)";
  }
  std::ostringstream s;
  s << id << ": " << role_name(st.soft_state.role) << " " << membership
    << " Term:" << st.hard_state.term << " Lead:" << st.soft_state.leader;
  return s.str();
}

std::optional<MessageType> parse_message_type(std::string_view name) {
  constexpr auto kLast = static_cast<std::uint8_t>(MessageType::kReadIndexResponse);
  for (std::uint8_t t = 0; t <= kLast; ++t) {
    const auto type = static_cast<MessageType>(t);
    if (name == message_type_name(type)) return type;
  }
  return std::nullopt;
}

Result<ConfChangeSingle> parse_conf_change_token(std::string_view token) {
  if (token.size() < 2 || !is_number(token.substr(1))) {
    return Status::invalid_argument("bad conf change '" + std::string(token) +
                                    "' (want v<id>, l<id> or r<id>)");
  }
  ConfChangeSingle change;
  change.node_id = NodeId(std::stoull(std::string(token.substr(1))));
  switch (token[0]) {
    case 'v': change.type = ConfChangeType::kAddNode; break;
    case 'l': change.type = ConfChangeType::kAddLearner; break;
    case 'r': change.type = ConfChangeType::kRemoveNode; break;
    default:
      return Status::invalid_argument("bad conf change '" + std::string(token) +
                                      "' (want v<id>, l<id> or r<id>)");
  }
  return change;
}

}  // namespace mq::raft::rafttest
