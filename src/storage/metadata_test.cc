#include "storage/metadata.h"

#include <gtest/gtest.h>

#include "storage/memory_file_system.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

class MetadataTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fs_.create_dirs("/m").is_ok()); }
  MemoryFileSystem fs_;
};

TEST_F(MetadataTest, HardStateRoundTripsAndIsReplacedAtomically) {
  EXPECT_FALSE(load_hard_state(&fs_, "/m").value().has_value());
  HardStateRecord a{Term(1), NodeId(3), LogIndex(10)};
  ASSERT_TRUE(save_hard_state(&fs_, "/m", a).is_ok());
  EXPECT_EQ(load_hard_state(&fs_, "/m").value().value(), a);
  HardStateRecord b{Term(2), NodeId(0), LogIndex(12)};
  // A crash at any point of the replace leaves a or b, never a mix or nothing.
  Prng prng(3);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(save_hard_state(&fs_, "/m", a).is_ok());
    fs_.fail_next_syncs(static_cast<int>(prng.range(0, 2)));
    Status saved = save_hard_state(&fs_, "/m", b);
    fs_.fail_next_syncs(0);
    fs_.crash(&prng);
    auto loaded = load_hard_state(&fs_, "/m");
    ASSERT_TRUE(loaded.has_value()) << loaded.status().to_string();
    ASSERT_TRUE(loaded->has_value());
    if (saved.is_ok()) {
      EXPECT_EQ(**loaded, b);
    } else {
      EXPECT_TRUE(**loaded == a || **loaded == b);
    }
  }
}

TEST_F(MetadataTest, CorruptHardStateIsANamedError) {
  ASSERT_TRUE(save_hard_state(&fs_, "/m", HardStateRecord{Term(1), NodeId(1), LogIndex(1)}).is_ok());
  ASSERT_TRUE(fs_.corrupt_byte("/m/raft.state", 9, 0x04).is_ok());
  auto loaded = load_hard_state(&fs_, "/m");
  ASSERT_FALSE(loaded.has_value());
  EXPECT_EQ(loaded.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(loaded.error().message().find("raft.state"), std::string::npos);
  ASSERT_TRUE(fs_.write_file_durably("/m/raft.state", as_bytes("short")).is_ok());
  EXPECT_EQ(load_hard_state(&fs_, "/m").status().code(), ErrorCode::kCorruption);
}

TEST_F(MetadataTest, SnapshotRoundTripAndEveryBitFlipIsDetected) {
  Buffer config(as_bytes("voters=1,2,3"));
  Buffer data = testing::make_payload(LogIndex(5), Term(2), 3000);
  ASSERT_TRUE(save_snapshot(&fs_, "/m", LogIndex(500), Term(7), config, data).is_ok());
  auto loaded = load_snapshot(&fs_, "/m", 1 << 20).value();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->index, LogIndex(500));
  EXPECT_EQ(loaded->term, Term(7));
  EXPECT_EQ(loaded->config, config);
  EXPECT_EQ(loaded->data, data);
  Buffer file = fs_.read_file("/m/snapshot").value();
  Prng prng(1);
  for (int i = 0; i < 200; ++i) {
    std::uint64_t position = prng.uniform(file.size());
    auto mask = static_cast<std::uint8_t>(1u << prng.uniform(8));
    ASSERT_TRUE(fs_.corrupt_byte("/m/snapshot", position, mask).is_ok());
    EXPECT_EQ(load_snapshot(&fs_, "/m", 1 << 20).status().code(), ErrorCode::kCorruption)
        << "position " << position;
    ASSERT_TRUE(fs_.corrupt_byte("/m/snapshot", position, mask).is_ok());
  }
  for (std::uint64_t cut = 0; cut < file.size(); cut += 97) {
    ASSERT_TRUE(fs_.write_file_durably("/m/snapshot", file.view(0, cut)).is_ok());
    EXPECT_FALSE(load_snapshot(&fs_, "/m", 1 << 20).has_value());
  }
  ASSERT_TRUE(fs_.write_file_durably("/m/snapshot", file.view()).is_ok());
  EXPECT_EQ(load_snapshot(&fs_, "/m", 100).status().code(), ErrorCode::kCorruption);  // limit
}

TEST_F(MetadataTest, SnapshotWorksOnTheRealFileSystem) {
  testing::TempDir dir;
  Buffer data = testing::make_payload(LogIndex(1), Term(1), 100000);
  ASSERT_TRUE(save_snapshot(posix_file_system(), dir.path(), LogIndex(9), Term(3),
                            as_bytes("cfg"), data).is_ok());
  auto loaded = load_snapshot(posix_file_system(), dir.path(), 1 << 20).value();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->data, data);
  EXPECT_FALSE(posix_file_system()->exists(dir.path() + "/snapshot.tmp").value());
}

}  // namespace
}  // namespace mq::storage
