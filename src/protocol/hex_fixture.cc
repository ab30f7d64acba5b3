#include "protocol/hex_fixture.h"

#include <fstream>
#include <sstream>

namespace mq::protocol {

namespace {
int nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

Result<std::vector<Buffer>> parse_hex_frames(std::string_view text) {
  std::vector<Buffer> frames(1);
  std::istringstream lines{std::string(text)};
  std::string line;
  int pending = -1;
  while (std::getline(lines, line)) {
    line = line.substr(0, line.find('#'));
    if (line.find("---") != std::string::npos) {
      if (pending >= 0) return Status::invalid_argument("hex: odd number of digits");
      frames.emplace_back();
      continue;
    }
    for (char c : line) {
      if (c == ' ' || c == '\t' || c == '\r') continue;
      int v = nibble(c);
      if (v < 0) return Status::invalid_argument(std::string("hex: bad character '") + c + "'");
      if (pending < 0) {
        pending = v;
      } else {
        frames.back().push_back(static_cast<std::uint8_t>(pending * 16 + v));
        pending = -1;
      }
    }
  }
  if (pending >= 0) return Status::invalid_argument("hex: odd number of digits");
  return frames;
}

Result<std::vector<Buffer>> load_hex_frames(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::not_found("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_hex_frames(ss.str());
}

}  // namespace mq::protocol
