// OffsetFetch (key 9; OffsetFetchRequest.json). v0-v8 served: v2 null topics = every committed
// offset of the group and a top-level error, v5 leader epoch, v6 flexible, v7 require_stable
// (always stable here: offsets become visible only once committed), v8 several groups per
// request (KIP-709). No committed offset: -1. Group-level errors (NOT_COORDINATOR,
// COORDINATOR_LOAD_IN_PROGRESS) go to each partition in v0-v1, which have no top-level error.
#include "groups/registry.h"
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {
namespace {

using Request = protocol::OffsetFetchRequest;
using Response = protocol::OffsetFetchResponse;
using TopicList = std::vector<std::pair<std::string, std::vector<std::int32_t>>>;

template <typename TopicOut>
void fill_topics(const groups::OffsetsResult& result, std::int16_t version,
                 std::vector<TopicOut>* topics) {
  for (const groups::FetchedOffset& f : result.offsets) {
    if (topics->empty() || topics->back().name != f.topic) topics->emplace_back().name = f.topic;
    auto& out = topics->back().partitions.emplace_back();
    out.partition_index = f.partition;
    out.committed_offset = f.offset;
    if (version >= 5) out.committed_leader_epoch = f.leader_epoch;
    out.metadata = f.metadata;
    out.error_code = f.error;
  }
}

}  // namespace

void handle_offset_fetch(const RequestContext& ctx, Request request, Respond respond) {
  groups::Coordinator& coordinator = groups::coordinator_for(*ctx.cluster, *ctx.io);
  Response response;
  if (ctx.api_version >= 8) {
    for (const auto& g : request.groups) {
      std::optional<TopicList> topics;
      if (g.topics.has_value()) {
        topics.emplace();
        for (const auto& t : *g.topics) topics->emplace_back(t.name, t.partition_indexes);
      }
      groups::OffsetsResult result = coordinator.fetch_offsets(g.group_id, topics);
      auto& out = response.groups.emplace_back();
      out.group_id = g.group_id;
      out.error_code = result.error;
      fill_topics(result, ctx.api_version, &out.topics);
    }
    return respond(protocol::AnyResponse(std::move(response)));
  }
  std::optional<TopicList> topics;
  if (request.topics.has_value()) {
    topics.emplace();
    for (const auto& t : *request.topics) topics->emplace_back(t.name, t.partition_indexes);
  }
  groups::OffsetsResult result = coordinator.fetch_offsets(request.group_id, topics);
  if (result.error != 0 && ctx.api_version < 2) {
    // No top-level error before v2: every requested partition carries it.
    result.offsets.clear();
    for (const auto& [name, partitions] : topics.value_or(TopicList{})) {
      for (std::int32_t p : partitions) {
        result.offsets.push_back(groups::FetchedOffset{name, p, -1, -1, "", result.error});
      }
    }
  }
  if (ctx.api_version >= 2) response.error_code = result.error;
  fill_topics(result, ctx.api_version, &response.topics);
  respond(protocol::AnyResponse(std::move(response)));
}

}  // namespace mq::kafka
