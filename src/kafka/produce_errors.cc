#include "kafka/produce_errors.h"

#include "protocol/gen/error_codes.h"

namespace mq::kafka {
namespace {
constexpr std::size_t kFieldMax = 120;  // client ids and messages are cut to this many bytes

// Cut to kFieldMax bytes; ';' and '"' (the line's own separators) become ',' and '\''.
std::string bounded(const std::string& s) {
  std::string out = s.size() <= kFieldMax ? s : s.substr(0, kFieldMax) + "...";
  for (char& c : out) {
    if (c == ';') c = ',';
    if (c == '"') c = '\'';
  }
  return out;
}
}  // namespace

void ProduceErrors::record(const std::string& topic, std::int32_t partition,
                           std::int16_t error_code, const std::string& client_id,
                           const std::string& message) {
  const bool first = empty();
  auto key = std::make_tuple(topic, partition, error_code);
  auto it = keys_.find(key);
  if (it == keys_.end()) {
    if (keys_.size() >= kKeysMax) {
      ++dropped_;
      return;  // (never the first of an interval: kKeysMax keys were recorded before)
    }
    it = keys_.emplace(std::move(key), Tally{0, bounded(client_id), bounded(message)}).first;
  }
  ++it->second.count;
  if (first && on_first) on_first();
}

std::string ProduceErrors::take(std::int64_t interval_ms) {
  if (empty()) return {};
  std::string line = "produce errors (" + std::to_string(interval_ms) + " ms):";
  bool first = true;
  for (const auto& [key, tally] : keys_) {
    const auto& [topic, partition, error_code] = key;
    line += first ? " " : "; ";
    first = false;
    line += topic + "/" + std::to_string(partition) + " ";
    line += std::string(protocol::error_code_name(static_cast<protocol::ErrorCode>(error_code)));
    line += " x" + std::to_string(tally.count);
    line += " [" + tally.client_id + "]";
    if (!tally.message.empty()) line += " \"" + tally.message + "\"";
  }
  if (dropped_ > 0) {
    line += (first ? " " : "; ") + std::to_string(dropped_) + " more answers of other partitions";
  }
  keys_.clear();
  dropped_ = 0;
  return line;
}

}  // namespace mq::kafka
