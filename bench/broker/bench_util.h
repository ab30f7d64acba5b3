// Shared helpers of the benchmark clients (raftmq-loadgen, nats-bench, rabbitmq-bench,
// raftmq-bench-machine): command-line flags, clocks, latency samples and the one-line JSON
// result each client prints on stdout for scripts/bench to read.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace mq::bench {

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline void sleep_until_ns(int64_t t) {
  int64_t d = t - now_ns();
  if (d > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(d));
}

// `--name value` flags after the mode word. Unknown flags and malformed numbers are errors.
class Flags {
 public:
  Flags(int argc, char** argv, int first, const std::map<std::string, std::string>& defaults)
      : values_(defaults) {
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0) throw std::runtime_error("unexpected argument '" + a + "'");
      a = a.substr(2);
      auto it = values_.find(a);
      if (it == values_.end()) throw std::runtime_error("unknown flag --" + a);
      if (it->second == "false" || it->second == "true") {  // boolean flag
        it->second = "true";
        continue;
      }
      if (i + 1 >= argc) throw std::runtime_error("flag --" + a + " needs a value");
      it->second = argv[++i];
    }
  }
  const std::string& str(const std::string& name) const { return values_.at(name); }
  bool flag(const std::string& name) const { return values_.at(name) == "true"; }
  int64_t num(const std::string& name, int64_t lo, int64_t hi) const {
    const std::string& v = values_.at(name);
    char* end = nullptr;
    long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || x < lo || x > hi) {
      throw std::runtime_error("--" + name + " must be an integer in [" + std::to_string(lo) +
                               ", " + std::to_string(hi) + "], got '" + v + "'");
    }
    return x;
  }

 private:
  std::map<std::string, std::string> values_;
};

// Latency samples in nanoseconds; thread-safe appends, bounded in count.
class Samples {
 public:
  explicit Samples(size_t max = 2'000'000) : max_(max) {}
  void add(int64_t ns) {
    std::lock_guard<std::mutex> lock(mu_);
    if (v_.size() < max_) v_.push_back(ns);
  }
  // Sorts once; afterwards quantile() reads.
  void finish() {
    std::lock_guard<std::mutex> lock(mu_);
    std::sort(v_.begin(), v_.end());
  }
  size_t size() const { return v_.size(); }
  double quantile_us(double q) const {
    if (v_.empty()) return -1;
    size_t i = std::min(v_.size() - 1, static_cast<size_t>(q * static_cast<double>(v_.size())));
    return static_cast<double>(v_[i]) / 1000.0;
  }
  // `"p50_us":..,"p99_us":..,"p999_us":..,"max_us":..,"samples":..,"cdf_us":[...]`:
  // the CDF as 101 points (quantiles 0, 0.01, ..., 0.99 and 0.999) for the chart.
  std::string json_fields() const {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"samples\":%zu",
                  quantile_us(0.5), quantile_us(0.99), quantile_us(0.999),
                  v_.empty() ? -1.0 : static_cast<double>(v_.back()) / 1000.0, v_.size());
    std::string s = buf;
    s += ",\"cdf_us\":[";
    for (int i = 0; i <= 100; ++i) {
      double q = i < 100 ? i / 100.0 : 0.999;
      std::snprintf(buf, sizeof buf, "%s%.1f", i ? "," : "", quantile_us(q));
      s += buf;
    }
    s += "]";
    return s;
  }

 private:
  size_t max_;
  std::mutex mu_;
  std::vector<int64_t> v_;
};

// Counts completions, and separately those inside the measurement window [begin, end).
struct WindowCounter {
  std::atomic<int64_t> begin_ns{0}, end_ns{0};
  std::atomic<int64_t> total{0}, in_window{0}, errors{0};
  void ok(int64_t t) {
    total.fetch_add(1, std::memory_order_relaxed);
    if (t >= begin_ns.load(std::memory_order_relaxed) && t < end_ns.load(std::memory_order_relaxed))
      in_window.fetch_add(1, std::memory_order_relaxed);
  }
  double window_rate() const {
    double secs = static_cast<double>(end_ns - begin_ns) / 1e9;
    return secs > 0 ? static_cast<double>(in_window) / secs : 0;
  }
};

inline std::string random_payload(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(size, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Writes an 8-byte send timestamp into the first bytes of a payload (end-to-end latency).
inline void stamp(std::string& payload, int64_t t) {
  if (payload.size() >= 8) std::memcpy(payload.data(), &t, 8);
}
inline int64_t read_stamp(const void* data, size_t len) {
  int64_t t = 0;
  if (len >= 8) std::memcpy(&t, data, 8);
  return t;
}

// The bookkeeping of a consume run, shared by the three clients' consume modes so that each
// client pays the same for it: one clock read per receive call (the deadline, the idle cut-off
// and the rate all use that read; before, each loop read the clock three times per message),
// and one when a poll times out.
//   ConsumeMeter m(seconds, idle_ms, count);
//   while (m.more()) { msg = poll(100 ms); if (!msg) { m.on_timeout(); continue; }
//                      m.on_message(len); }
class ConsumeMeter {
 public:
  ConsumeMeter(int64_t seconds, int64_t idle_ms, int64_t count)
      : now_(now_ns()), deadline_(now_ + seconds * 1'000'000'000), idle_ns_(idle_ms * 1'000'000),
        count_(count) {}
  // Poll again: before the deadline, below --count, and (once a message came) not idle for
  // --idle-ms (caught up with the end).
  bool more() const {
    if (now_ >= deadline_ || (count_ > 0 && msgs_ >= count_)) return false;
    return msgs_ == 0 || now_ - last_ <= idle_ns_;
  }
  void on_timeout() { now_ = now_ns(); }
  void on_message(size_t len) { on_messages(1, len); }
  // `count` messages of `len` bytes in all, taken by one receive call.
  void on_messages(int64_t count, size_t len) {
    now_ = now_ns();
    if (msgs_ == 0) {
      first_ = now_;
      first_count_ = count;
      first_bytes_ = static_cast<int64_t>(len);
    }
    msgs_ += count;
    bytes_ += static_cast<int64_t>(len);
    last_ = now_;
  }
  int64_t msgs() const { return msgs_; }
  // Rates between the first and the last receive call: what arrived after the first call over
  // that time (the connection set-up and the idle tail are not counted; nor is the first
  // call's batch, which arrived before the interval began).
  double msgs_per_s() const { return per_s(static_cast<double>(msgs_ - first_count_)); }
  double mb_per_s() const {
    return per_s(static_cast<double>(bytes_ - first_bytes_) / 1e6);
  }

 private:
  double per_s(double x) const {
    double secs = static_cast<double>(last_ - first_) / 1e9;
    return secs > 0 ? x / secs : 0;
  }
  int64_t now_, deadline_, idle_ns_, count_;
  int64_t first_ = 0, last_ = 0, msgs_ = 0, bytes_ = 0, first_count_ = 0, first_bytes_ = 0;
};

// Called by every client in every mode (the same for each system). glibc gives a thread
// arena's free top back to the kernel (madvise) once more than M_TRIM_THRESHOLD (128 KiB,
// raised dynamically) is free there, and serves blocks above M_MMAP_THRESHOLD with a fresh
// mmap: a client that allocates one buffer per MiB-sized response (librdkafka: one per Fetch
// response) then faults in and zeroes every page of every response, 40-50 thousand page faults
// per 340 MB read. With both limits raised, freed responses are reused.
inline void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest allowed value on 64-bit
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

[[noreturn]] inline void die(const std::string& msg) {
  std::fprintf(stderr, "error: %s\n", msg.c_str());
  std::exit(2);
}

}  // namespace mq::bench
