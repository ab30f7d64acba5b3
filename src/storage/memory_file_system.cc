#include "storage/memory_file_system.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>

namespace mq::storage {

struct MemoryFileSystem::Inode {
  struct Op {
    bool is_write = true;
    std::uint64_t offset = 0;           // write: position; truncate: new size
    std::vector<std::uint8_t> bytes;    // write only
  };
  std::vector<std::uint8_t> data;     // current image
  std::vector<std::uint8_t> durable;  // crash image
  std::vector<Op> pending;            // applied to `data`, not yet to `durable`
  // The first `written_out` of `pending` were written out (File::write_out): another file's
  // sync() makes the leading ones that overwrite durable bytes durable (flush_written_out).
  std::size_t written_out = 0;
  // Space reserved by File::reserve (counted as used); truncate() releases what lies beyond
  // the new size, and a crash all of it.
  std::uint64_t reserved_end = 0;
  std::uint64_t allocated() const { return std::max<std::uint64_t>(data.size(), reserved_end); }

  static void apply(std::vector<std::uint8_t>& image, const Op& op, std::size_t bytes_kept) {
    if (!op.is_write) {
      image.resize(op.offset);
      return;
    }
    if (bytes_kept == 0) return;
    if (image.size() < op.offset + bytes_kept) image.resize(op.offset + bytes_kept);
    std::memcpy(image.data() + op.offset, op.bytes.data(), bytes_kept);
  }
};

class MemoryFile final : public File {
 public:
  MemoryFile(MemoryFileSystem* fs, std::shared_ptr<MemoryFileSystem::Inode> inode,
             std::string path, std::uint64_t epoch, bool read_only)
      : fs_(fs), inode_(std::move(inode)), path_(std::move(path)), epoch_(epoch),
        read_only_(read_only) {}

  Result<std::size_t> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    std::lock_guard lock(fs_->mutex_);
    MQ_RETURN_IF_ERROR(check_alive());
    if (fs_->fail_reads_ > 0) {
      --fs_->fail_reads_;
      return Status::io_error("read " + path_ + ": injected read error");
    }
    const auto& data = inode_->data;
    if (offset >= data.size()) return std::size_t{0};
    std::size_t n = std::min<std::uint64_t>(out.size(), data.size() - offset);
    auto errors = fs_->read_errors_.find(path_);
    if (errors != fs_->read_errors_.end()) {
      auto it = errors->second.lower_bound(offset);
      if (it != errors->second.end() && *it < offset + n) {
        return Status::io_error("read " + path_ + ": injected media error at position " +
                                std::to_string(*it));
      }
    }
    if (n > 0) std::memcpy(out.data(), data.data() + offset, n);
    return n;
  }

  // Direct reads are modelled as reads with O_DIRECT's alignment rules checked.
  Result<std::size_t> read_direct(std::uint64_t offset, std::span<std::uint8_t> out) override {
    if (offset % kDirectIoAlignment != 0 || out.size() % kDirectIoAlignment != 0 ||
        reinterpret_cast<std::uintptr_t>(out.data()) % kDirectIoAlignment != 0) {
      return Status::invalid_argument("read_direct " + path_ + ": unaligned");
    }
    return read_at(offset, out);
  }

  // Direct I/O is modelled as a write with O_DIRECT's alignment rules checked.
  Status write_direct(std::uint64_t offset, BufferView bytes) override {
    if (offset % kDirectIoAlignment != 0 || bytes.size() % kDirectIoAlignment != 0 ||
        reinterpret_cast<std::uintptr_t>(bytes.data()) % kDirectIoAlignment != 0) {
      return Status::invalid_argument("write_direct " + path_ + ": unaligned");
    }
    const BufferView pieces[1] = {bytes};
    return write_at(offset, pieces);
  }

  Status write_at(std::uint64_t offset, std::span<const BufferView> pieces) override {
    std::lock_guard lock(fs_->mutex_);
    MQ_RETURN_IF_ERROR(check_alive());
    if (read_only_) return Status::io_error("write " + path_ + ": opened read-only");
    if (fs_->fail_writes_ > 0) {
      --fs_->fail_writes_;
      return Status::io_error("write " + path_ + ": injected write error");
    }
    std::vector<std::uint8_t> bytes;
    for (BufferView piece : pieces) bytes.insert(bytes.end(), piece.begin(), piece.end());
    // Capacity: the part that grows the file must fit; write what fits, then fail.
    std::uint64_t end = offset + bytes.size();
    std::uint64_t size = inode_->data.size();
    // Growth within the reserved space needs no room.
    std::uint64_t allocated = inode_->allocated();
    std::uint64_t growth = end > allocated ? end - allocated : 0;
    std::uint64_t used = fs_->used_bytes_locked();
    std::uint64_t room = fs_->capacity_bytes_ > used ? fs_->capacity_bytes_ - used : 0;
    bool short_write = growth > room;
    if (short_write) {
      std::uint64_t keep_end = std::max<std::uint64_t>(allocated, offset) + room;
      (void)size;
      bytes.resize(keep_end > offset ? keep_end - offset : 0);
    }
    if (!bytes.empty()) {
      MemoryFileSystem::Inode::Op op{true, offset, std::move(bytes)};
      MemoryFileSystem::Inode::apply(inode_->data, op, op.bytes.size());
      inode_->pending.push_back(std::move(op));
    }
    if (short_write) {
      return Status::no_space("write " + path_ + ": no space left on device (in-memory capacity " +
                              std::to_string(fs_->capacity_bytes_) + " bytes)");
    }
    return Status::ok();
  }

  Status sync() override {
    std::lock_guard lock(fs_->mutex_);
    MQ_RETURN_IF_ERROR(check_alive());
    if (fs_->take_sync_failure_locked()) {
      return Status::io_error("fdatasync " + path_ + ": injected sync error");
    }
    for (const auto& op : inode_->pending) {
      MemoryFileSystem::Inode::apply(inode_->durable, op, op.bytes.size());
    }
    inode_->pending.clear();
    inode_->written_out = 0;
    ++fs_->sync_count_;
    // The device's cache flush: what other files wrote out is on the medium now.
    fs_->flush_written_out_locked();
    return Status::ok();
  }

  std::uint64_t flush_domain() const override { return fs_->flush_domain_; }

  Status write_out() override {
    std::lock_guard lock(fs_->mutex_);
    MQ_RETURN_IF_ERROR(check_alive());
    if (fs_->flush_domain_ == 0) return Status::unsupported("write-out off (set_flush_domain)");
    if (fs_->take_sync_failure_locked()) {
      return Status::io_error("sync_file_range " + path_ + ": injected write-out error");
    }
    if (inode_->written_out == 0 && !inode_->pending.empty()) {
      fs_->written_out_inodes_.push_back(inode_);
    }
    inode_->written_out = inode_->pending.size();
    ++fs_->write_out_count_;
    return Status::ok();
  }

  Status truncate(std::uint64_t size) override {
    std::lock_guard lock(fs_->mutex_);
    MQ_RETURN_IF_ERROR(check_alive());
    if (read_only_) return Status::io_error("truncate " + path_ + ": opened read-only");
    MemoryFileSystem::Inode::Op op{false, size, {}};
    MemoryFileSystem::Inode::apply(inode_->data, op, 0);
    inode_->reserved_end = std::min(inode_->reserved_end, size);
    inode_->pending.push_back(std::move(op));
    return Status::ok();
  }

  // Modelled as space accounting only: the reservation counts against the capacity.
  Status reserve(std::uint64_t offset, std::uint64_t length) override {
    std::lock_guard lock(fs_->mutex_);
    MQ_RETURN_IF_ERROR(check_alive());
    if (read_only_) return Status::io_error("reserve " + path_ + ": opened read-only");
    std::uint64_t end = offset + length;
    std::uint64_t allocated = inode_->allocated();
    std::uint64_t growth = end > allocated ? end - allocated : 0;
    std::uint64_t used = fs_->used_bytes_locked();
    std::uint64_t room = fs_->capacity_bytes_ > used ? fs_->capacity_bytes_ - used : 0;
    if (growth > room) {
      return Status::no_space("reserve " + path_ + ": no space left on device (in-memory capacity " +
                              std::to_string(fs_->capacity_bytes_) + " bytes)");
    }
    inode_->reserved_end = std::max(inode_->reserved_end, end);
    return Status::ok();
  }

  Result<std::uint64_t> size() override {
    std::lock_guard lock(fs_->mutex_);
    MQ_RETURN_IF_ERROR(check_alive());
    return static_cast<std::uint64_t>(inode_->data.size());
  }

  int native_handle() const override { return -1; }

 private:
  Status check_alive() const {
    if (epoch_ != fs_->crash_epoch_) {
      return Status::io_error(path_ + ": file handle from before a crash");
    }
    return Status::ok();
  }

  MemoryFileSystem* fs_;
  std::shared_ptr<MemoryFileSystem::Inode> inode_;
  std::string path_;
  std::uint64_t epoch_;
  bool read_only_;
};

MemoryFileSystem::MemoryFileSystem() : capacity_bytes_(std::numeric_limits<std::uint64_t>::max()) {
  dirs_.insert("");
  dirs_.insert("/");
}
MemoryFileSystem::~MemoryFileSystem() = default;

std::uint64_t MemoryFileSystem::next_flush_domain() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1);
}

void MemoryFileSystem::set_flush_domain(bool shared) {
  std::lock_guard lock(mutex_);
  flush_domain_ = shared ? next_flush_domain() : 0;
}

std::uint64_t MemoryFileSystem::write_out_count() const {
  std::lock_guard lock(mutex_);
  return write_out_count_;
}

// Strict on purpose: of each file's written-out operations, only a leading run of writes that
// lie wholly inside the durable image becomes durable. A write that extends the file needs
// its new size committed (metadata), and a truncation is metadata: both, and everything after
// them, wait for that file's own sync(). A caller that relies on a shared flush for such
// writes loses them at the next crash here, as it could on a real disk.
void MemoryFileSystem::flush_written_out_locked() {
  for (auto& weak : written_out_inodes_) {
    std::shared_ptr<Inode> inode = weak.lock();
    if (!inode) continue;
    std::size_t n = 0;
    while (n < inode->written_out && n < inode->pending.size()) {
      const Inode::Op& op = inode->pending[n];
      if (!op.is_write || op.offset + op.bytes.size() > inode->durable.size()) break;
      Inode::apply(inode->durable, op, op.bytes.size());
      ++n;
    }
    inode->pending.erase(inode->pending.begin(),
                         inode->pending.begin() + static_cast<std::ptrdiff_t>(n));
    inode->written_out -= n;
  }
  std::erase_if(written_out_inodes_, [](const std::weak_ptr<Inode>& weak) {
    auto inode = weak.lock();
    return !inode || inode->written_out == 0;
  });
}

std::string MemoryFileSystem::parent_of(const std::string& path) {
  std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::uint64_t MemoryFileSystem::used_bytes_locked() const {
  std::uint64_t used = 0;
  for (const auto& [name, inode] : names_) used += inode->allocated();
  return used;
}

Result<std::shared_ptr<File>> MemoryFileSystem::open(const std::string& path,
                                                     OpenOptions options) {
  std::lock_guard lock(mutex_);
  auto it = names_.find(path);
  if (it == names_.end()) {
    if (!options.create) return Status::not_found("open " + path + ": no such file");
    std::string parent = parent_of(path);
    if (!dirs_.count(parent)) return Status::not_found("open " + path + ": no such directory");
    auto inode = std::make_shared<Inode>();
    names_[path] = inode;
    pending_name_ops_[parent].push_back({NameOp::Kind::kLink, path, inode});
    it = names_.find(path);
  } else if (options.create && options.exclusive) {
    return Status::already_exists("open " + path + ": exists");
  }
  return std::shared_ptr<File>(
      std::make_shared<MemoryFile>(this, it->second, path, crash_epoch_, options.read_only));
}

Status MemoryFileSystem::create_dirs(const std::string& path) {
  std::lock_guard lock(mutex_);
  if (path.empty()) return Status::invalid_argument("create_dirs: empty path");
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    std::string prefix = path.substr(0, slash);
    start = slash + 1;
    if (prefix.empty()) continue;
    if (names_.count(prefix)) return Status::io_error("mkdir " + prefix + ": is a file");
    dirs_.insert(prefix);
  }
  return Status::ok();
}

Result<std::vector<std::string>> MemoryFileSystem::list(const std::string& dir) {
  std::lock_guard lock(mutex_);
  if (!dirs_.count(dir)) return Status::not_found("list " + dir + ": no such directory");
  std::vector<std::string> out;
  std::string prefix = dir == "/" ? "/" : dir + "/";
  for (const auto& [name, inode] : names_) {
    if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
        name.find('/', prefix.size()) == std::string::npos) {
      out.push_back(name.substr(prefix.size()));
    }
  }
  for (const auto& d : dirs_) {
    if (d.size() > prefix.size() && d.compare(0, prefix.size(), prefix) == 0 &&
        d.find('/', prefix.size()) == std::string::npos) {
      out.push_back(d.substr(prefix.size()));
    }
  }
  return out;
}

Status MemoryFileSystem::remove(const std::string& path) {
  std::lock_guard lock(mutex_);
  auto it = names_.find(path);
  if (it == names_.end()) return Status::not_found("unlink " + path + ": no such file");
  names_.erase(it);
  pending_name_ops_[parent_of(path)].push_back({NameOp::Kind::kUnlink, path, nullptr});
  return Status::ok();
}

Status MemoryFileSystem::rename(const std::string& from, const std::string& to) {
  std::lock_guard lock(mutex_);
  auto it = names_.find(from);
  if (it == names_.end()) return Status::not_found("rename " + from + ": no such file");
  if (!dirs_.count(parent_of(to))) return Status::not_found("rename to " + to + ": no directory");
  auto inode = it->second;
  names_.erase(it);
  names_[to] = inode;
  // Link before unlink: a crash between the two (different directories) keeps both names,
  // never neither; within one directory both land in one queue, in order.
  pending_name_ops_[parent_of(to)].push_back({NameOp::Kind::kLink, to, inode});
  pending_name_ops_[parent_of(from)].push_back({NameOp::Kind::kUnlink, from, nullptr});
  return Status::ok();
}

Status MemoryFileSystem::sync_dir(const std::string& dir) {
  std::lock_guard lock(mutex_);
  if (!dirs_.count(dir)) return Status::not_found("sync_dir " + dir + ": no such directory");
  if (take_sync_failure_locked()) {
    return Status::io_error("fsync directory " + dir + ": injected sync error");
  }
  for (auto& op : pending_name_ops_[dir]) {
    if (op.kind == NameOp::Kind::kLink) {
      durable_names_[op.name] = op.inode;
    } else {
      durable_names_.erase(op.name);
    }
  }
  pending_name_ops_.erase(dir);
  ++sync_count_;
  return Status::ok();
}

Result<bool> MemoryFileSystem::exists(const std::string& path) {
  std::lock_guard lock(mutex_);
  return names_.count(path) > 0 || dirs_.count(path) > 0;
}

Result<std::uint64_t> MemoryFileSystem::free_bytes(const std::string&) {
  std::lock_guard lock(mutex_);
  std::uint64_t used = used_bytes_locked();
  return capacity_bytes_ > used ? capacity_bytes_ - used : 0;
}

void MemoryFileSystem::crash(Prng* prng, bool names_in_any_order) {
  std::lock_guard lock(mutex_);
  // Names: a random prefix (or subset) of each directory's unsynced operations survives.
  for (auto& [dir, ops] : pending_name_ops_) {
    std::size_t keep = prng ? prng->range(0, ops.size()) : 0;
    if (prng && names_in_any_order) keep = ops.size();
    for (std::size_t i = 0; i < keep; ++i) {
      if (names_in_any_order && prng->chance(1, 2)) continue;
      if (ops[i].kind == NameOp::Kind::kLink) {
        durable_names_[ops[i].name] = ops[i].inode;
      } else {
        durable_names_.erase(ops[i].name);
      }
    }
  }
  pending_name_ops_.clear();
  // Data: every inode reachable before or after; each unsynced operation independently.
  std::set<Inode*> seen;
  auto settle = [&](const std::shared_ptr<Inode>& inode) {
    if (!seen.insert(inode.get()).second) return;
    if (prng) {
      // A random prefix of the file's unsynced operations survives, the last one possibly
      // torn (write-back of a file in order; see the class comment).
      std::size_t survive = prng->range(0, inode->pending.size());
      for (std::size_t i = 0; i < survive; ++i) {
        const auto& op = inode->pending[i];
        std::size_t kept = op.bytes.size();
        if (i + 1 == survive && op.is_write && !op.bytes.empty() && prng->chance(1, 2)) {
          kept = prng->uniform(op.bytes.size());
        }
        Inode::apply(inode->durable, op, kept);
      }
    }
    inode->pending.clear();
    inode->written_out = 0;
    inode->data = inode->durable;
    inode->reserved_end = 0;
  };
  for (auto& [name, inode] : names_) settle(inode);
  for (auto& [name, inode] : durable_names_) settle(inode);
  names_ = durable_names_;
  ++crash_epoch_;
}

void MemoryFileSystem::set_capacity_bytes(std::uint64_t capacity_bytes) {
  std::lock_guard lock(mutex_);
  capacity_bytes_ = capacity_bytes;
}
void MemoryFileSystem::fail_next_writes(int count) {
  std::lock_guard lock(mutex_);
  fail_writes_ = count;
}
void MemoryFileSystem::fail_next_syncs(int count) {
  std::lock_guard lock(mutex_);
  fail_syncs_ = count;
  syncs_before_failure_ = -1;
}
void MemoryFileSystem::fail_sync_after(int successful) {
  std::lock_guard lock(mutex_);
  syncs_before_failure_ = successful;
}
bool MemoryFileSystem::take_sync_failure_locked() {
  if (fail_syncs_ > 0) {
    --fail_syncs_;
    return true;
  }
  if (syncs_before_failure_ == 0) {
    syncs_before_failure_ = -1;
    return true;
  }
  if (syncs_before_failure_ > 0) --syncs_before_failure_;
  return false;
}
void MemoryFileSystem::fail_next_reads(int count) {
  std::lock_guard lock(mutex_);
  fail_reads_ = count;
}
void MemoryFileSystem::set_read_error(const std::string& path, std::uint64_t position) {
  std::lock_guard lock(mutex_);
  read_errors_[path].insert(position);
}
void MemoryFileSystem::clear_read_errors() {
  std::lock_guard lock(mutex_);
  read_errors_.clear();
}

Status MemoryFileSystem::corrupt_byte(const std::string& path, std::uint64_t position,
                                      std::uint8_t mask) {
  std::lock_guard lock(mutex_);
  auto it = names_.find(path);
  if (it == names_.end()) return Status::not_found("corrupt " + path + ": no such file");
  auto& inode = *it->second;
  if (position >= inode.data.size()) return Status::out_of_range("corrupt: beyond end");
  inode.data[position] ^= mask;
  if (position < inode.durable.size()) inode.durable[position] ^= mask;
  for (auto& op : inode.pending) {
    if (op.is_write && position >= op.offset && position < op.offset + op.bytes.size()) {
      op.bytes[position - op.offset] ^= mask;
    }
  }
  return Status::ok();
}

std::uint64_t MemoryFileSystem::used_bytes() const {
  std::lock_guard lock(mutex_);
  return used_bytes_locked();
}
std::uint64_t MemoryFileSystem::sync_count() const {
  std::lock_guard lock(mutex_);
  return sync_count_;
}

Result<Buffer> MemoryFileSystem::read_file(const std::string& path) const {
  std::lock_guard lock(mutex_);
  auto it = names_.find(path);
  if (it == names_.end()) return Status::not_found("read_file " + path + ": no such file");
  return Buffer(BufferView(it->second->data));
}

Result<std::uint64_t> MemoryFileSystem::durable_size(const std::string& path) const {
  std::lock_guard lock(mutex_);
  auto it = durable_names_.find(path);
  if (it == durable_names_.end()) return Status::not_found(path + ": not durably named");
  return static_cast<std::uint64_t>(it->second->durable.size());
}

Status MemoryFileSystem::write_file_durably(const std::string& path, BufferView bytes) {
  std::lock_guard lock(mutex_);
  if (!dirs_.count(parent_of(path))) return Status::not_found(path + ": no such directory");
  auto inode = std::make_shared<Inode>();
  inode->data.assign(bytes.begin(), bytes.end());
  inode->durable = inode->data;
  names_[path] = inode;
  durable_names_[path] = inode;
  return Status::ok();
}

Status MemoryFileSystem::truncate_file(const std::string& path, std::uint64_t size) {
  std::lock_guard lock(mutex_);
  auto it = names_.find(path);
  if (it == names_.end()) return Status::not_found(path + ": no such file");
  it->second->data.resize(std::min<std::uint64_t>(size, it->second->data.size()));
  it->second->durable.resize(std::min<std::uint64_t>(size, it->second->durable.size()));
  it->second->pending.clear();
  it->second->written_out = 0;
  return Status::ok();
}

}  // namespace mq::storage
