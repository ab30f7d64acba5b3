// Node: idempotent-producer ids (InitProducerId) — the wiring of ProducerIdAllocator to the
// controller group and the transport (docs/cluster.md, "Idempotent producer").
#include "base/le_codec.h"
#include "cluster/ids.h"
#include "cluster/node.h"

namespace mq::cluster {

void Node::start_producer_ids() {
  ProducerIdAllocator::Hooks hooks;
  hooks.self = config_.id;
  hooks.state = [this]() -> const ControllerState* {
    return controller_ ? &controller_->state() : nullptr;
  };
  hooks.is_controller = [this] { return controller_ && controller_->leader_ready(); };
  hooks.propose = [this](Command command) {
    if (!controller_) return;
    // The outcome is observed in the replicated state (poll()); failures are retried.
    controller_->propose(command, config_.produce_timeout_ms, [](Status) {});
  };
  hooks.send_to_controller = [this](Buffer body) {
    if (!controller_ || !transport_) return false;
    NodeId leader = controller_->leader();
    if (leader == kNoNode || broker_of(leader) == config_.id) return false;
    raft::Message m;
    m.type = raft::MessageType::kReadIndex;
    m.from = node_of(config_.id);
    m.to = leader;
    raft::Entry e;
    e.payload = SharedBuffer(std::move(body));
    m.entries.push_back(std::move(e));
    return transport_->send(broker_of(leader), kProducerIdChannel, std::move(m));
  };
  hooks.now_ms = [] { return steady_now_ms(); };
  producer_ids_ = std::make_unique<ProducerIdAllocator>(std::move(hooks));
}

void Node::handle_producer_id_request(BrokerId from, const raft::Message& message) {
  if (!producer_ids_ || message.entries.size() != 1) return;
  producer_ids_->on_request(from, message.entries[0].payload.view());
}

void Node::init_producer_id(std::int64_t producer_id, std::int16_t producer_epoch,
                            std::int64_t timeout_ms,
                            std::function<void(Result<ProducerIdResult>)> done) {
  if (!producer_ids_) return done(Status::unavailable("broker not started"));
  producer_ids_->init_producer_id(producer_id, producer_epoch, timeout_ms, std::move(done));
}

}  // namespace mq::cluster
