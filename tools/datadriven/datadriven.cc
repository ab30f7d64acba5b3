#include "datadriven/datadriven.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace mq::datadriven {
namespace {

constexpr std::string_view kSeparator = "----";
// Bounds: a script larger than this is certainly not a test script.
constexpr std::size_t kScriptBytesMax = 16u << 20;
// Line diffs use an O(n*m) LCS table; above this many cells they fall back to a plain listing.
constexpr std::size_t kDiffCellsMax = 4u << 20;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool is_blank(std::string_view line) { return trim(line).empty(); }
bool is_separator(std::string_view line) { return trim(line) == kSeparator; }

struct Line {
  std::size_t offset;  // of the first character
  std::string_view text;  // without the '\n'
};

std::vector<Line> split_lines(std::string_view text) {
  std::vector<Line> lines;
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    lines.push_back({begin, text.substr(begin, end - begin)});
    begin = end + 1;
  }
  return lines;
}

std::vector<std::string_view> split_output_lines(std::string_view text) {
  std::vector<std::string_view> out;
  for (const Line& line : split_lines(text)) out.push_back(line.text);
  return out;
}

// Reads one value starting at s[i]: "quoted", (a,b,...) or a bare word. Advances i.
Result<std::vector<std::string>> parse_values(std::string_view s, std::size_t& i) {
  std::vector<std::string> values;
  if (i >= s.size() || is_space(s[i])) return Status::invalid_argument("'=' without a value");
  if (s[i] == '"') {
    std::string value;
    for (++i; i < s.size() && s[i] != '"'; ++i) {
      if (s[i] == '\\' && i + 1 < s.size()) ++i;
      value.push_back(s[i]);
    }
    if (i >= s.size()) return Status::invalid_argument("unterminated quoted value");
    ++i;
    values.push_back(std::move(value));
    return values;
  }
  if (s[i] == '(') {
    std::size_t close = s.find(')', i);
    if (close == std::string_view::npos) {
      return Status::invalid_argument("unbalanced '(' in argument list");
    }
    std::string_view inner = s.substr(i + 1, close - i - 1);
    if (inner.find('(') != std::string_view::npos) {
      return Status::invalid_argument("nested '(' in argument list");
    }
    i = close + 1;
    if (trim(inner).empty()) return values;  // key=() is an empty list
    std::size_t begin = 0;
    while (true) {
      std::size_t comma = inner.find(',', begin);
      std::string_view item = trim(inner.substr(begin, comma - begin));
      if (item.empty()) return Status::invalid_argument("empty item in argument list");
      values.emplace_back(item);
      if (comma == std::string_view::npos) break;
      begin = comma + 1;
    }
    return values;
  }
  std::size_t begin = i;
  while (i < s.size() && !is_space(s[i])) {
    if (s[i] == '(' || s[i] == ')' || s[i] == '"') {
      return Status::invalid_argument("unexpected '" + std::string(1, s[i]) + "' in value");
    }
    ++i;
  }
  values.emplace_back(s.substr(begin, i - begin));
  return values;
}

}  // namespace

Result<std::pair<std::string, std::vector<CmdArg>>> parse_command_line(std::string_view line) {
  std::string_view s = trim(line);
  if (s.empty()) return Status::invalid_argument("empty command line");
  std::size_t i = 0;
  while (i < s.size() && !is_space(s[i])) ++i;
  std::string command(s.substr(0, i));
  if (command.find_first_of("=()\"") != std::string::npos) {
    return Status::invalid_argument("malformed command name '" + command + "'");
  }
  std::vector<CmdArg> args;
  while (true) {
    while (i < s.size() && is_space(s[i])) ++i;
    if (i >= s.size()) break;
    std::size_t key_begin = i;
    while (i < s.size() && !is_space(s[i]) && s[i] != '=') {
      if (s[i] == '(' || s[i] == ')' || s[i] == '"') {
        return Status::invalid_argument("unexpected '" + std::string(1, s[i]) +
                                        "' in argument at column " + std::to_string(i + 1));
      }
      ++i;
    }
    CmdArg arg;
    arg.key = std::string(s.substr(key_begin, i - key_begin));
    if (arg.key.empty()) {
      return Status::invalid_argument("argument without a key at column " + std::to_string(i + 1));
    }
    if (i < s.size() && s[i] == '=') {
      ++i;
      auto values = parse_values(s, i);
      if (!values.has_value()) {
        return Status::invalid_argument("argument '" + arg.key + "': " + values.error().message());
      }
      arg.values = std::move(values).value();
      if (i < s.size() && !is_space(s[i])) {
        return Status::invalid_argument("argument '" + arg.key + "': trailing characters");
      }
    }
    args.push_back(std::move(arg));
  }
  return std::make_pair(std::move(command), std::move(args));
}

const CmdArg* TestData::find_arg(std::string_view key) const {
  for (const CmdArg& arg : args) {
    if (arg.key == key) return &arg;
  }
  return nullptr;
}

Status TestData::error(std::string_view message) const {
  return Status::invalid_argument(pos() + ": " + std::string(message));
}

Result<std::string> TestData::arg_string(std::string_view key) const {
  const CmdArg* arg = find_arg(key);
  if (arg == nullptr) return error("missing argument " + std::string(key));
  if (arg->values.size() != 1) return error("argument " + std::string(key) + " needs one value");
  return arg->values[0];
}

namespace {
Result<std::uint64_t> parse_uint(std::string_view text) {
  if (text.empty() || text.size() > 19) return Status::invalid_argument("bad number");
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return Status::invalid_argument("bad number");
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}
}  // namespace

Result<std::uint64_t> TestData::arg_uint(std::string_view key) const {
  MQ_ASSIGN_OR_RETURN(std::string text, arg_string(key));
  auto value = parse_uint(text);
  if (!value.has_value()) {
    return error("argument " + std::string(key) + ": '" + text + "' is not an unsigned number");
  }
  return value;
}

Result<bool> TestData::arg_bool(std::string_view key) const {
  MQ_ASSIGN_OR_RETURN(std::string text, arg_string(key));
  if (text == "true") return true;
  if (text == "false") return false;
  return error("argument " + std::string(key) + ": '" + text + "' is not true/false");
}

Result<std::vector<std::uint64_t>> TestData::arg_uints(std::string_view key) const {
  const CmdArg* arg = find_arg(key);
  if (arg == nullptr) return error("missing argument " + std::string(key));
  std::vector<std::uint64_t> out;
  for (const std::string& text : arg->values) {
    auto value = parse_uint(text);
    if (!value.has_value()) {
      return error("argument " + std::string(key) + ": '" + text + "' is not an unsigned number");
    }
    out.push_back(*value);
  }
  return out;
}

namespace {

// Parses the block whose command is lines[i]; advances i past its output.
Status parse_block(const std::vector<Line>& lines, std::size_t& i, Script& script,
                   std::size_t prefix_begin) {
  const std::size_t text_size = script.text.size();
  auto offset_of = [&](std::size_t k) { return k < lines.size() ? lines[k].offset : text_size; };
  auto where = [&](std::size_t k) { return script.file + ":" + std::to_string(k + 1); };

  TestData block;
  block.file = script.file;
  block.line = static_cast<int>(i + 1);
  std::string command_line(trim(lines[i].text));
  while (!command_line.empty() && command_line.back() == '\\' && i + 1 < lines.size()) {
    command_line.pop_back();
    command_line += " ";
    command_line += trim(lines[++i].text);
  }
  auto parsed = parse_command_line(command_line);
  if (!parsed.has_value()) {
    return Status::invalid_argument(where(block.line - 1) + ": " + parsed.error().message());
  }
  block.command_line = command_line;
  block.command = std::move(parsed->first);
  block.args = std::move(parsed->second);
  ++i;

  std::vector<std::string_view> input;
  while (i < lines.size() && !is_separator(lines[i].text)) input.push_back(lines[i++].text);
  if (i >= lines.size()) {
    return Status::invalid_argument(where(block.line - 1) + ": command '" + block.command +
                                    "' has no '----' line before the end of the file");
  }
  for (std::size_t k = 0; k < input.size(); ++k) {
    if (k > 0) block.input += '\n';
    block.input += input[k];
  }
  ++i;  // past the separator

  Script::Span span{prefix_begin, offset_of(i), 0};
  if (i < lines.size() && is_separator(lines[i].text)) {
    const std::size_t open = i++;
    while (i + 1 < lines.size() &&
           !(is_separator(lines[i].text) && is_separator(lines[i + 1].text))) {
      block.expected += lines[i++].text;
      block.expected += '\n';
    }
    if (i + 1 >= lines.size()) {
      return Status::invalid_argument(where(open) +
                                      ": output opened with '----' twice is not closed by "
                                      "two '----' lines");
    }
    i += 2;
    if (i < lines.size() && !is_blank(lines[i].text)) {
      return Status::invalid_argument(where(i) + ": expected a blank line after the output");
    }
  } else {
    while (i < lines.size() && !is_blank(lines[i].text)) {
      if (is_separator(lines[i].text)) {
        return Status::invalid_argument(
            where(i) + ": '----' inside an output; separate blocks with a blank line or use "
                       "the '----' '----' form for outputs with blank lines");
      }
      block.expected += lines[i++].text;
      block.expected += '\n';
    }
  }
  span.output_end = offset_of(i);
  block.expected = normalize_output(block.expected);
  script.blocks.push_back(std::move(block));
  script.spans.push_back(span);
  return Status::ok();
}

}  // namespace

Result<Script> parse(std::string_view text, std::string_view file_name) {
  Script script;
  script.file = std::string(file_name);
  if (text.size() > kScriptBytesMax) {
    return Status::invalid_argument(script.file + ": script larger than " +
                                    std::to_string(kScriptBytesMax) + " bytes");
  }
  if (text.find('\0') != std::string_view::npos) {
    return Status::invalid_argument(script.file + ": script contains a NUL byte");
  }
  script.text = std::string(text);
  if (!script.text.empty() && script.text.back() != '\n') script.text += '\n';
  const std::vector<Line> lines = split_lines(script.text);
  std::size_t i = 0;
  std::size_t prefix_begin = 0;
  while (i < lines.size()) {
    std::string_view line = trim(lines[i].text);
    if (line.empty() || line.front() == '#') {
      ++i;
      continue;
    }
    if (is_separator(line)) {
      return Status::invalid_argument(script.file + ":" + std::to_string(i + 1) +
                                      ": '----' without a command");
    }
    MQ_RETURN_IF_ERROR(parse_block(lines, i, script, prefix_begin));
    prefix_begin = script.spans.back().output_end;
  }
  return script;
}

std::string normalize_output(std::string_view actual) {
  while (!actual.empty() && actual.back() == '\n') actual.remove_suffix(1);
  if (actual.empty()) return {};
  return std::string(actual) + "\n";
}

std::string render_output(std::string_view actual) {
  std::string out = normalize_output(actual);
  bool needs_double = false;
  for (std::string_view line : split_output_lines(out)) {
    if (is_blank(line) || is_separator(line)) needs_double = true;
  }
  if (!needs_double) return out;
  return std::string(kSeparator) + "\n" + out + std::string(kSeparator) + "\n" +
         std::string(kSeparator) + "\n";
}

std::string rewrite(const Script& script, const std::vector<std::string>& outputs) {
  MQ_ASSERT(outputs.size() == script.spans.size(), "one output per block");
  std::string out;
  std::size_t tail = 0;
  for (std::size_t k = 0; k < script.spans.size(); ++k) {
    const Script::Span& span = script.spans[k];
    MQ_ASSERT(span.prefix_begin <= span.output_begin && span.output_begin <= span.output_end);
    out.append(script.text, span.prefix_begin, span.output_begin - span.prefix_begin);
    out += render_output(outputs[k]);
    tail = span.output_end;
  }
  out.append(script.text, tail, std::string::npos);
  return out;
}

std::string line_diff(std::string_view expected, std::string_view actual) {
  const std::vector<std::string_view> a = split_output_lines(expected);
  const std::vector<std::string_view> b = split_output_lines(actual);
  std::vector<std::string> rows;  // "  x", "- x", "+ x"
  if ((a.size() + 1) * (b.size() + 1) > kDiffCellsMax) {
    for (auto line : a) rows.push_back("- " + std::string(line));
    for (auto line : b) rows.push_back("+ " + std::string(line));
  } else {
    // lcs[i][j]: LCS length of a[i..] and b[j..].
    const std::size_t n = a.size(), m = b.size();
    std::vector<std::uint32_t> lcs((n + 1) * (m + 1), 0);
    auto at = [&](std::size_t i, std::size_t j) -> std::uint32_t& { return lcs[i * (m + 1) + j]; };
    for (std::size_t i = n; i-- > 0;) {
      for (std::size_t j = m; j-- > 0;) {
        at(i, j) = a[i] == b[j] ? at(i + 1, j + 1) + 1 : std::max(at(i + 1, j), at(i, j + 1));
      }
    }
    std::size_t i = 0, j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a[i] == b[j]) {
        rows.push_back("  " + std::string(a[i]));
        ++i, ++j;
      } else if (i < n && (j == m || at(i + 1, j) >= at(i, j + 1))) {
        rows.push_back("- " + std::string(a[i++]));  // deletions first, as in unified diffs
      } else {
        rows.push_back("+ " + std::string(b[j++]));
      }
    }
  }
  // Keep three lines of context around changes.
  constexpr std::size_t kContext = 3;
  std::vector<bool> keep(rows.size(), false);
  for (std::size_t k = 0; k < rows.size(); ++k) {
    if (rows[k][0] == ' ') continue;
    const std::size_t lo = k >= kContext ? k - kContext : 0;
    const std::size_t hi = std::min(rows.size(), k + kContext + 1);
    for (std::size_t x = lo; x < hi; ++x) keep[x] = true;
  }
  std::string out;
  bool skipped = false;
  for (std::size_t k = 0; k < rows.size(); ++k) {
    if (!keep[k]) {
      if (!skipped) out += "  ...\n";
      skipped = true;
      continue;
    }
    skipped = false;
    out += rows[k];
    out += '\n';
  }
  return out;
}

bool rewrite_from_env() {
  const char* value = std::getenv("RAFTMQ_REWRITE");
  return value != nullptr && value[0] != '\0' && std::strcmp(value, "0") != 0;
}

namespace {

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::from_errno(errno, "open " + path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return Status::io_error("read " + path);
  return buffer.str();
}

Status write_file_atomically(const std::string& path, const std::string& contents) {
  const std::string tmp = path + ".rewrite.tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Status::from_errno(errno, "create " + tmp);
    out << contents;
    out.flush();
    if (!out) return Status::io_error("write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::from_errno(errno, "rename " + tmp + " to " + path);
  }
  return Status::ok();
}

}  // namespace

Result<RunReport> run_file(const std::string& path, const Handler& handler,
                           const RunOptions& options) {
  MQ_ASSIGN_OR_RETURN(std::string text, read_file(path));
  MQ_ASSIGN_OR_RETURN(Script script, parse(text, path));
  RunReport report;
  std::vector<std::string> outputs;
  outputs.reserve(script.blocks.size());
  for (const TestData& block : script.blocks) {
    std::string actual = normalize_output(handler(block));
    ++report.blocks;
    if (actual != block.expected) {
      ++report.failures;
      if (!options.rewrite && report.failures <= options.max_reported_failures) {
        report.text += block.pos() + ": output of '" + block.command_line +
                       "' differs (- expected, + actual):\n" + line_diff(block.expected, actual);
      }
    }
    outputs.push_back(std::move(actual));
  }
  if (!options.rewrite && report.failures > options.max_reported_failures) {
    report.text += std::to_string(report.failures - options.max_reported_failures) +
                   " more mismatching blocks not shown\n";
  }
  if (options.rewrite) {
    std::string rewritten = rewrite(script, outputs);
    if (rewritten != script.text) {
      MQ_RETURN_IF_ERROR(write_file_atomically(path, rewritten));
      report.rewritten = true;
    }
  }
  return report;
}

}  // namespace mq::datadriven
