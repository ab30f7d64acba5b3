// A gtest fixture shared by the Log tests that run on both file systems: the parameter picks the
// in-memory file system (false) or a real temporary directory (true).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "storage/clock.h"
#include "storage/log.h"
#include "storage/memory_file_system.h"
#include "storage/test_util.h"

namespace mq::storage::testing {

// Entries [lo, hi) are readable with their indexes and (unless term is 0) the payloads
// make_payload gives for that term.
inline void expect_log_entries(Log& log, LogIndex lo, LogIndex hi, Term term = Term(1)) {
  auto entries = log.read(lo, hi, UINT64_MAX);
  ASSERT_TRUE(entries.has_value()) << entries.status().to_string();
  ASSERT_EQ(entries->size(), hi - lo);
  for (std::size_t i = 0; i < entries->size(); ++i) {
    const ReadEntry& e = (*entries)[i];
    ASSERT_EQ(e.header.index, lo + i);
    if (term != Term(0)) {
      ASSERT_EQ(e.header.term, term) << "entry " << e.header.index;
      ASSERT_TRUE(equal_bytes(e.payload, make_payload(e.header.index, term, e.payload.size())))
          << "entry " << e.header.index;
    }
  }
}

class LogFixture : public ::testing::TestWithParam<bool> {
 protected:
  // Chooses the file system and the log's directory; tests then adjust options_.
  void SetUp() override {
    if (GetParam()) {
      temp_ = std::make_unique<TempDir>();
      fs_ = posix_file_system();
      dir_ = temp_->path() + "/log";
    } else {
      fs_ = &memory_fs_;
      dir_ = "/data/log";
    }
    options_.directory = dir_;
  }

  std::unique_ptr<Log> open_log() {
    auto log = Log::open(fs_, &clock_, options_);
    EXPECT_TRUE(log.has_value()) << log.status().to_string();
    return log.has_value() ? std::move(*log) : nullptr;
  }

  // Entries [lo, hi) are readable with their indexes and (unless term is 0) the payloads
  // make_payload gives for that term.
  void expect_entries(Log& log, LogIndex lo, LogIndex hi, Term term = Term(1)) {
    expect_log_entries(log, lo, hi, term);
  }

  MemoryFileSystem memory_fs_;
  std::unique_ptr<TempDir> temp_;
  FileSystem* fs_ = nullptr;
  std::string dir_;
  ManualClock clock_{1'000'000};
  LogOptions options_;
};

}  // namespace mq::storage::testing
