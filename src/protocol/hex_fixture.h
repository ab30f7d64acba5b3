// Test support: reads golden fixtures in testdata/*.hex. Format: hex digits with any
// whitespace; '#' starts a comment to the end of the line; a line "---" separates frames.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"

namespace mq::protocol {

Result<std::vector<Buffer>> parse_hex_frames(std::string_view text);
Result<std::vector<Buffer>> load_hex_frames(const std::string& path);

}  // namespace mq::protocol
