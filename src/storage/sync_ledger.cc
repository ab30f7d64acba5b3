// The sync ledger (sync_ledger.h, docs/formats/sync_ledger_format.md).
#include "storage/sync_ledger.h"

#include "base/crc32c.h"
#include "base/le_codec.h"
#include "base/thread_name.h"
#include "storage/metadata.h"

namespace mq::storage {

namespace fmt = sync_ledger_format;

void encode_sync_ledger_header(std::uint8_t* out) {
  le::encode_u32(out + fmt::kHeaderMagicAt, fmt::kMagic);
  le::encode_u16(out + fmt::kHeaderVersionAt, fmt::kVersion);
  le::encode_u16(out + fmt::kHeaderRecordBytesAt, static_cast<std::uint16_t>(fmt::kRecordBytes));
  le::encode_u32(out + fmt::kHeaderReservedAt, 0);
  le::encode_u32(out + fmt::kHeaderCrcAt, crc32c::value(out, fmt::kHeaderCrcAt));
}

void encode_sync_ledger_record(std::uint8_t* out, std::uint64_t key, std::uint64_t synced_end,
                               std::uint32_t kind) {
  le::encode_u64(out + fmt::kRecordKeyAt, key);
  le::encode_u64(out + fmt::kRecordSyncedEndAt, synced_end);
  le::encode_u32(out + fmt::kRecordKindAt, kind);
  le::encode_u32(out + fmt::kRecordCrcAt, crc32c::value(out, fmt::kRecordCrcAt));
}

Result<std::unique_ptr<SyncLedger>> SyncLedger::open(FileSystem* fs, SyncLedgerOptions options) {
  if (options.directory.empty()) return Status::invalid_argument("sync ledger: no directory");
  std::unique_ptr<SyncLedger> ledger(new SyncLedger(fs, std::move(options)));
  MQ_RETURN_IF_ERROR(fs->create_dirs(ledger->options_.directory));
  MQ_RETURN_IF_ERROR(ledger->load());
  {
    // Always rewritten at open: appends then start after the last valid record, and neither a
    // torn tail nor a damaged record stays in the file.
    std::lock_guard lock(ledger->mutex_);
    MQ_RETURN_IF_ERROR(ledger->compact_locked());
  }
  if (ledger->options_.sync_thread) {
    ledger->thread_ = std::thread([l = ledger.get()] {
      name_this_thread("rmq-ledger");
      l->thread_main();
    });
  }
  return ledger;
}

SyncLedger::~SyncLedger() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  dirty_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string SyncLedger::path() const { return join_path(options_.directory, fmt::kFileName); }

Status SyncLedger::load() {
  const std::string file_path = path();
  MQ_ASSIGN_OR_RETURN(auto bytes, read_whole_file(fs_, file_path, fmt::kFileBytesMax));
  if (!bytes) return Status::ok();
  const std::uint8_t* p = bytes->data();
  const std::size_t size = bytes->size();
  if (size < fmt::kHeaderBytes || le::decode_u32(p + fmt::kHeaderMagicAt) != fmt::kMagic ||
      le::decode_u32(p + fmt::kHeaderCrcAt) != crc32c::value(p, fmt::kHeaderCrcAt)) {
    // Only ever created complete (write tmp, fsync, rename): this is damage. The bounds are
    // lost; the replicas open as before the ledger existed.
    open_warnings_.push_back(file_path + ": damaged header (" + std::to_string(size) +
                             " bytes); its records are ignored");
    return Status::ok();
  }
  const std::uint16_t version = le::decode_u16(p + fmt::kHeaderVersionAt);
  const std::uint16_t record_bytes = le::decode_u16(p + fmt::kHeaderRecordBytesAt);
  if (version != fmt::kVersion || record_bytes != fmt::kRecordBytes) {
    return Status::corruption(file_path + ": unsupported version " + std::to_string(version) +
                              " (record size " + std::to_string(record_bytes) + ")");
  }
  const std::size_t count = (size - fmt::kHeaderBytes) / fmt::kRecordBytes;
  // Records after the last valid one were being written when the broker stopped (torn: they
  // described entries not yet acknowledged) unless damaged later; both are ignored.
  std::size_t last_valid = count;  // count: none
  auto valid = [&](std::size_t i) {
    const std::uint8_t* r = p + fmt::kHeaderBytes + i * fmt::kRecordBytes;
    return le::decode_u32(r + fmt::kRecordCrcAt) == crc32c::value(r, fmt::kRecordCrcAt);
  };
  for (std::size_t i = count; i-- > 0;) {
    if (valid(i)) {
      last_valid = i;
      break;
    }
  }
  const std::size_t valid_end = last_valid == count ? 0 : last_valid + 1;
  // Zero bytes after it are free space (kPreallocateBytes); anything else is a torn append.
  bool torn = false;
  for (std::size_t at = fmt::kHeaderBytes + valid_end * fmt::kRecordBytes; at < size && !torn; ++at) {
    torn = p[at] != 0;
  }
  stats_.torn_records = torn ? 1 : 0;
  for (std::size_t i = 0; i < valid_end; ++i) {
    const std::uint8_t* r = p + fmt::kHeaderBytes + i * fmt::kRecordBytes;
    const std::uint32_t kind = le::decode_u32(r + fmt::kRecordKindAt);
    if (!valid(i) || (kind != fmt::kKindSyncedEnd && kind != fmt::kKindForget)) {
      ++stats_.damaged_records;
      open_warnings_.push_back(file_path + ": record " + std::to_string(i) + " at byte " +
                               std::to_string(fmt::kHeaderBytes + i * fmt::kRecordBytes) +
                               " is damaged (valid records follow); skipped");
      continue;
    }
    const std::uint64_t key = le::decode_u64(r + fmt::kRecordKeyAt);
    if (kind == fmt::kKindForget) {
      ends_.erase(key);
    } else {
      ends_[key] = le::decode_u64(r + fmt::kRecordSyncedEndAt);
    }
  }
  return Status::ok();
}

std::optional<LogIndex> SyncLedger::synced_end(std::uint64_t key) const {
  std::lock_guard lock(mutex_);
  auto it = ends_.find(key);
  if (it == ends_.end()) return std::nullopt;
  return LogIndex(it->second);
}

Status SyncLedger::append_locked(std::uint64_t key, std::uint64_t synced_end, std::uint32_t kind) {
  std::uint8_t record[fmt::kRecordBytes];
  encode_sync_ledger_record(record, key, synced_end, kind);
  if (file_ && size_ + fmt::kRecordBytes > allocated_) {
    // Extend the zero-filled space (changes the size: this one sync commits the journal).
    static const std::vector<std::uint8_t> zeros(fmt::kPreallocateBytes, 0);
    if (file_->write_at(allocated_, BufferView(zeros.data(), zeros.size())).is_ok()) {
      allocated_ += fmt::kPreallocateBytes;
    }
  }
  if (kind == fmt::kKindForget) {
    ends_.erase(key);
  } else {
    ends_[key] = synced_end;
  }
  Status written = file_ ? file_->write_at(size_, BufferView(record, sizeof record))
                         : Status::io_error(path() + ": not open");
  if (!written.is_ok()) {
    // The in-memory value stands; the next compaction rewrites the file from it. A partial
    // record at size_ is overwritten by the next append (or dropped by the rewrite).
    ++stats_.write_errors;
    rewrite_ = true;
    dirty_cv_.notify_all();
    return written;
  }
  size_ += fmt::kRecordBytes;
  ++stats_.records_written;
  dirty_ = true;
  // Only a thread waiting for records is woken: during its pause between two syncs it would
  // wake, find no reason to run and sleep again, once per record (a futex call and two
  // context switches per durability report of every log).
  if (waiting_for_records_) dirty_cv_.notify_all();
  return Status::ok();
}

Status SyncLedger::record_synced(std::uint64_t key,
                                 const std::function<LogIndex()>& read_synced_end, bool durable) {
  std::shared_ptr<File> file;
  {
    std::lock_guard lock(mutex_);
    const std::uint64_t value = read_synced_end().value();
    auto it = ends_.find(key);
    if (it != ends_.end() && it->second == value) return Status::ok();
    MQ_RETURN_IF_ERROR(append_locked(key, value, fmt::kKindSyncedEnd));
    if (!durable) return Status::ok();
    file = file_;
  }
  Status synced = file->sync();
  std::lock_guard lock(mutex_);
  if (!synced.is_ok()) {
    ++stats_.write_errors;
    rewrite_ = true;
  } else {
    ++stats_.syncs;
  }
  return synced;
}

Status SyncLedger::forget(std::uint64_t key) {
  std::lock_guard lock(mutex_);
  if (ends_.count(key) == 0) return Status::ok();
  return append_locked(key, 0, fmt::kKindForget);
}

Status SyncLedger::compact_locked() {
  const std::size_t used = fmt::kHeaderBytes + ends_.size() * fmt::kRecordBytes;
  std::vector<std::uint8_t> bytes(used + fmt::kPreallocateBytes, 0);  // zeros: free space
  encode_sync_ledger_header(bytes.data());
  std::size_t at = fmt::kHeaderBytes;
  for (const auto& [key, end] : ends_) {
    encode_sync_ledger_record(bytes.data() + at, key, end, fmt::kKindSyncedEnd);
    at += fmt::kRecordBytes;
  }
  const BufferView pieces[1] = {BufferView(bytes.data(), bytes.size())};
  Status status = write_file_atomically(fs_, options_.directory, fmt::kFileName, pieces);
  if (status.is_ok()) {
    auto file = fs_->open(path(), OpenOptions{});
    if (file.has_value()) {
      file_ = std::move(*file);
      size_ = used;
      allocated_ = bytes.size();
      rewrite_ = false;
      dirty_ = false;  // the rewrite was synced
      ++stats_.compactions;
      return Status::ok();
    }
    status = file.error();
  }
  ++stats_.write_errors;
  rewrite_ = true;
  return status;
}

Status SyncLedger::compact() {
  std::lock_guard lock(mutex_);
  return compact_locked();
}

Status SyncLedger::sync_and_maybe_compact() {
  std::shared_ptr<File> file;
  {
    std::lock_guard lock(mutex_);
    if (rewrite_) return compact_locked();
    if (!dirty_) return Status::ok();
    dirty_ = false;
    file = file_;
  }
  Status synced = file->sync();  // records keep being appended meanwhile
  std::lock_guard lock(mutex_);
  if (!synced.is_ok()) {
    // After a failed fdatasync the kernel may have dropped the pages (fsyncgate): rewrite.
    ++stats_.write_errors;
    rewrite_ = true;
    return compact_locked();
  }
  ++stats_.syncs;
  if (size_ > options_.compact_bytes) return compact_locked();
  return Status::ok();
}

Status SyncLedger::sync() { return sync_and_maybe_compact(); }

void SyncLedger::thread_main() {
  while (true) {
    {
      std::unique_lock lock(mutex_);
      waiting_for_records_ = true;
      while (!stopping_ && !dirty_ && !rewrite_) {
        dirty_cv_.wait(lock);
        ++stats_.thread_wakeups;
      }
      waiting_for_records_ = false;
      if (stopping_ && !dirty_ && !rewrite_) return;
    }
    Status status = sync_and_maybe_compact();
    if (!status.is_ok()) {
      // Counted in write_errors; retried after a pause (a full disk does not spin the thread).
      std::unique_lock lock(mutex_);
      dirty_cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return stopping_; });
      if (stopping_) return;
    } else if (options_.sync_interval_ms > 0) {
      // At most one fdatasync per interval (SyncLedgerOptions::sync_interval_ms); a stop
      // still ends with a last sync of whatever was written meanwhile (the loop above).
      std::unique_lock lock(mutex_);
      const auto until =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.sync_interval_ms);
      while (!stopping_ && !rewrite_) {
        const bool timed_out = dirty_cv_.wait_until(lock, until) == std::cv_status::timeout;
        ++stats_.thread_wakeups;  // every return from the wait, to see what wakes it
        if (timed_out) break;
      }
    }
  }
}

std::uint64_t SyncLedger::file_bytes() const {
  std::lock_guard lock(mutex_);
  return size_;
}

SyncLedgerStats SyncLedger::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace mq::storage
