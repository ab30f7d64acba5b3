// rabbitmq-bench: RabbitMQ client for scripts/bench, on Debian's librabbitmq-dev (rabbitmq-c).
// Each mode prints one JSON line on stdout.
//
//   setup    --queue Q                           (re)declares a durable quorum queue
//   publish  --publishers P --size B --window W  publisher confirms: each publisher on its own
//            connection keeps at most W unconfirmed messages; counted when confirmed (basic.ack,
//            also `multiple`) inside the measurement window
//   latency  --size B                            one message in flight: publish, wait for confirm
//   consume  --prefetch N                        basic.consume with manual acks (one `multiple`
//            ack every N/2 messages) until the queue has been idle for --idle-ms
//
// Quorum queues fsync their Raft log before confirming (RabbitMQ's documented default).
#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <cinttypes>
#include <iterator>
#include <set>

#include "bench_util.h"

namespace mq::bench {
namespace {

struct Opts {
  std::string host, queue;
  int64_t port = 5601, size = 1024, publishers = 1, seconds = 5, warmup_ms = 1000, window = 1024,
          prefetch = 2000, idle_ms = 2000, replicas = 3, count = 0;
};

constexpr amqp_channel_t kChannel = 1;

void check_reply(amqp_rpc_reply_t r, const char* what) {
  if (r.reply_type == AMQP_RESPONSE_NORMAL) return;
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
    die(std::string(what) + ": " + amqp_error_string2(r.library_error));
  if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION) {
    if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD || r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
      auto* m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
      die(std::string(what) + ": server closed: " +
          std::string(static_cast<char*>(m->reply_text.bytes), m->reply_text.len));
    }
  }
  die(std::string(what) + ": failed");
}

class Conn {
 public:
  explicit Conn(const Opts& o) : st_(amqp_new_connection()) {
    amqp_socket_t* sock = amqp_tcp_socket_new(st_);
    if (!sock) die("amqp_tcp_socket_new");
    int rc = amqp_socket_open(sock, o.host.c_str(), static_cast<int>(o.port));
    if (rc != AMQP_STATUS_OK) die(std::string("connect: ") + amqp_error_string2(rc));
    check_reply(amqp_login(st_, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"),
                "login");
    amqp_channel_open(st_, kChannel);
    check_reply(amqp_get_rpc_reply(st_), "channel.open");
  }
  ~Conn() {
    amqp_channel_close(st_, kChannel, AMQP_REPLY_SUCCESS);
    amqp_connection_close(st_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(st_);
  }
  amqp_connection_state_t get() const { return st_; }

 private:
  amqp_connection_state_t st_;
};

int run_setup(const Opts& o) {
  Conn c(o);
  amqp_queue_delete(c.get(), kChannel, amqp_cstring_bytes(o.queue.c_str()), 0, 0);
  check_reply(amqp_get_rpc_reply(c.get()), "queue.delete");
  amqp_table_entry_t args[2];
  args[0].key = amqp_cstring_bytes("x-queue-type");
  args[0].value.kind = AMQP_FIELD_KIND_UTF8;
  args[0].value.value.bytes = amqp_cstring_bytes("quorum");
  args[1].key = amqp_cstring_bytes("x-quorum-initial-group-size");
  args[1].value.kind = AMQP_FIELD_KIND_I32;
  args[1].value.value.i32 = static_cast<int32_t>(o.replicas);
  amqp_table_t table{2, args};
  amqp_queue_declare(c.get(), kChannel, amqp_cstring_bytes(o.queue.c_str()), 0, /*durable=*/1, 0,
                     0, table);
  check_reply(amqp_get_rpc_reply(c.get()), "queue.declare (quorum)");
  std::printf("{\"mode\":\"setup\",\"queue\":\"%s\",\"type\":\"quorum\",\"replicas\":%" PRId64 "}\n",
              o.queue.c_str(), o.replicas);
  return 0;
}

// Reads frames until at least one confirm arrives (or `timeout_ms` passes), removing the
// confirmed delivery tags from `outstanding` (basic.ack/nack with `multiple` covers every tag up
// to its own); returns how many were acked, and counts nacks in `nacked`.
int64_t read_confirms(amqp_connection_state_t st, std::set<uint64_t>* outstanding,
                      int64_t* nacked, int timeout_ms) {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  int64_t n = 0;
  for (;;) {
    amqp_frame_t frame;
    int rc = amqp_simple_wait_frame_noblock(st, &frame, &tv);
    if (rc == AMQP_STATUS_TIMEOUT) return n;
    if (rc != AMQP_STATUS_OK) die(std::string("wait frame: ") + amqp_error_string2(rc));
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    uint64_t tag = 0;
    bool multiple = false, nack = false;
    if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
      auto* a = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
      tag = a->delivery_tag;
      multiple = a->multiple;
    } else if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
      auto* a = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
      tag = a->delivery_tag;
      multiple = a->multiple;
      nack = true;
    } else if (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
               frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
      die("server closed the channel while publishing");
    } else {
      continue;
    }
    int64_t k = 0;
    if (multiple) {
      auto last = outstanding->upper_bound(tag);
      k = static_cast<int64_t>(std::distance(outstanding->begin(), last));
      outstanding->erase(outstanding->begin(), last);
    } else {
      k = static_cast<int64_t>(outstanding->erase(tag));
    }
    if (nack) *nacked += k; else n += k;
    if (amqp_frames_enqueued(st) == 0 && !amqp_data_in_buffer(st)) return n;
    tv = timeval{0, 0};  // more may be buffered: take it without waiting
  }
}

struct PubState {
  WindowCounter counter;
  std::atomic<int64_t> bytes_in_window{0};
};

void publish_loop(const Opts& o, PubState* st, int index, Samples* latency) {
  Conn c(o);
  amqp_confirm_select(c.get(), kChannel);
  check_reply(amqp_get_rpc_reply(c.get()), "confirm.select");
  std::string payload = random_payload(static_cast<size_t>(o.size), 200 + index);
  amqp_bytes_t body{payload.size(), payload.data()};
  amqp_basic_properties_t props;
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = 2;  // persistent
  uint64_t published = 0;  // delivery tags are 1, 2, ... on a confirm-mode channel
  std::set<uint64_t> outstanding;
  int64_t nacked = 0;
  int64_t stop = st->counter.end_ns;
  int64_t drain_end = 0;
  for (;;) {
    int64_t now = now_ns();
    bool sending = now < stop;
    if (!sending && drain_end == 0) drain_end = now + 15'000'000'000LL;
    if (!sending && (outstanding.empty() || now >= drain_end)) break;
    if (sending && outstanding.size() < static_cast<size_t>(o.window)) {
      int64_t t = now_ns();
      int rc = amqp_basic_publish(c.get(), kChannel, amqp_empty_bytes,
                                  amqp_cstring_bytes(o.queue.c_str()), 0, 0, &props, body);
      if (rc != AMQP_STATUS_OK) die(std::string("publish: ") + amqp_error_string2(rc));
      outstanding.insert(++published);
      if (latency) {  // one in flight: wait for its confirm
        while (!outstanding.empty() && now_ns() < stop + 15'000'000'000LL)
          read_confirms(c.get(), &outstanding, &nacked, 1000);
        if (t >= st->counter.begin_ns) latency->add(now_ns() - t);
        st->counter.ok(now_ns());
      }
      continue;
    }
    int64_t n = read_confirms(c.get(), &outstanding, &nacked, 100);
    int64_t t = now_ns();
    for (int64_t i = 0; i < n; ++i) st->counter.ok(t);
    if (t >= st->counter.begin_ns && t < st->counter.end_ns) st->bytes_in_window += n * o.size;
  }
  st->counter.errors += nacked;
}

int run_publish(const Opts& o, bool latency_mode) {
  PubState st;
  st.counter.begin_ns = now_ns() + o.warmup_ms * 1'000'000;
  st.counter.end_ns = st.counter.begin_ns + o.seconds * 1'000'000'000;
  Samples samples;
  std::vector<std::thread> threads;
  int n = latency_mode ? 1 : static_cast<int>(o.publishers);
  for (int i = 0; i < n; ++i)
    threads.emplace_back(publish_loop, std::cref(o), &st, i, latency_mode ? &samples : nullptr);
  for (auto& t : threads) t.join();
  if (latency_mode) {
    samples.finish();
    std::printf("{\"mode\":\"latency\",\"size\":%" PRId64 ",\"errors\":%" PRId64 ",%s}\n", o.size,
                st.counter.errors.load(), samples.json_fields().c_str());
    return 0;
  }
  std::printf("{\"mode\":\"publish\",\"size\":%" PRId64 ",\"publishers\":%" PRId64
              ",\"window\":%" PRId64 ",\"msgs_per_s\":%.1f,\"mb_per_s\":%.2f,\"acked_total\":%" PRId64
              ",\"errors\":%" PRId64 ",\"window_s\":%" PRId64 "}\n",
              o.size, o.publishers, o.window, st.counter.window_rate(),
              static_cast<double>(st.bytes_in_window) / 1e6 / static_cast<double>(o.seconds),
              st.counter.total.load(), st.counter.errors.load(), o.seconds);
  return 0;
}

int run_consume(const Opts& o) {
  Conn c(o);
  amqp_basic_qos(c.get(), kChannel, 0, static_cast<uint16_t>(o.prefetch), 0);
  check_reply(amqp_get_rpc_reply(c.get()), "basic.qos");
  amqp_basic_consume(c.get(), kChannel, amqp_cstring_bytes(o.queue.c_str()), amqp_empty_bytes, 0,
                     /*no_ack=*/0, 0, amqp_empty_table);
  check_reply(amqp_get_rpc_reply(c.get()), "basic.consume");
  ConsumeMeter meter(o.seconds, o.idle_ms, o.count);
  uint64_t unacked_from = 0;
  while (meter.more()) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(c.get());
    timeval tv{0, 100'000};
    amqp_rpc_reply_t r = amqp_consume_message(c.get(), &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
      meter.on_timeout();
      continue;
    }
    check_reply(r, "consume");
    meter.on_message(env.message.body.len);
    if (++unacked_from >= static_cast<uint64_t>(std::max<int64_t>(1, o.prefetch / 2))) {
      amqp_basic_ack(c.get(), kChannel, env.delivery_tag, /*multiple=*/1);
      unacked_from = 0;
    }
    amqp_destroy_envelope(&env);
  }
  std::printf("{\"mode\":\"consume\",\"msgs\":%" PRId64 ",\"msgs_per_s\":%.1f,\"mb_per_s\":%.2f}\n",
              meter.msgs(), meter.msgs_per_s(), meter.mb_per_s());
  return 0;
}

int run(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: rabbitmq-bench setup|publish|latency|consume [--host H] "
                         "[--port P] [--queue Q] [--size B] [--publishers N] [--window W] "
                         "[--seconds S] [--warmup-ms MS] [--prefetch N] [--idle-ms MS] [--count N]\n");
    return 2;
  }
  std::string mode = argv[1];
  Flags f(argc, argv, 2,
          {{"host", "127.0.0.1"}, {"port", "5601"}, {"queue", "bench"}, {"size", "1024"},
           {"publishers", "1"}, {"window", "1024"}, {"seconds", "5"}, {"warmup-ms", "1000"},
           {"prefetch", "2000"}, {"idle-ms", "2000"}, {"replicas", "3"}, {"count", "0"}});
  Opts o;
  o.host = f.str("host");
  o.queue = f.str("queue");
  o.port = f.num("port", 1, 65535);
  o.size = f.num("size", 8, 1 << 20);
  o.publishers = f.num("publishers", 1, 64);
  o.window = f.num("window", 1, 1'000'000);
  o.seconds = f.num("seconds", 1, 3600);
  o.warmup_ms = f.num("warmup-ms", 0, 60000);
  o.prefetch = f.num("prefetch", 1, 65535);
  o.idle_ms = f.num("idle-ms", 100, 60000);
  o.replicas = f.num("replicas", 1, 7);
  o.count = f.num("count", 0, 1'000'000'000);
  keep_freed_memory();  // every mode (bench_util.h)
  if (mode == "setup") return run_setup(o);
  if (mode == "publish") return run_publish(o, false);
  if (mode == "latency") return run_publish(o, true);
  if (mode == "consume") return run_consume(o);
  die("unknown mode '" + mode + "'");
}

}  // namespace
}  // namespace mq::bench

int main(int argc, char** argv) {
  try {
    return mq::bench::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rabbitmq-bench: %s\n", e.what());
    return 2;
  }
}
