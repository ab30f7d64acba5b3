// The real FileSystem: POSIX calls, errno mapped to Status (ENOSPC → kNoSpace).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "storage/drop_unsynced_file_system.h"
#include "storage/file_system.h"

namespace mq::storage {
namespace {

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) { MQ_ASSERT(fd >= 0); }
  ~PosixFile() override {
    ::close(fd_);
    if (direct_fd_ >= 0) ::close(direct_fd_);
    if (read_direct_fd_ >= 0) ::close(read_direct_fd_);
  }
  PosixFile(const PosixFile&) = delete;
  PosixFile& operator=(const PosixFile&) = delete;

  Result<std::size_t> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    std::size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::pread(fd_, out.data() + done, out.size() - done,
                          static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::from_errno(errno, "pread " + path_);
      }
      if (n == 0) break;  // end of file
      done += static_cast<std::size_t>(n);
    }
    return done;
  }

  Status write_at(std::uint64_t offset, std::span<const BufferView> pieces) override {
    // pwritev in chunks of at most IOV_MAX pieces, resuming after short writes.
    std::vector<iovec> iov;
    iov.reserve(pieces.size());
    for (BufferView piece : pieces) {
      if (piece.empty()) continue;
      iov.push_back({const_cast<std::uint8_t*>(piece.data()), piece.size()});
    }
    std::size_t first = 0;
    std::uint64_t position = offset;
    while (first < iov.size()) {
      int count = static_cast<int>(std::min<std::size_t>(iov.size() - first, IOV_MAX));
      ssize_t n = ::pwritev(fd_, iov.data() + first, count, static_cast<off_t>(position));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::from_errno(errno, "pwritev " + path_);
      }
      if (n == 0) return Status::io_error("pwritev " + path_ + ": wrote nothing");
      position += static_cast<std::uint64_t>(n);
      auto left = static_cast<std::size_t>(n);
      while (left > 0 && first < iov.size()) {
        if (left >= iov[first].iov_len) {
          left -= iov[first].iov_len;
          ++first;
        } else {
          iov[first].iov_base = static_cast<std::uint8_t*>(iov[first].iov_base) + left;
          iov[first].iov_len -= left;
          left = 0;
        }
      }
    }
    return Status::ok();
  }

  // A second descriptor of the same file opened with O_DIRECT (the page-cache one keeps
  // serving reads and fdatasync, which covers the whole inode).
  Status write_direct(std::uint64_t offset, BufferView bytes) override {
    MQ_ASSERT(offset % kDirectIoAlignment == 0 && bytes.size() % kDirectIoAlignment == 0 &&
              reinterpret_cast<std::uintptr_t>(bytes.data()) % kDirectIoAlignment == 0);
    {
      std::lock_guard lock(direct_mutex_);
      if (direct_state_ == DirectState::kUnknown) {
        int fd;
        do {
          fd = ::open(path_.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
        } while (fd < 0 && errno == EINTR);
        direct_fd_ = fd;
        direct_state_ = fd >= 0 ? DirectState::kOpen : DirectState::kUnsupported;
      }
    }
    if (direct_state_ == DirectState::kUnsupported) {
      return Status::unsupported("O_DIRECT not available for " + path_);
    }
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::pwrite(direct_fd_, bytes.data() + done, bytes.size() - done,
                           static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EINVAL && done == 0) {  // alignment the device refuses: never again
          direct_state_ = DirectState::kUnsupported;
          return Status::unsupported("pwrite O_DIRECT " + path_ + ": EINVAL");
        }
        return Status::from_errno(errno, "pwrite O_DIRECT " + path_);
      }
      if (n == 0) return Status::io_error("pwrite O_DIRECT " + path_ + ": wrote nothing");
      done += static_cast<std::size_t>(n);
      if (done % kDirectIoAlignment != 0 && done < bytes.size()) {
        return Status::io_error("pwrite O_DIRECT " + path_ + ": unaligned short write");
      }
    }
    return Status::ok();
  }

  // A third descriptor, read-only with O_DIRECT, opened at the first direct read.
  Result<std::size_t> read_direct(std::uint64_t offset, std::span<std::uint8_t> out) override {
    MQ_ASSERT(offset % kDirectIoAlignment == 0 && out.size() % kDirectIoAlignment == 0 &&
              reinterpret_cast<std::uintptr_t>(out.data()) % kDirectIoAlignment == 0);
    int fd;
    {
      std::lock_guard lock(direct_mutex_);
      if (read_direct_state_ == DirectState::kUnknown) {
        do {
          fd = ::open(path_.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
        } while (fd < 0 && errno == EINTR);
        read_direct_fd_ = fd;
        read_direct_state_ = fd >= 0 ? DirectState::kOpen : DirectState::kUnsupported;
      }
      if (read_direct_state_ == DirectState::kUnsupported) {
        return Status::unsupported("O_DIRECT reads not available for " + path_);
      }
      fd = read_direct_fd_;
    }
    std::size_t done = 0;
    while (done < out.size()) {
      ssize_t n =
          ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EINVAL && done == 0) {  // alignment the device refuses: never again
          std::lock_guard lock(direct_mutex_);
          read_direct_state_ = DirectState::kUnsupported;
          return Status::unsupported("pread O_DIRECT " + path_ + ": EINVAL");
        }
        return Status::from_errno(errno, "pread O_DIRECT " + path_);
      }
      if (n == 0) break;  // end of file
      done += static_cast<std::size_t>(n);
      if (done % kDirectIoAlignment != 0) break;  // the end of the file within a block
    }
    return done;
  }

  Status sync() override {
    while (::fdatasync(fd_) != 0) {
      if (errno != EINTR) return Status::from_errno(errno, "fdatasync " + path_);
    }
    return Status::ok();
  }

  Status reserve(std::uint64_t offset, std::uint64_t length) override {
    while (::fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                       static_cast<off_t>(length)) != 0) {
      if (errno == EINTR) continue;
      if (errno == EOPNOTSUPP) return Status::unsupported("fallocate " + path_ + ": not supported");
      return Status::from_errno(errno, "fallocate " + path_);
    }
    return Status::ok();
  }

  Status allocate(std::uint64_t offset, std::uint64_t length) override {
    while (::fallocate(fd_, 0, static_cast<off_t>(offset), static_cast<off_t>(length)) != 0) {
      if (errno == EINTR) continue;
      if (errno == EOPNOTSUPP) return Status::unsupported("fallocate " + path_ + ": not supported");
      return Status::from_errno(errno, "fallocate " + path_);
    }
    return Status::ok();
  }

  std::uint64_t flush_domain() const override {
    // ext4 and XFS: fdatasync of any file ends with a cache flush of the device (a journal
    // commit with a pre-flush, or an explicit flush when no commit is needed), which covers
    // every write completed before it. Other file systems (btrfs copies on write, network
    // and FUSE file systems, tmpfs) are not assumed to.
    std::int64_t cached = flush_domain_.load(std::memory_order_relaxed);
    if (cached >= 0) return static_cast<std::uint64_t>(cached);
    std::uint64_t domain = find_flush_domain();
    flush_domain_.store(static_cast<std::int64_t>(domain), std::memory_order_relaxed);
    return domain;
  }

  std::uint64_t find_flush_domain() const {
    constexpr long kExt4Magic = 0xEF53;
    constexpr long kXfsMagic = 0x58465342;
    struct statfs fs {};
    struct stat st {};
    if (::fstatfs(fd_, &fs) != 0 || ::fstat(fd_, &st) != 0) return 0;
    long type = static_cast<long>(fs.f_type);
    if (type != kExt4Magic && type != kXfsMagic) return 0;
    return static_cast<std::uint64_t>(st.st_dev) + 1;
  }

  Status write_out() override {
    while (::sync_file_range(fd_, 0, 0,
                             SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                 SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
      if (errno != EINTR) return Status::from_errno(errno, "sync_file_range " + path_);
    }
    return Status::ok();
  }

  void start_writeback(std::uint64_t offset, std::uint64_t length) override {
    (void)::sync_file_range(fd_, static_cast<off_t>(offset), static_cast<off_t>(length),
                            SYNC_FILE_RANGE_WRITE);  // a hint: errors surface at sync()
  }

  Status truncate(std::uint64_t size) override {
    while (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      if (errno != EINTR) return Status::from_errno(errno, "ftruncate " + path_);
    }
    return Status::ok();
  }

  Result<std::uint64_t> size() override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return Status::from_errno(errno, "fstat " + path_);
    return static_cast<std::uint64_t>(st.st_size);
  }

  int native_handle() const override { return fd_; }

 private:
  enum class DirectState : std::uint8_t { kUnknown, kOpen, kUnsupported };
  int fd_;
  std::string path_;
  std::mutex direct_mutex_;
  std::atomic<DirectState> direct_state_{DirectState::kUnknown};
  int direct_fd_ = -1;
  DirectState read_direct_state_ = DirectState::kUnknown;  // under direct_mutex_
  int read_direct_fd_ = -1;                                // set once, under direct_mutex_
  mutable std::atomic<std::int64_t> flush_domain_{-1};  // -1: not looked up yet
};

class PosixFileSystem final : public FileSystem {
 public:
  Result<std::shared_ptr<File>> open(const std::string& path, OpenOptions options) override {
    int flags = O_CLOEXEC | (options.read_only ? O_RDONLY : O_RDWR);
    if (options.create) flags |= O_CREAT;
    if (options.create && options.exclusive) flags |= O_EXCL;
    int fd;
    do {
      fd = ::open(path.c_str(), flags, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      if (errno == ENOENT) return Status::not_found("open " + path + ": no such file");
      if (errno == EEXIST) return Status::already_exists("open " + path + ": exists");
      return Status::from_errno(errno, "open " + path);
    }
    return std::shared_ptr<File>(std::make_shared<PosixFile>(fd, path));
  }

  Status create_dirs(const std::string& path) override {
    if (path.empty()) return Status::invalid_argument("create_dirs: empty path");
    std::string prefix;
    std::size_t start = 0;
    while (start <= path.size()) {
      std::size_t slash = path.find('/', start);
      if (slash == std::string::npos) slash = path.size();
      prefix = path.substr(0, slash);
      start = slash + 1;
      if (prefix.empty()) continue;  // leading '/'
      if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
        return Status::from_errno(errno, "mkdir " + prefix);
      }
    }
    return Status::ok();
  }

  Result<std::vector<std::string>> list(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
      if (errno == ENOENT) return Status::not_found("opendir " + dir + ": no such directory");
      return Status::from_errno(errno, "opendir " + dir);
    }
    std::vector<std::string> names;
    while (dirent* entry = ::readdir(d)) {
      std::string name = entry->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    ::closedir(d);
    return names;
  }

  Status remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) {
      if (errno == ENOENT) return Status::not_found("unlink " + path + ": no such file");
      return Status::from_errno(errno, "unlink " + path);
    }
    return Status::ok();
  }

  Status rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return Status::from_errno(errno, "rename " + from + " -> " + to);
    }
    return Status::ok();
  }

  Status sync_dir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::from_errno(errno, "open directory " + dir);
    int rc;
    do {
      rc = ::fsync(fd);
    } while (rc != 0 && errno == EINTR);
    int saved = errno;
    ::close(fd);
    if (rc != 0) return Status::from_errno(saved, "fsync directory " + dir);
    return Status::ok();
  }

  Result<bool> exists(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) return true;
    if (errno == ENOENT) return false;
    return Status::from_errno(errno, "stat " + path);
  }

  Result<std::uint64_t> free_bytes(const std::string& path) override {
    struct statvfs st {};
    if (::statvfs(path.c_str(), &st) != 0) return Status::from_errno(errno, "statvfs " + path);
    return static_cast<std::uint64_t>(st.f_bavail) * static_cast<std::uint64_t>(st.f_frsize);
  }
};

}  // namespace

FileSystem* posix_file_system() {
  // Never destroyed. The environment is read once: RAFTMQ_STORAGE_TEST_DROP_UNSYNCED=1 wraps
  // the real file system so that un-synced writes stay in memory (test only, see
  // drop_unsynced_file_system.h).
  static FileSystem* instance = [] {
    FileSystem* real = new PosixFileSystem();
    const char* drop = std::getenv(kDropUnsyncedEnvVar);
    if (drop == nullptr || std::strcmp(drop, "1") != 0) return real;
    std::fprintf(stderr,
                 "WARNING: %s=1: un-synced writes are kept in process memory and lost on "
                 "SIGKILL (power-loss test mode; never use in production)\n",
                 kDropUnsyncedEnvVar);
    return make_drop_unsynced_file_system(real).release();
  }();
  return instance;
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

Status read_exact(File& file, std::uint64_t offset, std::span<std::uint8_t> out,
                  const std::string& what) {
  MQ_ASSIGN_OR_RETURN(std::size_t n, file.read_at(offset, out));
  if (n != out.size()) {
    return Status::corruption(what + ": short read at position " + std::to_string(offset) +
                              " (wanted " + std::to_string(out.size()) + " bytes, got " +
                              std::to_string(n) + ")");
  }
  return Status::ok();
}

}  // namespace mq::storage
