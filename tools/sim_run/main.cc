// raftmq-sim: run the deterministic Raft simulator over a range of seeds, replay one seed
// with its trace, run the mutation check, or show the narrated demo. See docs/simulator.md.
//
//   raftmq-sim --seeds N [--seed S] [--nodes 3|5] [--bug NAME]... [--expect-failure]
//   raftmq-sim --seed S --trace          replay one seed, printing its trace
//   raftmq-sim --list-bugs | --demo | --help
//
// Output ends with the line "N passed, M failed" (seed counts); the exit status is non-zero
// when a seed failed (or, with --expect-failure, when none did).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <string_view>

#include "sim/simulation.h"
#include "sim/trace.h"

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: raftmq-sim [--seeds N] [--seed S] [--nodes 3|5] [--bug NAME]...\n"
               "                  [--trace] [--no-lease-reads] [--expect-failure] [--verbose]\n"
               "       raftmq-sim --list-bugs | --demo | --help\n"
               "  --seeds N          run N seeds starting at S (default S=1; without --seeds, one seed)\n"
               "  --seed S           first (or only) seed\n"
               "  --nodes 3|5        initial voters (default: each seed draws 3 or 5)\n"
               "  --bug NAME         enable a core mutation on every node (repeatable; see --list-bugs)\n"
               "  --trace            print every event of each seed (replay: same bytes every run)\n"
               "  --no-lease-reads   no seed uses lease-based reads (by default a third of the\n"
               "                     CheckQuorum seeds do)\n"
               "  --skip S1,S2,...   leave these seeds out (known core bugs)\n"
               "  --expect-failure   stop at the first failing seed; succeed only if one fails\n"
               "  --verbose          one line per seed with its scenario and statistics\n"
               "  --demo             narrated 5-node demonstration (leader crash and catch-up)\n");
}

bool parse_u64(const char* text, std::uint64_t* out) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || text[0] == '-') return false;
  *out = value;
  return true;
}

struct Args {
  std::uint64_t seeds = 1;
  std::uint64_t first_seed = 1;
  std::uint32_t nodes = 0;
  std::uint32_t bugs = 0;
  std::string bug_names;
  bool trace = false;
  bool lease_reads = true;
  bool expect_failure = false;
  bool verbose = false;
  bool list_bugs = false;
  bool demo = false;
  std::set<std::uint64_t> skip;  // seeds left out (known core bugs, listed where used)
};

// Returns 0 on success, 1 for --help, 2 on a usage error (message printed).
int parse(int argc, char** argv, Args* args) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    auto need_u64 = [&](std::uint64_t* out) {
      if (!parse_u64(value, out)) {
        std::fprintf(stderr, "raftmq-sim: %s needs a non-negative integer\n", argv[i]);
        return false;
      }
      ++i;
      return true;
    };
    if (arg == "--seeds") {
      if (!need_u64(&args->seeds)) return 2;
      if (args->seeds == 0) {
        std::fprintf(stderr, "raftmq-sim: --seeds must be at least 1\n");
        return 2;
      }
    } else if (arg == "--seed") {
      if (!need_u64(&args->first_seed)) return 2;
    } else if (arg == "--nodes") {
      std::uint64_t nodes = 0;
      if (!need_u64(&nodes)) return 2;
      if (nodes != 3 && nodes != 5) {
        std::fprintf(stderr, "raftmq-sim: --nodes must be 3 or 5\n");
        return 2;
      }
      args->nodes = static_cast<std::uint32_t>(nodes);
    } else if (arg == "--bug") {
      if (value == nullptr) {
        std::fprintf(stderr, "raftmq-sim: --bug needs a name (see --list-bugs)\n");
        return 2;
      }
      auto bug = mq::sim::bug_by_name(value);
      if (!bug) {
        std::fprintf(stderr, "raftmq-sim: unknown bug '%s' (see --list-bugs)\n", value);
        return 2;
      }
      args->bugs |= static_cast<std::uint32_t>(*bug);
      args->bug_names += std::string(args->bug_names.empty() ? "" : ",") + value;
      ++i;
    } else if (arg == "--trace") {
      args->trace = true;
    } else if (arg == "--skip") {
      // Comma-separated seeds to leave out of a sweep.
      std::string list = value == nullptr ? "" : value;
      if (list.empty()) {
        std::fprintf(stderr, "raftmq-sim: --skip needs a comma-separated list of seeds\n");
        return 2;
      }
      std::size_t start = 0;
      while (start <= list.size()) {
        const std::size_t end = std::min(list.find(',', start), list.size());
        std::uint64_t seed = 0;
        if (!parse_u64(list.substr(start, end - start).c_str(), &seed)) {
          std::fprintf(stderr, "raftmq-sim: --skip: '%s' is not a seed\n",
                       list.substr(start, end - start).c_str());
          return 2;
        }
        args->skip.insert(seed);
        start = end + 1;
      }
      ++i;
    } else if (arg == "--no-lease-reads") {
      args->lease_reads = false;
    } else if (arg == "--expect-failure") {
      args->expect_failure = true;
    } else if (arg == "--verbose") {
      args->verbose = true;
    } else if (arg == "--list-bugs") {
      args->list_bugs = true;
    } else if (arg == "--demo") {
      args->demo = true;
    } else if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 1;
    } else {
      std::fprintf(stderr, "raftmq-sim: unknown argument '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  return 0;
}

std::string replay_command(const Args& args, std::uint64_t seed) {
  std::string out = "raftmq-sim --seed " + std::to_string(seed);
  if (args.nodes != 0) out += " --nodes " + std::to_string(args.nodes);
  if (!args.lease_reads) out += " --no-lease-reads";
  if (!args.bug_names.empty()) {
    std::string names = args.bug_names;
    std::size_t at = 0;
    while ((at = names.find(',')) != std::string::npos) {
      out += " --bug " + names.substr(0, at);
      names = names.substr(at + 1);
    }
    out += " --bug " + names;
  }
  return out + " --trace";
}

void print_verbose(std::uint64_t seed, const mq::sim::SeedResult& result) {
  std::printf("seed %llu: %s: %s; %.3fs simulated, %llu events, %llu committed, %llu acked, "
              "%llu reads\n",
              static_cast<unsigned long long>(seed), result.passed ? "pass" : "FAIL",
              result.scenario.c_str(), static_cast<double>(result.sim_time_us) / 1e6,
              static_cast<unsigned long long>(result.events),
              static_cast<unsigned long long>(result.committed),
              static_cast<unsigned long long>(result.writes_acked),
              static_cast<unsigned long long>(result.reads_checked));
}

// With --expect-failure and a mutation: does this failed seed count as catching it?
bool counts_as_catch(const Args& args, const mq::sim::RunOptions& options,
                     const mq::sim::SeedResult& result) {
  if (!args.expect_failure || args.bugs == 0) return true;
  const auto seed = static_cast<unsigned long long>(options.seed);
  if (result.invariant == "liveness" || result.invariant == "convergence") {
    // The mutations are safety bugs: a catch is a safety invariant violated. A liveness
    // failure only says the run got stuck.
    std::printf("seed %llu: %s failure: not counted as a catch\n", seed, result.invariant.c_str());
    return false;
  }
  // Attribute the failure to the mutation only if the same seed passes without it: a seed
  // that also fails on the unmodified core shows a core bug, not a catch.
  mq::sim::RunOptions baseline = options;
  baseline.bugs = 0;
  baseline.trace = nullptr;
  const mq::sim::SeedResult clean = mq::sim::run_seed(baseline);
  if (clean.passed) return true;
  std::printf("seed %llu fails without the mutation too (%s): not counted\n", seed,
              clean.invariant.c_str());
  return false;
}

struct Tally {
  std::uint64_t passed = 0;  // with --expect-failure: seeds that did not catch the mutation
  std::uint64_t failed = 0;
  std::uint64_t skipped = 0;
  std::uint64_t first_failure = 0;
};

Tally run_seeds(const Args& args) {
  Tally tally;
  for (std::uint64_t k = 0; k < args.seeds; ++k) {
    if (args.skip.count(args.first_seed + k) != 0) {
      ++tally.skipped;
      continue;
    }
    mq::sim::RunOptions options;
    options.seed = args.first_seed + k;
    options.nodes = args.nodes;
    options.bugs = args.bugs;
    options.lease_reads = args.lease_reads;
    options.trace = args.trace ? stdout : nullptr;
    const mq::sim::SeedResult result = mq::sim::run_seed(options);
    if (args.verbose) print_verbose(options.seed, result);
    if (result.passed || !counts_as_catch(args, options, result)) {
      ++tally.passed;
      continue;
    }
    if (tally.failed++ == 0) tally.first_failure = options.seed;
    std::printf("FAIL seed %llu: %s: %s (at %s s simulated)\n  scenario: %s\n  replay: %s\n",
                static_cast<unsigned long long>(options.seed), result.invariant.c_str(),
                result.detail.c_str(), mq::sim::format_time(result.failed_at_us).c_str(),
                result.scenario.c_str(), replay_command(args, options.seed).c_str());
    std::fflush(stdout);
    if (args.expect_failure) break;
  }
  return tally;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  const int parsed = parse(argc, argv, &args);
  if (parsed == 1) return 0;
  if (parsed != 0) return 2;
  if (args.list_bugs) {
    for (const auto& info : mq::sim::bug_table()) {
      std::printf("%-36s %s\n", info.name, info.description);
    }
    return 0;
  }
  if (args.demo) return mq::sim::run_demo(stdout);

  const auto started = std::chrono::steady_clock::now();
  const Tally tally = run_seeds(args);
  const std::uint64_t ran = tally.passed + tally.failed;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  // Wall-clock figures go to stderr so that stdout stays a pure function of the arguments.
  std::fprintf(stderr, "raftmq-sim: %llu seed(s) in %.2f s (%.1f seeds/s)\n",
               static_cast<unsigned long long>(ran), seconds,
               seconds > 0 ? static_cast<double>(ran) / seconds : 0.0);
  const char* what = args.bug_names.empty() ? "a failure" : args.bug_names.c_str();
  if (args.expect_failure && tally.failed > 0) {
    std::printf("expected failure: caught %s with seed %llu after %llu seed(s)\n", what,
                static_cast<unsigned long long>(tally.first_failure),
                static_cast<unsigned long long>(ran));
  } else if (args.expect_failure) {
    std::printf("expected failure NOT found: %s not caught in %llu seed(s)\n", what,
                static_cast<unsigned long long>(ran));
  }
  if (tally.skipped > 0) {
    std::printf("%llu seed(s) skipped by --skip\n", static_cast<unsigned long long>(tally.skipped));
  }
  std::printf("%llu passed, %llu failed\n", static_cast<unsigned long long>(tally.passed),
              static_cast<unsigned long long>(tally.failed));
  if (args.expect_failure) return tally.failed > 0 ? 0 : 1;
  return tally.failed > 0 ? 1 : 0;
}
