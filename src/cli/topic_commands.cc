// raftmq topic create|list|describe|delete, via librdkafka's admin
// API and metadata requests.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli/client_commands.h"
#include "cli/rdkafka_util.h"

namespace mq::cli {
namespace {

constexpr int kAdminTimeoutMs = 30'000;

int usage() {
  std::fprintf(stderr,
               "usage: raftmq topic create NAME [--partitions N] [--replication-factor R] "
               "[--config k=v]...\n"
               "       raftmq topic list | describe NAME | delete NAME\n"
               "common: --bootstrap host:port (default 127.0.0.1:9092) --property k=v\n");
  return 2;
}

int print_topic_results(const rd_kafka_topic_result_t** results, size_t count,
                        const char* verb) {
  int failures = 0;
  for (size_t i = 0; i < count; ++i) {
    rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* message = rd_kafka_topic_result_error_string(results[i]);
      std::fprintf(stderr, "raftmq: %s %s: %s (%s)\n", verb, rd_kafka_topic_result_name(results[i]),
                   rd_kafka_err2name(err), message != nullptr ? message : "");
      ++failures;
    } else {
      std::printf("%s %s\n", verb, rd_kafka_topic_result_name(results[i]));
    }
  }
  return failures == 0 ? 0 : 1;
}

using TopicResultsOf = const rd_kafka_topic_result_t** (*)(rd_kafka_event_t*, size_t*);

// Waits for the result event of a topic-level admin call, prints each topic's outcome and
// returns the command's exit code (1 on no answer or any error).
int finish_topic_admin(rd_kafka_queue_t* queue, rd_kafka_event_type_t type,
                       TopicResultsOf results_of, const char* verb) {
  rd_kafka_event_t* event = wait_admin_result(queue, type, kAdminTimeoutMs + 5000);
  int rc = 1;
  if (event == nullptr) {
    std::fprintf(stderr, "raftmq: no answer from the cluster\n");
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::fprintf(stderr, "raftmq: %s\n", rd_kafka_event_error_string(event));
  } else {
    size_t count = 0;
    const rd_kafka_topic_result_t** results = results_of(event, &count);
    rc = print_topic_results(results, count, verb);
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  return rc;
}

int create_topic(Args& args, const std::string& name) {
  int partitions = std::atoi(args.get_or("partitions", "1").c_str());
  int replication = std::atoi(args.get_or("replication-factor", "1").c_str());
  KafkaHandle rk = make_client(args, RD_KAFKA_PRODUCER);
  if (!rk) return 1;
  char error[512];
  rd_kafka_NewTopic_t* topic =
      rd_kafka_NewTopic_new(name.c_str(), partitions, replication, error, sizeof(error));
  if (topic == nullptr) {
    std::fprintf(stderr, "raftmq: %s\n", error);
    return 2;
  }
  for (const std::string& config : args.get_all("config")) {
    auto eq = config.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "raftmq: --config wants key=value\n");
      rd_kafka_NewTopic_destroy(topic);
      return 2;
    }
    rd_kafka_NewTopic_set_config(topic, config.substr(0, eq).c_str(),
                                 config.substr(eq + 1).c_str());
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk.get());
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(rk.get(), RD_KAFKA_ADMIN_OP_ANY);
  rd_kafka_AdminOptions_set_operation_timeout(options, kAdminTimeoutMs, error, sizeof(error));
  rd_kafka_CreateTopics(rk.get(), &topic, 1, options, queue);
  const int rc = finish_topic_admin(
      queue, RD_KAFKA_EVENT_CREATETOPICS_RESULT,
      [](rd_kafka_event_t* event, size_t* count) {
        return rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), count);
      },
      "created");
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_NewTopic_destroy(topic);
  rd_kafka_queue_destroy(queue);
  return rc;
}

int delete_topic(Args& args, const std::string& name) {
  KafkaHandle rk = make_client(args, RD_KAFKA_PRODUCER);
  if (!rk) return 1;
  rd_kafka_DeleteTopic_t* topic = rd_kafka_DeleteTopic_new(name.c_str());
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk.get());
  rd_kafka_DeleteTopics(rk.get(), &topic, 1, nullptr, queue);
  const int rc = finish_topic_admin(
      queue, RD_KAFKA_EVENT_DELETETOPICS_RESULT,
      [](rd_kafka_event_t* event, size_t* count) {
        return rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(event), count);
      },
      "deleted");
  rd_kafka_DeleteTopic_destroy(topic);
  rd_kafka_queue_destroy(queue);
  return rc;
}

void print_topic(const rd_kafka_metadata_topic_t& topic) {
  if (topic.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::printf("topic %s: %s\n", topic.topic, rd_kafka_err2name(topic.err));
    return;
  }
  std::printf("topic %s: %d partitions\n", topic.topic, topic.partition_cnt);
  for (int p = 0; p < topic.partition_cnt; ++p) {
    const rd_kafka_metadata_partition_t& part = topic.partitions[p];
    std::printf("  partition %d leader %d replicas [", part.id, part.leader);
    for (int r = 0; r < part.replica_cnt; ++r) std::printf("%s%d", r ? "," : "", part.replicas[r]);
    std::printf("] isr [");
    for (int r = 0; r < part.isr_cnt; ++r) std::printf("%s%d", r ? "," : "", part.isrs[r]);
    std::printf("]%s%s\n", part.err ? " " : "", part.err ? rd_kafka_err2name(part.err) : "");
  }
}

void describe_configs(rd_kafka_t* rk, const std::string& name) {
  rd_kafka_ConfigResource_t* resource =
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name.c_str());
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_DescribeConfigs(rk, &resource, 1, nullptr, queue);
  rd_kafka_event_t* event =
      wait_admin_result(queue, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, kAdminTimeoutMs);
  if (event != nullptr && rd_kafka_event_error(event) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    size_t count = 0;
    const rd_kafka_ConfigResource_t** results = rd_kafka_DescribeConfigs_result_resources(
        rd_kafka_event_DescribeConfigs_result(event), &count);
    for (size_t i = 0; i < count; ++i) {
      size_t entries = 0;
      const rd_kafka_ConfigEntry_t** configs = rd_kafka_ConfigResource_configs(results[i], &entries);
      std::printf("  configs:\n");
      for (size_t e = 0; e < entries; ++e) {
        const char* value = rd_kafka_ConfigEntry_value(configs[e]);
        std::printf("    %s=%s%s\n", rd_kafka_ConfigEntry_name(configs[e]),
                    value != nullptr ? value : "(null)",
                    rd_kafka_ConfigEntry_is_default(configs[e]) ? " (default)" : "");
      }
    }
  } else if (event != nullptr) {
    std::fprintf(stderr, "raftmq: describe configs: %s\n", rd_kafka_event_error_string(event));
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_ConfigResource_destroy(resource);
  rd_kafka_queue_destroy(queue);
}

int list_or_describe(Args& args, const std::string* name) {
  KafkaHandle rk = make_client(args, RD_KAFKA_PRODUCER);
  if (!rk) return 1;
  const rd_kafka_metadata_t* metadata = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk.get(), 1, nullptr, &metadata, kAdminTimeoutMs);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::fprintf(stderr, "raftmq: metadata: %s\n", rd_kafka_err2str(err));
    return 1;
  }
  int rc = name == nullptr ? 0 : 1;
  for (int t = 0; t < metadata->topic_cnt; ++t) {
    const rd_kafka_metadata_topic_t& topic = metadata->topics[t];
    if (name == nullptr) {
      std::printf("%s\n", topic.topic);
    } else if (*name == topic.topic) {
      print_topic(topic);
      rc = 0;
    }
  }
  rd_kafka_metadata_destroy(metadata);
  if (name != nullptr) {
    if (rc != 0) std::fprintf(stderr, "raftmq: no topic %s\n", name->c_str());
    else describe_configs(rk.get(), *name);
  }
  return rc;
}

}  // namespace

int topic_command(Args& args) {
  const auto& words = args.positional();
  if (words.empty()) return usage();
  const std::string& verb = words[0];
  if (verb == "list" && words.size() == 1) return list_or_describe(args, nullptr);
  if (words.size() != 2) return usage();
  if (verb == "create") return create_topic(args, words[1]);
  if (verb == "delete") return delete_topic(args, words[1]);
  if (verb == "describe") return list_or_describe(args, &words[1]);
  return usage();
}

}  // namespace mq::cli
