// ProducerIdAllocator: hands out idempotent-producer ids on one broker (InitProducerId,
// KIP-98; docs/cluster.md, "Idempotent producer").
//
// Ids come in blocks reserved by the controller: the broker asks the controller leader
// (directly when it is the leader, otherwise with a message on the producer-id channel of
// the transport) to propose AllocateProducerIds{broker, request_id, count}. The block is
// chosen when the command is applied, from the controller state's next producer id, which is
// Raft-replicated and part of the controller snapshot, so ids are unique across the cluster
// and across restarts. The answer is not a reply message: every broker applies the command,
// and the requester recognises its block in the replicated state by its random request id
// (also after a restart, when an older block of its own is still recorded there). Lost
// requests are retried every kRetryMs; InitProducerId calls wait (bounded) for a block.
//
// Threading: the broker's event loop only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>

#include "base/buffer.h"
#include "cluster/api.h"
#include "cluster/controller_state.h"

namespace mq::cluster {

class ProducerIdAllocator {
 public:
  static constexpr std::uint32_t kBlockSize = 1000;  // as Kafka's ProducerIdManager
  static constexpr std::size_t kWaitersMax = 4096;
  static constexpr std::int64_t kRetryMs = 500;
  // Producer epochs are int16; at this epoch a bump hands out a new id instead (Kafka).
  static constexpr std::int16_t kEpochMax = 32766;

  struct Hooks {
    BrokerId self;
    // The replicated controller state (nullptr while the controller is not open).
    std::function<const ControllerState*()> state;
    // True when this broker's controller replica can propose now.
    std::function<bool()> is_controller;
    // Proposes on the controller (leader only).
    std::function<void(Command)> propose;
    // Sends a request body to the controller leader; false when none is known.
    std::function<bool(Buffer)> send_to_controller;
    std::function<std::int64_t()> now_ms;
  };

  explicit ProducerIdAllocator(Hooks hooks);

  // ClusterApi::init_producer_id.
  void init_producer_id(std::int64_t producer_id, std::int16_t producer_epoch,
                        std::int64_t timeout_ms,
                        std::function<void(Result<ProducerIdResult>)> done);
  // Adopts a granted block, serves waiters, retries requests, times waiters out.
  void poll();
  // A request from broker `from` arrived (meaningful on the controller leader only).
  void on_request(BrokerId from, BufferView body);
  // Fails every waiter (shutdown).
  void abort_all(const Status& status);

  // Request body: request_id u64 | count u32 (little-endian).
  static Buffer encode_request(std::uint64_t request_id, std::uint32_t count);

 private:
  struct Waiter {
    std::int64_t deadline_ms = 0;
    std::function<void(Result<ProducerIdResult>)> done;
  };
  void request_block();
  std::uint64_t new_request_id();

  Hooks hooks_;
  std::int64_t next_ = 0;  // current block [next_, end_)
  std::int64_t end_ = 0;
  std::uint64_t outstanding_ = 0;  // request id awaiting its block; 0: none
  std::int64_t requested_ms_ = 0;
  std::uint64_t id_seed_ = 0;
  std::deque<Waiter> waiters_;
};

}  // namespace mq::cluster
