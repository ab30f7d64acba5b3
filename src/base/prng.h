// A seeded, deterministic pseudo-random generator (xoshiro256**, seeded through splitmix64).
// The same seed gives the same sequence on every platform and build, which the Raft core
// (randomized election timeouts) and the simulator (replayable seeds) depend on. Not for
// cryptography. Satisfies std::uniform_random_bit_generator, but prefer the helpers below:
// std distributions are not specified bit-for-bit across standard libraries.
#pragma once

#include <cstdint>
#include <limits>

#include "base/assert.h"

namespace mq {

class Prng {
 public:
  using result_type = std::uint64_t;
  explicit Prng(std::uint64_t seed) { reseed(seed); }

  void reseed(std::uint64_t seed) {
    for (auto& s : state_) s = splitmix64(seed);
  }
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }

  result_type operator()() { return next(); }
  std::uint64_t next() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, bound), bound > 0 (Lemire's multiply-shift with rejection).
  std::uint64_t uniform(std::uint64_t bound) {
    MQ_ASSERT(bound > 0);
    while (true) {
      unsigned __int128 m = static_cast<unsigned __int128>(next()) * bound;
      auto low = static_cast<std::uint64_t>(m);
      if (low >= bound || low >= (0 - bound) % bound) return static_cast<std::uint64_t>(m >> 64);
    }
  }
  // Uniform in [lo, hi], lo <= hi.
  std::uint64_t range(std::uint64_t lo, std::uint64_t hi) {
    MQ_ASSERT(lo <= hi);
    if (hi - lo == std::numeric_limits<std::uint64_t>::max()) return next();
    return lo + uniform(hi - lo + 1);
  }
  // True with probability numerator/denominator.
  bool chance(std::uint64_t numerator, std::uint64_t denominator) {
    MQ_ASSERT(denominator > 0);
    return uniform(denominator) < numerator;
  }
  // Uniform double in [0, 1).
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static std::uint64_t splitmix64(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::uint64_t state_[4];
};

}  // namespace mq
