#include "storage/drop_unsynced_file_system.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace mq::storage {
namespace {

// The operations applied to one file since its last sync, in order.
struct Pending {
  struct Op {
    bool is_write = true;
    std::uint64_t offset = 0;  // write: where; truncate: the new size
    std::vector<std::uint8_t> bytes;
  };
  std::mutex mutex;
  std::vector<Op> ops;
};

class BufferedFile final : public File {
 public:
  BufferedFile(std::shared_ptr<File> base, std::shared_ptr<Pending> pending)
      : base_(std::move(base)), pending_(std::move(pending)) {}

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

  Result<std::uint64_t> size() override {
    std::lock_guard lock(pending_->mutex);
    MQ_ASSIGN_OR_RETURN(std::uint64_t size, base_->size());
    for (const Pending::Op& op : pending_->ops) {
      size = op.is_write ? std::max<std::uint64_t>(size, op.offset + op.bytes.size()) : op.offset;
    }
    return size;
  }

  // Now the recorded operations reach the real file, then fdatasync makes them durable.
  Status sync() override {
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
    MQ_RETURN_IF_ERROR(status);
    return base_->sync();
  }

  int native_handle() const override { return -1; }  // readers must see the buffered bytes

 private:
  std::shared_ptr<File> base_;
  std::shared_ptr<Pending> pending_;
};

class DropUnsyncedFileSystem final : public FileSystem {
 public:
  explicit DropUnsyncedFileSystem(FileSystem* base) : base_(base) { MQ_ASSERT(base != nullptr); }

  Result<std::shared_ptr<File>> open(const std::string& path, OpenOptions options) override {
    MQ_ASSIGN_OR_RETURN(std::shared_ptr<File> file, base_->open(path, options));
    std::lock_guard lock(mutex_);
    auto& pending = pending_[path];
    if (!pending) pending = std::make_shared<Pending>();
    return std::shared_ptr<File>(std::make_shared<BufferedFile>(std::move(file), pending));
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
};

}  // namespace

std::unique_ptr<FileSystem> make_drop_unsynced_file_system(FileSystem* base) {
  return std::make_unique<DropUnsyncedFileSystem>(base);
}

}  // namespace mq::storage
