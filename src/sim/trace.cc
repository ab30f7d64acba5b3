#include "sim/trace.h"

#include <cinttypes>

namespace mq::sim {

std::string format_time(std::uint64_t time_us) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%4" PRIu64 ".%06" PRIu64, time_us / 1'000'000,
                time_us % 1'000'000);
  return buffer;
}

void Trace::line(std::uint64_t time_us, std::string_view actor, std::string_view text) const {
  if (out_ == nullptr) return;
  std::fprintf(out_, "[%s] %-7.*s %.*s\n", format_time(time_us).c_str(),
               static_cast<int>(actor.size()), actor.data(), static_cast<int>(text.size()),
               text.data());
}

}  // namespace mq::sim
