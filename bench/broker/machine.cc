// raftmq-bench-machine: the machine's own limits, measured in the same run as the brokers.
//
//   fsync --dir D [--seconds S] [--block B]  append B bytes (default 4 KiB) to a file in D and
//                                            fdatasync, in a loop: rate and latency of one sync
//   rtt [--seconds S] [--size B]             TCP ping-pong over 127.0.0.1 between two threads
//                                            (TCP_NODELAY): the loopback round trip
//   fsync-majority --dir D [--seconds S] [--block B] [--replicas N]
//                                            N threads (default 3), one file each in D, start
//                                            each round together: append B bytes, fdatasync;
//                                            per round the time until a majority (N/2+1) of
//                                            the syncs ended. The best case of an acks=all
//                                            commit whose replicas share this one disk (fdatasyncs
//                                            of several files queue for the device)
//
// Sequential write bandwidth comes from fio (scripts/bench); loopback bandwidth from iperf3.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "bench_util.h"

namespace mq::bench {
namespace {

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

int run_fsync(const Flags& f) {
  std::string path = f.str("dir") + "/fdatasync-probe";
  int64_t seconds = f.num("seconds", 1, 600);
  int64_t block = f.num("block", 1, 1 << 24);
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) die(errno_text(("open " + path).c_str()));
  std::string buf = random_payload(static_cast<size_t>(block), 3);
  Samples samples;
  int64_t end = now_ns() + seconds * 1'000'000'000;
  int64_t t_start = now_ns();
  int64_t n = 0;
  while (now_ns() < end && n < 10'000'000) {
    if (::write(fd, buf.data(), buf.size()) != static_cast<ssize_t>(buf.size()))
      die(errno_text("write"));
    int64_t t = now_ns();
    if (::fdatasync(fd) != 0) die(errno_text("fdatasync"));
    samples.add(now_ns() - t);
    ++n;
  }
  double secs = static_cast<double>(now_ns() - t_start) / 1e9;
  ::close(fd);
  ::unlink(path.c_str());
  samples.finish();
  std::printf("{\"mode\":\"fsync\",\"block\":%" PRId64 ",\"syncs_per_s\":%.1f,%s}\n", block,
              static_cast<double>(n) / secs, samples.json_fields().c_str());
  return 0;
}

int run_fsync_majority(const Flags& f) {
  const int64_t seconds = f.num("seconds", 1, 600);
  const int64_t block = f.num("block", 1, 1 << 24);
  const int replicas = static_cast<int>(f.num("replicas", 1, 9));
  const int majority = replicas / 2 + 1;
  std::vector<int> fds;
  for (int i = 0; i < replicas; ++i) {
    std::string path = f.str("dir") + "/fdatasync-majority-" + std::to_string(i);
    int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) die(errno_text(("open " + path).c_str()));
    ::unlink(path.c_str());  // removed at close
    fds.push_back(fd);
  }
  const std::string buf = random_payload(static_cast<size_t>(block), 5);
  // Rounds: the main thread starts round r (all writers at once) and waits for all of them;
  // each writer records when its sync ended.
  std::mutex mu;
  std::condition_variable cv;
  int64_t round = 0;
  int done = 0;
  bool stop = false;
  std::vector<int64_t> ended(static_cast<size_t>(replicas));
  std::vector<std::thread> writers;
  for (int i = 0; i < replicas; ++i) {
    writers.emplace_back([&, i] {
      int64_t seen = 0;
      for (;;) {
        {
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return stop || round > seen; });
          if (stop) return;
          seen = round;
        }
        if (::write(fds[static_cast<size_t>(i)], buf.data(), buf.size()) !=
            static_cast<ssize_t>(buf.size()))
          die(errno_text("write"));
        if (::fdatasync(fds[static_cast<size_t>(i)]) != 0) die(errno_text("fdatasync"));
        const int64_t t = now_ns();
        std::lock_guard lock(mu);
        ended[static_cast<size_t>(i)] = t;
        if (++done == replicas) cv.notify_all();
      }
    });
  }
  Samples majority_samples, one_samples;
  const int64_t end = now_ns() + seconds * 1'000'000'000;
  int64_t rounds = 0;
  while (now_ns() < end && rounds < 1'000'000) {
    int64_t start;
    {
      std::unique_lock lock(mu);
      done = 0;
      start = now_ns();
      ++round;
      cv.notify_all();
      cv.wait(lock, [&] { return done == replicas; });
    }
    std::vector<int64_t> t = ended;
    std::sort(t.begin(), t.end());
    majority_samples.add(t[static_cast<size_t>(majority - 1)] - start);
    for (int64_t e : t) one_samples.add(e - start);
    ++rounds;
  }
  {
    std::lock_guard lock(mu);
    stop = true;
  }
  cv.notify_all();
  for (auto& w : writers) w.join();
  for (int fd : fds) ::close(fd);
  majority_samples.finish();
  one_samples.finish();
  std::printf("{\"mode\":\"fsync-majority\",\"block\":%" PRId64
              ",\"replicas\":%d,\"majority\":%d,\"rounds\":%" PRId64
              ",\"any_sync_p50_us\":%.1f,%s}\n",
              block, replicas, majority, rounds, one_samples.quantile_us(0.5),
              majority_samples.json_fields().c_str());
  return 0;
}

void full_io(int fd, char* p, size_t n, bool is_read) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = is_read ? ::read(fd, p + done, n - done) : ::write(fd, p + done, n - done);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      die(errno_text(is_read ? "read" : "write"));
    }
    done += static_cast<size_t>(r);
  }
}

int run_rtt(const Flags& f) {
  int64_t seconds = f.num("seconds", 1, 600);
  size_t size = static_cast<size_t>(f.num("size", 1, 65536));
  int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;  // any free port
  if (ls < 0 || ::bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(ls, 1) != 0)
    die(errno_text("listen"));
  socklen_t len = sizeof addr;
  ::getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len);
  std::thread echo([ls, size] {
    int s = ::accept(ls, nullptr, nullptr);
    if (s < 0) die(errno_text("accept"));
    int one = 1;
    ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::string buf(size, '\0');
    for (;;) {
      size_t done = 0;
      while (done < size) {
        ssize_t r = ::read(s, buf.data() + done, size - done);
        if (r <= 0) {
          ::close(s);
          return;
        }
        done += static_cast<size_t>(r);
      }
      full_io(s, buf.data(), size, false);
    }
  });
  int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0 || ::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    die(errno_text("connect"));
  int one = 1;
  ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::string buf(size, 'x');
  Samples samples;
  int64_t warm_end = now_ns() + 200'000'000;
  int64_t end = warm_end + seconds * 1'000'000'000;
  for (int64_t n = 0; now_ns() < end && n < 10'000'000; ++n) {
    int64_t t = now_ns();
    full_io(c, buf.data(), size, false);
    full_io(c, buf.data(), size, true);
    if (t >= warm_end) samples.add(now_ns() - t);
  }
  ::close(c);
  echo.join();
  ::close(ls);
  samples.finish();
  std::printf("{\"mode\":\"rtt\",\"size\":%zu,%s}\n", size, samples.json_fields().c_str());
  return 0;
}

int run(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: raftmq-bench-machine fsync --dir D [--seconds S] [--block B]\n"
                         "       raftmq-bench-machine fsync-majority --dir D [--seconds S] "
                         "[--block B] [--replicas N]\n"
                         "       raftmq-bench-machine rtt [--seconds S] [--size B]\n");
    return 2;
  }
  std::string mode = argv[1];
  Flags f(argc, argv, 2, {{"dir", "."}, {"seconds", "3"}, {"block", "4096"}, {"size", "64"},
                         {"replicas", "3"}});
  if (mode == "fsync") return run_fsync(f);
  if (mode == "fsync-majority") return run_fsync_majority(f);
  if (mode == "rtt") return run_rtt(f);
  die("unknown mode '" + mode + "'");
}

}  // namespace
}  // namespace mq::bench

int main(int argc, char** argv) {
  try {
    return mq::bench::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "raftmq-bench-machine: %s\n", e.what());
    return 2;
  }
}
