#include "cluster/producer_id_allocator.h"

#include <random>

#include "base/le_codec.h"

namespace mq::cluster {
namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

ProducerIdAllocator::ProducerIdAllocator(Hooks hooks) : hooks_(std::move(hooks)) {
  // Request ids only need to differ from this broker's earlier ones (also before a restart),
  // so the block recorded for an older request is never mistaken for the answer.
  std::random_device device;
  id_seed_ = (static_cast<std::uint64_t>(device()) << 32) ^ device() ^
             static_cast<std::uint64_t>(hooks_.now_ms());
}

std::uint64_t ProducerIdAllocator::new_request_id() {
  std::uint64_t id = 0;
  while (id == 0) id = splitmix64(++id_seed_);
  return id;
}

Buffer ProducerIdAllocator::encode_request(std::uint64_t request_id, std::uint32_t count) {
  Buffer out;
  le::put_u64(out, request_id);
  le::put_u32(out, count);
  return out;
}

void ProducerIdAllocator::init_producer_id(std::int64_t producer_id, std::int16_t producer_epoch,
                                           std::int64_t timeout_ms,
                                           std::function<void(Result<ProducerIdResult>)> done) {
  // KIP-360: a producer that names its current id and epoch gets the epoch bumped, which
  // resets its sequences on every partition; an id this cluster never handed out, or an
  // exhausted epoch, gets a new id instead.
  if (producer_id >= 0 && producer_epoch >= 0) {
    const ControllerState* state = hooks_.state();
    if (state != nullptr && producer_id < state->next_producer_id() &&
        producer_epoch < kEpochMax) {
      ProducerIdResult r;
      r.producer_id = producer_id;
      r.producer_epoch = static_cast<std::int16_t>(producer_epoch + 1);
      return done(r);
    }
  }
  if (next_ < end_ && waiters_.empty()) {
    ProducerIdResult r;
    r.producer_id = next_++;
    r.producer_epoch = 0;
    return done(r);
  }
  if (waiters_.size() >= kWaitersMax) {
    return done(Status::limit_exceeded("too many InitProducerId requests waiting for ids"));
  }
  waiters_.push_back(Waiter{hooks_.now_ms() + timeout_ms, std::move(done)});
  if (outstanding_ == 0) request_block();
}

void ProducerIdAllocator::request_block() {
  if (outstanding_ == 0) outstanding_ = new_request_id();
  requested_ms_ = hooks_.now_ms();
  if (hooks_.is_controller()) {
    on_request(hooks_.self, encode_request(outstanding_, kBlockSize).view());
  } else {
    hooks_.send_to_controller(encode_request(outstanding_, kBlockSize));
  }
}

void ProducerIdAllocator::poll() {
  const ControllerState* state = hooks_.state();
  if (outstanding_ != 0 && state != nullptr) {
    const ProducerIdBlock* block = state->producer_id_block(hooks_.self);
    if (block != nullptr && block->request_id == outstanding_) {
      next_ = block->first;
      end_ = block->first + block->count;
      outstanding_ = 0;
    }
  }
  while (!waiters_.empty() && next_ < end_) {
    Waiter w = std::move(waiters_.front());
    waiters_.pop_front();
    ProducerIdResult r;
    r.producer_id = next_++;
    r.producer_epoch = 0;
    w.done(r);
  }
  std::int64_t now = hooks_.now_ms();
  while (!waiters_.empty() && waiters_.front().deadline_ms <= now) {
    Waiter w = std::move(waiters_.front());
    waiters_.pop_front();
    w.done(Status::timeout("no producer id block from the controller in time"));
  }
  // Ask for a block when callers wait or the current one runs low (fetched ahead, so
  // InitProducerId rarely waits); a request unanswered for kRetryMs is sent again.
  bool low = end_ - next_ < static_cast<std::int64_t>(kBlockSize / 10);
  bool due = outstanding_ == 0 || now - requested_ms_ >= kRetryMs;
  if ((low || !waiters_.empty()) && due) request_block();
}

void ProducerIdAllocator::on_request(BrokerId from, BufferView body) {
  le::LeReader r(body);
  std::uint64_t request_id = 0;
  std::uint32_t count = 0;
  if (!r.read_u64(&request_id) || !r.read_u32(&count) || !r.at_end() || request_id == 0 ||
      count == 0 || count > kProducerIdBlockMax) {
    return;  // malformed: the requester retries with a well-formed one or not at all
  }
  if (!hooks_.is_controller()) return;  // it will retry towards the real leader
  const ControllerState* state = hooks_.state();
  if (state != nullptr) {
    const ProducerIdBlock* granted = state->producer_id_block(from);
    if (granted != nullptr && granted->request_id == request_id) return;  // already applied
  }
  // A retried request whose first proposal is still in flight is proposed again: the second
  // block is simply never used (ids are plentiful; uniqueness never depends on this).
  hooks_.propose(AllocateProducerIds{from, request_id, count});
}

void ProducerIdAllocator::abort_all(const Status& status) {
  std::deque<Waiter> waiters;
  waiters.swap(waiters_);
  for (Waiter& w : waiters) w.done(status);
}

}  // namespace mq::cluster
