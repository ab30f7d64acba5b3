// The API keys and versions this broker advertises in ApiVersions and accepts. Minimums are the
// schema's lowest version (0): librdkafka switches features off unless old versions are
// included (../shared/kafka-protocol/README.md "Versions a broker must keep advertising").
// Maximums are the highest version whose semantics the handlers implement; docs/kafka_apis.md
// has one row per entry with the reasons.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace mq::kafka {

struct SupportedApi {
  std::int16_t api_key;
  std::string_view name;
  std::int16_t min_version;
  std::int16_t max_version;
};

// Sorted by api_key.
std::span<const SupportedApi> supported_apis();
// nullptr when the key is not served.
const SupportedApi* find_supported_api(std::int16_t api_key);

}  // namespace mq::kafka
