// raftmq-segment-dump on a real log: prints every entry and index, verifies checksums, exits
// non-zero on corruption or a torn tail.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "storage/log.h"
#include "storage/metadata.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

struct DumpRun {
  int exit_code;
  std::string output;
};

DumpRun run_dump(const std::string& args) {
  std::string command = std::string(RAFTMQ_SEGMENT_DUMP) + " " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  MQ_ASSERT(pipe != nullptr);
  DumpRun run{0, ""};
  char buffer[4096];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) run.output.append(buffer, n);
  int status = ::pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(SegmentDumpTest, PrintsAndVerifiesALogDirectory) {
  testing::TempDir temp;
  ManualClock clock(5000);
  LogOptions options;
  options.directory = temp.path();
  options.segment_size_bytes_max = 8 << 10;
  options.index_interval_bytes = 1024;
  {
    auto log = Log::open(posix_file_system(), &clock, options).value();
    auto batch = testing::Batch::make(LogIndex(1), KafkaOffset(0), Term(3), 40, 500);
    ASSERT_TRUE(log->append(batch.entries).is_ok());
    ASSERT_TRUE(log->sync().is_ok());
  }
  ASSERT_TRUE(save_hard_state(posix_file_system(), temp.path(),
                              HardStateRecord{Term(3), NodeId(2), LogIndex(40)}).is_ok());
  DumpRun ok = run_dump(temp.path());
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_EQ(count(ok.output, " crc ok"), 40u) << ok.output;
  EXPECT_NE(ok.output.find("hard state"), std::string::npos);
  EXPECT_NE(ok.output.find("term 3 vote 2 commit 40"), std::string::npos);
  EXPECT_NE(ok.output.find("offset index"), std::string::npos);
  EXPECT_NE(ok.output.find("log meta"), std::string::npos);

  // Flip a payload byte of the first segment.
  std::string segment = temp.path() + "/" + segment_format::file_stem(LogIndex(1)) + ".log";
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(32 + 56 + 10);
    char c;
    f.read(&c, 1);
    f.seekp(32 + 56 + 10);
    c ^= 0x20;
    f.write(&c, 1);
  }
  DumpRun bad = run_dump(segment);
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("crc BAD"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("CORRUPTION"), std::string::npos);
  DumpRun usage = run_dump("");
  EXPECT_EQ(usage.exit_code, 2);
}

}  // namespace
}  // namespace mq::storage
