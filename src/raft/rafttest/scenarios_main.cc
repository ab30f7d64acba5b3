// raft_scenarios_test [--rewrite] <testdata dir> [name ...]
// Runs each script <dir>/<name>.txt (every *.txt of the directory when no name is given)
// against a fresh InteractionEnv. Exit status 0 when every block's output matches. With
// --rewrite (or RAFTMQ_REWRITE=1) the expected outputs are regenerated in place: read every
// changed block before committing it, the outputs are the specification.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "datadriven/datadriven.h"
#include "raft/rafttest/interaction_env.h"

namespace {

int run(const std::string& path, bool rewrite) {
  mq::raft::rafttest::InteractionEnv env;
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
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--rewrite") {
      rewrite = true;
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
  int failed = 0;
  for (const std::string& path : paths) failed += run(path, rewrite);
  return failed == 0 ? 0 : 1;
}
