// add-nodes <n> [voters=(1,2,3)] [learners=(4)] [index=<i>] [options...]
//
// Adds n nodes with the next free ids. When voters/learners are given, each new node's
// storage starts from a snapshot at `index` (default 1, term 1) holding that configuration,
// as etcd's env does (index=0: no snapshot, the membership is bootstrapped), with a persisted
// HardState of term 1 (the snapshot's term) and commit = index; otherwise the storage is
// empty (a node that joins later and is caught up by its leader).
//
// Preloaded logs, for the paper's figures: log-terms=(1,1,4) appends entries with these
// terms at index+1, index+2, ... (payload "t<term>i<index>"); term=<t> and commit=<i> set
// the persisted HardState.
//
// Options (defaults in parentheses; etcd's env defaults, not the product's):
//   prevote=true|false (false)  checkquorum=true|false (false)  read-only=safe|lease (safe)
//   election=<ticks> (3)  heartbeat=<ticks> (1)  max-inflight=<msgs> (256)
//   max-msg-bytes=<b>  max-inflight-bytes=<b>  max-uncommitted-bytes=<b>
//   max-committed-bytes-per-ready=<b>  seed=<s> (the node id: fixed, so scripts are
//   deterministic)
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {
namespace {

Status parse_bool_option(const TestData& block, const char* key, bool& value) {
  if (!block.has_arg(key)) return Status::ok();
  MQ_ASSIGN_OR_RETURN(value, block.arg_bool(key));
  return Status::ok();
}

template <typename T>
Status parse_uint_option(const TestData& block, const char* key, T& value) {
  if (!block.has_arg(key)) return Status::ok();
  MQ_ASSIGN_OR_RETURN(std::uint64_t v, block.arg_uint(key));
  value = static_cast<T>(v);
  return Status::ok();
}

Result<Config> parse_config(const TestData& block) {
  Config c;
  c.election_ticks = 3;
  c.heartbeat_ticks = 1;
  c.pre_vote = false;
  c.check_quorum = false;
  MQ_RETURN_IF_ERROR(parse_bool_option(block, "prevote", c.pre_vote));
  MQ_RETURN_IF_ERROR(parse_bool_option(block, "checkquorum", c.check_quorum));
  MQ_RETURN_IF_ERROR(parse_uint_option(block, "election", c.election_ticks));
  MQ_RETURN_IF_ERROR(parse_uint_option(block, "heartbeat", c.heartbeat_ticks));
  MQ_RETURN_IF_ERROR(parse_uint_option(block, "max-inflight", c.max_inflight_msgs));
  MQ_RETURN_IF_ERROR(parse_uint_option(block, "max-msg-bytes", c.max_msg_bytes));
  MQ_RETURN_IF_ERROR(parse_uint_option(block, "max-inflight-bytes", c.max_inflight_bytes));
  MQ_RETURN_IF_ERROR(parse_uint_option(block, "max-uncommitted-bytes", c.max_uncommitted_bytes));
  MQ_RETURN_IF_ERROR(parse_uint_option(block, "max-committed-bytes-per-ready",
                                       c.max_committed_bytes_per_ready));
  if (block.has_arg("read-only")) {
    MQ_ASSIGN_OR_RETURN(std::string mode, block.arg_string("read-only"));
    if (mode == "safe") {
      c.read_only = ReadOnlyOption::kSafe;
    } else if (mode == "lease") {
      c.read_only = ReadOnlyOption::kLeaseBased;
    } else {
      return Status::invalid_argument("read-only must be safe or lease, not " + mode);
    }
  }
  return c;
}

std::vector<NodeId> to_node_ids(const std::vector<std::uint64_t>& ids) {
  std::vector<NodeId> out;
  for (std::uint64_t id : ids) out.push_back(NodeId(id));
  return out;
}

Result<std::vector<Entry>> preloaded_log(const TestData& block, const SnapshotMeta& base) {
  std::vector<Entry> entries;
  if (!block.has_arg("log-terms")) return entries;
  MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> terms, block.arg_uints("log-terms"));
  Term previous = base.term;
  for (std::uint64_t t : terms) {
    if (Term(t) < previous || t == 0) {
      return Status::invalid_argument("log-terms must be >= 1 and non-decreasing from the "
                                      "snapshot term");
    }
    Entry entry;
    entry.term = Term(t);
    entry.index = base.index + (entries.size() + 1);
    entry.payload = SharedBuffer("t" + std::to_string(t) + "i" +
                                 std::to_string(entry.index.value()));
    previous = entry.term;
    entries.push_back(std::move(entry));
  }
  return entries;
}

Result<std::uint64_t> parse_count(const TestData& block, std::size_t existing) {
  if (block.args.empty() || !block.args[0].values.empty()) {
    return Status::invalid_argument("add-nodes needs a node count first");
  }
  std::uint64_t count = 0;
  for (char c : block.args[0].key) {
    if (c < '0' || c > '9' || count > 1000) return Status::invalid_argument("bad node count");
    count = count * 10 + static_cast<std::uint64_t>(c - '0');
  }
  constexpr std::uint64_t kNodesMax = 16;
  if (count == 0 || existing + count > kNodesMax) {
    return Status::invalid_argument("node count must be in [1, " + std::to_string(kNodesMax) +
                                    "] in total");
  }
  return count;
}

Result<Bootstrap> parse_bootstrap(const TestData& block) {
  Bootstrap b;
  b.has_config = block.has_arg("voters") || block.has_arg("learners");
  if (b.has_config) {
    if (block.has_arg("voters")) {
      MQ_ASSIGN_OR_RETURN(auto voters, block.arg_uints("voters"));
      b.snapshot.meta.conf_state.voters = to_node_ids(voters);
    }
    if (block.has_arg("learners")) {
      MQ_ASSIGN_OR_RETURN(auto learners, block.arg_uints("learners"));
      b.snapshot.meta.conf_state.learners = to_node_ids(learners);
    }
    std::uint64_t index = 1;
    MQ_RETURN_IF_ERROR(parse_uint_option(block, "index", index));
    b.snapshot.meta.index = LogIndex(index);
    b.snapshot.meta.term = Term(index == 0 ? 0 : 1);
  } else if (block.has_arg("index") || block.has_arg("log-terms")) {
    return Status::invalid_argument("index= and log-terms= need voters= or learners=");
  }
  MQ_ASSIGN_OR_RETURN(b.preload, preloaded_log(block, b.snapshot.meta));
  // A persisted state is consistent: the node has seen at least the term of its last entry
  // (invariants.cc: last log term <= current term) and has committed its snapshot.
  std::uint64_t term = b.snapshot.meta.term.value();
  std::uint64_t commit = b.snapshot.meta.index.value();
  MQ_RETURN_IF_ERROR(parse_uint_option(block, "term", term));
  MQ_RETURN_IF_ERROR(parse_uint_option(block, "commit", commit));
  if (Term(term) < b.snapshot.meta.term) {
    return Status::invalid_argument("term= must be >= the snapshot's term");
  }
  b.hard_state.term = Term(term);
  b.hard_state.commit = LogIndex(commit);
  const LogIndex last = b.snapshot.meta.index + b.preload.size();
  if (b.hard_state.commit > last ||
      (b.hard_state.commit > LogIndex(0) && b.hard_state.commit < b.snapshot.meta.index)) {
    return Status::invalid_argument("commit must be in [index, last preloaded index]");
  }
  if (!b.preload.empty() && b.hard_state.term < b.preload.back().term) {
    return Status::invalid_argument("term= must be >= the last preloaded entry's term");
  }
  return b;
}

}  // namespace

Status InteractionEnv::handle_add_nodes(const TestData& block) {
  MQ_ASSIGN_OR_RETURN(std::uint64_t count, parse_count(block, nodes_.size()));
  MQ_ASSIGN_OR_RETURN(Config base, parse_config(block));
  MQ_ASSIGN_OR_RETURN(Bootstrap bootstrap, parse_bootstrap(block));
  for (std::uint64_t k = 0; k < count; ++k) {
    auto n = std::make_unique<Node>();
    n->config = base;
    n->config.id = NodeId(nodes_.size() + 1);
    n->config.random_seed = n->config.id.value();
    MQ_RETURN_IF_ERROR(parse_uint_option(block, "seed", n->config.random_seed));
    n->config.bugs |= forced_bugs_;
    MQ_ASSIGN_OR_RETURN(n->storage, make_storage(bootstrap));
    if (bootstrap.has_config) {
      n->applied = bootstrap.snapshot.meta.index;
      n->config.applied = bootstrap.snapshot.meta.index;
    }
    MQ_ASSIGN_OR_RETURN(n->raw_node, RawNode::create(n->config, n->storage.get()));
    nodes_.push_back(std::move(n));
    if (!quiet_) {
      const NodeStatus st = nodes_.back()->raw_node->status();
      out_ << describe_state(nodes_.size()) << " " << describe(st.conf_state)
           << " last index " << st.last_index << "\n";
    }
  }
  return Status::ok();
}

}  // namespace mq::raft::rafttest
