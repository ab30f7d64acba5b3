// encode_fetch_frame against the generated codec: the zero-copy frame, with its file and
// shared-buffer pieces read back, is byte for byte what encode_response_frame gives for the
// same response with the records copied in, in every served Fetch version.
#include "kafka/fetch_frame.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "protocol/headers.h"

namespace mq::kafka {
namespace {

// A temporary file holding `bytes`; removed (and closed) at the end of the test.
class TempFile {
 public:
  explicit TempFile(BufferView bytes) {
    char path[] = "/tmp/fetch_frame_test_XXXXXX";
    fd_ = ::mkstemp(path);
    EXPECT_GE(fd_, 0);
    ::unlink(path);
    EXPECT_EQ(::write(fd_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  ~TempFile() { ::close(fd_); }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

Buffer pattern(std::size_t n, std::uint8_t seed) {
  Buffer b(n);
  for (std::size_t i = 0; i < n; ++i) b.data()[i] = static_cast<std::uint8_t>(seed + i * 7);
  return b;
}

// The frame's bytes in order, file pieces read with pread.
Buffer flatten(const OutFrame& frame) {
  Buffer out;
  for (const OutFrame::Piece& p : frame.pieces()) {
    if (p.source != OutFrame::Source::kFile) {
      out.append(frame.data_of(p), p.length);
      continue;
    }
    std::size_t at = out.size();
    out.resize(at + p.length);
    EXPECT_EQ(::pread(p.fd, out.data() + at, p.length, static_cast<off_t>(p.offset)),
              static_cast<ssize_t>(p.length));
  }
  return out;
}

std::uint64_t chunk_size(const cluster::RecordsChunk& c) {
  return c.fd >= 0 ? c.length : c.bytes.size();
}

class FetchFrameTest : public ::testing::TestWithParam<int> {};

TEST_P(FetchFrameTest, SplicedFrameEqualsTheCodecsEncoding) {
  const auto version = static_cast<std::int16_t>(GetParam());
  Buffer file_bytes = pattern(300'000, 3);
  TempFile file(file_bytes.view());
  auto keep = std::make_shared<int>(0);
  auto file_chunk = [&](std::uint64_t offset, std::uint64_t length) {
    cluster::RecordsChunk c;
    c.fd = file.fd();
    c.file_offset = offset;
    c.length = length;
    c.keep_alive = keep;
    return c;
  };
  auto memory_chunk = [](std::size_t n, std::uint8_t seed) {
    cluster::RecordsChunk c;
    c.bytes = SharedBuffer(pattern(n, seed));
    return c;
  };

  protocol::FetchResponse response;
  response.throttle_time_ms = 5;
  FetchRecordChunks chunks;
  for (int t = 0; t < 3; ++t) {
    auto& topic = response.responses.emplace_back();
    topic.topic = "topic-" + std::to_string(t);
    if (version >= 13) topic.topic_id.bytes[0] = static_cast<std::uint8_t>(t + 1);
    chunks.emplace_back();
    for (int p = 0; p < 4; ++p) {
      auto& part = topic.partitions.emplace_back();
      part.partition_index = p;
      part.high_watermark = 1000 + p;
      part.last_stable_offset = 1000 + p;
      part.log_start_offset = 7;
      std::vector<cluster::RecordsChunk> records;
      switch ((t * 4 + p) % 5) {
        case 0:  // several file extents, one above 127 bytes' varint boundary and 64 KiB
          records.push_back(file_chunk(10, 100));
          records.push_back(file_chunk(500, 70'000));
          records.push_back(file_chunk(100'000, 1));
          break;
        case 1:  // in-memory batches
          records.push_back(memory_chunk(126, 9));
          records.push_back(memory_chunk(1, 1));
          break;
        case 2:  // mixed
          records.push_back(memory_chunk(3000, 4));
          records.push_back(file_chunk(200'000, 99'999));
          break;
        case 3:  // present but empty (nothing new)
          break;
        case 4:  // an error: no records at all
          part.error_code = 6;
          part.records.reset();
          if (version >= 12) {
            part.current_leader.leader_id = 2;
            part.current_leader.leader_epoch = 9;
          }
          break;
      }
      chunks.back().push_back(std::move(records));
    }
  }

  // What the copying path sends: the chunks' bytes inside the response.
  protocol::FetchResponse copied = response;
  for (std::size_t t = 0; t < chunks.size(); ++t) {
    for (std::size_t p = 0; p < chunks[t].size(); ++p) {
      auto& records = copied.responses[t].partitions[p].records;
      if (!records.has_value()) continue;
      for (const cluster::RecordsChunk& c : chunks[t][p]) {
        if (c.fd >= 0) {
          records->append(file_bytes.data() + c.file_offset, c.length);
        } else {
          records->append(c.bytes.view());
        }
      }
    }
  }
  Buffer expected;
  ASSERT_TRUE(protocol::encode_response_frame(77, version, protocol::AnyResponse(copied),
                                              &expected).is_ok());

  Result<OutFrame> frame = encode_fetch_frame(77, version, response, chunks);
  ASSERT_TRUE(frame.has_value()) << frame.error().to_string();
  EXPECT_EQ(frame->size(), expected.size());
  Buffer got = flatten(*frame);
  ASSERT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected);
  // No record byte was copied into the frame's own bytes.
  std::uint64_t own = 0, records = 0;
  for (const OutFrame::Piece& p : frame->pieces()) {
    if (p.source == OutFrame::Source::kOwn) own += p.length;
  }
  for (const auto& topic : chunks) {
    for (const auto& part : topic) {
      for (const cluster::RecordsChunk& c : part) records += chunk_size(c);
    }
  }
  EXPECT_EQ(own + records, expected.size());
  EXPECT_TRUE(frame->has_file_pieces());

  // It decodes as the response it stands for.
  std::int32_t correlation = 0;
  Result<protocol::AnyResponse> decoded =
      protocol::decode_response(got.view().subspan(4), 1, version, &correlation);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().to_string();
  EXPECT_EQ(correlation, 77);
}

INSTANTIATE_TEST_SUITE_P(ServedVersions, FetchFrameTest, ::testing::Range(4, 16));

TEST(FetchFrame, ChunksThatDoNotMatchTheResponseAreRefused) {
  protocol::FetchResponse response;
  response.responses.emplace_back().partitions.emplace_back();
  FetchRecordChunks none;
  EXPECT_FALSE(encode_fetch_frame(1, 11, response, none).has_value());
  FetchRecordChunks wrong_partitions(1);
  EXPECT_FALSE(encode_fetch_frame(1, 11, response, wrong_partitions).has_value());
  // Chunks for a partition whose records are null.
  FetchRecordChunks data(1, std::vector<std::vector<cluster::RecordsChunk>>(1));
  cluster::RecordsChunk c;
  c.bytes = SharedBuffer(pattern(10, 1));
  data[0][0].push_back(c);
  protocol::FetchResponse null_records = response;
  null_records.responses[0].partitions[0].records.reset();
  EXPECT_FALSE(encode_fetch_frame(1, 11, null_records, data).has_value());
  // Records given both inline and as chunks.
  protocol::FetchResponse inline_records = response;
  inline_records.responses[0].partitions[0].records = pattern(3, 1);
  EXPECT_FALSE(encode_fetch_frame(1, 11, inline_records, data).has_value());
  EXPECT_TRUE(encode_fetch_frame(1, 11, response, data).has_value());
}

}  // namespace
}  // namespace mq::kafka
