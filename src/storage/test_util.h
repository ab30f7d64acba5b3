// Helpers shared by the storage tests: deterministic entries and a temp directory.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/prng.h"
#include "storage/log.h"

namespace mq::storage::testing {

// A payload that is a pure function of (index, term, size): checks can recompute it.
inline Buffer make_payload(LogIndex index, Term term, std::size_t size) {
  Buffer b(size);
  std::uint64_t x = index.value() * 0x9e3779b97f4a7c15ull ^ term.value();
  for (std::size_t i = 0; i < size; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    b[i] = static_cast<std::uint8_t>(x >> 56);
  }
  return b;
}

// Owns payloads for a batch of AppendEntry views.
struct Batch {
  std::vector<Buffer> payloads;
  std::vector<AppendEntry> entries;
  // Appends `count` entries after (last_index, next_offset), each `records` records.
  static Batch make(LogIndex first, KafkaOffset offset, Term term, std::size_t count,
                    std::size_t size, std::int64_t timestamp = 1000,
                    std::uint32_t records = 1) {
    Batch batch;
    batch.payloads.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      LogIndex index = first + i;
      batch.payloads.push_back(make_payload(index, term, size));
      AppendEntry e;
      e.term = term;
      e.index = index;
      e.base_offset = offset + i * records;
      e.last_offset_delta = records - 1;
      e.max_timestamp = timestamp + static_cast<std::int64_t>(i);
      e.payload = batch.payloads.back().view();
      batch.entries.push_back(e);
    }
    return batch;
  }
};

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/raftmq-storage-XXXXXX";
    char* made = ::mkdtemp(pattern);
    MQ_ASSERT(made != nullptr);
    path_ = made;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace mq::storage::testing
