// raftmq group list | describe GROUP | reset-offsets GROUP --topic T (--to-earliest |
// --to-latest | --to-offset N), through librdkafka's admin API (ListConsumerGroups,
// DescribeConsumerGroups, ListConsumerGroupOffsets, AlterConsumerGroupOffsets) and watermark
// queries for the lag. docs/groups.md.
#include "cli/group_commands.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli/rdkafka_util.h"

namespace mq::cli {
namespace {

constexpr int kAdminTimeoutMs = 30'000;
constexpr int kWatermarkTimeoutMs = 10'000;

int usage() {
  std::fprintf(stderr,
               "usage: raftmq group list\n"
               "       raftmq group describe GROUP\n"
               "       raftmq group reset-offsets GROUP --topic T "
               "(--to-earliest | --to-latest | --to-offset N)\n"
               "common: --bootstrap host:port (default 127.0.0.1:9092) --property k=v\n");
  return 2;
}

struct Admin {
  rd_kafka_queue_t* queue = nullptr;
  rd_kafka_AdminOptions_t* options = nullptr;
  Admin(rd_kafka_t* rk, rd_kafka_admin_op_t op) {
    queue = rd_kafka_queue_new(rk);
    options = rd_kafka_AdminOptions_new(rk, op);
    char error[256];
    rd_kafka_AdminOptions_set_request_timeout(options, kAdminTimeoutMs, error, sizeof(error));
  }
  ~Admin() {
    rd_kafka_AdminOptions_destroy(options);
    rd_kafka_queue_destroy(queue);
  }
  Admin(const Admin&) = delete;
  Admin& operator=(const Admin&) = delete;
  // The result event, or null (printed) on no answer or a request-level error.
  rd_kafka_event_t* wait(rd_kafka_event_type_t type) {
    rd_kafka_event_t* event = wait_admin_result(queue, type, kAdminTimeoutMs + 5000);
    if (event == nullptr) {
      std::fprintf(stderr, "raftmq: no answer from the cluster\n");
      return nullptr;
    }
    if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(stderr, "raftmq: %s\n", rd_kafka_event_error_string(event));
      rd_kafka_event_destroy(event);
      return nullptr;
    }
    return event;
  }
};

int list_groups(rd_kafka_t* rk) {
  Admin admin(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS);
  rd_kafka_ListConsumerGroups(rk, admin.options, admin.queue);
  rd_kafka_event_t* event = admin.wait(RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT);
  if (event == nullptr) return 1;
  const auto* result = rd_kafka_event_ListConsumerGroups_result(event);
  size_t count = 0;
  const rd_kafka_ConsumerGroupListing_t** groups =
      rd_kafka_ListConsumerGroups_result_valid(result, &count);
  std::printf("%-40s %s\n", "GROUP", "STATE");
  for (size_t i = 0; i < count; ++i) {
    std::printf("%-40s %s\n", rd_kafka_ConsumerGroupListing_group_id(groups[i]),
                rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupListing_state(groups[i])));
  }
  size_t errors = 0;
  const rd_kafka_error_t** errs = rd_kafka_ListConsumerGroups_result_errors(result, &errors);
  for (size_t i = 0; i < errors; ++i) {
    std::fprintf(stderr, "raftmq: a broker did not list its groups: %s\n",
                 rd_kafka_error_string(errs[i]));
  }
  rd_kafka_event_destroy(event);
  return errors == 0 ? 0 : 1;
}

// Committed offsets of `group` for every partition of every topic (offset < 0: none), or
// null. The partitions are named explicitly: librdkafka 2.0.2 asks for "all topics" with a
// non-flexible OffsetFetch as an empty list, which Kafka answers with nothing.
rd_kafka_topic_partition_list_t* committed_offsets(rd_kafka_t* rk, const std::string& group) {
  const rd_kafka_metadata_t* metadata = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, nullptr, &metadata, kAdminTimeoutMs);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::fprintf(stderr, "raftmq: metadata: %s\n", rd_kafka_err2str(err));
    return nullptr;
  }
  rd_kafka_topic_partition_list_t* wanted = rd_kafka_topic_partition_list_new(0);
  for (int t = 0; t < metadata->topic_cnt; ++t) {
    const rd_kafka_metadata_topic_t& topic = metadata->topics[t];
    if (topic.err != RD_KAFKA_RESP_ERR_NO_ERROR || std::string(topic.topic).rfind("__", 0) == 0) {
      continue;
    }
    for (int p = 0; p < topic.partition_cnt; ++p) {
      rd_kafka_topic_partition_list_add(wanted, topic.topic, topic.partitions[p].id);
    }
  }
  rd_kafka_metadata_destroy(metadata);
  Admin admin(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
  rd_kafka_ListConsumerGroupOffsets_t* request =
      rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), wanted);
  rd_kafka_topic_partition_list_destroy(wanted);
  rd_kafka_ListConsumerGroupOffsets(rk, &request, 1, admin.options, admin.queue);
  rd_kafka_ListConsumerGroupOffsets_destroy(request);
  rd_kafka_event_t* event = admin.wait(RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT);
  if (event == nullptr) return nullptr;
  size_t count = 0;
  const rd_kafka_group_result_t** results = rd_kafka_ListConsumerGroupOffsets_result_groups(
      rd_kafka_event_ListConsumerGroupOffsets_result(event), &count);
  rd_kafka_topic_partition_list_t* out = nullptr;
  if (count == 1 && rd_kafka_group_result_error(results[0]) == nullptr) {
    out = rd_kafka_topic_partition_list_copy(rd_kafka_group_result_partitions(results[0]));
  } else if (count == 1) {
    std::fprintf(stderr, "raftmq: %s: %s\n", group.c_str(),
                 rd_kafka_error_string(rd_kafka_group_result_error(results[0])));
  }
  rd_kafka_event_destroy(event);
  return out;
}

// Member (consumer id) of each assigned partition; prints the group's state and members.
bool describe_members(rd_kafka_t* rk, const std::string& group,
                      std::map<std::pair<std::string, int>, std::string>* owners) {
  Admin admin(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
  const char* groups[] = {group.c_str()};
  rd_kafka_DescribeConsumerGroups(rk, groups, 1, admin.options, admin.queue);
  rd_kafka_event_t* event = admin.wait(RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT);
  if (event == nullptr) return false;
  size_t count = 0;
  const rd_kafka_ConsumerGroupDescription_t** descs = rd_kafka_DescribeConsumerGroups_result_groups(
      rd_kafka_event_DescribeConsumerGroups_result(event), &count);
  bool ok = count == 1 && rd_kafka_ConsumerGroupDescription_error(descs[0]) == nullptr;
  if (!ok && count == 1) {
    std::fprintf(stderr, "raftmq: %s: %s\n", group.c_str(),
                 rd_kafka_error_string(rd_kafka_ConsumerGroupDescription_error(descs[0])));
  }
  if (ok) {
    const rd_kafka_ConsumerGroupDescription_t* d = descs[0];
    const rd_kafka_Node_t* coordinator = rd_kafka_ConsumerGroupDescription_coordinator(d);
    std::printf("group %s state %s assignor %s coordinator %d members %zu\n", group.c_str(),
                rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(d)),
                rd_kafka_ConsumerGroupDescription_partition_assignor(d),
                coordinator != nullptr ? rd_kafka_Node_id(coordinator) : -1,
                rd_kafka_ConsumerGroupDescription_member_count(d));
    for (size_t m = 0; m < rd_kafka_ConsumerGroupDescription_member_count(d); ++m) {
      const rd_kafka_MemberDescription_t* member = rd_kafka_ConsumerGroupDescription_member(d, m);
      const char* id = rd_kafka_MemberDescription_consumer_id(member);
      std::printf("member %s client %s\n", id, rd_kafka_MemberDescription_client_id(member));
      const rd_kafka_topic_partition_list_t* parts =
          rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(member));
      for (int i = 0; parts != nullptr && i < parts->cnt; ++i) {
        (*owners)[{parts->elems[i].topic, parts->elems[i].partition}] = id;
      }
    }
  }
  rd_kafka_event_destroy(event);
  return ok;
}

int describe_group(rd_kafka_t* rk, const std::string& group) {
  std::map<std::pair<std::string, int>, std::string> owners;
  if (!describe_members(rk, group, &owners)) return 1;
  rd_kafka_topic_partition_list_t* offsets = committed_offsets(rk, group);
  if (offsets == nullptr) return 1;
  rd_kafka_topic_partition_list_sort(offsets, nullptr, nullptr);
  std::printf("%-30s %9s %12s %12s %10s %s\n", "TOPIC", "PARTITION", "COMMITTED", "LOG-END",
              "LAG", "MEMBER");
  std::int64_t total = 0;
  int rc = 0;
  for (int i = 0; i < offsets->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = offsets->elems[i];
    if (p.offset < 0) continue;  // no committed offset
    std::int64_t low = 0;
    std::int64_t high = 0;
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(rk, p.topic, p.partition, &low, &high, kWatermarkTimeoutMs);
    auto owner = owners.find({p.topic, p.partition});
    const char* member = owner == owners.end() ? "-" : owner->second.c_str();
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::printf("%-30s %9d %12" PRId64 " %12s %10s %s\n", p.topic, p.partition, p.offset, "?",
                  "?", member);
      std::fprintf(stderr, "raftmq: log end of %s-%d: %s\n", p.topic, p.partition,
                   rd_kafka_err2str(err));
      rc = 1;
      continue;
    }
    std::int64_t lag = high > p.offset ? high - p.offset : 0;
    total += lag;
    std::printf("%-30s %9d %12" PRId64 " %12" PRId64 " %10" PRId64 " %s\n", p.topic, p.partition,
                p.offset, high, lag, member);
  }
  std::printf("total lag %" PRId64 "\n", total);
  rd_kafka_topic_partition_list_destroy(offsets);
  return rc;
}

int reset_offsets(rd_kafka_t* rk, Args& args, const std::string& group) {
  std::optional<std::string> topic = args.get("topic");
  bool earliest = args.has("to-earliest");
  bool latest = args.has("to-latest");
  std::optional<std::string> to_offset = args.get("to-offset");
  if (!topic || (earliest ? 1 : 0) + (latest ? 1 : 0) + (to_offset ? 1 : 0) != 1) return usage();
  std::int64_t fixed = -1;
  if (to_offset) {
    char* end = nullptr;
    fixed = std::strtoll(to_offset->c_str(), &end, 10);
    if (end == to_offset->c_str() || *end != '\0' || fixed < 0) {
      std::fprintf(stderr, "raftmq: --to-offset wants a non-negative number\n");
      return 2;
    }
  }
  rd_kafka_topic_t* handle = rd_kafka_topic_new(rk, topic->c_str(), nullptr);
  const rd_kafka_metadata_t* metadata = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, handle, &metadata, kAdminTimeoutMs);
  rd_kafka_topic_destroy(handle);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR || metadata->topic_cnt != 1 ||
      metadata->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::fprintf(stderr, "raftmq: topic %s: %s\n", topic->c_str(),
                 rd_kafka_err2str(err != RD_KAFKA_RESP_ERR_NO_ERROR ? err : metadata->topics[0].err));
    if (metadata != nullptr) rd_kafka_metadata_destroy(metadata);
    return 1;
  }
  int partitions = metadata->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(metadata);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    std::int64_t low = 0;
    std::int64_t high = 0;
    if (!to_offset) {
      err = rd_kafka_query_watermark_offsets(rk, topic->c_str(), p, &low, &high, kWatermarkTimeoutMs);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        std::fprintf(stderr, "raftmq: offsets of %s-%d: %s\n", topic->c_str(), p, rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_destroy(list);
        return 1;
      }
    }
    rd_kafka_topic_partition_list_add(list, topic->c_str(), p)->offset =
        to_offset ? fixed : (earliest ? low : high);
  }
  Admin admin(rk, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS);
  rd_kafka_AlterConsumerGroupOffsets_t* request =
      rd_kafka_AlterConsumerGroupOffsets_new(group.c_str(), list);
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_AlterConsumerGroupOffsets(rk, &request, 1, admin.options, admin.queue);
  rd_kafka_AlterConsumerGroupOffsets_destroy(request);
  rd_kafka_event_t* event = admin.wait(RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT);
  if (event == nullptr) return 1;
  size_t count = 0;
  const rd_kafka_group_result_t** results = rd_kafka_AlterConsumerGroupOffsets_result_groups(
      rd_kafka_event_AlterConsumerGroupOffsets_result(event), &count);
  int rc = 0;
  if (count != 1 || rd_kafka_group_result_error(results[0]) != nullptr) {
    std::fprintf(stderr, "raftmq: reset %s: %s\n", group.c_str(),
                 count == 1 ? rd_kafka_error_string(rd_kafka_group_result_error(results[0]))
                            : "no result");
    rc = 1;
  } else {
    const rd_kafka_topic_partition_list_t* parts = rd_kafka_group_result_partitions(results[0]);
    for (int i = 0; parts != nullptr && i < parts->cnt; ++i) {
      const rd_kafka_topic_partition_t& p = parts->elems[i];
      if (p.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        // e.g. UNKNOWN_MEMBER_ID: the group has live members (stop them first).
        std::fprintf(stderr, "raftmq: reset %s-%d: %s\n", p.topic, p.partition,
                     rd_kafka_err2name(p.err));
        rc = 1;
      } else {
        std::printf("reset %s %s-%d to %" PRId64 "\n", group.c_str(), p.topic, p.partition, p.offset);
      }
    }
  }
  rd_kafka_event_destroy(event);
  return rc;
}

}  // namespace

int group_command(Args& args) {
  const auto& words = args.positional();
  if (words.empty()) return usage();
  const std::string& verb = words[0];
  if (verb != "list" && words.size() != 2) return usage();
  if (verb != "list" && verb != "describe" && verb != "reset-offsets") return usage();
  KafkaHandle rk = make_client(args, RD_KAFKA_PRODUCER);
  if (!rk) return 1;
  if (verb == "list") return list_groups(rk.get());
  if (verb == "describe") return describe_group(rk.get(), words[1]);
  return reset_offsets(rk.get(), args, words[1]);
}

}  // namespace mq::cli
