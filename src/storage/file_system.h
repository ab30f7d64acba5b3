// All operating-system access of the storage layer goes through FileSystem/File (leveldb's
// Env idea). Two implementations:
//   - posix_file_system(): the real one (pread/pwritev/fdatasync/rename/fsync of directories);
//   - MemoryFileSystem (memory_file_system.h): in memory, with fault injection and precise
//     crash semantics; it is also the simulated disk of the deterministic simulator.
//
// Durability contract (the same for both implementations, and what the log relies on):
//   - File::write_at() data survives a crash only after a later File::sync() on that file
//     returned OK (fdatasync: data and the size needed to read it back).
//   - A created, renamed or removed name survives a crash only after sync_dir() of the
//     directory holding it returned OK. rename() is atomic: after a crash the target name
//     holds either the old file or the new one, never a mix.
//   - File::truncate() survives a crash only after a later File::sync().
//   - One flush for several files (File::flush_domain, File::write_out): bytes written to a
//     file F and then written out (write_out() returned OK) also survive a crash once a
//     later sync() of *any* file of F's flush domain returned OK, provided they overwrite
//     bytes already durable in F (inside F's durable size, blocks written and synced before:
//     no metadata is needed to read them back). The caller must know that; the file system
//     does not check it (the in-memory one models it strictly: see memory_file_system.h).
// Errors are values: ENOSPC/EDQUOT map to ErrorCode::kNoSpace, everything else to kIoError.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"

namespace mq::storage {

// Alignment of direct-I/O writes (offset, length and buffer address): the page size, which
// is also a multiple of every logical block size Linux supports for O_DIRECT.
inline constexpr std::size_t kDirectIoAlignment = 4096;

class File {
 public:
  virtual ~File() = default;

  // Reads up to out.size() bytes at `offset`; returns how many were read (fewer only at end of
  // file). Never reads past the end.
  virtual Result<std::size_t> read_at(std::uint64_t offset, std::span<std::uint8_t> out) = 0;
  // Writes all of `pieces`, back to back, starting at `offset` (extending the file if needed).
  // On error some prefix of the bytes may have been written: the caller rolls back with
  // truncate() (the log does, see segment.cc).
  virtual Status write_at(std::uint64_t offset, std::span<const BufferView> pieces) = 0;
  Status write_at(std::uint64_t offset, BufferView bytes) {
    const BufferView pieces[1] = {bytes};
    return write_at(offset, pieces);
  }
  // Writes `bytes` at `offset` bypassing the page cache (O_DIRECT): offset, bytes.size() and
  // bytes.data() must be multiples of kDirectIoAlignment. Same durability as write_at (only
  // after a later sync()) and the same roll-back rule on error. kUnsupported when the file
  // or its file system offers no direct I/O: the caller then writes through write_at().
  virtual Status write_direct(std::uint64_t offset, BufferView bytes) {
    (void)offset;
    (void)bytes;
    return Status::unsupported("direct I/O not supported");
  }
  // Reads up to out.size() bytes at `offset` bypassing the page cache (O_DIRECT) into memory
  // the caller reuses: offset, out.size() and out.data() must be multiples of
  // kDirectIoAlignment. Returns how many bytes were read (fewer only at the end of the file).
  // Bytes written through the page cache and not yet written back are written back first (the
  // kernel does), so the result is what read_at() would give. kUnsupported when the file or
  // its file system offers no direct I/O: the caller reads another way. Any thread.
  virtual Result<std::size_t> read_direct(std::uint64_t offset, std::span<std::uint8_t> out) {
    (void)offset;
    (void)out;
    return Status::unsupported("direct I/O not supported");
  }
  // Allocates the space of [offset, offset + length) without changing the file's size or
  // contents (fallocate FALLOC_FL_KEEP_SIZE): a later write inside the range cannot fail for
  // lack of space. kNoSpace when the space is not there; kUnsupported when the file system
  // cannot reserve (the caller then writes at once, where a full disk surfaces). A later
  // truncate() releases what lies beyond the new size. Makes nothing durable.
  virtual Status reserve(std::uint64_t offset, std::uint64_t length) {
    (void)offset;
    (void)length;
    return Status::unsupported("space reservation not supported");
  }
  // Allocates the space of [offset, offset + length) and extends the file's size to at least
  // offset + length (fallocate mode 0): the new range reads as zeros, a later write inside it
  // cannot fail for lack of space, and it does not extend the file (on ext4, O_DIRECT writes
  // that extend a file are serialized; writes inside its size can run concurrently).
  // kNoSpace / kUnsupported as for reserve(). Makes nothing durable (after a crash the file
  // may or may not have the new size; the range reads as zeros either way).
  virtual Status allocate(std::uint64_t offset, std::uint64_t length) {
    (void)offset;
    (void)length;
    return Status::unsupported("allocation not supported");
  }
  // fdatasync.
  virtual Status sync() = 0;
  // The device write cache this file's data goes through, as far as sync() is known to
  // flush it for every file (docs/storage_testing.md, "One flush per round"): files with the
  // same non-zero domain share it, so one sync() makes durable what the others wrote out
  // (write_out) before it, under the contract's condition above. 0: unknown, never shared
  // (every file is synced on its own). Posix: the device number, on ext4 and XFS only.
  virtual std::uint64_t flush_domain() const { return 0; }
  // Writes the file's dirty cached data to the device and waits for it (sync_file_range
  // WAIT_BEFORE | WRITE | WAIT_AFTER), without metadata and without flushing the device's
  // cache: durable only after a later sync() in the same flush domain (see above). An error
  // means that data may be lost (treat as a failed sync). kUnsupported by default.
  virtual Status write_out() { return Status::unsupported("write-out not supported"); }
  // Hint: start writing [offset, offset + length) back to the device now, without waiting
  // (sync_file_range SYNC_FILE_RANGE_WRITE), so a later sync() has less left to do. Makes
  // nothing durable. length 0: to the end of the file. Default: no-op.
  virtual void start_writeback(std::uint64_t offset, std::uint64_t length) {
    (void)offset;
    (void)length;
  }
  virtual Status truncate(std::uint64_t size) = 0;
  virtual Result<std::uint64_t> size() = 0;
  // The OS file descriptor for sendfile(), or -1 when there is none (in-memory files).
  virtual int native_handle() const = 0;
};

struct OpenOptions {
  bool create = false;     // create the file if missing
  bool exclusive = false;  // with create: fail with kAlreadyExists if it exists
  bool read_only = false;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  virtual Result<std::shared_ptr<File>> open(const std::string& path, OpenOptions options) = 0;
  // Creates the directory and its missing parents; OK if it exists.
  virtual Status create_dirs(const std::string& path) = 0;
  // File names (not paths) in `dir`, without "." and "..", in no particular order.
  virtual Result<std::vector<std::string>> list(const std::string& dir) = 0;
  virtual Status remove(const std::string& path) = 0;
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  // Makes creations, renames and removals of names in `dir` durable (fsync of the directory).
  virtual Status sync_dir(const std::string& dir) = 0;
  virtual Result<bool> exists(const std::string& path) = 0;
  // Bytes still available to an unprivileged writer on the file system holding `path`.
  virtual Result<std::uint64_t> free_bytes(const std::string& path) = 0;
};

// The process-wide real file system (stateless; never destroyed).
FileSystem* posix_file_system();

// "dir/name".
std::string join_path(const std::string& dir, const std::string& name);

// Reads exactly out.size() bytes at `offset`, or fails with kCorruption ("short read") naming
// `what`.
Status read_exact(File& file, std::uint64_t offset, std::span<std::uint8_t> out,
                  const std::string& what);

}  // namespace mq::storage
