// ApiVersions (key 18; ApiVersionsRequest.json). v0-v3 served; v3 is flexible and carries the
// client's software name/version (KIP-511), which raftmq accepts without checking.
#include "kafka/api_table.h"
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {
namespace {

protocol::ApiVersionsResponse supported_ranges() {
  protocol::ApiVersionsResponse response;
  for (const SupportedApi& api : supported_apis()) {
    protocol::ApiVersionsResponse::ApiVersion entry;
    entry.api_key = api.api_key;
    entry.min_version = api.min_version;
    entry.max_version = api.max_version;
    response.api_keys.push_back(entry);
  }
  return response;
}

}  // namespace

protocol::ApiVersionsResponse unsupported_api_versions_response() {
  protocol::ApiVersionsResponse response = supported_ranges();
  response.error_code = code(KafkaError::kUnsupportedVersion);
  return response;
}

void handle_api_versions(const RequestContext& /*ctx*/, protocol::ApiVersionsRequest /*request*/,
                         Respond respond) {
  respond(protocol::AnyResponse(supported_ranges()));
}

}  // namespace mq::kafka
