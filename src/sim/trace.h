// Trace: the simulator's event log. One line per event, prefixed with the simulated time, in
// the format documented in docs/simulator.md. Formatting is skipped entirely when the trace is
// off, so the sweep pays nothing for it. Output is a pure function of the seed (no wall clock,
// no pointers, no unordered iteration), so two runs of one seed print the same bytes.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace mq::sim {

class Trace {
 public:
  explicit Trace(std::FILE* out = nullptr) : out_(out) {}
  bool enabled() const { return out_ != nullptr; }
  // "[   12.345678] <actor> <text>"; actor is "n3", "net", "client", "nemesis", "check", "sim".
  void line(std::uint64_t time_us, std::string_view actor, std::string_view text) const;

 private:
  std::FILE* out_;
};

// "12.345678" seconds, fixed width, from simulated microseconds.
std::string format_time(std::uint64_t time_us);

}  // namespace mq::sim
