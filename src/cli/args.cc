#include "cli/args.h"

namespace mq::cli {

Args::Args(int argc, char** argv, int first, const std::set<std::string>& switches) {
  for (int i = first; i < argc; ++i) {
    std::string word = argv[i];
    if (word.rfind("--", 0) != 0 || word.size() == 2) {
      positional_.push_back(word);
      continue;
    }
    std::string name = word.substr(2);
    std::string value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (switches.count(name) > 0) {
      value = "true";
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      error_ = "--" + name + " needs a value";
    }
    flags_.emplace(name, value);
  }
}

std::optional<std::string> Args::get(const std::string& flag) {
  used_.insert(flag);
  auto it = flags_.find(flag);
  if (it == flags_.end()) return std::nullopt;
  return it->second;
}

std::string Args::get_or(const std::string& flag, const std::string& fallback) {
  return get(flag).value_or(fallback);
}

std::vector<std::string> Args::get_all(const std::string& flag) {
  used_.insert(flag);
  std::vector<std::string> values;
  auto [begin, end] = flags_.equal_range(flag);
  for (auto it = begin; it != end; ++it) values.push_back(it->second);
  return values;
}

bool Args::has(const std::string& flag) {
  used_.insert(flag);
  return flags_.count(flag) > 0;
}

std::vector<std::string> Args::unused() const {
  std::vector<std::string> out;
  for (const auto& [name, value] : flags_) {
    if (used_.count(name) == 0) out.push_back("--" + name);
  }
  return out;
}

}  // namespace mq::cli
