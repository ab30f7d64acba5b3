// storage_bench section `ratio`: durable append throughput against the raw sequential write
// bandwidth of the same file system, interleaved so that a noisy (shared, virtual) disk
// affects both sides alike (issue 3).
//
// Each round runs, for every batch size, three runs of the same number of bytes into files
// of the same size (the log's segment size), in alternating order (even rounds: raw, append,
// raw with the append's sync cadence; odd rounds: append, raw with its cadence, raw):
//   raw      O_DIRECT writes of 1 MiB at queue depth 1, an fdatasync when a file is full
//            (like `dd oflag=direct conv=fdatasync` per file): the issue's "raw sequential
//            write bandwidth". The headline ratio is append / raw: it is what the issue
//            asks for, and it charges the append path with every cost it adds, its
//            fdatasyncs included.
//   append   a Log in mode `always` with a Flusher thread, 1 KiB records in batches of B,
//            pipelined (at most W MiB appended but not yet durable); MB/s of payload reported
//            durable.
//   raw+sync the raw writer, with an fdatasync after as many bytes as the append run wrote
//            per fdatasync (serially: write, write, ..., fdatasync). Diagnostic only: it shows
//            what the durability cadence itself costs on this device; appends can beat it,
//            since their fdatasyncs overlap the writes.
//   raw QDn  (--raw-depth n, optional) the same bytes written by n threads at once, 1 MiB
//            O_DIRECT writes in file order, each file first allocated with its size
//            (fallocate mode 0, as the log allocates ahead with several writes in flight: ext4
//            runs O_DIRECT writes that extend a file one at a time), fdatasync per file.
//            Reported next to the headline, so that a log with several writes in flight is
//            also compared with raw writes at the same queue depth.
// Per-round ratios, then the median, minimum and maximum over the rounds.
#include "append_vs_raw.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "bench_common.h"
#include "storage/flusher.h"

namespace mq::storage::bench {

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

namespace {

constexpr std::uint64_t kMiB = 1 << 20;

struct RunResult {
  double mbps = 0;
  std::uint64_t fdatasyncs = 0;
};

// `total` bytes of 1 MiB O_DIRECT writes into files of `file_bytes`, each fdatasynced when
// full; with sync_every > 0 also an fdatasync after every `sync_every` bytes.
RunResult raw_run(const std::string& dir, std::uint64_t total, std::uint64_t file_bytes,
                  std::uint64_t sync_every) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  void* buffer = nullptr;
  MQ_ASSERT(::posix_memalign(&buffer, 4096, kMiB) == 0);
  std::memset(buffer, 0x5a, kMiB);
  RunResult result;
  int fd = -1;
  std::uint64_t in_file = 0, since_sync = 0;
  auto start = BenchClock::now();
  for (std::uint64_t done = 0, file = 0; done < total; done += kMiB) {
    if (fd < 0) {
      std::string path = dir + "/raw" + std::to_string(file++) + ".bin";
      fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0644);
      MQ_ASSERT(fd >= 0, "open %s with O_DIRECT: %s", path.c_str(), std::strerror(errno));
      in_file = 0;
    }
    MQ_ASSERT(::pwrite(fd, buffer, kMiB, static_cast<off_t>(in_file)) == static_cast<ssize_t>(kMiB),
              "raw write: %s", std::strerror(errno));
    in_file += kMiB;
    since_sync += kMiB;
    bool file_full = in_file >= file_bytes || done + kMiB >= total;
    if (file_full || (sync_every > 0 && since_sync >= sync_every)) {
      MQ_ASSERT(::fdatasync(fd) == 0);
      ++result.fdatasyncs;
      since_sync = 0;
    }
    if (file_full) {
      ::close(fd);
      fd = -1;
    }
  }
  result.mbps = static_cast<double>(total) / seconds_since(start) / 1e6;
  ::free(buffer);
  std::filesystem::remove_all(dir);
  return result;
}

// raw_run with `depth` threads writing each file (allocated first) in 1 MiB O_DIRECT writes
// taken in file order, an fdatasync per file.
RunResult raw_depth_run(const std::string& dir, std::uint64_t total, std::uint64_t file_bytes,
                        int depth) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  RunResult result;
  auto start = BenchClock::now();
  for (std::uint64_t done = 0, file = 0; done < total; ++file) {
    std::uint64_t bytes = std::min(file_bytes, total - done);
    std::string path = dir + "/rawq" + std::to_string(file) + ".bin";
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0644);
    MQ_ASSERT(fd >= 0, "open %s with O_DIRECT: %s", path.c_str(), std::strerror(errno));
    MQ_ASSERT(::fallocate(fd, 0, 0, static_cast<off_t>(bytes)) == 0, "fallocate: %s",
              std::strerror(errno));
    std::atomic<std::uint64_t> next{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < depth; ++t) {
      threads.emplace_back([&] {
        void* buffer = nullptr;
        MQ_ASSERT(::posix_memalign(&buffer, 4096, kMiB) == 0);
        std::memset(buffer, 0x5a, kMiB);
        for (std::uint64_t at = next.fetch_add(kMiB); at < bytes; at = next.fetch_add(kMiB)) {
          MQ_ASSERT(::pwrite(fd, buffer, kMiB, static_cast<off_t>(at)) == static_cast<ssize_t>(kMiB),
                    "raw write: %s", std::strerror(errno));
        }
        ::free(buffer);
      });
    }
    for (std::thread& t : threads) t.join();
    MQ_ASSERT(::fdatasync(fd) == 0);
    ++result.fdatasyncs;
    ::close(fd);
    done += bytes;
  }
  result.mbps = static_cast<double>(total) / seconds_since(start) / 1e6;
  std::filesystem::remove_all(dir);
  return result;
}

// `total` payload bytes appended in batches of `batch` (1 KiB records), mode always, with a
// Flusher thread; at most `window` bytes appended but not yet durable. MB/s of payload
// reported durable, from the first append to the last durable report.
RunResult append_run(const std::string& dir, std::size_t batch, std::uint64_t total,
                     std::uint64_t segment_bytes, std::uint64_t window,
                     const std::function<void(LogOptions&)>& configure) {
  std::filesystem::remove_all(dir);
  Flusher flusher(FlusherOptions{}, SystemClock::instance());
  std::atomic<std::uint64_t> durable{0};
  LogOptions options;
  options.directory = dir;
  options.segment_size_bytes_max = segment_bytes;
  options.on_durable = [&durable](LogIndex d) { durable.store(d.value()); };
  configure(options);
  auto opened = Log::open(posix_file_system(), SystemClock::instance(), options, &flusher);
  MQ_ASSERT(opened.has_value(), "%s", opened.status().to_string().c_str());
  std::unique_ptr<Log> log = std::move(*opened);
  flusher.start();
  Buffer payload(batch);
  for (std::size_t i = 0; i < payload.size(); ++i) payload.data()[i] = static_cast<std::uint8_t>(i * 131);
  auto records = static_cast<std::uint32_t>(std::max<std::size_t>(1, batch / 1024));
  std::uint64_t batches = std::max<std::uint64_t>(1, total / batch);
  std::uint64_t window_batches = std::max<std::uint64_t>(1, window / batch);
  std::uint64_t base = log->last_index().value();
  auto start = BenchClock::now();
  for (std::uint64_t i = 0; i < batches; ++i) {
    while (log->last_index().value() - durable.load() >= window_batches) {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    AppendEntry e = batch_entry(*log, payload, records);
    Status appended = log->append(std::span(&e, 1));
    MQ_ASSERT(appended.is_ok(), "%s", appended.to_string().c_str());
  }
  while (durable.load() < base + batches) std::this_thread::sleep_for(std::chrono::microseconds(20));
  RunResult result;
  result.mbps = static_cast<double>(batches * batch) / seconds_since(start) / 1e6;
  flusher.stop();
  result.fdatasyncs = flusher.stats().fdatasyncs;
  log.reset();
  std::filesystem::remove_all(dir);
  return result;
}


struct Sample {
  double raw = 0, append = 0, raw_sync = 0, append_b = 0, raw_depth = 0;
  double append_syncs_per_s = 0, raw_sync_rate = 0;
};

void print_summary(const AppendVsRawOptions& o, const std::vector<std::vector<Sample>>& samples) {
  std::printf("summary over %d rounds (median [min..max]); headline: append / raw (raw = O_DIRECT "
              "1 MiB writes, fdatasync per file)\n", o.rounds);
  for (std::size_t b = 0; b < o.batches.size(); ++b) {
    std::vector<double> ratio, ratio_sync, append, raw, syncs, sync_rate;
    for (const Sample& s : samples[b]) {
      ratio.push_back(s.append / s.raw);
      ratio_sync.push_back(s.append / s.raw_sync);
      append.push_back(s.append);
      raw.push_back(s.raw);
      syncs.push_back(s.append_syncs_per_s);
      sync_rate.push_back(s.raw_sync_rate);
    }
    if (o.configure_b) {
      std::vector<double> ratio_b, ab;
      for (const Sample& s : samples[b]) {
        ratio_b.push_back(s.append_b / s.raw);
        ab.push_back(s.append_b / s.append);
      }
      auto [lo_b, hi_b] = std::minmax_element(ratio_b.begin(), ratio_b.end());
      std::printf("ratio append(%s)/raw batch %zu KiB: median %.2f [%.2f..%.2f]; B/A per round: "
                  "median %.2f\n", o.label_b.c_str(), o.batches[b] >> 10, median(ratio_b), *lo_b,
                  *hi_b, median(ab));
    }
    if (o.raw_depth > 0) {
      std::vector<double> ratio_q, raw_q;
      for (const Sample& s : samples[b]) {
        ratio_q.push_back(s.append / s.raw_depth);
        raw_q.push_back(s.raw_depth);
      }
      auto [lo_q, hi_q] = std::minmax_element(ratio_q.begin(), ratio_q.end());
      std::printf("ratio append/raw QD%d batch %zu KiB: median %.2f [%.2f..%.2f] (raw QD%d median "
                  "%.0f MB/s, allocated files, %d threads)\n", o.raw_depth, o.batches[b] >> 10,
                  median(ratio_q), *lo_q, *hi_q, o.raw_depth, median(raw_q), o.raw_depth);
    }
    auto [lo, hi] = std::minmax_element(ratio.begin(), ratio.end());
    std::printf("ratio append/raw batch %zu KiB: median %.2f [%.2f..%.2f] over %zu rounds (append "
                "median %.0f MB/s, raw median %.0f MB/s); vs raw with the same fdatasync cadence "
                "%.2f; fdatasyncs/s %.0f (raw fdatasync rate %.0f/s); target >= 0.80 for batches "
                ">= 256 KiB\n",
                o.batches[b] >> 10, median(ratio), *lo, *hi, ratio.size(), median(append),
                median(raw), median(ratio_sync), median(syncs), median(sync_rate));
  }
}

}  // namespace

double raw_fdatasync_rate(const std::string& dir, double seconds) {
  std::filesystem::create_directories(dir);
  std::string path = dir + "/sync.bin";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  MQ_ASSERT(fd >= 0);
  char block[4096];
  std::memset(block, 1, sizeof block);
  std::uint64_t n = 0;
  auto start = BenchClock::now();
  while (seconds_since(start) < seconds) {
    MQ_ASSERT(::pwrite(fd, block, sizeof block, static_cast<off_t>(n * sizeof block)) == sizeof block);
    MQ_ASSERT(::fdatasync(fd) == 0);
    ++n;
  }
  double rate = static_cast<double>(n) / seconds_since(start);
  ::close(fd);
  ::unlink(path.c_str());
  return rate;
}

void run_append_vs_raw(const AppendVsRawOptions& o) {
  std::uint64_t total = o.round_mib * kMiB;
  std::printf("append vs raw, interleaved: %d rounds; per run %lu MiB into files of %lu MiB; "
              "durable window %lu MiB; load average %.2f at start\n",
              o.rounds, o.round_mib, o.segment_mib, o.window_mib, load_average());
  std::vector<std::vector<Sample>> samples(o.batches.size());
  auto started = BenchClock::now();
  for (int round = 0; round < o.rounds; ++round) {
    double sync_rate = raw_fdatasync_rate(o.dir + "/sync", 0.5);
    for (std::size_t b = 0; b < o.batches.size(); ++b) {
      Sample s;
      s.raw_sync_rate = sync_rate;
      auto raw = [&] {
        s.raw = raw_run(o.dir + "/raw", total, o.segment_mib * kMiB, 0).mbps;
        if (o.raw_depth > 0) {
          s.raw_depth = raw_depth_run(o.dir + "/raw", total, o.segment_mib * kMiB, o.raw_depth).mbps;
        }
      };
      RunResult appended;
      auto append_and_cadence = [&] {
        appended = append_run(o.dir + "/log", o.batches[b], total, o.segment_mib * kMiB,
                              o.window_mib * kMiB, o.configure);
        std::uint64_t every = appended.fdatasyncs > 0 ? total / appended.fdatasyncs : 0;
        every = std::max(kMiB, every / kMiB * kMiB);
        s.raw_sync = raw_run(o.dir + "/raw", total, o.segment_mib * kMiB, every).mbps;
      };
      auto append_b = [&] {
        if (!o.configure_b) return;
        auto both = [&](LogOptions& options) {
          o.configure(options);
          o.configure_b(options);
        };
        s.append_b = append_run(o.dir + "/log", o.batches[b], total, o.segment_mib * kMiB,
                                o.window_mib * kMiB, both).mbps;
      };
      if (round % 2 == 0) {
        raw();
        append_and_cadence();
        append_b();
      } else {
        append_b();
        append_and_cadence();
        raw();
      }
      s.append = appended.mbps;
      s.append_syncs_per_s = static_cast<double>(appended.fdatasyncs) * appended.mbps * 1e6 /
                             static_cast<double>(total);
      std::printf("  round %d batch %5zu KiB: raw %5.0f MB/s  append %5.0f MB/s  ratio %.2f | raw "
                  "with the append's cadence (%lu fdatasyncs) %5.0f MB/s, ratio %.2f | %.0f "
                  "fdatasyncs/s (raw rate %.0f/s) | load %.2f\n",
                  round + 1, o.batches[b] >> 10, s.raw, s.append, s.append / s.raw,
                  appended.fdatasyncs, s.raw_sync, s.append / s.raw_sync, s.append_syncs_per_s,
                  sync_rate, load_average());
      if (o.raw_depth > 0) {
        std::printf("  round %d batch %5zu KiB: raw QD%d %5.0f MB/s  append / raw QD%d %.2f\n",
                    round + 1, o.batches[b] >> 10, o.raw_depth, s.raw_depth, o.raw_depth,
                    s.append / s.raw_depth);
      }
      if (o.configure_b) {
        std::printf("  round %d batch %5zu KiB: append(%s) %5.0f MB/s  ratio %.2f  B/A %.2f\n",
                    round + 1, o.batches[b] >> 10, o.label_b.c_str(), s.append_b,
                    s.append_b / s.raw, s.append_b / s.append);
      }
      std::fflush(stdout);
      samples[b].push_back(s);
    }
    if (o.max_seconds > 0 && seconds_since(started) > o.max_seconds && round + 1 < o.rounds) {
      std::printf("  time bound of %.0f s reached after %d rounds\n", o.max_seconds, round + 1);
      break;
    }
  }
  AppendVsRawOptions done = o;
  done.rounds = static_cast<int>(samples[0].size());
  print_summary(done, samples);
  std::printf("load average %.2f at the end\n", load_average());
  std::filesystem::remove_all(o.dir + "/sync");
}

}  // namespace mq::storage::bench
