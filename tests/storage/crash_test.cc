// Crash test with real processes: a writer (crash_writer.cc) appends in bursts with group
// commit and reports what it was told was durable; we SIGKILL it at random moments, recover
// the log here, and check that every entry reported durable is intact, that every entry
// served verifies (nothing torn), and that the writer can recover and continue.
// Rounds: RAFTMQ_CRASH_ROUNDS (default 30).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <sstream>

#include "crash_workload.h"

namespace mq::storage::crash {
namespace {

struct Reports {
  std::uint64_t durable = 0;
  std::uint64_t prefix_announced = 1;
  bool recovered = false;
  std::string partial;

  void feed(const char* data, std::size_t n) {
    partial.append(data, n);
    std::size_t newline;
    while ((newline = partial.find('\n')) != std::string::npos) {
      std::istringstream line(partial.substr(0, newline));
      partial.erase(0, newline + 1);
      std::string tag;
      std::uint64_t a = 0, b = 0;
      line >> tag >> a;
      if (tag == "D") durable = std::max(durable, a);
      if (tag == "P") prefix_announced = std::max(prefix_announced, a);
      if (tag == "R") {
        line >> b;
        recovered = true;
      }
    }
  }
};

pid_t spawn(const std::string& dir, std::uint64_t seed, int* read_fd) {
  int fds[2];
  MQ_ASSERT(::pipe(fds) == 0);
  pid_t pid = ::fork();
  MQ_ASSERT(pid >= 0);
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    std::string seed_text = std::to_string(seed);
    ::execl(RAFTMQ_CRASH_WRITER, RAFTMQ_CRASH_WRITER, dir.c_str(), seed_text.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  *read_fd = fds[0];
  return pid;
}

// Reads the pipe for `duration_ms` (or until EOF).
bool pump(int fd, Reports& reports, int duration_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(duration_ms);
  char buffer[4096];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return true;
    pollfd p{fd, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left));
    if (ready <= 0) continue;
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) return false;  // EOF: the writer exited
    reports.feed(buffer, static_cast<std::size_t>(n));
  }
}

TEST(StorageCrashTest, EveryEntryReportedDurableSurvivesSigkill) {
  const char* env = std::getenv("RAFTMQ_CRASH_ROUNDS");
  int rounds = env ? std::atoi(env) : 30;
  testing::TempDir temp;
  std::string dir = temp.path() + "/log";
  Prng prng(static_cast<std::uint64_t>(::getpid()));
  std::uint64_t durable_ever = 0;
  std::uint64_t prefix_ever = 1;
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    int fd = -1;
    pid_t pid = spawn(dir, prng.next(), &fd);
    Reports reports;
    // Wait for the writer's recovery report (bounded), then let it run a random while.
    bool alive = true;
    for (int waited = 0; alive && !reports.recovered && waited < 200; ++waited) {
      alive = pump(fd, reports, 50);
    }
    if (alive) alive = pump(fd, reports, static_cast<int>(prng.range(10, 250)));
    ::kill(pid, SIGKILL);
    int wstatus = 0;
    ::waitpid(pid, &wstatus, 0);
    // What the writer reported before it died counts as acknowledged.
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof buffer)) > 0) reports.feed(buffer, static_cast<std::size_t>(n));
    ::close(fd);
    ASSERT_TRUE(alive) << "writer exited on its own (status " << wstatus << ")";
    ASSERT_TRUE(reports.recovered) << "writer did not recover the log";
    durable_ever = std::max(durable_ever, reports.durable);
    prefix_ever = std::max(prefix_ever, reports.prefix_announced);

    auto log = Log::open(posix_file_system(), SystemClock::instance(), options(dir));
    ASSERT_TRUE(log.has_value()) << log.status().to_string();
    EXPECT_GE((*log)->last_index().value(), durable_ever) << "an entry reported durable was lost";
    EXPECT_LE((*log)->first_index().value(), prefix_ever);
    LogIndex index = (*log)->first_index();
    while (index <= (*log)->last_index()) {
      auto entries = (*log)->read(index, (*log)->last_index() + 1, 1 << 20);
      ASSERT_TRUE(entries.has_value()) << entries.status().to_string();
      for (const ReadEntry& e : *entries) {
        ASSERT_EQ(check_entry(e), "");
        ++index;
      }
    }
    // Lookups agree with the data after every recovery.
    if ((*log)->last_index() >= (*log)->first_index()) {
      LogIndex probe = (*log)->first_index() + prng.uniform((*log)->last_index() - (*log)->first_index() + 1);
      auto found = (*log)->lookup_offset(offset_of(probe));
      ASSERT_TRUE(found.has_value() && found->has_value());
      EXPECT_EQ((*found)->index, probe);
    }
  }
  EXPECT_GT(durable_ever, 100u) << "the writer made too little progress to test anything";
}

}  // namespace
}  // namespace mq::storage::crash
