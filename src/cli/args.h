// Minimal command-line parsing for the raftmq CLI: positional words and --flag value pairs
// (--flag=value too). Unknown flags are an error reported by the caller via `unused()`.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace mq::cli {

class Args {
 public:
  // Flags listed in `switches` take no value.
  Args(int argc, char** argv, int first, const std::set<std::string>& switches = {});
  const std::vector<std::string>& positional() const { return positional_; }
  std::optional<std::string> get(const std::string& flag);
  std::string get_or(const std::string& flag, const std::string& fallback);
  std::vector<std::string> get_all(const std::string& flag);
  bool has(const std::string& flag);
  // Flags given but never read: typos. Empty when all were used.
  std::vector<std::string> unused() const;
  const std::string& error() const { return error_; }

 private:
  std::vector<std::string> positional_;
  std::multimap<std::string, std::string> flags_;
  std::set<std::string> used_;
  std::string error_;
};

}  // namespace mq::cli
