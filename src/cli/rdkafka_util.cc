#include "cli/rdkafka_util.h"

#include <cstdio>

namespace mq::cli {

KafkaHandle make_client(Args& args, rd_kafka_type_t type,
                        const std::vector<std::pair<std::string, std::string>>& extra,
                        DeliveryCallback on_delivery) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::vector<std::pair<std::string, std::string>> settings = {
      {"bootstrap.servers", args.get_or("bootstrap", "127.0.0.1:9092")},
      {"client.id", "raftmq-cli"},
  };
  settings.insert(settings.end(), extra.begin(), extra.end());
  for (const std::string& property : args.get_all("property")) {
    auto eq = property.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "raftmq: --property wants key=value, got '%s'\n", property.c_str());
      rd_kafka_conf_destroy(conf);
      return nullptr;
    }
    settings.emplace_back(property.substr(0, eq), property.substr(eq + 1));
  }
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof(error)) !=
        RD_KAFKA_CONF_OK) {
      std::fprintf(stderr, "raftmq: %s\n", error);
      rd_kafka_conf_destroy(conf);
      return nullptr;
    }
  }
  if (on_delivery != nullptr) rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_t* rk = rd_kafka_new(type, conf, error, sizeof(error));
  if (rk == nullptr) {
    std::fprintf(stderr, "raftmq: cannot create a Kafka client: %s\n", error);
    return nullptr;  // rd_kafka_new destroyed conf
  }
  return KafkaHandle(rk);
}

rd_kafka_event_t* wait_admin_result(rd_kafka_queue_t* queue, rd_kafka_event_type_t type,
                                    int timeout_ms) {
  for (;;) {
    rd_kafka_event_t* event = rd_kafka_queue_poll(queue, timeout_ms);
    if (event == nullptr) return nullptr;
    if (rd_kafka_event_type(event) == type) return event;
    if (rd_kafka_event_type(event) == RD_KAFKA_EVENT_ERROR) {
      std::fprintf(stderr, "raftmq: %s\n", rd_kafka_event_error_string(event));
    }
    rd_kafka_event_destroy(event);
  }
}

}  // namespace mq::cli
