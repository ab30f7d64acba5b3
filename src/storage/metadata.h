// Atomically replaced small files (metadata_format.h): the Raft hard state, the log's meta
// record and snapshots. Every save is: write "<name>.tmp", fsync it, rename it over <name>,
// fsync the directory. A crash leaves either the old or the new file under <name> (and maybe
// a stale .tmp, which loading ignores and Log::open removes). Loading verifies the CRCs and
// returns kCorruption naming the file; a missing file is "no value" (std::nullopt).
#pragma once

#include <optional>
#include <span>
#include <string>

#include "base/buffer.h"
#include "base/result.h"
#include "storage/file_system.h"
#include "storage/metadata_format.h"

namespace mq::storage {

// The replace-by-rename protocol above, for any small file.
Status write_file_atomically(FileSystem* fs, const std::string& dir, const std::string& name,
                             std::span<const BufferView> pieces);
// Reads a whole file of at most bytes_max bytes (kCorruption if larger); nullopt if missing.
Result<std::optional<Buffer>> read_whole_file(FileSystem* fs, const std::string& path,
                                              std::uint64_t bytes_max);

// Raft hard state (term, vote, commit): "<dir>/raft.state".
Status save_hard_state(FileSystem* fs, const std::string& dir, const HardStateRecord& state);
Result<std::optional<HardStateRecord>> load_hard_state(FileSystem* fs, const std::string& dir);

// A state-machine snapshot: "<dir>/snapshot". config is the caller's opaque encoding of the
// membership at `index`; data is the state machine image.
struct StoredSnapshot {
  LogIndex index;
  Term term;
  Buffer config;
  Buffer data;
};
inline constexpr std::uint32_t kSnapshotConfigBytesMax = 1u << 20;
Status save_snapshot(FileSystem* fs, const std::string& dir, LogIndex index, Term term,
                     BufferView config, BufferView data);
// data_bytes_max bounds what a (possibly corrupt) header can make us allocate.
Result<std::optional<StoredSnapshot>> load_snapshot(FileSystem* fs, const std::string& dir,
                                                    std::uint64_t data_bytes_max);

}  // namespace mq::storage
