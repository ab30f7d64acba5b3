#include "storage/metadata.h"

#include "base/crc32c.h"
#include "base/le_codec.h"

namespace mq::storage {

Status write_file_atomically(FileSystem* fs, const std::string& dir, const std::string& name,
                             std::span<const BufferView> pieces) {
  std::string path = join_path(dir, name);
  std::string temp = path + metadata_format::kTempSuffix;
  (void)fs->remove(temp);  // a stale one from a crash
  {
    MQ_ASSIGN_OR_RETURN(auto file, fs->open(temp, OpenOptions{.create = true, .exclusive = true}));
    Status status = file->write_at(0, pieces);
    if (status.is_ok()) status = file->sync();
    if (!status.is_ok()) {
      file.reset();
      (void)fs->remove(temp);
      return status;
    }
  }
  MQ_RETURN_IF_ERROR(fs->rename(temp, path));
  return fs->sync_dir(dir);
}

Result<std::optional<Buffer>> read_whole_file(FileSystem* fs, const std::string& path,
                                              std::uint64_t bytes_max) {
  auto file = fs->open(path, OpenOptions{.read_only = true});
  if (!file.has_value()) {
    if (file.error().code() == ErrorCode::kNotFound) return std::optional<Buffer>();
    return file.error();
  }
  MQ_ASSIGN_OR_RETURN(std::uint64_t size, (*file)->size());
  if (size > bytes_max) {
    return Status::corruption(path + ": " + std::to_string(size) + " bytes, more than the " +
                              std::to_string(bytes_max) + " allowed");
  }
  Buffer bytes(size);
  MQ_RETURN_IF_ERROR(read_exact(**file, 0, std::span(bytes.data(), bytes.size()), path));
  return std::optional<Buffer>(std::move(bytes));
}

Status save_hard_state(FileSystem* fs, const std::string& dir, const HardStateRecord& state) {
  std::uint8_t bytes[HardStateRecord::kEncodedSize];
  state.encode_to(bytes);
  MQ_DASSERT(HardStateRecord::decode_from(BufferView(bytes, sizeof bytes)).value() == state);
  const BufferView pieces[1] = {BufferView(bytes, sizeof bytes)};
  return write_file_atomically(fs, dir, metadata_format::kHardStateFileName, pieces);
}

Result<std::optional<HardStateRecord>> load_hard_state(FileSystem* fs, const std::string& dir) {
  std::string path = join_path(dir, metadata_format::kHardStateFileName);
  MQ_ASSIGN_OR_RETURN(auto bytes, read_whole_file(fs, path, HardStateRecord::kEncodedSize));
  if (!bytes) return std::optional<HardStateRecord>();
  if (bytes->size() != HardStateRecord::kEncodedSize) {
    return Status::corruption(path + ": " + std::to_string(bytes->size()) + " bytes, expected " +
                              std::to_string(HardStateRecord::kEncodedSize));
  }
  auto record = HardStateRecord::decode_from(bytes->view());
  if (!record.has_value()) return Status(record.error().code(), path + ": " + record.error().message());
  return std::optional<HardStateRecord>(*record);
}

Status save_snapshot(FileSystem* fs, const std::string& dir, LogIndex index, Term term,
                     BufferView config, BufferView data) {
  if (config.size() > kSnapshotConfigBytesMax) {
    return Status::limit_exceeded("snapshot config of " + std::to_string(config.size()) +
                                  " bytes exceeds " + std::to_string(kSnapshotConfigBytesMax));
  }
  SnapshotHeader header;
  header.index = index;
  header.term = term;
  header.data_length = data.size();
  header.config_length = static_cast<std::uint32_t>(config.size());
  std::uint8_t head[SnapshotHeader::kEncodedSize];
  header.encode_to(head);
  std::uint8_t trailer[SnapshotHeader::kTrailerSize];
  le::encode_u32(trailer, crc32c::extend(crc32c::value(config), data));
  const BufferView pieces[4] = {BufferView(head, sizeof head), config, data,
                                BufferView(trailer, sizeof trailer)};
  return write_file_atomically(fs, dir, metadata_format::kSnapshotFileName, pieces);
}

Result<std::optional<StoredSnapshot>> load_snapshot(FileSystem* fs, const std::string& dir,
                                                    std::uint64_t data_bytes_max) {
  std::string path = join_path(dir, metadata_format::kSnapshotFileName);
  auto opened = fs->open(path, OpenOptions{.read_only = true});
  if (!opened.has_value()) {
    if (opened.error().code() == ErrorCode::kNotFound) return std::optional<StoredSnapshot>();
    return opened.error();
  }
  File& file = **opened;
  MQ_ASSIGN_OR_RETURN(std::uint64_t size, file.size());
  std::uint8_t head[SnapshotHeader::kEncodedSize];
  MQ_RETURN_IF_ERROR(read_exact(file, 0, std::span(head), path));
  auto header = SnapshotHeader::decode_from(BufferView(head, sizeof head));
  if (!header.has_value()) return Status::corruption(path + ": " + header.error().message());
  if (header->config_length > kSnapshotConfigBytesMax || header->data_length > data_bytes_max) {
    return Status::corruption(path + ": lengths above the limits (config " +
                              std::to_string(header->config_length) + ", data " +
                              std::to_string(header->data_length) + ")");
  }
  std::uint64_t expected = SnapshotHeader::kEncodedSize + header->config_length +
                           header->data_length + SnapshotHeader::kTrailerSize;
  if (size != expected) {
    return Status::corruption(path + ": file is " + std::to_string(size) + " bytes, header says " +
                              std::to_string(expected));
  }
  StoredSnapshot snapshot{header->index, header->term, Buffer(header->config_length),
                          Buffer(header->data_length)};
  std::uint64_t at = SnapshotHeader::kEncodedSize;
  MQ_RETURN_IF_ERROR(read_exact(file, at, std::span(snapshot.config.data(), snapshot.config.size()), path));
  at += snapshot.config.size();
  MQ_RETURN_IF_ERROR(read_exact(file, at, std::span(snapshot.data.data(), snapshot.data.size()), path));
  at += snapshot.data.size();
  std::uint8_t trailer[SnapshotHeader::kTrailerSize];
  MQ_RETURN_IF_ERROR(read_exact(file, at, std::span(trailer), path));
  std::uint32_t crc = crc32c::extend(crc32c::value(snapshot.config), snapshot.data);
  if (crc != le::decode_u32(trailer)) {
    return Status::corruption(path + ": snapshot body checksum mismatch");
  }
  return std::optional<StoredSnapshot>(std::move(snapshot));
}

}  // namespace mq::storage
