// Broker-side timings of Produce requests (a diagnostic for the end-to-end latency work,
// docs/benchmarks.md "End-to-end latency under load"): for every Produce request the
// connections record how many requests that connection had unanswered when it was read, the
// time from reading it to its answer being complete (validation, proposal, replication,
// commit, apply), and the time from then until the answer could be queued for writing
// (head-of-line: Kafka answers in request order, so a complete answer waits for the earlier
// ones of its connection). take() returns the interval's summary and starts a new interval.
// The server logs one line per interval when ServerConfig::produce_timings_log_ms > 0.
// Event loop only (not thread-safe).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mq::kafka {

class ProduceTimings {
 public:
  // At most this many latency samples are kept per interval (the counts stay exact).
  static constexpr std::size_t kSamplesMax = 100'000;

  struct Summary {
    std::uint64_t requests = 0;           // read in the interval
    double inflight_avg = 0;              // unanswered requests on the connection, this one included
    std::size_t inflight_max = 0;
    std::uint64_t answered = 0;           // answers completed in the interval
    std::int64_t answer_p50_us = 0, answer_p99_us = 0, answer_max_us = 0;  // read -> complete
    std::int64_t hol_p50_us = 0, hol_p99_us = 0, hol_max_us = 0;           // complete -> queued
  };

  void on_read(std::size_t inflight_on_connection);
  void on_answered(std::int64_t read_to_answer_ns);
  void on_queued(std::int64_t answer_to_queued_ns);
  Summary take();
  static std::string format(const Summary& s);

 private:
  std::uint64_t requests_ = 0;
  std::uint64_t inflight_sum_ = 0;
  std::size_t inflight_max_ = 0;
  std::uint64_t answered_ = 0;
  std::vector<std::int64_t> answer_ns_, hol_ns_;
};

}  // namespace mq::kafka
