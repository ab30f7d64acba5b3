#include "kafka/fetch_frame.h"

#include "protocol/headers.h"

namespace mq::kafka {
namespace {

template <typename F>
void for_each_partition(protocol::FetchResponse& response, F f) {
  for (auto& topic : response.responses) {
    for (auto& partition : topic.partitions) f(partition);
  }
}

}  // namespace

// How: the response is encoded twice with the generated codec, once with every partition's
// records null and once with every one empty. The two frames have the same length and differ
// exactly at each partition's records length prefix (null: int32 -1 or uvarint 0; empty:
// int32 0 or uvarint 1), in partition order. The frame is the empty form with each prefix
// replaced by the real length and followed by that partition's chunks, and the size prefix
// recomputed. Everything but the records' bytes stays the codec's own encoding.
Result<OutFrame> encode_fetch_frame(std::int32_t correlation_id, std::int16_t api_version,
                                    protocol::FetchResponse response,
                                    const FetchRecordChunks& chunks) {
  if (chunks.size() != response.responses.size()) {
    return Status::invalid_argument("fetch frame: chunks do not match the topics");
  }
  std::vector<bool> present;
  std::vector<std::uint64_t> lengths;
  for (std::size_t t = 0; t < response.responses.size(); ++t) {
    const auto& partitions = response.responses[t].partitions;
    if (chunks[t].size() != partitions.size()) {
      return Status::invalid_argument("fetch frame: chunks do not match the partitions");
    }
    for (std::size_t p = 0; p < partitions.size(); ++p) {
      const auto& records = partitions[p].records;
      if (records.has_value() && !records->empty()) {
        return Status::invalid_argument("fetch frame: records must come as chunks");
      }
      std::uint64_t length = 0;
      for (const cluster::RecordsChunk& c : chunks[t][p]) {
        length += c.fd >= 0 ? c.length : c.bytes.size();
      }
      if (!records.has_value() && length > 0) {
        return Status::invalid_argument("fetch frame: chunks for a partition without records");
      }
      if (length > 0x7ffffffe) return Status::invalid_argument("fetch frame: records too large");
      present.push_back(records.has_value());
      lengths.push_back(length);
    }
  }
  const bool flex = api_version >= 12;
  const std::size_t prefix_bytes = flex ? 1 : 4;

  for_each_partition(response, [](auto& partition) { partition.records.reset(); });
  protocol::AnyResponse null_form(response);
  Buffer with_null;
  MQ_RETURN_IF_ERROR(
      protocol::encode_response_frame(correlation_id, api_version, null_form, &with_null));
  for_each_partition(response, [](auto& partition) { partition.records.emplace(); });
  Buffer with_empty;
  MQ_RETURN_IF_ERROR(protocol::encode_response_frame(
      correlation_id, api_version, protocol::AnyResponse(std::move(response)), &with_empty));
  if (with_null.size() != with_empty.size()) {
    return Status::internal("fetch frame: the two encodings differ in length");
  }

  OutFrame frame;
  const std::uint8_t* a = with_null.data();
  const std::uint8_t* b = with_empty.data();
  const std::size_t n = with_empty.size();
  std::size_t pos = 0;
  std::size_t chunk_index = 0;
  for (std::size_t t = 0; t < chunks.size(); ++t) {
    for (std::size_t p = 0; p < chunks[t].size(); ++p, ++chunk_index) {
      std::size_t k = pos;
      while (k < n && a[k] == b[k]) ++k;
      if (k + prefix_bytes > n) return Status::internal("fetch frame: records field not found");
      frame.append_own(BufferView(b + pos, k - pos));
      if (!present[chunk_index]) {
        frame.append_own(BufferView(a + k, prefix_bytes));
      } else {
        Buffer prefix;
        KafkaWriter w(&prefix);
        // A bytes field's length has the wire form of an array count (int32, or uvarint n+1).
        MQ_RETURN_IF_ERROR(w.write_array_length(flex, lengths[chunk_index]));
        frame.append_own(prefix.view());
        for (const cluster::RecordsChunk& c : chunks[t][p]) {
          if (c.fd >= 0) {
            frame.append_file(c.fd, c.file_offset, c.length, c.keep_alive);
          } else {
            frame.append_shared(c.bytes, 0, c.bytes.size());
          }
        }
      }
      pos = k + prefix_bytes;
    }
  }
  for (std::size_t k = pos; k < n; ++k) {
    if (a[k] != b[k]) return Status::internal("fetch frame: unexpected difference");
  }
  frame.append_own(BufferView(b + pos, n - pos));
  const std::uint64_t payload = frame.size() - protocol::kFramePrefixBytes;
  if (payload > 0x7fffffff) return Status::invalid_argument("fetch frame: response too large");
  std::uint8_t* size_prefix = frame.own_data();
  for (int i = 0; i < 4; ++i) size_prefix[i] = static_cast<std::uint8_t>(payload >> (24 - 8 * i));
  return frame;
}

}  // namespace mq::kafka
