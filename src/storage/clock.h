// Time as an input (no hidden wall clock in storage logic): segment age for rolling and
// retention, and the flusher's interval mode, read time only through a Clock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace mq::storage {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t now_ms() const = 0;  // milliseconds since the Unix epoch
};

// The real clock (system_clock: segment ages compare with Kafka record timestamps).
class SystemClock final : public Clock {
 public:
  std::int64_t now_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  static SystemClock* instance() {
    static SystemClock clock;
    return &clock;
  }
};

// A clock the test or the simulator advances by hand.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::int64_t start_ms = 0) : now_ms_(start_ms) {}
  std::int64_t now_ms() const override { return now_ms_.load(); }
  void advance_ms(std::int64_t delta_ms) { now_ms_ += delta_ms; }
  void set_ms(std::int64_t now_ms) { now_ms_ = now_ms; }

 private:
  std::atomic<std::int64_t> now_ms_;
};

}  // namespace mq::storage
