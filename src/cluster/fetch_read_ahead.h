// Read-ahead into memory for consumers that read a partition's log files (data older than the
// log's in-memory tail): the fetch path's alternative to sendfile(2) from the page cache.
//
// Why: the log writes with direct I/O, so a consumer behind the tail reads bytes the page
// cache does not hold. With sendfile the kernel reads them into fresh page-cache pages and
// the loopback receiver copies out of those pages; on some virtual machines the first CPU
// access to a page the guest has not used recently costs several µs per page, and the
// consumer paid about twice the CPU per message it pays for bytes in warm memory
// (docs/benchmarks.md, "Consume: read-ahead into reused memory"). Here a reader thread reads
// the bytes after those a consumer just fetched with direct I/O into a few reused, aligned
// blocks, and the next fetch sends them from there (sendmsg, no copy in the broker): no
// page-cache pages at all, and the disk read overlaps the previous response's transfer.
//
// What may be served from a block: bytes of the same file (the same storage::File object)
// below the FileSlice::written_end of the slice that planned the read, while the log's
// generation is the one the read was planned at. Bytes on the file change only through a
// truncation, which changes the generation; a fetch whose slice has another generation finds
// nothing here and uses the file as before. A read that fails or comes back short serves
// nothing either (its bytes go out with sendfile as before); nothing is lost or invented.
//
// Memory: blocks of kFetchReadAheadBlockBytes from one process-wide pool capped by
// fetch_read_ahead_budget_bytes() (RAFTMQ_FETCH_READ_AHEAD_MIB, default 64; 0 turns the
// read-ahead off). A partition reads at most kFetchReadAheadBlocks blocks ahead of its
// consumer; when the pool is exhausted a partition simply reads no further ahead (sendfile).
// A block stays alive while a response still being sent refers to it. Windows that were not
// served for 2 s (a consumer that stopped mid-file) give their blocks back when another
// partition needs one and the pool is exhausted. Windows do not keep a removed segment's file
// open.
//
// One consumer position per partition: the windows follow the last fetch that read the file;
// a second consumer elsewhere in the same partition misses them and uses the file.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "base/buffer.h"
#include "storage/log.h"

namespace mq::cluster {

inline constexpr std::uint64_t kFetchReadAheadBlockBytes = 2u << 20;
inline constexpr std::size_t kFetchReadAheadBlocks = 4;
// Windows start only for a consumer at least this far behind the file's written end (a
// catch-up read). One just behind the tail keeps the page cache and the kernel's read-ahead:
// there a window's read would often still run when its next fetch comes, and the fetch would
// wait for it on the event loop (e2e p50 at 50% load rose by a quarter when windows started
// 256 KiB behind).
inline constexpr std::uint64_t kFetchReadAheadStartBytes =
    kFetchReadAheadBlocks * kFetchReadAheadBlockBytes;
// Once started, a window is read while at least this many bytes lie ahead to read.
inline constexpr std::uint64_t kFetchReadAheadMinBytes = 256u << 10;

// RAFTMQ_FETCH_READ_AHEAD_MIB (default 64, 0: off, at most 4096), read once.
std::uint64_t fetch_read_ahead_budget_bytes();

// Counters of the process-wide pool and reader (tests, diagnostics).
struct FetchReadAheadStats {
  std::uint64_t reads = 0;          // windows read
  std::uint64_t read_failures = 0;  // reads that failed or were unsupported
  std::uint64_t bytes_read = 0;
  std::uint64_t blocks_in_use = 0;  // allocated blocks, free ones included
  std::uint64_t budget_refusals = 0;
};
FetchReadAheadStats fetch_read_ahead_stats();

class FetchReadAhead {
 public:
  // `budget_bytes` 0: never reads ahead. Tests pass their own; PartitionGroup passes
  // fetch_read_ahead_budget_bytes() (the pool's cap is the largest budget any caller passed).
  explicit FetchReadAhead(std::uint64_t budget_bytes);
  // Waits for the reads of its windows that are still running.
  ~FetchReadAhead();
  FetchReadAhead(const FetchReadAhead&) = delete;
  FetchReadAhead& operator=(const FetchReadAhead&) = delete;

  // The bytes [position, position + length) of `slice`'s file, as one or more pieces in order,
  // if windows planned for this file and generation hold all of them; nullopt otherwise (the
  // caller sends them from the file). Waits for a read still in flight that holds them.
  std::optional<std::vector<SharedBuffer>> take(const storage::FileSlice& slice,
                                                std::uint64_t position, std::uint64_t length);

  // After a fetch that read `slice`'s file up to `end` (the end of its last extent): forgets
  // windows wholly below `end` or of another file or generation, and starts reads so that up
  // to kFetchReadAheadBlocks windows cover the bytes after `end` (below slice.written_end).
  void advance(const storage::FileSlice& slice, std::uint64_t end);

  // When take() found nothing for `position`: forgets the windows and starts them at
  // `position` (the consumer moved to another file, or outran its windows), so that the
  // fetch can wait for the bytes in memory rather than send them from the page cache (whose
  // own read-ahead would read the same bytes from the disk a second time). False when no
  // window could be started (then the caller sends from the file).
  bool restart_at(const storage::FileSlice& slice, std::uint64_t position);

  // Forgets every window (the consumer reads from memory again, or the partition is idle).
  void clear();
  std::size_t windows() const { return windows_.size(); }

  struct Job;  // a window: one direct read of a block (fetch_read_ahead.cc)

 private:
  std::uint64_t budget_bytes_;
  // A file whose direct read failed (or is not supported): no more windows of it.
  std::weak_ptr<storage::File> failed_file_;
  std::deque<std::shared_ptr<Job>> windows_;  // in file order, contiguous or overlapping
  // Forgotten windows whose read may still run: the destructor waits for them, so that no
  // read outlives the partition (and the file system under it).
  std::vector<std::shared_ptr<Job>> retired_;
  template <typename Pred>
  void forget_if(Pred pred);
};

}  // namespace mq::cluster
