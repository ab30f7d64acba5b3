// deliver-msgs [ids...] [drop=(ids)] [type=MsgApp]: steps every queued message addressed to
// the named nodes (default: all), in the order they were sent. Messages to a node in drop=, or
// crossing a partition, are taken off the queue and printed as dropped.
#include "raft/rafttest/interaction_env.h"

#include <algorithm>

namespace mq::raft::rafttest {

std::size_t InteractionEnv::deliver(std::uint64_t id, const std::set<std::uint64_t>& drop_to,
                                    const std::string& type_filter) {
  std::vector<Message> taken;
  std::vector<Message> kept;
  for (Message& m : in_flight_) {
    const bool match = m.to.value() == id &&
                       (type_filter.empty() || type_filter == message_type_name(m.type));
    (match ? taken : kept).push_back(std::move(m));
  }
  in_flight_ = std::move(kept);
  Node* n = nodes_[id - 1].get();
  for (const Message& m : taken) {
    if (drop_to.count(id) != 0 || partitioned(m.from, m.to)) {
      if (!quiet_) out_ << "  dropped: " << describe(m) << "\n";
      continue;
    }
    if (!quiet_) out_ << "  " << describe(m) << "\n";
    Status status = n->raw_node->step(m);
    if (!status.is_ok() && !quiet_) out_ << "  error: " << status.to_string() << "\n";
  }
  return taken.size();
}

Status InteractionEnv::handle_deliver_msgs(const TestData& block) {
  MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, node_ids(block, /*default_all=*/true));
  std::set<std::uint64_t> drop_to;
  if (block.has_arg("drop")) {
    MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> drop, block.arg_uints("drop"));
    drop_to.insert(drop.begin(), drop.end());
    // drop=(..) alone means: drop those, deliver nothing else.
    bool explicit_ids = std::any_of(block.args.begin(), block.args.end(), [](const auto& a) {
      return a.values.empty() && !a.key.empty() && a.key[0] >= '0' && a.key[0] <= '9';
    });
    if (!explicit_ids) ids.assign(drop.begin(), drop.end());
  }
  std::string type_filter;
  if (block.has_arg("type")) {
    MQ_ASSIGN_OR_RETURN(type_filter, block.arg_string("type"));
    if (!parse_message_type(type_filter)) {
      return Status::invalid_argument("unknown message type " + type_filter);
    }
  }
  for (std::uint64_t id : ids) {
    MQ_RETURN_IF_ERROR(node(id).status());
    const bool any = std::any_of(in_flight_.begin(), in_flight_.end(), [&](const Message& m) {
      return m.to.value() == id &&
             (type_filter.empty() || type_filter == message_type_name(m.type));
    });
    if (!any) continue;
    if (!quiet_) out_ << "> " << id << " receiving messages\n";
    deliver(id, drop_to, type_filter);
  }
  return Status::ok();
}

}  // namespace mq::raft::rafttest
