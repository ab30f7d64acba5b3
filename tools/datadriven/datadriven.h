// A small data-driven test runner (the script format of cockroachdb/datadriven, as used by
// etcd-io/raft's testdata/*.txt). A script is a sequence of blocks:
//
//   # comments and blank lines between blocks are kept verbatim
//   command arg1 key=value key=(a,b) key="quoted value"
//   optional input lines
//   ----
//   expected output (ends at the first blank line or at the end of the file)
//
// An expected output that itself contains blank lines uses the double-separator form:
//
//   command
//   ----
//   ----
//   output with
//
//   blank lines
//   ----
//   ----
//
// A handler turns each block into its actual output; run_file() compares actual against
// expected and reports a line diff with file:line per mismatch. In rewrite mode the expected
// outputs are regenerated in place (everything outside the outputs is kept byte for byte).
// Malformed scripts are reported as a Status naming file:line; the parser never crashes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace mq::datadriven {

// One command argument: `key` alone (no values), `key=v` (one value) or `key=(a,b)`.
struct CmdArg {
  std::string key;
  std::vector<std::string> values;
  bool operator==(const CmdArg&) const = default;
};

struct TestData {
  std::string file;     // script path as given to the parser
  int line = 0;         // 1-based line of the command
  std::string command_line;  // the command line as written (continuations joined)
  std::string command;       // the first word of the command line
  std::vector<CmdArg> args;
  std::string input;     // lines between the command and "----", joined with '\n' (no final \n)
  std::string expected;  // expected output, each line ending in '\n' ("" when empty)

  std::string pos() const { return file + ":" + std::to_string(line); }
  const CmdArg* find_arg(std::string_view key) const;
  bool has_arg(std::string_view key) const { return find_arg(key) != nullptr; }

  // Typed access to `key=value`. Errors (kInvalidArgument) name the block position.
  Result<std::string> arg_string(std::string_view key) const;
  Result<std::uint64_t> arg_uint(std::string_view key) const;
  Result<bool> arg_bool(std::string_view key) const;  // true/false
  // Every value of `key` as unsigned integers: key=(1,2,3) or key=7.
  Result<std::vector<std::uint64_t>> arg_uints(std::string_view key) const;
  Status error(std::string_view message) const;  // kInvalidArgument "file:line: message"
};

// Parses one command line ("name a b=c d=(e,f)") into command and arguments.
Result<std::pair<std::string, std::vector<CmdArg>>> parse_command_line(std::string_view line);

// A parsed script: the blocks plus what is needed to rewrite the outputs in place.
struct Script {
  std::string file;
  std::vector<TestData> blocks;
  // For block i: text[segments[i].begin, output_begin) precedes its output (comments, the
  // command, input, and the first "----"); [output_begin, output_end) is the expected output
  // including a double separator if present. The text after the last output is the tail.
  struct Span {
    std::size_t prefix_begin = 0;
    std::size_t output_begin = 0;
    std::size_t output_end = 0;
  };
  std::vector<Span> spans;
  std::string text;  // the original script (with a final '\n' added if it was missing)
};

Result<Script> parse(std::string_view text, std::string_view file_name);

// Renders `actual` as an output section (what follows the first "----" line): the
// double-separator form when the output contains a blank line or a "----" line.
std::string render_output(std::string_view actual);

// Returns the script text with each block's output replaced by outputs[i].
std::string rewrite(const Script& script, const std::vector<std::string>& outputs);

// A readable line diff of expected vs actual ("  same", "- expected only", "+ actual only").
std::string line_diff(std::string_view expected, std::string_view actual);

// Normalizes a handler's output: ends with exactly one '\n' unless empty.
std::string normalize_output(std::string_view actual);

using Handler = std::function<std::string(const TestData&)>;

struct RunOptions {
  bool rewrite = false;
  std::size_t max_reported_failures = 5;  // diffs beyond this are counted, not printed
};

struct RunReport {
  std::size_t blocks = 0;
  std::size_t failures = 0;
  bool rewritten = false;
  std::string text;  // human-readable: one diff per reported failure
};

// Reads `path`, runs every block through `handler` in order, compares and (in rewrite mode)
// writes the regenerated file back atomically. Errors: unreadable/unwritable file, malformed
// script.
Result<RunReport> run_file(const std::string& path, const Handler& handler,
                           const RunOptions& options);

// True when RAFTMQ_REWRITE is set to a non-empty value other than "0".
bool rewrite_from_env();

}  // namespace mq::datadriven
