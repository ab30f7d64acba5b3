// raft_scenarios_test [--rewrite] [--bugs=<mask> --expect-failure] <testdata dir> [name ...]
// Runs each script <dir>/<name>.txt (every *.txt of the directory when no name is given)
// against a fresh InteractionEnv. Exit status 0 when every block's output matches. With
// --rewrite (or RAFTMQ_REWRITE=1) the expected outputs are regenerated in place: read every
// changed block before committing it, the outputs are the specification.
// Mutation check: --bugs=<mask> gives every node those Config::bugs; with --expect-failure the
// exit status is 0 only if every script then FAILS (the script detects the broken behaviour).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "datadriven/datadriven.h"
#include "raft/rafttest/interaction_env.h"

namespace {

int run(const std::string& path, bool rewrite, std::uint32_t bugs) {
  mq::raft::rafttest::InteractionEnv env(bugs);
  mq::datadriven::RunOptions options;
  options.rewrite = rewrite;
  auto report = mq::datadriven::run_file(
      path, [&env](const mq::datadriven::TestData& block) { return env.handle(block); },
      options);
  if (!report.has_value()) {
    std::fprintf(stderr, "FAIL %s: %s\n", path.c_str(), report.error().to_string().c_str());
    return 1;
  }
  if (rewrite) {
    std::printf("%s %s (%zu blocks, %zu changed)\n", report->rewritten ? "REWROTE" : "SAME   ",
                path.c_str(), report->blocks, report->failures);
    return 0;
  }
  if (report->failures > 0) {
    std::fprintf(stderr, "%sFAIL %s: %zu of %zu blocks differ\n", report->text.c_str(),
                 path.c_str(), report->failures, report->blocks);
    return 1;
  }
  std::printf("ok   %s (%zu blocks)\n", path.c_str(), report->blocks);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool rewrite = mq::datadriven::rewrite_from_env();
  bool expect_failure = false;
  std::uint32_t bugs = 0;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--rewrite") {
      rewrite = true;
    } else if (arg == "--expect-failure") {
      expect_failure = true;
    } else if (arg.rfind("--bugs=", 0) == 0) {
      char* end = nullptr;
      const unsigned long mask = std::strtoul(arg.c_str() + 7, &end, 0);
      if (end == arg.c_str() + 7 || *end != '\0' || mask > UINT32_MAX) {
        std::fprintf(stderr, "bad --bugs mask %s\n", arg.c_str());
        return 2;
      }
      bugs = static_cast<std::uint32_t>(mask);
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "unknown flag %s\n", arg.c_str());
      return 2;
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.empty()) {
    std::fprintf(stderr, "usage: raft_scenarios_test [--rewrite] <testdata dir> [name ...]\n");
    return 2;
  }
  const std::filesystem::path dir = positional[0];
  std::vector<std::string> paths;
  if (positional.size() == 1) {
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
      if (entry.path().extension() == ".txt") paths.push_back(entry.path().string());
    }
    if (error) {
      std::fprintf(stderr, "cannot list %s: %s\n", dir.c_str(), error.message().c_str());
      return 2;
    }
    std::sort(paths.begin(), paths.end());
  } else {
    for (std::size_t k = 1; k < positional.size(); ++k) {
      paths.push_back((dir / (positional[k] + ".txt")).string());
    }
  }
  if (rewrite && (bugs != 0 || expect_failure)) {
    std::fprintf(stderr, "--rewrite cannot be combined with --bugs/--expect-failure\n");
    return 2;
  }
  int failed = 0;
  for (const std::string& path : paths) {
    const int result = run(path, rewrite, bugs);
    if (expect_failure) {
      std::printf("%s %s with bugs=0x%x\n", result != 0 ? "caught" : "MISSED", path.c_str(),
                  bugs);
      failed += result == 0 ? 1 : 0;
    } else {
      failed += result;
    }
  }
  return failed == 0 ? 0 : 1;
}
