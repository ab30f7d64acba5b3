// send-msg to=<id> from=<id> type=<MsgApp|...> term=<t> [index=<i>] [log-term=<t>]
//   [commit=<i>] [entries=(term/index,...)] [reject=true] [hint=<i>] [context=<n>]
//   [snap-index=<i> snap-term=<t> voters=(..)]
// Steps a hand-made message straight into node `to` and prints it with the step result.
// For bad_input.txt: stale terms, unknown senders, out-of-range indexes (the sender need not
// be a node of the env).
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {
namespace {

Status optional_uint(const TestData& block, const char* key, std::uint64_t& value) {
  if (!block.has_arg(key)) return Status::ok();
  MQ_ASSIGN_OR_RETURN(value, block.arg_uint(key));
  return Status::ok();
}

Result<Entry> parse_entry(const std::string& text) {
  const std::size_t slash = text.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == text.size() ||
      text.find_first_not_of("0123456789/") != std::string::npos) {
    return Status::invalid_argument("entry '" + text + "' is not term/index");
  }
  Entry entry;
  entry.term = Term(std::stoull(text.substr(0, slash)));
  entry.index = LogIndex(std::stoull(text.substr(slash + 1)));
  entry.payload = SharedBuffer(std::string_view("x"));
  return entry;
}

Result<Message> parse_message(const TestData& block) {
  Message m;
  MQ_ASSIGN_OR_RETURN(std::string type_name, block.arg_string("type"));
  auto type = parse_message_type(type_name);
  if (!type) return Status::invalid_argument("unknown message type " + type_name);
  m.type = *type;
  std::uint64_t from = 0, to = 0, term = 0, index = 0, log_term = 0, commit = 0, hint = 0;
  MQ_ASSIGN_OR_RETURN(from, block.arg_uint("from"));
  MQ_ASSIGN_OR_RETURN(to, block.arg_uint("to"));
  MQ_RETURN_IF_ERROR(optional_uint(block, "term", term));
  MQ_RETURN_IF_ERROR(optional_uint(block, "index", index));
  MQ_RETURN_IF_ERROR(optional_uint(block, "log-term", log_term));
  MQ_RETURN_IF_ERROR(optional_uint(block, "commit", commit));
  MQ_RETURN_IF_ERROR(optional_uint(block, "hint", hint));
  MQ_RETURN_IF_ERROR(optional_uint(block, "context", m.context));
  m.from = NodeId(from);
  m.to = NodeId(to);
  m.term = Term(term);
  m.index = LogIndex(index);
  m.log_term = Term(log_term);
  m.commit = LogIndex(commit);
  m.reject_hint = LogIndex(hint);
  if (block.has_arg("reject")) {
    MQ_ASSIGN_OR_RETURN(m.reject, block.arg_bool("reject"));
  }
  if (const datadriven::CmdArg* entries = block.find_arg("entries")) {
    for (const std::string& text : entries->values) {
      MQ_ASSIGN_OR_RETURN(Entry entry, parse_entry(text));
      m.entries.push_back(std::move(entry));
    }
  }
  if (block.has_arg("snap-index")) {
    Snapshot snapshot;
    std::uint64_t snap_index = 0, snap_term = 0;
    MQ_RETURN_IF_ERROR(optional_uint(block, "snap-index", snap_index));
    MQ_RETURN_IF_ERROR(optional_uint(block, "snap-term", snap_term));
    snapshot.meta.index = LogIndex(snap_index);
    snapshot.meta.term = Term(snap_term);
    if (block.has_arg("voters")) {
      MQ_ASSIGN_OR_RETURN(auto voters, block.arg_uints("voters"));
      for (std::uint64_t v : voters) snapshot.meta.conf_state.voters.push_back(NodeId(v));
    }
    m.snapshot = std::move(snapshot);
  }
  return m;
}

}  // namespace

Status InteractionEnv::handle_send_msg(const TestData& block) {
  MQ_ASSIGN_OR_RETURN(Message m, parse_message(block));
  MQ_ASSIGN_OR_RETURN(Node * n, node(m.to.value()));
  out_ << describe(m) << "\n";
  Status status = n->raw_node->step(m);
  out_ << "step: " << (status.is_ok() ? std::string("ok") : status.to_string()) << "\n";
  return Status::ok();
}

}  // namespace mq::raft::rafttest
