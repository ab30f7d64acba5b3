// The crash test's writer process: recovers the log in argv[1], then appends bursts of
// entries forever (until SIGKILLed), with group commit through a Flusher thread. It tells
// its parent, on stdout (one write() per line, so lines never interleave):
//   R <first> <last>   after recovery
//   D <index>          entries up to <index> are durable (reported by the flusher)
//   P <index>          about to remove the prefix below <index> (retention)
// Usage: storage_crash_writer <dir> <seed>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "storage/flusher.h"
#include "crash_workload.h"

namespace mq::storage::crash {
namespace {

void say(const char* tag, std::uint64_t a, std::uint64_t b = 0, bool two = false) {
  char line[64];
  int n = two ? std::snprintf(line, sizeof line, "%s %lu %lu\n", tag, a, b)
              : std::snprintf(line, sizeof line, "%s %lu\n", tag, a);
  if (::write(STDOUT_FILENO, line, static_cast<std::size_t>(n)) != n) std::_Exit(3);
}

int run(const std::string& dir, std::uint64_t seed) {
  Prng prng(seed);
  Flusher flusher(FlusherOptions{}, SystemClock::instance());
  LogOptions log_options = options(dir);
  log_options.on_durable = [](LogIndex durable) { say("D", durable.value()); };
  auto opened = Log::open(posix_file_system(), SystemClock::instance(), log_options, &flusher);
  if (!opened.has_value()) {
    std::fprintf(stderr, "writer: open failed: %s\n", opened.error().to_string().c_str());
    return 2;
  }
  Log& log = **opened;
  say("R", log.first_index().value(), log.last_index().value(), true);
  flusher.start();
  while (true) {
    std::size_t count = prng.range(1, 20);
    std::vector<Buffer> payloads;
    std::vector<AppendEntry> batch;
    for (std::size_t i = 0; i < count; ++i) {
      LogIndex index = log.last_index() + 1 + i;
      std::size_t size = prng.uniform(8) == 0 ? prng.range(4000, 20000) : prng.uniform(2000);
      payloads.push_back(testing::make_payload(index, term_of(index), size));
      batch.push_back({term_of(index), index, EntryKind::kRecordBatch, offset_of(index), 0,
                       timestamp_of(index), payloads.back().view()});
    }
    Status status = log.append(batch);
    if (!status.is_ok()) {
      std::fprintf(stderr, "writer: append failed: %s\n", status.to_string().c_str());
      return 2;
    }
    if (prng.uniform(50) == 0 && log.durable_index() > log.first_index() + 100) {
      LogIndex below = log.first_index() + prng.uniform(log.durable_index() - log.first_index());
      say("P", below.value());
      if (!log.remove_prefix(below).is_ok()) return 2;
    }
    if (prng.uniform(4) == 0) std::this_thread::sleep_for(std::chrono::microseconds(prng.uniform(2000)));
  }
}

}  // namespace
}  // namespace mq::storage::crash

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <dir> <seed>\n", argv[0]);
    return 1;
  }
  return mq::storage::crash::run(argv[1], std::strtoull(argv[2], nullptr, 10));
}
