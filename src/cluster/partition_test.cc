// Offset stamping, high-watermark math and leader-epoch lookup of a partition replica, on the
// in-memory file system (no threads: durability by Log::sync()).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>

#include "cluster/group_storage.h"
#include "cluster/partition.h"
#include "protocol/record_batch.h"
#include "base/le_codec.h"
#include "storage/memory_file_system.h"
#include "storage/test_util.h"

namespace mq::cluster {
namespace {

SharedBuffer batch(int records, std::int64_t timestamp = 1000) {
  std::vector<protocol::RecordInput> inputs;
  for (int i = 0; i < records; ++i) {
    protocol::RecordInput r;
    r.value = Buffer(std::string_view("r" + std::to_string(i)));
    r.timestamp = timestamp + i;
    inputs.push_back(std::move(r));
  }
  return SharedBuffer(*protocol::build_record_batch({}, inputs));
}

raft::Entry entry(std::uint64_t index, std::uint64_t term, raft::EntryType type, SharedBuffer p = {}) {
  return raft::Entry{Term(term), LogIndex(index), type, std::move(p)};
}

class NullHost : public GroupHost {
 public:
  bool send_message(GroupId, raft::Message) override { return true; }
  void log(std::string_view) override {}
};

class ClusterPartitionStorage : public ::testing::Test {
 protected:
  std::unique_ptr<GroupStorage> open() {
    GroupStorageOptions o;
    o.directory = "/p";
    o.name = "t-0";
    o.bootstrap.voters = {NodeId(1)};
    auto s = GroupStorage::open(&fs_, &clock_, nullptr, o);
    MQ_ASSERT(s.has_value(), "%s", s.error().to_string().c_str());
    return std::move(*s);
  }
  storage::MemoryFileSystem fs_;
  storage::ManualClock clock_{1000};
};

TEST_F(ClusterPartitionStorage, StampsDenseOffsetsAndStoresRaftEntriesAsControlBatches) {
  auto s = open();
  raft::ConfChange cc;
  cc.changes.push_back({raft::ConfChangeType::kAddLearner, NodeId(2)});
  std::vector<raft::Entry> entries = {
      entry(1, 1, raft::EntryType::kNoop),
      entry(2, 1, raft::EntryType::kNormal, batch(3)),
      entry(3, 2, raft::EntryType::kNormal, batch(2)),
      entry(4, 2, raft::EntryType::kConfChange, cc.encode()),
  };
  std::vector<AppendedEntry> appended;
  ASSERT_TRUE(s->append(entries, &appended).is_ok());
  ASSERT_EQ(appended.size(), 4u);
  EXPECT_EQ(appended[0].base_offset, KafkaOffset(0));
  EXPECT_EQ(appended[1].base_offset, KafkaOffset(1));
  EXPECT_EQ(appended[1].next_offset, KafkaOffset(4));
  EXPECT_EQ(appended[2].base_offset, KafkaOffset(4));
  EXPECT_EQ(appended[3].base_offset, KafkaOffset(6));
  EXPECT_EQ(s->log().next_offset(), KafkaOffset(7));

  auto back = s->entries(LogIndex(1), LogIndex(5), UINT64_MAX);
  ASSERT_TRUE(back.has_value());
  ASSERT_EQ(back->size(), 4u);
  EXPECT_EQ((*back)[0].type, raft::EntryType::kNoop);
  EXPECT_TRUE((*back)[0].payload.empty());
  EXPECT_EQ((*back)[3].type, raft::EntryType::kConfChange);
  EXPECT_EQ(raft::ConfChange::decode((*back)[3].payload.view()), cc);
  // The stored batch carries its offsets and the term as leader epoch; the CRC still holds.
  auto view = protocol::RecordBatchView::parse((*back)[2].payload.view());
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->header().base_offset, 4);
  EXPECT_EQ(view->header().partition_leader_epoch, 2);
  // The no-op on disk is a control batch clients skip.
  auto raw = s->log().read(LogIndex(1), LogIndex(2), 1);
  ASSERT_TRUE(raw.has_value());
  auto control = protocol::RecordBatchView::parse((*raw)[0].payload.view());
  ASSERT_TRUE(control.has_value());
  EXPECT_TRUE(control->header().is_control());

  // A conflicting suffix (§5.3) is replaced and offsets are reassigned from the cut.
  appended.clear();
  ASSERT_TRUE(s->append({entry(3, 3, raft::EntryType::kNormal, batch(5))}, &appended).is_ok());
  EXPECT_EQ(appended[0].base_offset, KafkaOffset(4));
  EXPECT_EQ(s->log().next_offset(), KafkaOffset(9));
  EXPECT_EQ(*s->term(LogIndex(3)), Term(3));
  EXPECT_EQ(s->last_index(), LogIndex(3));
}

TEST_F(ClusterPartitionStorage, MalformedBatchIsRefusedNotStored) {
  auto s = open();
  Buffer junk(std::string_view("not a record batch at all, definitely not"));
  Status st = s->append({entry(1, 1, raft::EntryType::kNormal, SharedBuffer(junk.view()))}, nullptr);
  EXPECT_FALSE(st.is_ok());
  EXPECT_EQ(s->log().last_index(), LogIndex(0));
}

TEST_F(ClusterPartitionStorage, HardStateAndCheckpointSurviveReopen) {
  {
    auto s = open();
    ASSERT_TRUE(s->append({entry(1, 1, raft::EntryType::kNoop), entry(2, 1, raft::EntryType::kNormal, batch(1))},
                          nullptr).is_ok());
    ASSERT_TRUE(s->log().sync().is_ok());
    auto written = s->save_hard_state(raft::HardState{Term(1), NodeId(1), LogIndex(2)});
    ASSERT_TRUE(written.has_value() && *written);
    // Only commit changed: nothing is written.
    auto again = s->save_hard_state(raft::HardState{Term(1), NodeId(1), LogIndex(2)});
    ASSERT_TRUE(again.has_value() && !*again);
    raft::ConfState cs;
    cs.voters = {NodeId(1), NodeId(2)};
    ASSERT_TRUE(s->checkpoint(LogIndex(2), cs, true).is_ok());
  }
  auto s = open();
  auto [hs, cs] = s->initial_state();
  EXPECT_EQ(hs.term, Term(1));
  EXPECT_EQ(hs.vote, NodeId(1));
  EXPECT_EQ(hs.commit, LogIndex(2));
  EXPECT_EQ(cs.voters, (std::vector<NodeId>{NodeId(1), NodeId(2)}));
  EXPECT_EQ(s->restart_applied(), LogIndex(2));
}

TEST_F(ClusterPartitionStorage, SnapshotInstallRestartsTheLogAtTheLeadersStart) {
  auto s = open();
  raft::Snapshot snap;
  snap.meta.index = LogIndex(100);
  snap.meta.term = Term(4);
  snap.meta.conf_state.voters = {NodeId(1), NodeId(2), NodeId(3)};
  Buffer data;
  le::put_u64(data, 5000);
  snap.data = SharedBuffer(std::move(data));
  ASSERT_TRUE(s->install_snapshot(snap).is_ok());
  EXPECT_EQ(s->first_index(), LogIndex(101));
  EXPECT_EQ(*s->term(LogIndex(100)), Term(4));
  EXPECT_EQ(s->log().next_offset(), KafkaOffset(5000));
  std::vector<AppendedEntry> appended;
  ASSERT_TRUE(s->append({entry(101, 4, raft::EntryType::kNormal, batch(2))}, &appended).is_ok());
  EXPECT_EQ(appended[0].base_offset, KafkaOffset(5000));
  // Our snapshot answers with the same start for followers further behind.
  auto ours = s->snapshot();
  ASSERT_TRUE(ours.has_value());
  EXPECT_EQ(ours->meta.index, LogIndex(100));
  EXPECT_EQ(le::decode_u64(ours->data.data()), 5000u);
}

TEST_F(ClusterPartitionStorage, EndOffsetForEpochFindsTheLargestEpochNotAboveTheRequest) {
  auto storage = open();
  // Terms 1,1 | 3,3 | 5: offsets 0 | 1-2 (batch of 2), 3 | 4 | 5-7.
  ASSERT_TRUE(storage
                  ->append({entry(1, 1, raft::EntryType::kNoop),
                            entry(2, 1, raft::EntryType::kNormal, batch(2)),
                            entry(3, 3, raft::EntryType::kNoop),
                            entry(4, 3, raft::EntryType::kNormal, batch(1)),
                            entry(5, 5, raft::EntryType::kNormal, batch(3))},
                           nullptr)
                  .is_ok());
  NullHost host;
  RaftGroupOptions go;
  go.group = GroupId(1);
  go.name = "t-0";
  go.raft.id = NodeId(1);
  PartitionGroup p(&host, go, PartitionOptions{}, std::move(storage));
  auto check = [&](std::int32_t requested, std::int32_t epoch, std::int64_t end) {
    auto r = p.end_offset_for_epoch(requested);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->leader_epoch, epoch) << "requested " << requested;
    EXPECT_EQ(r->end_offset, KafkaOffset(end)) << "requested " << requested;
  };
  check(0, -1, -1);  // before the first epoch
  check(1, 1, 3);    // epoch 1 ends where epoch 3 starts
  check(2, 1, 3);    // no epoch 2: the largest below it
  check(3, 3, 5);
  check(4, 3, 5);
  check(5, 5, 8);  // the last epoch ends at the log end
  check(9, 5, 8);
}

// Pages of fd's [offset, offset + length) in the page cache (mincore on a mapping).
std::size_t resident_pages(int fd, std::size_t offset, std::size_t length) {
  void* map = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(offset));
  MQ_ASSERT(map != MAP_FAILED);
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in((length + page - 1) / page);
  MQ_ASSERT(::mincore(map, length, in.data()) == 0);
  ::munmap(map, length);
  std::size_t n = 0;
  for (unsigned char c : in) n += c & 1;
  return n;
}

// A fetch whose last chunk comes from a file asks the kernel to read the next bytes of that
// file ahead; without it (0 bytes, or a last chunk from memory) nothing is read.
TEST(FetchReadAhead, TheBytesAfterTheLastFileChunkAreReadIntoThePageCache) {
  constexpr std::size_t kMiB = 1 << 20;
  storage::testing::TempDir dir;
  std::string path = dir.path() + "/segment";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  std::vector<std::uint8_t> block(kMiB, 0x5a);
  for (int i = 0; i < 16; ++i) ASSERT_EQ(::write(fd, block.data(), kMiB), static_cast<ssize_t>(kMiB));
  ASSERT_EQ(::fsync(fd), 0);
  ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
  const std::size_t pages = 4 * kMiB / static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  if (resident_pages(fd, kMiB, 4 * kMiB) > pages / 10) {
    ::close(fd);
    GTEST_SKIP() << "this file system keeps the pages cached after POSIX_FADV_DONTNEED";
  }
  FetchResult result;
  RecordsChunk memory_chunk;
  memory_chunk.bytes = SharedBuffer(Buffer(std::string_view("in memory")));
  memory_chunk.length = 9;
  RecordsChunk file_chunk;
  file_chunk.fd = fd;
  file_chunk.file_offset = 0;
  file_chunk.length = kMiB;

  result.records = {file_chunk};
  read_ahead_after_last_chunk(result, 0);
  result.records = {file_chunk, memory_chunk};
  read_ahead_after_last_chunk(result, 4 * kMiB);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LE(resident_pages(fd, kMiB, 4 * kMiB), pages / 10) << "read ahead without being asked";

  result.records = {memory_chunk, file_chunk};
  read_ahead_after_last_chunk(result, 4 * kMiB);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (resident_pages(fd, kMiB, 4 * kMiB) < pages * 9 / 10 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(resident_pages(fd, kMiB, 4 * kMiB), pages * 9 / 10);
  EXPECT_LE(resident_pages(fd, 8 * kMiB, 8 * kMiB), pages / 10) << "read beyond what was asked";
  ::close(fd);
}

// A fetch whose first chunk comes from a file drops the pages of that file before the chunk
// from the page cache, from where the previous drop stopped (rounded down to 2 MiB); a fetch
// from memory, or starting before what was dropped, drops nothing; another file starts over.
TEST(FetchDropBehind, PagesBeforeTheFetchedChunkLeaveThePageCache) {
  constexpr std::size_t kMiB = 1 << 20;
  storage::testing::TempDir dir;
  auto make_file = [&](const std::string& name) {
    int fd = ::open((dir.path() + "/" + name).c_str(), O_RDWR | O_CREAT, 0600);
    MQ_ASSERT(fd >= 0);
    std::vector<std::uint8_t> block(kMiB, 0x5a);
    for (int i = 0; i < 16; ++i)
      MQ_ASSERT(::write(fd, block.data(), kMiB) == static_cast<ssize_t>(kMiB));
    MQ_ASSERT(::fsync(fd) == 0);  // written through the page cache: all of it is resident
    return fd;
  };
  int fd = make_file("segment-1");
  int fd2 = make_file("segment-2");
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  auto pages = [&](std::size_t bytes) { return bytes / page; };
  ASSERT_EQ(::posix_fadvise(fd2, 0, 0, POSIX_FADV_DONTNEED), 0);
  if (resident_pages(fd2, 0, 16 * kMiB) > pages(16 * kMiB) / 10) {
    ::close(fd);
    ::close(fd2);
    GTEST_SKIP() << "this file system keeps the pages cached after POSIX_FADV_DONTNEED";
  }
  // segment-2 back in the page cache, read through it (segment-1 still is, from its writes).
  // Both ways the kernel may use large folios: the drops must be aligned for those to go.
  std::vector<std::uint8_t> sink(kMiB);
  for (std::size_t at = 0; at < 16 * kMiB; at += kMiB) {
    ASSERT_EQ(::pread(fd2, sink.data(), kMiB, static_cast<off_t>(at)), static_cast<ssize_t>(kMiB));
  }
  ASSERT_GE(resident_pages(fd, 0, 16 * kMiB), pages(16 * kMiB) * 9 / 10);
  ASSERT_GE(resident_pages(fd2, 0, 16 * kMiB), pages(16 * kMiB) * 9 / 10);

  auto file_one = std::make_shared<int>(1), file_two = std::make_shared<int>(2);
  auto from_file = [&](int f, std::shared_ptr<int> id, std::uint64_t offset) {
    FetchResult r;
    RecordsChunk c;
    c.fd = f;
    c.file_offset = offset;
    c.length = kMiB;
    c.keep_alive = std::move(id);
    r.records = {c};
    return r;
  };
  FetchResult from_memory;
  RecordsChunk memory_chunk;
  memory_chunk.bytes = SharedBuffer(Buffer(std::string_view("in memory")));
  memory_chunk.length = 9;
  from_memory.records = {memory_chunk, from_file(fd, file_one, 0).records[0]};

  FetchDropBehind drop;
  drop.after_fetch(from_memory);  // first chunk in memory: nothing dropped
  EXPECT_EQ(drop.dropped_until(), 0u);
  EXPECT_GE(resident_pages(fd, 0, 16 * kMiB), pages(16 * kMiB) * 9 / 10);

  constexpr std::size_t kOff = 300 * 1024 + 100;  // mid-folio for folios of up to 2 MiB
  drop.after_fetch(from_file(fd, file_one, 5 * kMiB + kOff));
  EXPECT_EQ(drop.dropped_until(), 5 * kMiB + 300 * 1024);
  EXPECT_LE(resident_pages(fd, 0, 4 * kMiB), pages(4 * kMiB) / 10) << "behind the reader";
  EXPECT_GE(resident_pages(fd, 6 * kMiB, 10 * kMiB), pages(10 * kMiB) * 9 / 10) << "ahead of it";

  drop.after_fetch(from_file(fd, file_one, 3 * kMiB));  // before what was dropped: nothing
  EXPECT_EQ(drop.dropped_until(), 5 * kMiB + 300 * 1024);

  drop.after_fetch(from_file(fd, file_one, 9 * kMiB + kOff));
  EXPECT_EQ(drop.dropped_until(), 9 * kMiB + 300 * 1024);
  // Up to the folio that holds the reader's position (it may be up to 2 MiB).
  EXPECT_LE(resident_pages(fd, 0, 8 * kMiB), pages(8 * kMiB) / 10);
  EXPECT_GE(resident_pages(fd, 10 * kMiB, 6 * kMiB), pages(6 * kMiB) * 9 / 10);
  EXPECT_GE(resident_pages(fd2, 0, 16 * kMiB), pages(16 * kMiB) * 9 / 10) << "another file";

  drop.after_fetch(from_file(fd2, file_two, 2 * kMiB));  // another file: from its start
  EXPECT_EQ(drop.dropped_until(), 2 * kMiB);
  EXPECT_LE(resident_pages(fd2, 0, 2 * kMiB), pages(2 * kMiB) / 10);
  EXPECT_GE(resident_pages(fd2, 3 * kMiB, 13 * kMiB), pages(13 * kMiB) * 9 / 10);
  ::close(fd);
  ::close(fd2);
}

// `read()` with the environment variable `name` set to `value` (unset for nullptr); unset after.
template <typename Read>
auto with_env(const char* name, const char* value, Read read) {
  if (value == nullptr) {
    ::unsetenv(name);
  } else {
    ::setenv(name, value, 1);
  }
  auto result = read();
  ::unsetenv(name);
  return result;
}

TEST(FetchDropBehind, OnUnlessTheEnvironmentSaysZero) {
  auto with = [](const char* value) {
    return with_env("RAFTMQ_FETCH_DROP_BEHIND", value, fetch_drop_behind_enabled);
  };
  EXPECT_TRUE(with(nullptr));
  EXPECT_TRUE(with("1"));
  EXPECT_FALSE(with("0"));
  EXPECT_TRUE(with("off"));  // not 0 or 1: the default, with a message
}

TEST(FetchReadAhead, SizeComesFromTheEnvironment) {
  auto with = [](const char* value) {
    return with_env("RAFTMQ_FETCH_READAHEAD_KIB", value, fetch_readahead_bytes);
  };
  EXPECT_EQ(with(nullptr), 4096u * 1024);
  EXPECT_EQ(with("0"), 0u);
  EXPECT_EQ(with("8"), 8u * 1024);
  EXPECT_EQ(with("99999999"), 1024u * 1024 * 1024);  // at most 1 GiB
  EXPECT_EQ(with("lots"), 4096u * 1024);              // not a number: the default
  EXPECT_EQ(with("-5"), 4096u * 1024);
}

}  // namespace
}  // namespace mq::cluster
