// DescribeCluster (key 60; DescribeClusterRequest.json, KIP-700). v0-v1 served; only the
// broker endpoint type (1) exists in raftmq: asking for controllers (2) gets
// UNSUPPORTED_ENDPOINT_TYPE.
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {

void handle_describe_cluster(const RequestContext& ctx, protocol::DescribeClusterRequest request,
                             Respond respond) {
  protocol::DescribeClusterResponse response;
  response.endpoint_type = request.endpoint_type;
  if (request.endpoint_type != 1) {
    response.error_code = code(KafkaError::kUnsupportedEndpointType);
    response.error_message = "raftmq has no separate controller endpoints";
    respond(protocol::AnyResponse(std::move(response)));
    return;
  }
  cluster::MetadataSnapshot metadata = ctx.cluster->metadata();
  response.cluster_id = metadata.cluster_id;
  response.controller_id = metadata.controller.value();
  for (const cluster::BrokerInfo& broker : metadata.brokers) {
    if (!broker.alive && broker.id != ctx.cluster->self()) continue;
    protocol::DescribeClusterResponse::DescribeClusterBroker entry;
    entry.broker_id = broker.id.value();
    entry.host = broker.host;
    entry.port = broker.kafka_port;
    entry.rack = broker.rack;
    response.brokers.push_back(std::move(entry));
  }
  respond(protocol::AnyResponse(std::move(response)));
}

}  // namespace mq::kafka
