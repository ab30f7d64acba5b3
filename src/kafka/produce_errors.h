// Produce error answers, summarised (docs/operations.md "Logs"): every partition of a Produce
// request answered with an error code is counted per (topic, partition, error), with the
// client id and one error message of that key, and the server logs one line per interval in
// which any occurred:
//   1764300000.123 kafka:9092 produce errors (1000 ms): orders/3 NOT_LEADER_OR_FOLLOWER x12
//   [rdkafka] "not the leader of orders"; ...
// A producer that sees errors and retries leaves a trail in the broker's log this way without
// a line per request (a retry storm is thousands of answers a second). The keys of one
// interval are bounded (kKeysMax); further keys are counted as "N more". Keys are separated
// by "; ": a client id or message has its ';' and '"' replaced (',' and '\''), so the line
// splits back into its keys (tests/chaos/elections.py). Event loop only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <tuple>

namespace mq::kafka {

class ProduceErrors {
 public:
  static constexpr std::size_t kKeysMax = 32;

  // One partition answered `error_code` (!= 0).
  void record(const std::string& topic, std::int32_t partition, std::int16_t error_code,
              const std::string& client_id, const std::string& message);
  bool empty() const { return keys_.empty() && dropped_ == 0; }
  // Called by record() when the first answer of an interval is recorded (the server arms its
  // log timer then: no timer runs while there are no errors).
  std::function<void()> on_first;
  // The interval's line (without the "kafka:<port>" prefix and the newline), then a new
  // interval. Empty when nothing was recorded.
  std::string take(std::int64_t interval_ms);

 private:
  struct Tally {
    std::uint64_t count = 0;
    std::string client_id;  // of the first answer of the key in the interval
    std::string message;    // idem
  };
  std::map<std::tuple<std::string, std::int32_t, std::int16_t>, Tally> keys_;
  std::uint64_t dropped_ = 0;  // answers of keys beyond kKeysMax
};

}  // namespace mq::kafka
