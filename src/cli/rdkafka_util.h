// Small RAII helpers over the librdkafka C API for the CLI.
#pragma once

#include <librdkafka/rdkafka.h>

#include <memory>
#include <string>
#include <vector>

#include "cli/args.h"

namespace mq::cli {

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaDeleter>;

// Builds a client from --bootstrap (default 127.0.0.1:9092) and repeated --property k=v.
// Returns null and prints the reason on failure.
using DeliveryCallback = void (*)(rd_kafka_t*, const rd_kafka_message_t*, void*);
KafkaHandle make_client(Args& args, rd_kafka_type_t type,
                        const std::vector<std::pair<std::string, std::string>>& extra = {},
                        DeliveryCallback on_delivery = nullptr);

// Waits for one admin result event of `type` on `queue` (timeout_ms), or null.
rd_kafka_event_t* wait_admin_result(rd_kafka_queue_t* queue, rd_kafka_event_type_t type,
                                    int timeout_ms);

}  // namespace mq::cli
