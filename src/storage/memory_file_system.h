// An in-memory FileSystem with fault injection and precise crash semantics. It is the fake of
// the storage unit tests and the simulated disk of the deterministic simulator.
//
// Model. Every file (inode) has two images:
//   - the current image, what reads see;
//   - the durable image, what survives a crash;
// plus the list of operations (writes, truncations) applied to the current image since the
// last File::sync(). sync() replays that list onto the durable image. Names live in two
// namespaces, current and durable; create, rename and remove change the current one and
// queue an operation on their directory; sync_dir(dir) replays that directory's queue onto
// the durable namespace. Directories themselves are durable as soon as created.
//
// crash(prng):
//   - without a prng: every unsynced operation is lost (the durable images and namespace
//     become current);
//   - with a prng (adversarial): for each file a random prefix of its unsynced operations
//     survives, the last surviving write possibly as a torn prefix of its bytes (gaps read as
//     zeros). This is the log's assumption about a file's unsynced appends: they reach the
//     medium in order, so a power loss damages only the unsynced suffix. A disk that breaks it
//     (persists a later append, loses an earlier one) makes recovery report kCorruption
//     (segment.h), never drop entries silently. For each directory a random prefix of its
//     unsynced name operations survives (journaled metadata is ordered), or, with
//     names_in_any_order, a random subset (POSIX promises no order at all).
//   After a crash every File handle opened before it fails with kIoError ("crashed"), as the
//   process that held it is gone.
//
// Faults: a capacity (writes beyond it write what fits and fail with kNoSpace, like a short
// write at ENOSPC; File::reserve counts against it, and writes inside reserved space need no
// more room), failing the next N writes/syncs/reads with kIoError, read errors at a
// position of a file, and bit flips (in both images, as on the medium).
//
// One flush for several files (file_system.h): the files of one MemoryFileSystem share a
// flush domain (set_flush_domain(false) turns that off: flush_domain() 0, write_out()
// kUnsupported). A successful sync() of any file acts as the device's cache flush: of every
// other file's written-out operations (File::write_out), the leading run of writes that lie
// wholly inside that file's durable image becomes durable; a write that extends the file, a
// truncation, and everything after them stay unsynced until that file's own sync(). So a
// caller that counts on a shared flush for a write that needed metadata loses it at a crash.
//
// Deviations from POSIX, on purpose: the space of a removed file is freed at once even if a
// handle is still open; no permissions, links or holes.
//
// Thread-safe (one mutex); File handles may be used from several threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/prng.h"
#include "storage/file_system.h"

namespace mq::storage {

class MemoryFileSystem final : public FileSystem {
 public:
  MemoryFileSystem();
  ~MemoryFileSystem() override;

  // FileSystem.
  Result<std::shared_ptr<File>> open(const std::string& path, OpenOptions options) override;
  Status create_dirs(const std::string& path) override;
  Result<std::vector<std::string>> list(const std::string& dir) override;
  Status remove(const std::string& path) override;
  Status rename(const std::string& from, const std::string& to) override;
  Status sync_dir(const std::string& dir) override;
  Result<bool> exists(const std::string& path) override;
  Result<std::uint64_t> free_bytes(const std::string& path) override;

  // Crash: see the class comment.
  void crash(Prng* prng = nullptr, bool names_in_any_order = false);

  // Faults.
  void set_capacity_bytes(std::uint64_t capacity_bytes);  // UINT64_MAX: unlimited
  void fail_next_writes(int count);                       // kIoError, nothing written
  void fail_next_syncs(int count);                        // kIoError, nothing made durable
  // Lets `successful` more syncs (file or directory) succeed, then fails the next one.
  void fail_sync_after(int successful);
  void fail_next_reads(int count);                        // kIoError
  // Reads of `path` whose range covers `position` fail with kIoError (until cleared).
  void set_read_error(const std::string& path, std::uint64_t position);
  void clear_read_errors();
  // XOR `mask` into the byte at `position` of both images. kOutOfRange beyond the end.
  Status corrupt_byte(const std::string& path, std::uint64_t position, std::uint8_t mask);

  // Inspection and test helpers.
  std::uint64_t used_bytes() const;
  std::uint64_t sync_count() const;  // File::sync() calls that succeeded
  std::uint64_t write_out_count() const;  // File::write_out() calls that succeeded
  // Files share one flush domain (the default) or none (each file synced on its own).
  void set_flush_domain(bool shared);
  Result<Buffer> read_file(const std::string& path) const;            // current image
  Result<std::uint64_t> durable_size(const std::string& path) const;  // after a crash, if named
  // Replaces the file (creating it) with `bytes`, durably (both images, both namespaces).
  Status write_file_durably(const std::string& path, BufferView bytes);
  Status truncate_file(const std::string& path, std::uint64_t size);  // both images

  struct Inode;

 private:
  friend class MemoryFile;
  struct NameOp {
    enum class Kind { kLink, kUnlink } kind;
    std::string name;  // full path
    std::shared_ptr<Inode> inode;
  };
  static std::string parent_of(const std::string& path);
  std::uint64_t used_bytes_locked() const;

  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Inode>> names_;          // current namespace
  std::map<std::string, std::shared_ptr<Inode>> durable_names_;  // survives a crash
  std::map<std::string, std::vector<NameOp>> pending_name_ops_;  // per directory
  std::set<std::string> dirs_;
  std::uint64_t crash_epoch_ = 0;
  std::uint64_t capacity_bytes_;
  int fail_writes_ = 0;
  int fail_syncs_ = 0;
  int syncs_before_failure_ = -1;  // -1: no delayed failure armed
  bool take_sync_failure_locked();
  int fail_reads_ = 0;
  std::map<std::string, std::set<std::uint64_t>> read_errors_;
  std::uint64_t sync_count_ = 0;
  std::uint64_t write_out_count_ = 0;
  static std::uint64_t next_flush_domain();
  std::uint64_t flush_domain_ = next_flush_domain();
  std::vector<std::weak_ptr<Inode>> written_out_inodes_;  // written_out > 0 (or expired)
  void flush_written_out_locked();
};

}  // namespace mq::storage
