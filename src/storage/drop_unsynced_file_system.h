// TEST ONLY, never for production: a FileSystem wrapper that keeps every write (and
// truncation) of a file in process memory until that file is synced, so that SIGKILL of the
// process loses exactly what a power loss would lose: the un-synced writes. The chaos suite
// turns it on for real brokers with RAFTMQ_STORAGE_TEST_DROP_UNSYNCED=1, which
// posix_file_system() reads once (and then prints one warning line on stderr).
//
// Semantics:
//   - File::write_at / write_direct / truncate are recorded in order in memory; reads and
//     size() see them (the real file's bytes with the recorded operations applied).
//   - File::sync() applies the recorded operations to the real file, then fdatasyncs it.
//   - One flush for several files (file_system.h): flush_domain() is the real file's (one
//     simulated domain for all files whose real file has none, e.g. on tmpfs);
//     write_out() only marks the recorded operations as written out; a sync() of any file
//     of the same domain then applies, for every other file, the leading written-out writes
//     that lie inside its real file's size (an extension, a truncation or an operation not
//     written out stops that file's prefix). So the chaos suite's brokers exercise the
//     flusher's shared flush, and a crash loses what a power loss could lose there.
//   - All handles of one path share the recorded operations (as they share a page cache);
//     rename moves them with the name, remove drops them.
//   - native_handle() is -1, so readers (the fetch path) read through File::read_at and see
//     the buffered bytes instead of sendfile()ing the real file.
//   - Names (create, rename, remove) go to the real file system at once: a rename not
//     followed by a directory fsync survives a SIGKILL here although a power loss might undo
//     it. The metadata writer fsyncs the directory right after such a change, so the window
//     is one system call; a log's deferred roll (docs/formats/segment_format.md) leaves the
//     new segment's name to its next sync, and here keeps it: the crash then finds the new
//     segment with its unsynced header dropped (a leftover, removed at start-up).
//   - Destroying the wrapper (and every File it handed out) without a sync is a "crash":
//     whatever was not synced is gone.
#pragma once

#include <memory>

#include "storage/file_system.h"

namespace mq::storage {

inline constexpr const char* kDropUnsyncedEnvVar = "RAFTMQ_STORAGE_TEST_DROP_UNSYNCED";

// Wraps `base` (not owned; it must outlive the result and every File it hands out).
std::unique_ptr<FileSystem> make_drop_unsynced_file_system(FileSystem* base);

}  // namespace mq::storage
