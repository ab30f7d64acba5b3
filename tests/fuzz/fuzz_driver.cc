// Our own fuzz driver for g++ builds (no libFuzzer): mutates the target's seeds and the golden
// fixtures (testdata/*.hex) with a seeded PRNG for a bounded time and number of runs. It finds
// crashes and assertion failures but has no coverage feedback; scripts/fuzz runs the same
// targets under libFuzzer + ASan for that.
//
//   fuzz_x [--seconds N] [--runs N] [--seed N] [--write-seeds DIR] [FIXTURE.hex|DIR]...
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "base/prng.h"
#include "fuzz_target.h"
#include "protocol/hex_fixture.h"

namespace {

using mq::Buffer;
using mq::Prng;

constexpr std::size_t kInputBytesMax = 1 << 16;

void load_fixtures(const std::string& path, std::vector<Buffer>* corpus) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  if (fs::is_directory(path)) {
    for (const auto& e : fs::directory_iterator(path)) {
      if (e.path().extension() == ".hex") files.push_back(e.path().string());
    }
  } else {
    files.push_back(path);
  }
  for (const auto& f : files) {
    auto frames = mq::protocol::load_hex_frames(f);
    if (!frames.has_value()) {
      std::fprintf(stderr, "fuzz: %s: %s\n", f.c_str(), frames.error().to_string().c_str());
      std::exit(2);
    }
    for (auto& b : *frames) corpus->push_back(std::move(b));
  }
}

std::uint64_t interesting(Prng& rng) {
  static const std::uint64_t kValues[] = {0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff,
                                          0x7fffffff, 0x80000000, 0xffffffff, 0x10000};
  return kValues[rng.uniform(sizeof(kValues) / sizeof(kValues[0]))];
}

void mutate(Buffer& b, Prng& rng, const std::vector<Buffer>& corpus) {
  std::size_t n = 1 + rng.uniform(6);
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t size = b.size();
    switch (rng.uniform(8)) {
      case 0:  // flip a bit
        if (size) b[rng.uniform(size)] ^= static_cast<std::uint8_t>(1u << rng.uniform(8));
        break;
      case 1:  // random byte
        if (size) b[rng.uniform(size)] = static_cast<std::uint8_t>(rng.next());
        break;
      case 2: {  // interesting big-endian integer of width 1, 2 or 4
        std::size_t width = std::size_t{1} << rng.uniform(3);
        if (size < width) break;
        std::size_t at = rng.uniform(size - width + 1);
        std::uint64_t v = interesting(rng);
        for (std::size_t k = 0; k < width; ++k) {
          b[at + k] = static_cast<std::uint8_t>(v >> (8 * (width - 1 - k)));
        }
        break;
      }
      case 3:  // truncate
        if (size) b.resize(rng.uniform(size));
        break;
      case 4: {  // insert random bytes
        std::size_t at = rng.uniform(size + 1);
        std::size_t len = 1 + rng.uniform(8);
        auto& v = b.vector();
        for (std::size_t k = 0; k < len; ++k) {
          v.insert(v.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::uint8_t>(rng.next()));
        }
        break;
      }
      case 5: {  // erase a range
        if (!size) break;
        std::size_t at = rng.uniform(size);
        std::size_t len = 1 + rng.uniform(std::min<std::size_t>(16, size - at));
        auto& v = b.vector();
        v.erase(v.begin() + static_cast<std::ptrdiff_t>(at),
                v.begin() + static_cast<std::ptrdiff_t>(at + len));
        break;
      }
      case 6: {  // splice the tail of another corpus entry
        if (corpus.empty()) break;
        const Buffer& other = corpus[rng.uniform(corpus.size())];
        if (other.empty()) break;
        std::size_t cut = rng.uniform(size + 1);
        std::size_t from = rng.uniform(other.size());
        b.resize(cut);
        b.append(other.view(from, other.size() - from));
        break;
      }
      default: {  // duplicate a chunk
        if (!size) break;
        std::size_t at = rng.uniform(size);
        std::size_t len = 1 + rng.uniform(std::min<std::size_t>(32, size - at));
        Buffer chunk(b.view(at, len));
        b.append(chunk);
        break;
      }
    }
  }
  if (b.size() > kInputBytesMax) b.resize(kInputBytesMax);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 10;
  std::uint64_t runs_max = UINT64_MAX;
  std::uint64_t seed = static_cast<std::uint64_t>(
      std::chrono::steady_clock::now().time_since_epoch().count());
  std::string write_dir;
  std::vector<Buffer> corpus = mq::fuzz::seeds();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "fuzz: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--seconds") {
      seconds = std::stod(next());
    } else if (a == "--runs") {
      runs_max = std::stoull(next());
    } else if (a == "--seed") {
      seed = std::stoull(next());
    } else if (a == "--write-seeds") {
      write_dir = next();
    } else {
      load_fixtures(a, &corpus);
    }
  }
  if (!write_dir.empty()) {
    std::filesystem::create_directories(write_dir);
    for (std::size_t i = 0; i < corpus.size(); ++i) {
      std::ofstream f(write_dir + "/seed-" + std::to_string(i), std::ios::binary);
      f.write(reinterpret_cast<const char*>(corpus[i].data()),
              static_cast<std::streamsize>(corpus[i].size()));
    }
    std::printf("wrote %zu seeds to %s\n", corpus.size(), write_dir.c_str());
    return 0;
  }
  std::printf("fuzz: seed %llu, %zu corpus entries, %.0f s\n",
              static_cast<unsigned long long>(seed), corpus.size(), seconds);
  std::fflush(stdout);
  // Every corpus entry as is, then mutations.
  for (const Buffer& b : corpus) LLVMFuzzerTestOneInput(b.data(), b.size());
  Prng rng(seed);
  auto start = std::chrono::steady_clock::now();
  std::uint64_t runs = 0;
  while (runs < runs_max) {
    if ((runs & 255) == 0) {
      std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
      if (elapsed.count() >= seconds) break;
    }
    Buffer input;
    if (corpus.empty() || rng.chance(1, 10)) {
      input.resize(rng.uniform(256));
      for (std::size_t k = 0; k < input.size(); ++k) input[k] = static_cast<std::uint8_t>(rng.next());
    } else {
      input = corpus[rng.uniform(corpus.size())];
    }
    mutate(input, rng, corpus);
    LLVMFuzzerTestOneInput(input.data(), input.size());
    ++runs;
  }
  std::printf("fuzz: %llu runs, no crash\n", static_cast<unsigned long long>(runs));
  return 0;
}
