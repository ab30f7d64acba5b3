// raftmq-loadgen: a Kafka load generator on librdkafka (any Kafka-compatible broker; written
// for raftmq). Each mode prints one JSON line on stdout; scripts/bench reads it.
//
//   produce  --producers P --size S [--keys]  throughput: P producer instances (own connections),
//            acks=all, messages counted when acknowledged inside the measurement window
//   latency  --size S                         one message in flight at a time: produce, wait for
//            the acks=all acknowledgement, repeat
//   e2e      --rate R --producers P           open loop at R msgs/s from P senders; a consumer in the same
//            process measures produce-to-consume latency from the intended send time (so a
//            stall is charged to every message that should have been sent during it)
//   consume  [--count N] [--idle-ms MS]       reads every partition from the beginning until
//            N messages or nothing new for MS
//
// Messages carry random (incompressible) bytes; compression is off; idempotence is off (the
// broker does not support it yet, see the broker issue).
#include <librdkafka/rdkafka.h>

#include <cinttypes>
#include <memory>

#include "bench_util.h"

namespace mq::bench {
namespace {

struct Opts {
  std::string bootstrap, topic;
  int64_t size = 1024, producers = 1, seconds = 5, warmup_ms = 1000, rate = 1000, count = 0,
          idle_ms = 2000;
  // e2e senders' linger.ms: by default the throughput runs' (and librdkafka's) 5 ms, so that
  // "50% of max" is half of what the same clients reached (docs/benchmarks.md).
  int64_t linger_ms = 5;
  int64_t send_quantum_us = 200;    // e2e senders wake at most this often (see E2eSender)
  int64_t fetch_wait_max_ms = 100;  // consumers' fetch.wait.max.ms
  int64_t stats_ms = 0;             // e2e senders' statistics.interval.ms (0: off)
  int64_t queue_kbytes = 4096;      // producers' queue.buffering.max.kbytes (see make_client)
  std::string stats_file;           // where e2e senders' statistics go (JSON lines)
  bool keys = false;
};

using KafkaPtr = std::unique_ptr<rd_kafka_t, void (*)(rd_kafka_t*)>;

void set(rd_kafka_conf_t* conf, const char* k, const std::string& v) {
  char err[512];
  if (rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
    die(std::string("librdkafka config ") + k + ": " + err);
}

void quiet_log(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  if (level <= 3) std::fprintf(stderr, "librdkafka %s: %s\n", fac, buf);
}

using StatsCallback = int (*)(rd_kafka_t*, char*, size_t, void*);

KafkaPtr make_client(rd_kafka_type_t type, const Opts& o, int64_t linger_ms, void* opaque,
                     void (*dr)(rd_kafka_t*, const rd_kafka_message_t*, void*),
                     StatsCallback stats = nullptr) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (stats != nullptr && o.stats_ms > 0) {
    // librdkafka's own view, per broker connection: int_latency (enqueue to batched),
    // outbuf_latency (batched to written), rtt (written to response), in-flight requests.
    set(conf, "statistics.interval.ms", std::to_string(o.stats_ms));
    rd_kafka_conf_set_stats_cb(conf, stats);
  }
  set(conf, "bootstrap.servers", o.bootstrap);
  rd_kafka_conf_set_log_cb(conf, quiet_log);
  if (type == RD_KAFKA_PRODUCER) {
    set(conf, "acks", "all");
    set(conf, "enable.idempotence", "false");
    set(conf, "compression.codec", "none");
    set(conf, "linger.ms", std::to_string(linger_ms));
    // What one producer holds, queued and in flight (librdkafka counts a message until its
    // delivery report): 4 MiB by default, about 4,000 1 KiB messages, the size of the peers'
    // clients' windows of 2,048 outstanding acks. With 256 MiB each producer kept seconds of
    // messages queued and its heap grew through the whole run, one page fault per new page:
    // 140,000 faults and half the load generator's CPU in a 5 s 1 KiB run (docs/benchmarks.md,
    // "The load generator's own memory").
    set(conf, "queue.buffering.max.messages", "200000");
    set(conf, "queue.buffering.max.kbytes", std::to_string(o.queue_kbytes));
    set(conf, "message.timeout.ms", "60000");
    rd_kafka_conf_set_opaque(conf, opaque);
    if (dr) rd_kafka_conf_set_dr_msg_cb(conf, dr);
  } else {
    // No group.id: partitions are assigned explicitly (consumer groups are not needed to read).
    set(conf, "enable.auto.commit", "false");
    set(conf, "enable.partition.eof", "false");
    set(conf, "fetch.wait.max.ms", std::to_string(o.fetch_wait_max_ms));
    set(conf, "queued.max.messages.kbytes", "262144");
  }
  // Experiments: RAFTMQ_LOADGEN_RDKAFKA="key=value,key=value" is applied to every client last.
  if (const char* extra = std::getenv("RAFTMQ_LOADGEN_RDKAFKA"); extra != nullptr) {
    std::string all = extra;
    for (std::size_t at = 0; at < all.size();) {
      std::size_t end = all.find(',', at);
      if (end == std::string::npos) end = all.size();
      std::string kv = all.substr(at, end - at);
      std::size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) die("RAFTMQ_LOADGEN_RDKAFKA: key=value expected: " + kv);
      set(conf, kv.substr(0, eq).c_str(), kv.substr(eq + 1));
      at = end + 1;
    }
  }
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) die(std::string("rd_kafka_new: ") + err);
  return KafkaPtr(rk, rd_kafka_destroy);
}

// Partition count of the topic, from a metadata request (waits up to 30 s for a leader each).
int partition_count(rd_kafka_t* rk, const std::string& topic) {
  int64_t deadline = now_ns() + 30'000'000'000LL;
  while (now_ns() < deadline) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 5000);
    rd_kafka_topic_destroy(t);
    int n = -1;
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && !md->topics[0].err) {
      n = md->topics[0].partition_cnt;
      for (int i = 0; i < n; ++i)
        if (md->topics[0].partitions[i].leader < 0) n = -1;
    }
    if (md) rd_kafka_metadata_destroy(md);
    if (n > 0) return n;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  die("topic " + topic + " has no leader for every partition after 30 s");
}

// ---- produce (throughput) ----

struct ProduceState {
  WindowCounter counter;
  std::atomic<int64_t> produced{0}, purged{0}, unfinished{0};
  std::atomic<int64_t> bytes_in_window{0};
  int64_t size = 0;
  std::atomic<int> first_error{0};
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* st = static_cast<ProduceState*>(opaque);
  if (m->err) {
    if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
      st->purged.fetch_add(1);
    } else {
      st->counter.errors.fetch_add(1);
      int expected = 0;
      st->first_error.compare_exchange_strong(expected, static_cast<int>(m->err));
    }
    return;
  }
  int64_t t = now_ns();
  st->counter.ok(t);
  if (t >= st->counter.begin_ns && t < st->counter.end_ns) st->bytes_in_window += st->size;
}

void produce_loop(const Opts& o, ProduceState* st, int index, std::atomic<int64_t>* queue_full) {
  KafkaPtr rk = make_client(RD_KAFKA_PRODUCER, o, 5, st, on_delivery);
  partition_count(rk.get(), o.topic);
  std::string payload = random_payload(static_cast<size_t>(o.size), 1000 + index);
  std::mt19937_64 rng(index);
  char key[32];
  int64_t stop = st->counter.end_ns.load();
  uint64_t n = 0;
  while (now_ns() < stop) {
    int klen = o.keys ? std::snprintf(key, sizeof key, "key-%u", static_cast<unsigned>(rng() % 1024)) : 0;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk.get(), RD_KAFKA_V_TOPIC(o.topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE(payload.data(), payload.size()),
        RD_KAFKA_V_KEY(o.keys ? key : nullptr, static_cast<size_t>(klen)), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      queue_full->fetch_add(1);
      rd_kafka_poll(rk.get(), 1);
      continue;
    }
    if (e) die(std::string("produce: ") + rd_kafka_err2str(e));
    st->produced.fetch_add(1, std::memory_order_relaxed);
    if (++n % 64 == 0) rd_kafka_poll(rk.get(), 0);
  }
  // Past the window: drop what was never sent, wait (bounded) for what is in flight.
  rd_kafka_purge(rk.get(), RD_KAFKA_PURGE_F_QUEUE);
  rd_kafka_flush(rk.get(), 15000);
  st->unfinished.fetch_add(rd_kafka_outq_len(rk.get()));
}

int run_produce(const Opts& o) {
  ProduceState st;
  st.size = o.size;
  int64_t t0 = now_ns();
  st.counter.begin_ns = t0 + o.warmup_ms * 1'000'000;
  st.counter.end_ns = st.counter.begin_ns + o.seconds * 1'000'000'000;
  std::atomic<int64_t> queue_full{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < o.producers; ++i)
    threads.emplace_back(produce_loop, std::cref(o), &st, i, &queue_full);
  for (auto& t : threads) t.join();
  double rate = st.counter.window_rate();
  std::printf(
      "{\"mode\":\"produce\",\"size\":%" PRId64 ",\"producers\":%" PRId64
      ",\"keys\":%s,\"msgs_per_s\":%.1f,\"mb_per_s\":%.2f,\"acked_total\":%" PRId64
      ",\"errors\":%" PRId64 ",\"first_error\":\"%s\",\"queue_full_waits\":%" PRId64
      ",\"window_s\":%" PRId64 ",\"produced\":%" PRId64 ",\"purged_unsent\":%" PRId64
      ",\"in_flight_at_exit\":%" PRId64 ",\"queue_kbytes\":%" PRId64 "}\n",
      o.size, o.producers, o.keys ? "true" : "false", rate,
      static_cast<double>(st.bytes_in_window) / 1e6 / static_cast<double>(o.seconds),
      st.counter.total.load(), st.counter.errors.load(),
      st.first_error ? rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(st.first_error.load())) : "",
      queue_full.load(), o.seconds, st.produced.load(), st.purged.load(), st.unfinished.load(),
      o.queue_kbytes);
  return 0;
}

// ---- latency (one in flight) ----

struct LatencyState {
  std::atomic<bool> done{false};
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
};

void on_latency_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* st = static_cast<LatencyState*>(opaque);
  st->err = m->err;
  st->done = true;
}

int run_latency(const Opts& o) {
  LatencyState st;
  KafkaPtr rk = make_client(RD_KAFKA_PRODUCER, o, 0, &st, on_latency_delivery);
  partition_count(rk.get(), o.topic);
  std::string payload = random_payload(static_cast<size_t>(o.size), 7);
  Samples samples;
  int64_t warm_end = now_ns() + o.warmup_ms * 1'000'000;
  int64_t end = warm_end + o.seconds * 1'000'000'000;
  int64_t errors = 0;
  for (int64_t i = 0; now_ns() < end && (o.count == 0 || static_cast<int64_t>(samples.size()) < o.count);
       ++i) {
    st.done = false;
    int64_t t = now_ns();
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk.get(), RD_KAFKA_V_TOPIC(o.topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE(payload.data(), payload.size()), RD_KAFKA_V_END);
    if (e) die(std::string("produce: ") + rd_kafka_err2str(e));
    while (!st.done) rd_kafka_poll(rk.get(), 100);
    int64_t lat = now_ns() - t;
    if (st.err) {
      ++errors;
    } else if (t >= warm_end) {
      samples.add(lat);
    }
  }
  samples.finish();
  std::printf("{\"mode\":\"latency\",\"size\":%" PRId64 ",\"errors\":%" PRId64 ",%s}\n", o.size,
              errors, samples.json_fields().c_str());
  return 0;
}

// ---- consumers ----

// A consumer reading every partition from `offset` (RD_KAFKA_OFFSET_BEGINNING, or
// RD_KAFKA_OFFSET_END resolved to each partition's high watermark now) into one queue. It uses
// librdkafka's simple (group-less) consumer API, as kcat does: no group coordinator involved.
class PartitionReader {
 public:
  PartitionReader(const Opts& o, int64_t offset)
      : rk_(make_client(RD_KAFKA_CONSUMER, o, 0, nullptr, nullptr)) {
    partitions_ = partition_count(rk_.get(), o.topic);
    rkt_ = rd_kafka_topic_new(rk_.get(), o.topic.c_str(), nullptr);
    queue_ = rd_kafka_queue_new(rk_.get());
    for (int p = 0; p < partitions_; ++p) {
      int64_t start = offset;
      if (offset == RD_KAFKA_OFFSET_END) {
        // Retried for up to 30 s: a partition may be between leaders (NOT_LEADER while an
        // election settles on a loaded machine).
        int64_t lo = 0, hi = 0;
        int64_t deadline = now_ns() + 30'000'000'000LL;
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_query_watermark_offsets(rk_.get(), o.topic.c_str(), p, &lo, &hi,
                                                     10000)) != RD_KAFKA_RESP_ERR_NO_ERROR &&
               now_ns() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        if (e) die(std::string("watermarks: ") + rd_kafka_err2str(e));
        start = hi;
      }
      if (rd_kafka_consume_start_queue(rkt_, p, start, queue_) != 0)
        die(std::string("consume start: ") + rd_kafka_err2str(rd_kafka_last_error()));
    }
  }
  ~PartitionReader() {
    for (int p = 0; p < partitions_; ++p) rd_kafka_consume_stop(rkt_, p);
    rd_kafka_queue_destroy(queue_);
    rd_kafka_topic_destroy(rkt_);
  }
  // The next message or error event (caller destroys it), or nullptr after timeout_ms.
  rd_kafka_message_t* poll(int timeout_ms) { return rd_kafka_consume_queue(queue_, timeout_ms); }
  // Up to `size` messages or error events already queued, without waiting (caller destroys
  // them); 0 when none is. (With a timeout, librdkafka waits for the batch to fill.)
  int poll_ready(rd_kafka_message_t** out, size_t size) {
    ssize_t n = rd_kafka_consume_batch_queue(queue_, 0, out, size);
    return n < 0 ? 0 : static_cast<int>(n);
  }

 private:
  KafkaPtr rk_;
  rd_kafka_topic_t* rkt_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;
  int partitions_ = 0;
};

// The messages are taken from librdkafka's queue in batches of what is already there
// (rd_kafka_consume_batch_queue) and waited for one at a time when it is empty: each is still
// handed to the application as its own rd_kafka_message_t, but librdkafka's per-call work (a
// clock read for the timeout, one for max.poll.interval.ms bookkeeping, the queue lock) is
// paid per batch. nats-bench takes each message with natsSubscription_NextMsg, which does
// that work only when it has to wait (docs/benchmarks.md, "consume").
int run_consume(const Opts& o) {
  PartitionReader reader(o, RD_KAFKA_OFFSET_BEGINNING);
  ConsumeMeter meter(o.seconds, o.idle_ms, o.count);
  int64_t errors = 0;
  constexpr size_t kBatch = 1024;
  std::vector<rd_kafka_message_t*> batch(kBatch);
  while (meter.more()) {
    size_t want = kBatch;  // --count is exact: never take more than is still wanted
    if (o.count > 0) want = std::min(want, static_cast<size_t>(o.count - meter.msgs()));
    int n = reader.poll_ready(batch.data(), want);
    if (n == 0) {
      batch[0] = reader.poll(100);
      if (batch[0] == nullptr) {
        meter.on_timeout();
        continue;
      }
      n = 1;
    }
    size_t bytes = 0;
    int good = 0;
    for (int i = 0; i < n; ++i) {
      rd_kafka_message_t* m = batch[static_cast<size_t>(i)];
      if (m->err) {
        ++errors;
      } else {
        ++good;
        bytes += m->len;
      }
      rd_kafka_message_destroy(m);
    }
    if (good > 0) {
      meter.on_messages(good, bytes);
    } else {
      meter.on_timeout();
    }
  }
  std::printf("{\"mode\":\"consume\",\"msgs\":%" PRId64 ",\"msgs_per_s\":%.1f,\"mb_per_s\":%.2f,"
              "\"errors\":%" PRId64 "}\n",
              meter.msgs(), meter.msgs_per_s(), meter.mb_per_s(), errors);
  return 0;
}

// ---- e2e (open loop) ----

// Where an end-to-end latency goes, from the same intended send time: the sender's own
// lateness (producev called after the due time: a CPU-starved client) and the acks=all
// acknowledgement (delivery report). Consumed minus acknowledged is the fetch side.
struct E2eBreakdown {
  ProduceState* st = nullptr;
  int64_t warm_end = 0, send_end = 0;
  Samples send_lag, acked;
  std::mutex stats_mu;
  std::FILE* stats_out = nullptr;  // --stats-file
};

// statistics.interval.ms: one JSON line per report, {"t_ms":..,"in_window":..,"stats":{..}}
// (t_ms from the measurement window's start; in_window: the report covers an interval inside
// the window). The harness summarises them (harness.py summarise_rdkafka_stats).
int on_e2e_stats(rd_kafka_t*, char* json, size_t len, void* opaque) {
  auto* b = static_cast<E2eBreakdown*>(opaque);
  if (b->stats_out == nullptr) return 0;
  int64_t t = now_ns();
  bool in_window = t >= b->warm_end + 1'000'000'000LL && t <= b->send_end;
  std::lock_guard<std::mutex> lock(b->stats_mu);
  std::fprintf(b->stats_out, "{\"t_ms\":%" PRId64 ",\"in_window\":%s,\"stats\":%.*s}\n",
               (t - b->warm_end) / 1'000'000, in_window ? "true" : "false", static_cast<int>(len),
               json);
  return 0;  // librdkafka frees the JSON
}

void on_e2e_delivery(rd_kafka_t* rk, const rd_kafka_message_t* m, void* opaque) {
  auto* b = static_cast<E2eBreakdown*>(opaque);
  on_delivery(rk, m, b->st);
  if (m->err) return;
  int64_t sent = read_stamp(m->payload, m->len);
  if (sent >= b->warm_end) b->acked.add(now_ns() - sent);
}

// Waits until `due_ns` while serving delivery reports as they arrive. A sender that slept
// instead and polled only between sends saw an acknowledgement up to one send interval late
// (5 ms at 200 msgs/s), and that wait was counted as acknowledgement latency (acked p50
// 5.1 ms against a consumed p50 of 1.8 ms). rd_kafka_poll's timeout is in whole ms and it
// returns as soon as it served an event, so the last fraction of a ms is slept.
void wait_serving_reports(rd_kafka_t* rk, int64_t due_ns) {
  for (int64_t left = due_ns - now_ns(); left >= 1'000'000; left = due_ns - now_ns()) {
    rd_kafka_poll(rk, static_cast<int>(left / 1'000'000));
  }
  sleep_until_ns(due_ns);
}

// One open-loop sender of run_e2e: message i of this sender is due at t0 + i * interval and
// is stamped with that time, however late it is sent. A sender that is not late waits for
// the next due message, but wakes at most once per --send-quantum-us (200) and then sends
// every message that is due: at tens of thousands of messages per second a wake-up per
// message (a sleep of 50-60 µs each) cost the load generator about as much CPU as the three
// brokers together (docs/benchmarks.md, "e2e: the load generator's wake-ups"). A message
// waits up to one quantum in the sender, and that wait is in its latency (send_lag too).
struct E2eSender {
  std::atomic<int64_t> sent_measured{0}, queue_full{0};
  void run(const Opts& o, E2eBreakdown* bd, int64_t t0, int64_t warm_end, int64_t send_end,
           double interval, int index) {
    KafkaPtr producer =
        make_client(RD_KAFKA_PRODUCER, o, o.linger_ms, bd, on_e2e_delivery, on_e2e_stats);
    partition_count(producer.get(), o.topic);
    std::string payload = random_payload(static_cast<size_t>(o.size), 11 + index);
    const int64_t quantum_ns = o.send_quantum_us * 1000;
    int64_t next_wake = 0;
    for (int64_t i = 0;; ++i) {
      int64_t t = t0 + static_cast<int64_t>(static_cast<double>(i) * interval);
      if (t >= send_end) break;
      if (t > now_ns()) {
        wait_serving_reports(producer.get(), std::max(t, next_wake));
        next_wake = now_ns() + quantum_ns;
      }
      stamp(payload, t);  // the intended send time: lateness of the sender counts as latency
      if (t >= warm_end) bd->send_lag.add(now_ns() - t);
      rd_kafka_resp_err_t e;
      while ((e = rd_kafka_producev(producer.get(), RD_KAFKA_V_TOPIC(o.topic.c_str()),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_VALUE(payload.data(), payload.size()),
                                    RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        queue_full.fetch_add(1);
        rd_kafka_poll(producer.get(), 1);
      }
      if (e) die(std::string("produce: ") + rd_kafka_err2str(e));
      if (t >= warm_end) sent_measured.fetch_add(1);
      rd_kafka_poll(producer.get(), 0);
    }
    rd_kafka_flush(producer.get(), 15000);
  }
};

// --producers P senders share the rate (each sends rate/P, staggered); one consumer reads.
int run_e2e(const Opts& o) {
  PartitionReader consumer(o, RD_KAFKA_OFFSET_END);
  ProduceState st;
  st.size = o.size;
  Samples samples;
  E2eBreakdown breakdown;
  breakdown.st = &st;
  std::atomic<bool> stop_consumer{false};
  std::atomic<int64_t> received{0};
  int64_t t0 = now_ns() + 500'000'000;  // senders connected, the first fetch under way
  int64_t warm_end = t0 + o.warmup_ms * 1'000'000;
  int64_t send_end = warm_end + o.seconds * 1'000'000'000;
  breakdown.warm_end = warm_end;
  breakdown.send_end = send_end;
  if (!o.stats_file.empty()) {
    breakdown.stats_out = std::fopen(o.stats_file.c_str(), "w");
    if (breakdown.stats_out == nullptr) die("cannot write --stats-file " + o.stats_file);
  }
  std::thread reader_thread([&] {
    while (!stop_consumer) {
      rd_kafka_message_t* m = consumer.poll(50);
      if (!m) continue;
      if (!m->err) {
        int64_t sent = read_stamp(m->payload, m->len);
        if (sent >= warm_end) {
          samples.add(now_ns() - sent);
          received.fetch_add(1);
        }
      }
      rd_kafka_message_destroy(m);
    }
  });
  double interval = 1e9 * static_cast<double>(o.producers) / static_cast<double>(o.rate);
  std::vector<E2eSender> senders(static_cast<size_t>(o.producers));
  std::vector<std::thread> threads;
  for (int i = 0; i < o.producers; ++i) {
    int64_t start = t0 + static_cast<int64_t>(interval * i / static_cast<double>(o.producers));
    threads.emplace_back([&, i, start] {
      senders[static_cast<size_t>(i)].run(o, &breakdown, start, warm_end, send_end, interval, i);
    });
  }
  for (auto& t : threads) t.join();
  int64_t sent_measured = 0, queue_full = 0;
  for (auto& s : senders) {
    sent_measured += s.sent_measured;
    queue_full += s.queue_full;
  }
  // Give the consumer up to 5 s to receive what was acknowledged.
  int64_t drain_end = now_ns() + 5'000'000'000;
  while (received < sent_measured && now_ns() < drain_end)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop_consumer = true;
  reader_thread.join();
  if (breakdown.stats_out != nullptr) {
    std::lock_guard<std::mutex> lock(breakdown.stats_mu);
    std::fclose(breakdown.stats_out);
    breakdown.stats_out = nullptr;
  }
  samples.finish();
  breakdown.send_lag.finish();
  breakdown.acked.finish();
  // sent/received: messages due after the warm-up; acked_total: every acknowledgement (warm-up
  // included); messages neither acked nor failed were still in flight when the flush gave up.
  // send_lag_*: producev called late (client CPU); acked_*: intended send to acks=all
  // acknowledgement (delivery report).
  std::printf("{\"mode\":\"e2e\",\"size\":%" PRId64 ",\"rate\":%" PRId64 ",\"producers\":%" PRId64
              ",\"linger_ms\":%" PRId64 ",\"fetch_wait_max_ms\":%" PRId64
              ",\"send_quantum_us\":%" PRId64 ",\"sent\":%" PRId64 ",\"received\":%" PRId64
              ",\"acked_total\":%" PRId64
              ",\"errors\":%" PRId64 ",\"queue_full_waits\":%" PRId64
              ",\"send_lag_p50_us\":%.1f,\"send_lag_p99_us\":%.1f"
              ",\"acked_p50_us\":%.1f,\"acked_p99_us\":%.1f,\"acked_p999_us\":%.1f,%s}\n",
              o.size, o.rate, o.producers, o.linger_ms, o.fetch_wait_max_ms, o.send_quantum_us,
              sent_measured,
              received.load(), st.counter.total.load(), st.counter.errors.load(), queue_full,
              breakdown.send_lag.quantile_us(0.5), breakdown.send_lag.quantile_us(0.99),
              breakdown.acked.quantile_us(0.5), breakdown.acked.quantile_us(0.99),
              breakdown.acked.quantile_us(0.999), samples.json_fields().c_str());
  return 0;
}

int run(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: raftmq-loadgen produce|latency|e2e|consume --bootstrap HOST:PORT "
                 "--topic T [--size B] [--producers P] [--keys] [--seconds S] [--warmup-ms MS] "
                 "[--rate R] [--count N] [--idle-ms MS] [--linger-ms MS] [--fetch-wait-max-ms MS] "
                 "[--stats-ms MS --stats-file F] [--send-quantum-us US] [--queue-kbytes KB]\n");
    return 2;
  }
  std::string mode = argv[1];
  Flags f(argc, argv, 2,
          {{"bootstrap", "127.0.0.1:9600"},
           {"topic", "bench"},
           {"size", "1024"},
           {"producers", "1"},
           {"keys", "false"},
           {"seconds", "5"},
           {"warmup-ms", "1000"},
           {"rate", "1000"},
           {"count", "0"},
           {"idle-ms", "2000"},
           {"linger-ms", "5"},
           {"fetch-wait-max-ms", "100"},
           {"stats-ms", "0"},
           {"stats-file", ""},
           {"send-quantum-us", "200"},
           {"queue-kbytes", "4096"}});
  Opts o;
  o.bootstrap = f.str("bootstrap");
  o.topic = f.str("topic");
  o.size = f.num("size", 8, 1 << 20);
  o.producers = f.num("producers", 1, 64);
  o.keys = f.flag("keys");
  o.seconds = f.num("seconds", 1, 3600);
  o.warmup_ms = f.num("warmup-ms", 0, 60000);
  o.rate = f.num("rate", 1, 10'000'000);
  o.count = f.num("count", 0, 1'000'000'000);
  o.idle_ms = f.num("idle-ms", 100, 60000);
  o.linger_ms = f.num("linger-ms", 0, 1000);
  o.fetch_wait_max_ms = f.num("fetch-wait-max-ms", 1, 30000);
  o.stats_ms = f.num("stats-ms", 0, 60000);
  o.stats_file = f.str("stats-file");
  o.send_quantum_us = f.num("send-quantum-us", 0, 100'000);
  o.queue_kbytes = f.num("queue-kbytes", 64, 1 << 20);
  if ((o.stats_ms > 0) != !o.stats_file.empty()) die("--stats-ms and --stats-file go together");
  keep_freed_memory();  // every mode, as in the peers' clients (bench_util.h)
  if (mode == "produce") return run_produce(o);
  if (mode == "latency") return run_latency(o);
  if (mode == "e2e") return run_e2e(o);
  if (mode == "consume") return run_consume(o);
  die("unknown mode '" + mode + "'");
}

}  // namespace
}  // namespace mq::bench

int main(int argc, char** argv) {
  try {
    return mq::bench::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "raftmq-loadgen: %s\n", e.what());
    return 2;
  }
}
