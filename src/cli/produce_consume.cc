// raftmq produce / raftmq consume, via librdkafka. Consume uses librdkafka's simple
// (group-less) consumer: raftmq has no consumer groups yet.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "cli/client_commands.h"
#include "cli/rdkafka_util.h"

namespace mq::cli {
namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct DeliveryCount {
  long ok = 0;
  long failed = 0;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* message, void*) {
  auto* count = static_cast<DeliveryCount*>(message->_private);  // RD_KAFKA_V_OPAQUE
  if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++count->failed;
    std::fprintf(stderr, "raftmq: delivery failed: %s\n", rd_kafka_err2str(message->err));
  } else {
    ++count->ok;
  }
}

}  // namespace

int produce_command(Args& args) {
  const auto& words = args.positional();
  if (words.size() != 1) {
    std::fprintf(stderr,
                 "usage: raftmq produce TOPIC [--message M]... [--key K | --key-separator S] "
                 "[--partition P] [--acks all|1|0] [--compression none|gzip|snappy|lz4|zstd]\n"
                 "  without --message, each line of stdin is one message\n");
    return 2;
  }
  DeliveryCount count;
  std::vector<std::pair<std::string, std::string>> extra = {
      {"acks", args.get_or("acks", "all")},
      {"compression.codec", args.get_or("compression", "none")},
      {"linger.ms", "5"},
  };
  KafkaHandle rk = make_client(args, RD_KAFKA_PRODUCER, extra, on_delivery);
  if (!rk) return 1;
  std::optional<std::string> key = args.get("key");
  std::string separator = args.get_or("key-separator", "");
  int partition = std::atoi(args.get_or("partition", "-1").c_str());
  std::vector<std::string> messages = args.get_all("message");
  bool from_stdin = messages.empty();
  std::string line;
  std::size_t next = 0;
  auto next_message = [&](std::string* out) -> bool {
    if (!from_stdin) {
      if (next >= messages.size()) return false;
      *out = messages[next++];
      return true;
    }
    return static_cast<bool>(std::getline(std::cin, *out));
  };
  long sent = 0;
  while (next_message(&line)) {
    std::string message_key = key.value_or("");
    std::string value = line;
    if (!separator.empty()) {
      auto at = line.find(separator);
      if (at != std::string::npos) {
        message_key = line.substr(0, at);
        value = line.substr(at + separator.size());
      }
    }
    bool has_key = key.has_value() || !separator.empty();
    for (;;) {
      rd_kafka_resp_err_t err = rd_kafka_producev(
          rk.get(), RD_KAFKA_V_TOPIC(words[0].c_str()), RD_KAFKA_V_PARTITION(partition),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_KEY(has_key ? message_key.data() : nullptr, has_key ? message_key.size() : 0),
          RD_KAFKA_V_OPAQUE(&count), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(rk.get(), 100);
        continue;
      }
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        std::fprintf(stderr, "raftmq: produce: %s\n", rd_kafka_err2str(err));
        return 1;
      }
      break;
    }
    ++sent;
    rd_kafka_poll(rk.get(), 0);
  }
  rd_kafka_resp_err_t flushed = rd_kafka_flush(rk.get(), 60'000);
  if (flushed != RD_KAFKA_RESP_ERR_NO_ERROR || count.ok != sent) {
    std::fprintf(stderr, "raftmq: %ld of %ld messages acknowledged (%ld failed)\n", count.ok,
                 sent, count.failed);
    return 1;
  }
  std::fprintf(stderr, "raftmq: %ld messages produced to %s\n", sent, words[0].c_str());
  return 0;
}

int consume_command(Args& args) {
  const auto& words = args.positional();
  if (words.size() != 1) {
    std::fprintf(stderr,
                 "usage: raftmq consume TOPIC [--partition P] [--from-beginning | --offset N] "
                 "[--count N] [--idle-timeout-ms T] [--print-key]\n");
    return 2;
  }
  const std::string& topic_name = words[0];
  bool from_beginning = args.has("from-beginning");
  std::optional<std::string> offset_flag = args.get("offset");
  long count_max = std::atol(args.get_or("count", "-1").c_str());
  int idle_ms = std::atoi(args.get_or("idle-timeout-ms", "10000").c_str());
  bool print_key = args.has("print-key");
  std::optional<std::string> partition_flag = args.get("partition");
  KafkaHandle rk = make_client(args, RD_KAFKA_CONSUMER);
  if (!rk) return 1;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  const rd_kafka_metadata_t* metadata = nullptr;
  rd_kafka_topic_t* topic = rd_kafka_topic_new(rk.get(), topic_name.c_str(), nullptr);
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk.get(), 0, topic, &metadata, 10'000);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR || metadata->topic_cnt != 1 ||
      metadata->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::fprintf(stderr, "raftmq: no topic %s\n", topic_name.c_str());
    if (metadata != nullptr) rd_kafka_metadata_destroy(metadata);
    rd_kafka_topic_destroy(topic);
    return 1;
  }
  std::vector<int> partitions;
  if (partition_flag.has_value()) {
    partitions.push_back(std::atoi(partition_flag->c_str()));
  } else {
    for (int p = 0; p < metadata->topics[0].partition_cnt; ++p) partitions.push_back(p);
  }
  rd_kafka_metadata_destroy(metadata);
  std::int64_t start = from_beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
  if (offset_flag.has_value()) start = std::atoll(offset_flag->c_str());
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk.get());
  for (int p : partitions) rd_kafka_consume_start_queue(topic, p, start, queue);

  long received = 0;
  auto last = std::chrono::steady_clock::now();
  while (!g_stop && (count_max < 0 || received < count_max)) {
    rd_kafka_message_t* message = rd_kafka_consume_queue(queue, 200);
    if (message == nullptr) {
      if (std::chrono::steady_clock::now() - last > std::chrono::milliseconds(idle_ms)) break;
      continue;
    }
    if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      rd_kafka_message_destroy(message);
      continue;
    }
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(stderr, "raftmq: consume: %s\n", rd_kafka_message_errstr(message));
      rd_kafka_message_destroy(message);
      continue;
    }
    last = std::chrono::steady_clock::now();
    if (print_key) {
      std::fwrite(message->key, 1, message->key_len, stdout);
      std::fputc('\t', stdout);
    }
    std::fwrite(message->payload, 1, message->len, stdout);
    std::fputc('\n', stdout);
    ++received;
    rd_kafka_message_destroy(message);
  }
  for (int p : partitions) rd_kafka_consume_stop(topic, p);
  rd_kafka_queue_destroy(queue);
  rd_kafka_topic_destroy(topic);
  std::fflush(stdout);
  std::fprintf(stderr, "raftmq: %ld messages consumed\n", received);
  return count_max < 0 || received >= count_max ? 0 : 1;
}

}  // namespace mq::cli
