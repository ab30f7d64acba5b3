// ListGroups (key 16; ListGroupsRequest.json). v0-v4 served: v3 flexible, v4 states filter and
// the state of each group (KIP-518). Lists the groups this broker coordinates (clients ask
// every broker). While one of its __consumer_offsets partitions is loading the answer waits (up
// to kLoadWaitMs; a broker's coordinator starts on its first group request), then
// COORDINATOR_LOAD_IN_PROGRESS with the groups loaded so far.
#include <asio/steady_timer.hpp>

#include "groups/registry.h"
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {
namespace {

constexpr std::int64_t kLoadWaitMs = 5000;
constexpr int kLoadPollMs = 20;

void answer(const RequestContext& ctx, const protocol::ListGroupsRequest& request,
            Respond& respond) {
  auto [error, groups] =
      groups::coordinator_for(*ctx.cluster, *ctx.io).list(request.states_filter);
  protocol::ListGroupsResponse response;
  response.error_code = error;
  for (groups::ListedGroup& g : groups) {
    auto& out = response.groups.emplace_back();
    out.group_id = std::move(g.group_id);
    out.protocol_type = std::move(g.protocol_type);
    if (ctx.api_version >= 4) out.group_state = std::move(g.state);
  }
  respond(protocol::AnyResponse(std::move(response)));
}

void answer_when_loaded(RequestContext ctx, protocol::ListGroupsRequest request, Respond respond,
                        std::int64_t deadline_ms) {
  if (!groups::coordinator_for(*ctx.cluster, *ctx.io).any_loading() ||
      steady_now_ms() >= deadline_ms) {
    return answer(ctx, request, respond);
  }
  auto timer = std::make_shared<asio::steady_timer>(*ctx.io, std::chrono::milliseconds(kLoadPollMs));
  timer->async_wait([timer, ctx = std::move(ctx), request = std::move(request),
                     respond = std::move(respond), deadline_ms](const std::error_code& ec) mutable {
    if (ec) return;  // the loop is shutting down
    answer_when_loaded(std::move(ctx), std::move(request), std::move(respond), deadline_ms);
  });
}

}  // namespace

void handle_list_groups(const RequestContext& ctx, protocol::ListGroupsRequest request,
                        Respond respond) {
  answer_when_loaded(ctx, std::move(request), std::move(respond), steady_now_ms() + kLoadWaitMs);
}

}  // namespace mq::kafka
