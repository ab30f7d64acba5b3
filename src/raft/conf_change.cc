// ConfChange wire format (little-endian, STYLE.md F):
//   conf_change := version:u8 (=1) transition:u8 count:u32 change{count}
//   change      := type:u8 node_id:u64
// decode() refuses unknown versions, transitions or types, a count larger than the bytes
// present (or than kMaxChanges) and trailing bytes.
#include <string>

#include "base/le_codec.h"
#include "raft/types.h"

namespace mq::raft {

namespace {
constexpr std::uint8_t kConfChangeVersion = 1;  // DO NOT CHANGE: persisted in the log
constexpr std::size_t kChangeEncodedSize = 1 + 8;
constexpr std::size_t kHeaderEncodedSize = 1 + 1 + 4;
constexpr std::uint32_t kMaxChanges = 1024;  // a membership is far smaller
}  // namespace

SharedBuffer ConfChange::encode() const {
  MQ_ASSERT(changes.size() <= kMaxChanges, "ConfChange with %zu changes", changes.size());
  Buffer out;
  out.reserve(kHeaderEncodedSize + changes.size() * kChangeEncodedSize);
  le::put_u8(out, kConfChangeVersion);
  le::put_u8(out, static_cast<std::uint8_t>(transition));
  le::put_u32(out, static_cast<std::uint32_t>(changes.size()));
  for (const ConfChangeSingle& change : changes) {
    le::put_u8(out, static_cast<std::uint8_t>(change.type));
    le::put_u64(out, change.node_id.value());
  }
  MQ_DASSERT(out.size() == kHeaderEncodedSize + changes.size() * kChangeEncodedSize);
  return SharedBuffer(std::move(out));
}

std::optional<ConfChange> ConfChange::decode(BufferView bytes) {
  le::LeReader reader(bytes);
  std::uint8_t version = 0;
  std::uint8_t transition = 0;
  std::uint32_t count = 0;
  if (!reader.read_u8(&version) || version != kConfChangeVersion) return std::nullopt;
  if (!reader.read_u8(&transition) ||
      transition > static_cast<std::uint8_t>(ConfChangeTransition::kExplicit)) {
    return std::nullopt;
  }
  if (!reader.read_u32(&count) || count > kMaxChanges) return std::nullopt;
  if (reader.remaining() != static_cast<std::size_t>(count) * kChangeEncodedSize) {
    return std::nullopt;
  }
  ConfChange change;
  change.transition = static_cast<ConfChangeTransition>(transition);
  change.changes.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uint8_t type = 0;
    std::uint64_t node = 0;
    if (!reader.read_u8(&type) || !reader.read_u64(&node)) return std::nullopt;
    if (type > static_cast<std::uint8_t>(ConfChangeType::kRemoveNode)) return std::nullopt;
    change.changes.push_back(ConfChangeSingle{static_cast<ConfChangeType>(type), NodeId(node)});
  }
  if (!reader.at_end()) return std::nullopt;
  return change;
}

}  // namespace mq::raft
