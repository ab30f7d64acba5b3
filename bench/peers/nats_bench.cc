// nats-bench: NATS JetStream client for scripts/bench, on Debian's libnats-dev (the C client).
// Each mode prints one JSON line on stdout.
//
//   setup    --stream S --subject X --replicas R   (re)creates a file-storage stream
//   publish  --publishers P --size B --window W    async publish, each publisher on its own
//            connection with at most W unacknowledged messages; counted when the stream's ack
//            (PubAck) arrives inside the measurement window
//   latency  --size B                              js_Publish: one message in flight at a time
//   consume  --count N                             an ordered push consumer from the start
//
// JetStream 2.9 acknowledges a publish once a majority of the stream's replicas have written it
// to their file store, without fsync (the store is synced in the background; 2.9 has no option
// for a per-write fsync).
#include <nats/nats.h>

#include <cinttypes>

#include "bench_util.h"

namespace mq::bench {
namespace {

struct Opts {
  std::string url, stream, subject;
  int64_t size = 1024, publishers = 1, seconds = 5, warmup_ms = 1000, window = 1024,
          replicas = 3, count = 0, idle_ms = 2000;
};

void check(natsStatus s, const char* what) {
  if (s != NATS_OK) {
    const char* last = nats_GetLastError(nullptr);
    die(std::string(what) + ": " + natsStatus_GetText(s) + (last ? std::string(" (") + last + ")" : ""));
  }
}

struct Conn {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  ~Conn() {
    if (js) jsCtx_Destroy(js);
    if (nc) natsConnection_Destroy(nc);
  }
};

void connect(Conn& c, const Opts& o, jsOptions* jo) {
  natsOptions* opts = nullptr;
  check(natsOptions_Create(&opts), "natsOptions_Create");
  check(natsOptions_SetURL(opts, o.url.c_str()), "natsOptions_SetURL");
  check(natsOptions_SetMaxPendingMsgs(opts, 1'000'000), "natsOptions_SetMaxPendingMsgs");
  natsStatus s = natsConnection_Connect(&c.nc, opts);
  natsOptions_Destroy(opts);
  check(s, "natsConnection_Connect");
  check(natsConnection_JetStream(&c.js, c.nc, jo), "natsConnection_JetStream");
}

int run_setup(const Opts& o) {
  Conn c;
  connect(c, o, nullptr);
  jsErrCode jerr = static_cast<jsErrCode>(0);
  js_DeleteStream(c.js, o.stream.c_str(), nullptr, &jerr);  // absent is fine
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  sc.Name = o.stream.c_str();
  const char* subjects[] = {o.subject.c_str()};
  sc.Subjects = subjects;
  sc.SubjectsLen = 1;
  sc.Storage = js_FileStorage;
  sc.Replicas = o.replicas;
  jsStreamInfo* si = nullptr;
  natsStatus s = natsConnection_Flush(c.nc);
  // A fresh cluster may still be electing its meta leader: retry for up to 60 s.
  int64_t deadline = now_ns() + 60'000'000'000LL;
  while ((s = js_AddStream(&si, c.js, &sc, nullptr, &jerr)) != NATS_OK && now_ns() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  check(s, "js_AddStream");
  std::printf("{\"mode\":\"setup\",\"stream\":\"%s\",\"replicas\":%" PRId64 ",\"storage\":\"file\"}\n",
              o.stream.c_str(), si->Config->Replicas);
  jsStreamInfo_Destroy(si);
  return 0;
}

struct PubState {
  WindowCounter counter;
  std::atomic<int64_t> bytes_in_window{0};
  int64_t size = 0;
};

void on_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  auto* st = static_cast<PubState*>(closure);
  if (pa && !pae) {
    int64_t t = now_ns();
    st->counter.ok(t);
    if (t >= st->counter.begin_ns && t < st->counter.end_ns) st->bytes_in_window += st->size;
  } else {
    st->counter.errors.fetch_add(1);
  }
  natsMsg_Destroy(msg);
}

void publish_loop(const Opts& o, PubState* st, int index) {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = o.window;
  jo.PublishAsync.AckHandler = on_ack;
  jo.PublishAsync.AckHandlerClosure = st;
  jo.PublishAsync.StallWait = 10000;
  Conn c;
  connect(c, o, &jo);
  std::string payload = random_payload(static_cast<size_t>(o.size), 100 + index);
  int64_t stop = st->counter.end_ns;
  while (now_ns() < stop) {
    natsStatus s = js_PublishAsync(c.js, o.subject.c_str(), payload.data(),
                                   static_cast<int>(payload.size()), nullptr);
    if (s == NATS_TIMEOUT) continue;  // the window stayed full for StallWait: try again
    check(s, "js_PublishAsync");
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 15000;
  js_PublishAsyncComplete(c.js, &po);  // bounded wait for the outstanding acks
}

int run_publish(const Opts& o) {
  PubState st;
  st.size = o.size;
  st.counter.begin_ns = now_ns() + o.warmup_ms * 1'000'000;
  st.counter.end_ns = st.counter.begin_ns + o.seconds * 1'000'000'000;
  std::vector<std::thread> threads;
  for (int i = 0; i < o.publishers; ++i) threads.emplace_back(publish_loop, std::cref(o), &st, i);
  for (auto& t : threads) t.join();
  std::printf("{\"mode\":\"publish\",\"size\":%" PRId64 ",\"publishers\":%" PRId64
              ",\"window\":%" PRId64 ",\"msgs_per_s\":%.1f,\"mb_per_s\":%.2f,\"acked_total\":%" PRId64
              ",\"errors\":%" PRId64 ",\"window_s\":%" PRId64 "}\n",
              o.size, o.publishers, o.window, st.counter.window_rate(),
              static_cast<double>(st.bytes_in_window) / 1e6 / static_cast<double>(o.seconds),
              st.counter.total.load(), st.counter.errors.load(), o.seconds);
  return 0;
}

int run_latency(const Opts& o) {
  Conn c;
  connect(c, o, nullptr);
  std::string payload = random_payload(static_cast<size_t>(o.size), 9);
  Samples samples;
  int64_t warm_end = now_ns() + o.warmup_ms * 1'000'000;
  int64_t end = warm_end + o.seconds * 1'000'000'000;
  int64_t errors = 0;
  while (now_ns() < end && (o.count == 0 || static_cast<int64_t>(samples.size()) < o.count)) {
    jsPubAck* pa = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    int64_t t = now_ns();
    natsStatus s = js_Publish(&pa, c.js, o.subject.c_str(), payload.data(),
                              static_cast<int>(payload.size()), nullptr, &jerr);
    int64_t lat = now_ns() - t;
    if (s != NATS_OK) {
      ++errors;
    } else if (t >= warm_end) {
      samples.add(lat);
    }
    if (pa) jsPubAck_Destroy(pa);
  }
  samples.finish();
  std::printf("{\"mode\":\"latency\",\"size\":%" PRId64 ",\"errors\":%" PRId64 ",%s}\n", o.size,
              errors, samples.json_fields().c_str());
  return 0;
}

int run_consume(const Opts& o) {
  Conn c;
  connect(c, o, nullptr);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverAll;
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  check(js_SubscribeSync(&sub, c.js, o.subject.c_str(), nullptr, &so, &jerr), "js_SubscribeSync");
  check(natsSubscription_SetPendingLimits(sub, 1'000'000, 1 << 30), "SetPendingLimits");
  ConsumeMeter meter(o.seconds, o.idle_ms, o.count);
  while (meter.more()) {
    natsMsg* m = nullptr;
    natsStatus s = natsSubscription_NextMsg(&m, sub, 100);
    if (s == NATS_TIMEOUT) {
      meter.on_timeout();
      continue;
    }
    check(s, "natsSubscription_NextMsg");
    meter.on_message(static_cast<size_t>(natsMsg_GetDataLength(m)));
    natsMsg_Destroy(m);
  }
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  std::printf("{\"mode\":\"consume\",\"msgs\":%" PRId64 ",\"msgs_per_s\":%.1f,\"mb_per_s\":%.2f}\n",
              meter.msgs(), meter.msgs_per_s(), meter.mb_per_s());
  return 0;
}

int run(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: nats-bench setup|publish|latency|consume --url nats://HOST:PORT "
                         "[--stream S] [--subject X] [--replicas R] [--size B] [--publishers P] "
                         "[--window W] [--seconds S] [--warmup-ms MS] [--count N] [--idle-ms MS]\n");
    return 2;
  }
  std::string mode = argv[1];
  Flags f(argc, argv, 2,
          {{"url", "nats://127.0.0.1:4600"}, {"stream", "BENCH"}, {"subject", "bench.x"},
           {"replicas", "3"}, {"size", "1024"}, {"publishers", "1"}, {"window", "1024"},
           {"seconds", "5"}, {"warmup-ms", "1000"}, {"count", "0"}, {"idle-ms", "2000"}});
  Opts o;
  o.url = f.str("url");
  o.stream = f.str("stream");
  o.subject = f.str("subject");
  o.replicas = f.num("replicas", 1, 5);
  o.size = f.num("size", 8, 1 << 20);
  o.publishers = f.num("publishers", 1, 64);
  o.window = f.num("window", 1, 1'000'000);
  o.seconds = f.num("seconds", 1, 3600);
  o.warmup_ms = f.num("warmup-ms", 0, 60000);
  o.count = f.num("count", 0, 1'000'000'000);
  o.idle_ms = f.num("idle-ms", 100, 60000);
  int rc = 2;
  keep_freed_memory();  // every mode (bench_util.h)
  if (mode == "setup") rc = run_setup(o);
  else if (mode == "publish") rc = run_publish(o);
  else if (mode == "latency") rc = run_latency(o);
  else if (mode == "consume") rc = run_consume(o);
  else die("unknown mode '" + mode + "'");
  nats_Close();
  return rc;
}

}  // namespace
}  // namespace mq::bench

int main(int argc, char** argv) {
  try {
    return mq::bench::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nats-bench: %s\n", e.what());
    return 2;
  }
}
