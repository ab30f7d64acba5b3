#include "storage/drop_unsynced_file_system.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace mq::storage {
namespace {

// flush_domain() of files whose real file has none (posix: st_dev + 1, never this).
constexpr std::uint64_t kSimulatedDomain = UINT64_MAX;

// The operations applied to one file since its last sync, in order.
struct Pending {
  struct Op {
    bool is_write = true;
    std::uint64_t offset = 0;  // write: where; truncate: the new size
    std::vector<std::uint8_t> bytes;
  };
  std::mutex mutex;
  std::vector<Op> ops;
  // The first `written_out` of `ops` were written out (File::write_out), through `out_file`
  // (the real file of the handle that wrote them out).
  std::size_t written_out = 0;
  std::shared_ptr<File> out_file;
};

// One flush for several files (file_system.h): the written-out files, by flush domain.
struct Domains {
  std::mutex mutex;
  std::map<std::uint64_t, std::vector<std::weak_ptr<Pending>>> written_out;

  void add(std::uint64_t domain, const std::shared_ptr<Pending>& pending) {
    std::lock_guard lock(mutex);
    written_out[domain].push_back(pending);
  }
  // A sync of a file of `domain` returned OK: the device's cache was flushed, so the leading
  // written-out operations of every file of the domain that overwrite bytes already in the
  // real file (inside its size: no metadata needed to read them back) are durable; here they
  // reach the real file. An extension, a truncation or a failure stops that file's prefix.
  void flush(std::uint64_t domain, const Pending* syncing) {
    std::vector<std::shared_ptr<Pending>> files;
    {
      std::lock_guard lock(mutex);
      auto& list = written_out[domain];
      for (auto& weak : list) {
        if (auto p = weak.lock(); p && p.get() != syncing) files.push_back(std::move(p));
      }
      list.clear();
    }
    std::sort(files.begin(), files.end());  // a file added again after its sync: once
    files.erase(std::unique(files.begin(), files.end()), files.end());
    std::vector<std::shared_ptr<Pending>> still;
    for (auto& p : files) {
      std::lock_guard lock(p->mutex);
      std::size_t n = 0;
      Result<std::uint64_t> size = p->out_file ? p->out_file->size() : Result<std::uint64_t>(0);
      while (size.has_value() && n < p->written_out && n < p->ops.size()) {
        const Pending::Op& op = p->ops[n];
        if (!op.is_write || op.offset + op.bytes.size() > *size) break;
        if (!p->out_file->write_at(op.offset, BufferView(op.bytes.data(), op.bytes.size())).is_ok())
          break;
        ++n;
      }
      p->ops.erase(p->ops.begin(), p->ops.begin() + static_cast<std::ptrdiff_t>(n));
      p->written_out -= n;
      if (p->written_out > 0) still.push_back(std::move(p));
    }
    std::lock_guard lock(mutex);
    for (auto& p : still) written_out[domain].push_back(p);
  }
};

class BufferedFile final : public File {
 public:
  BufferedFile(std::shared_ptr<File> base, std::shared_ptr<Pending> pending,
               std::shared_ptr<Domains> domains)
      : base_(std::move(base)), pending_(std::move(pending)), domains_(std::move(domains)) {}

  Result<std::size_t> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    std::lock_guard lock(pending_->mutex);
    if (pending_->ops.empty()) return base_->read_at(offset, out);
    MQ_ASSIGN_OR_RETURN(std::uint64_t size, base_->size());
    MQ_ASSIGN_OR_RETURN(std::size_t got, base_->read_at(offset, out));
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(got), out.end(), std::uint8_t{0});
    const std::uint64_t end = offset + out.size();
    for (const Pending::Op& op : pending_->ops) {
      if (op.is_write) {
        std::uint64_t op_end = op.offset + op.bytes.size();
        std::uint64_t lo = std::max(offset, op.offset), hi = std::min(end, op_end);
        if (lo < hi) std::memcpy(out.data() + (lo - offset), op.bytes.data() + (lo - op.offset), hi - lo);
        size = std::max(size, op_end);
      } else {
        // Bytes at and after the cut are gone; a later extension reads zeros there.
        if (op.offset < end) {
          std::uint64_t from = std::max(op.offset, offset);
          std::memset(out.data() + (from - offset), 0, end - from);
        }
        size = op.offset;
      }
    }
    return static_cast<std::size_t>(size > offset ? std::min<std::uint64_t>(size - offset, out.size()) : 0);
  }

  Status write_at(std::uint64_t offset, std::span<const BufferView> pieces) override {
    std::lock_guard lock(pending_->mutex);
    auto& ops = pending_->ops;
    bool extend = !ops.empty() && ops.back().is_write &&
                  ops.back().offset + ops.back().bytes.size() == offset;
    if (!extend) ops.push_back(Pending::Op{true, offset, {}});
    for (BufferView piece : pieces) ops.back().bytes.insert(ops.back().bytes.end(), piece.begin(), piece.end());
    return Status::ok();
  }

  Status write_direct(std::uint64_t offset, BufferView bytes) override {
    const BufferView pieces[1] = {bytes};
    return write_at(offset, pieces);
  }

  // Space only, no contents: straight to the real file.
  Status reserve(std::uint64_t offset, std::uint64_t length) override {
    return base_->reserve(offset, length);
  }

  Status truncate(std::uint64_t size) override {
    std::lock_guard lock(pending_->mutex);
    pending_->ops.push_back(Pending::Op{false, size, {}});
    return Status::ok();
  }

  // The real file's domain: a sync() of any file of it flushes what the others wrote out.
  // Where the real file has none (tmpfs: the chaos suite's size-limited disks), one
  // simulated domain for every file of the wrapper: here durability is this wrapper's model
  // (what reached the real file survives the SIGKILL), so the model is the device.
  std::uint64_t flush_domain() const override {
    std::uint64_t domain = base_->flush_domain();
    return domain != 0 ? domain : kSimulatedDomain;
  }

  // Nothing reaches the real file yet: a crash now loses these writes unless a sync() of a
  // file of the same domain returns OK first (Domains::flush).
  Status write_out() override {
    const std::uint64_t domain = flush_domain();
    bool first = false;
    {
      std::lock_guard lock(pending_->mutex);
      if (pending_->ops.empty()) return Status::ok();
      first = pending_->written_out == 0;
      pending_->written_out = pending_->ops.size();
      pending_->out_file = base_;
    }
    if (first) domains_->add(domain, pending_);
    return Status::ok();
  }

  Result<std::uint64_t> size() override {
    std::lock_guard lock(pending_->mutex);
    MQ_ASSIGN_OR_RETURN(std::uint64_t size, base_->size());
    for (const Pending::Op& op : pending_->ops) {
      size = op.is_write ? std::max<std::uint64_t>(size, op.offset + op.bytes.size()) : op.offset;
    }
    return size;
  }

  // Now the recorded operations reach the real file, then fdatasync makes them durable.
  Status sync_own() {
    std::lock_guard lock(pending_->mutex);
    auto& ops = pending_->ops;
    std::size_t applied = 0;
    Status status;
    for (; applied < ops.size(); ++applied) {
      const Pending::Op& op = ops[applied];
      status = op.is_write ? base_->write_at(op.offset, BufferView(op.bytes.data(), op.bytes.size()))
                           : base_->truncate(op.offset);
      if (!status.is_ok()) break;  // the failed operation stays pending (it may be retried)
    }
    ops.erase(ops.begin(), ops.begin() + static_cast<std::ptrdiff_t>(applied));
    pending_->written_out -= std::min(pending_->written_out, applied);
    MQ_RETURN_IF_ERROR(status);
    return base_->sync();
  }

  // A sync, then the flush it implies for the other files of the domain (without holding
  // this file's lock: two files' syncs must not wait for each other's locks).
  Status sync() override {
    MQ_RETURN_IF_ERROR(sync_own());
    domains_->flush(flush_domain(), pending_.get());
    return Status::ok();
  }

  int native_handle() const override { return -1; }  // readers must see the buffered bytes

 private:
  std::shared_ptr<File> base_;
  std::shared_ptr<Pending> pending_;
  std::shared_ptr<Domains> domains_;
};

class DropUnsyncedFileSystem final : public FileSystem {
 public:
  explicit DropUnsyncedFileSystem(FileSystem* base) : base_(base) { MQ_ASSERT(base != nullptr); }

  Result<std::shared_ptr<File>> open(const std::string& path, OpenOptions options) override {
    MQ_ASSIGN_OR_RETURN(std::shared_ptr<File> file, base_->open(path, options));
    std::lock_guard lock(mutex_);
    auto& pending = pending_[path];
    if (!pending) pending = std::make_shared<Pending>();
    return std::shared_ptr<File>(
        std::make_shared<BufferedFile>(std::move(file), pending, domains_));
  }
  Status create_dirs(const std::string& path) override { return base_->create_dirs(path); }
  Result<std::vector<std::string>> list(const std::string& dir) override { return base_->list(dir); }
  Status remove(const std::string& path) override {
    MQ_RETURN_IF_ERROR(base_->remove(path));
    std::lock_guard lock(mutex_);
    pending_.erase(path);
    return Status::ok();
  }
  Status rename(const std::string& from, const std::string& to) override {
    MQ_RETURN_IF_ERROR(base_->rename(from, to));
    std::lock_guard lock(mutex_);
    auto it = pending_.find(from);
    if (it == pending_.end()) {
      pending_.erase(to);
    } else {
      pending_[to] = std::move(it->second);
      pending_.erase(from);
    }
    return Status::ok();
  }
  Status sync_dir(const std::string& dir) override { return base_->sync_dir(dir); }
  Result<bool> exists(const std::string& path) override { return base_->exists(path); }
  Result<std::uint64_t> free_bytes(const std::string& path) override { return base_->free_bytes(path); }

 private:
  FileSystem* base_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Pending>> pending_;  // by path, shared by handles
  std::shared_ptr<Domains> domains_ = std::make_shared<Domains>();
};

}  // namespace

std::unique_ptr<FileSystem> make_drop_unsynced_file_system(FileSystem* base) {
  return std::make_unique<DropUnsyncedFileSystem>(base);
}

}  // namespace mq::storage
