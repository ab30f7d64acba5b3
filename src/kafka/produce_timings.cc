#include "kafka/produce_timings.h"

#include <algorithm>
#include <cstdio>

namespace mq::kafka {
namespace {
// p (0..1) of `v`, sorted here; in µs. 0 when empty.
std::int64_t quantile_us(std::vector<std::int64_t>& v, double p) {
  if (v.empty()) return 0;
  std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
  return v[i] / 1000;
}
}  // namespace

void ProduceTimings::on_read(std::size_t inflight_on_connection) {
  ++requests_;
  inflight_sum_ += inflight_on_connection;
  inflight_max_ = std::max(inflight_max_, inflight_on_connection);
}

void ProduceTimings::on_answered(std::int64_t read_to_answer_ns) {
  ++answered_;
  if (answer_ns_.size() < kSamplesMax) answer_ns_.push_back(read_to_answer_ns);
}

void ProduceTimings::on_queued(std::int64_t answer_to_queued_ns) {
  if (hol_ns_.size() < kSamplesMax) hol_ns_.push_back(answer_to_queued_ns);
}

ProduceTimings::Summary ProduceTimings::take() {
  Summary s;
  s.requests = requests_;
  s.inflight_avg = requests_ ? static_cast<double>(inflight_sum_) / static_cast<double>(requests_) : 0;
  s.inflight_max = inflight_max_;
  s.answered = answered_;
  std::sort(answer_ns_.begin(), answer_ns_.end());
  std::sort(hol_ns_.begin(), hol_ns_.end());
  s.answer_p50_us = quantile_us(answer_ns_, 0.5);
  s.answer_p99_us = quantile_us(answer_ns_, 0.99);
  s.answer_max_us = answer_ns_.empty() ? 0 : answer_ns_.back() / 1000;
  s.hol_p50_us = quantile_us(hol_ns_, 0.5);
  s.hol_p99_us = quantile_us(hol_ns_, 0.99);
  s.hol_max_us = hol_ns_.empty() ? 0 : hol_ns_.back() / 1000;
  *this = ProduceTimings();
  return s;
}

std::string ProduceTimings::format(const Summary& s) {
  char line[320];
  std::snprintf(line, sizeof line,
                "produce timings: %llu read, in flight per connection avg %.1f max %zu; "
                "read->answer p50 %lld p99 %lld max %lld us (%llu answered); "
                "head-of-line p50 %lld p99 %lld max %lld us",
                static_cast<unsigned long long>(s.requests), s.inflight_avg, s.inflight_max,
                static_cast<long long>(s.answer_p50_us), static_cast<long long>(s.answer_p99_us),
                static_cast<long long>(s.answer_max_us),
                static_cast<unsigned long long>(s.answered), static_cast<long long>(s.hol_p50_us),
                static_cast<long long>(s.hol_p99_us), static_cast<long long>(s.hol_max_us));
  return line;
}

}  // namespace mq::kafka
