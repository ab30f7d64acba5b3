// process-ready [ids...]: each named node (default: all) takes one Ready and the env acts on
// it as the host must (ready.h): queue messages, persist, queue messages_after_persist, apply
// committed entries, advance. ready-send / ready-persist split it in two (see below).
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {
namespace {

std::string indent(const std::string& text) {
  std::string out;
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    out += "  " + text.substr(begin, end - begin) + "\n";
    begin = end + 1;
  }
  return out;
}

}  // namespace

// Step 4: committed entries must follow the applied index without gaps (a core that hands
// them out of order or twice is caught here, not silently absorbed).
Status InteractionEnv::apply(Node& n, const Ready& ready) {
  for (const Entry& entry : ready.committed_entries) {
    if (entry.index != n.applied + 1) {
      return Status::internal("committed entry " + describe(entry) + " does not follow applied " +
                              std::to_string(n.applied.value()));
    }
    if (entry.type == EntryType::kNormal && !entry.payload.empty()) {
      n.state_machine.emplace_back(entry.index, std::string(as_chars(entry.payload.view())));
    }
    n.applied = entry.index;
  }
  return Status::ok();
}

Status InteractionEnv::take_ready(Node& n) {
  MQ_ASSERT(!n.held_ready.has_value());
  Ready ready = n.raw_node->ready();
  if (!quiet_) out_ << indent(describe_ready(ready));
  for (const Message& m : ready.messages) in_flight_.push_back(m);  // step 1
  n.held_ready = std::move(ready);
  return Status::ok();
}

Status InteractionEnv::finish_ready(Node& n) {
  MQ_ASSERT(n.held_ready.has_value());
  const Ready ready = std::move(*n.held_ready);
  n.held_ready.reset();
  MQ_RETURN_IF_ERROR(persist(n, ready));                                       // step 2
  for (const Message& m : ready.messages_after_persist) in_flight_.push_back(m);  // step 3
  MQ_RETURN_IF_ERROR(apply(n, ready));                                         // step 4
  n.raw_node->advance(ready);                                                  // step 5
  for (const Entry& entry : ready.committed_entries) {
    if (entry.type == EntryType::kConfChange) {
      persist_conf_state(n);
      break;
    }
  }
  return snapshot_applied(n);
}

Status InteractionEnv::process_ready(std::uint64_t id) {
  MQ_ASSIGN_OR_RETURN(Node * n, node(id));
  if (n->held_ready || !n->raw_node->has_ready()) return Status::ok();
  MQ_RETURN_IF_ERROR(take_ready(*n));
  return finish_ready(*n);
}

// process-ready [ids]: the whole contract at once. ready-send <ids>: take the Ready and send
// its `messages` only (step 1), holding the rest as if the disk write were still running
// (thesis §10.2.1: the leader writes in parallel with replication). ready-persist <ids>:
// finish a held Ready (steps 2-5).
Status InteractionEnv::handle_process_ready(const TestData& block) {
  MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, node_ids(block, /*default_all=*/true));
  for (std::uint64_t id : ids) {
    MQ_ASSIGN_OR_RETURN(Node * n, node(id));
    if (block.command == "ready-persist") {
      if (!n->held_ready) return Status::invalid_argument("node has no Ready in progress");
      if (!quiet_) out_ << "> " << id << " persisted its Ready\n";
      MQ_RETURN_IF_ERROR(finish_ready(*n));
      continue;
    }
    if (n->held_ready) {
      return Status::invalid_argument("node " + std::to_string(id) +
                                      " has a Ready in progress (ready-persist first)");
    }
    if (!quiet_) out_ << "> " << id << " handling Ready\n";
    if (!n->raw_node->has_ready()) {
      if (!quiet_) out_ << "  <empty Ready>\n";
      continue;
    }
    MQ_RETURN_IF_ERROR(take_ready(*n));
    if (block.command == "process-ready") MQ_RETURN_IF_ERROR(finish_ready(*n));
  }
  return Status::ok();
}

}  // namespace mq::raft::rafttest
