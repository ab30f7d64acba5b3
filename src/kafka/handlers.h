// One handler per Kafka API, each in its own .cc (handle_<api>.cc). A handler gets the decoded,
// version-independent request struct and answers exactly once through `respond` — on the event
// loop thread, possibly later (after Raft commits, after a Fetch long-poll). Passing
// std::nullopt means "no response" (Produce with acks=0). Handlers never close connections and
// never block; Kafka error codes come from kafka/error_codes.h only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <asio/io_context.hpp>

#include "base/result.h"
#include "cluster/api.h"
#include "kafka/out_frame.h"
#include "kafka/produce_errors.h"
#include "kafka/server_config.h"
#include "protocol/gen/messages.h"

namespace mq::kafka {

struct RequestContext {
  cluster::ClusterApi* cluster = nullptr;
  const ServerConfig* config = nullptr;
  asio::io_context* io = nullptr;
  std::int16_t api_version = 0;
  std::string client_id;
  std::int32_t correlation_id = 0;
  // Set by a connection: a handler may answer with a whole frame it encoded itself instead of
  // through `respond` (exactly one of the two, once). Fetch does, to send record batches
  // without copying them (fetch_frame.h). Unset when a handler is called directly (tests).
  std::function<void(Result<OutFrame>)> respond_frame;
  // Produce error answers are counted here for the server's log (produce_errors.h); unset:
  // not counted.
  std::shared_ptr<ProduceErrors> produce_errors;
};

using Respond = std::function<void(std::optional<protocol::AnyResponse>)>;

void handle_api_versions(const RequestContext& ctx, protocol::ApiVersionsRequest request,
                         Respond respond);
void handle_metadata(const RequestContext& ctx, protocol::MetadataRequest request,
                     Respond respond);
void handle_produce(const RequestContext& ctx, protocol::ProduceRequest request, Respond respond);
void handle_fetch(const RequestContext& ctx, protocol::FetchRequest request, Respond respond);
void handle_list_offsets(const RequestContext& ctx, protocol::ListOffsetsRequest request,
                         Respond respond);
void handle_offset_for_leader_epoch(const RequestContext& ctx,
                                    protocol::OffsetForLeaderEpochRequest request,
                                    Respond respond);
void handle_create_topics(const RequestContext& ctx, protocol::CreateTopicsRequest request,
                          Respond respond);
void handle_delete_topics(const RequestContext& ctx, protocol::DeleteTopicsRequest request,
                          Respond respond);
void handle_alter_partition_reassignments(const RequestContext& ctx,
                                          protocol::AlterPartitionReassignmentsRequest request,
                                          Respond respond);
void handle_list_partition_reassignments(const RequestContext& ctx,
                                         protocol::ListPartitionReassignmentsRequest request,
                                         Respond respond);
void handle_create_partitions(const RequestContext& ctx,
                              protocol::CreatePartitionsRequest request, Respond respond);
void handle_describe_configs(const RequestContext& ctx, protocol::DescribeConfigsRequest request,
                             Respond respond);
void handle_init_producer_id(const RequestContext& ctx, protocol::InitProducerIdRequest request,
                             Respond respond);
void handle_describe_cluster(const RequestContext& ctx, protocol::DescribeClusterRequest request,
                             Respond respond);
// raftmq's own API (key 10000): every partition's Raft status (docs/operations.md).
void handle_raftmq_cluster_status(const RequestContext& ctx,
                                  protocol::RaftmqClusterStatusRequest request, Respond respond);
// raftmq's own API (key 10001): list the controller's voters and learners, and record the
// operator's voter choice for a broker (docs/cluster.md "Controller voters").
void handle_raftmq_controller_voters(const RequestContext& ctx,
                                     protocol::RaftmqControllerVotersRequest request,
                                     Respond respond);
// UnregisterBroker (key 64): ClusterApi::remove_broker (handle_unregister_broker.cc).
void handle_unregister_broker(const RequestContext& ctx, protocol::UnregisterBrokerRequest request,
                              Respond respond);
// Consumer groups (docs/groups.md): the coordinator is groups::Coordinator.
void handle_find_coordinator(const RequestContext& ctx, protocol::FindCoordinatorRequest request,
                             Respond respond);
void handle_join_group(const RequestContext& ctx, protocol::JoinGroupRequest request,
                       Respond respond);
void handle_sync_group(const RequestContext& ctx, protocol::SyncGroupRequest request,
                       Respond respond);
void handle_heartbeat(const RequestContext& ctx, protocol::HeartbeatRequest request,
                      Respond respond);
void handle_leave_group(const RequestContext& ctx, protocol::LeaveGroupRequest request,
                        Respond respond);
void handle_offset_commit(const RequestContext& ctx, protocol::OffsetCommitRequest request,
                          Respond respond);
void handle_offset_fetch(const RequestContext& ctx, protocol::OffsetFetchRequest request,
                         Respond respond);
void handle_describe_groups(const RequestContext& ctx, protocol::DescribeGroupsRequest request,
                            Respond respond);
void handle_list_groups(const RequestContext& ctx, protocol::ListGroupsRequest request,
                        Respond respond);
void handle_delete_groups(const RequestContext& ctx, protocol::DeleteGroupsRequest request,
                          Respond respond);

// The ApiVersions answer for a version this broker does not serve (KIP-511): error
// UNSUPPORTED_VERSION and the supported ranges, to be encoded at version 0 so that any client
// can read it and retry with a version from the list.
protocol::ApiVersionsResponse unsupported_api_versions_response();

// Routes a decoded request to its handler. Returns false when the API is not served (the
// caller closes the connection, as Kafka does for an unknown API).
bool dispatch(const RequestContext& ctx, protocol::AnyRequest request, Respond respond);

// Helpers shared by handlers.
cluster::Uuid to_cluster_uuid(const Uuid& id);
Uuid to_wire_uuid(const cluster::Uuid& id);
// Lookups in a metadata snapshot (nullptr when absent).
const cluster::TopicInfo* find_topic(const cluster::MetadataSnapshot& metadata,
                                     std::string_view name);
const cluster::TopicInfo* find_topic_by_id(const cluster::MetadataSnapshot& metadata,
                                           const Uuid& id);
const cluster::BrokerInfo* find_broker(const cluster::MetadataSnapshot& metadata,
                                       std::int32_t id);
// The leader of topic/partition in `metadata`, or -1.
std::int32_t leader_of(const cluster::MetadataSnapshot& metadata, std::string_view topic,
                       std::int32_t partition, std::int32_t* leader_epoch);
std::int64_t steady_now_ms();

}  // namespace mq::kafka
