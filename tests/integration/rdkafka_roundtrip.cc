// librdkafka (C API) integration client: for each codec (none, gzip, snappy, lz4, zstd)
// creates a 3-partition RF-3 topic through the admin API, produces keyed messages with
// acks=all (10,000 for "none", 2,000 per compressed codec), reads them back with the simple
// consumer and checks content, key->partition stability and per-key order within a partition.
//   rdkafka_roundtrip BOOTSTRAP
#include <librdkafka/rdkafka.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace {

struct Consumed {
  std::string key;
  std::string value;
  int partition;
  long long offset;
};

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  std::exit(1);
}

rd_kafka_t* client(const std::string& bootstrap, rd_kafka_type_t type,
                   const std::vector<std::pair<std::string, std::string>>& settings) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto set = [&](const std::string& k, const std::string& v) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), error, sizeof(error)) != RD_KAFKA_CONF_OK) {
      fail(error);
    }
  };
  set("bootstrap.servers", bootstrap);
  for (const auto& [k, v] : settings) set(k, v);
  rd_kafka_t* rk = rd_kafka_new(type, conf, error, sizeof(error));
  if (rk == nullptr) fail(error);
  return rk;
}

void create_topic(rd_kafka_t* rk, const std::string& name) {
  char error[512];
  rd_kafka_NewTopic_t* topic = rd_kafka_NewTopic_new(name.c_str(), 3, 3, error, sizeof(error));
  if (topic == nullptr) fail(error);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &topic, 1, nullptr, queue);
  rd_kafka_event_t* event = nullptr;
  while ((event = rd_kafka_queue_poll(queue, 60'000)) != nullptr &&
         rd_kafka_event_type(event) != RD_KAFKA_EVENT_CREATETOPICS_RESULT) {
    rd_kafka_event_destroy(event);
  }
  if (event == nullptr) fail("CreateTopics: no result");
  size_t count = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count);
  if (count != 1 || rd_kafka_topic_result_error(results[0]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    fail("CreateTopics " + name + ": " +
         (count == 1 ? rd_kafka_err2name(rd_kafka_topic_result_error(results[0])) : "no result"));
  }
  rd_kafka_event_destroy(event);
  rd_kafka_NewTopic_destroy(topic);
  rd_kafka_queue_destroy(queue);
  // Wait for leaders.
  rd_kafka_topic_t* handle = rd_kafka_topic_new(rk, name.c_str(), nullptr);
  for (int attempt = 0; attempt < 300; ++attempt) {
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(rk, 0, handle, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      bool ready = md->topic_cnt == 1 && md->topics[0].err == 0 &&
                   md->topics[0].partition_cnt == 3;
      for (int p = 0; ready && p < md->topics[0].partition_cnt; ++p) {
        ready = md->topics[0].partitions[p].leader >= 0;
      }
      rd_kafka_metadata_destroy(md);
      if (ready) {
        rd_kafka_topic_destroy(handle);
        return;
      }
    }
    struct timespec ts = {0, 200'000'000};
    nanosleep(&ts, nullptr);
  }
  fail("topic " + name + " has no leaders");
}

int g_delivered = 0;
int g_failed = 0;
void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  if (m->err) {
    ++g_failed;
    std::fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(m->err));
  } else {
    ++g_delivered;
  }
}

std::vector<std::pair<std::string, std::string>> messages(const std::string& prefix, int count) {
  std::vector<std::pair<std::string, std::string>> out;
  std::map<std::string, int> seq;
  for (int i = 0; i < count; ++i) {
    std::string key = prefix + "-key-" + std::to_string(i % 64);
    int n = seq[key]++;
    out.emplace_back(key, key + "|" + std::to_string(n) + "|" + std::string(i % 50, 'x'));
  }
  return out;
}

void produce(const std::string& bootstrap, const std::string& topic, const std::string& codec,
             const std::vector<std::pair<std::string, std::string>>& batch) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (auto [k, v] : std::vector<std::pair<std::string, std::string>>{
           {"bootstrap.servers", bootstrap}, {"acks", "all"}, {"compression.codec", codec},
           {"linger.ms", "5"}}) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), error, sizeof(error)) != RD_KAFKA_CONF_OK) {
      fail(error);
    }
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof(error));
  if (rk == nullptr) fail(error);
  g_delivered = g_failed = 0;
  for (const auto& [key, value] : batch) {
    for (;;) {
      rd_kafka_resp_err_t err = rd_kafka_producev(
          rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY(key.data(), key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(rk, 50);
        continue;
      }
      if (err) fail(std::string("produce: ") + rd_kafka_err2str(err));
      break;
    }
    rd_kafka_poll(rk, 0);
  }
  rd_kafka_flush(rk, 60'000);
  rd_kafka_destroy(rk);
  if (g_delivered != static_cast<int>(batch.size()) || g_failed != 0) {
    fail(topic + ": " + std::to_string(g_delivered) + " of " + std::to_string(batch.size()) +
         " delivered");
  }
}

std::vector<Consumed> consume(const std::string& bootstrap, const std::string& topic,
                              std::size_t expected) {
  rd_kafka_t* rk = client(bootstrap, RD_KAFKA_CONSUMER, {});
  rd_kafka_topic_t* handle = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  for (int p = 0; p < 3; ++p) {
    rd_kafka_consume_start_queue(handle, p, RD_KAFKA_OFFSET_BEGINNING, queue);
  }
  std::vector<Consumed> out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (out.size() < expected && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consume_queue(queue, 500);
    if (m == nullptr) continue;
    if (m->err == 0) {
      out.push_back({std::string(static_cast<const char*>(m->key), m->key_len),
                     std::string(static_cast<const char*>(m->payload), m->len), m->partition,
                     static_cast<long long>(m->offset)});
    } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      std::fprintf(stderr, "consume: %s\n", rd_kafka_message_errstr(m));
    }
    rd_kafka_message_destroy(m);
  }
  for (int p = 0; p < 3; ++p) rd_kafka_consume_stop(handle, p);
  rd_kafka_queue_destroy(queue);
  rd_kafka_topic_destroy(handle);
  rd_kafka_destroy(rk);
  return out;
}

void check(const std::vector<std::pair<std::string, std::string>>& produced,
           std::vector<Consumed> consumed, const std::string& topic) {
  std::multiset<std::pair<std::string, std::string>> want(produced.begin(), produced.end());
  std::multiset<std::pair<std::string, std::string>> got;
  for (const Consumed& c : consumed) got.emplace(c.key, c.value);
  if (want != got) {
    fail(topic + ": content differs (" + std::to_string(want.size()) + " produced, " +
         std::to_string(got.size()) + " consumed)");
  }
  std::sort(consumed.begin(), consumed.end(), [](const Consumed& a, const Consumed& b) {
    return a.partition != b.partition ? a.partition < b.partition : a.offset < b.offset;
  });
  std::map<std::string, int> partition_of;
  std::map<std::string, int> last;
  for (const Consumed& c : consumed) {
    if (partition_of.emplace(c.key, c.partition).first->second != c.partition) {
      fail(topic + ": key " + c.key + " in two partitions");
    }
    int n = std::atoi(c.value.substr(c.value.find('|') + 1).c_str());
    auto it = last.find(c.key);
    int previous = it == last.end() ? -1 : it->second;
    if (n != previous + 1) fail(topic + ": key " + c.key + " out of order");
    last[c.key] = n;
  }
  std::printf("%s: %zu messages round-trip in order\n", topic.c_str(), consumed.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: rdkafka_roundtrip BOOTSTRAP\n");
    return 2;
  }
  std::string bootstrap = argv[1];
  rd_kafka_t* admin = client(bootstrap, RD_KAFKA_PRODUCER, {});
  for (const char* codec : {"none", "gzip", "snappy", "lz4", "zstd"}) {
    std::string topic = std::string("rdk-") + codec;
    create_topic(admin, topic);
    auto batch = messages(topic, std::string(codec) == "none" ? 10000 : 2000);
    produce(bootstrap, topic, codec, batch);
    check(batch, consume(bootstrap, topic, batch.size()), topic);
  }
  rd_kafka_destroy(admin);
  std::printf("PASS rdkafka_roundtrip\n");
  return 0;
}
