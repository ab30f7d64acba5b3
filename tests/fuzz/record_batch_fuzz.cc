// Fuzz target: the record batch v2 parser, record decoding and the decompressors.
//
// Property: parsing and decoding never crash and never allocate beyond the decompression limit
// (1 MiB here); a batch that validates for produce re-decodes after stamping.
#include <cstdio>
#include <cstdlib>

#include "fuzz_target.h"
#include "protocol/record_batch.h"

namespace {
using namespace mq;
using namespace mq::protocol;
constexpr std::size_t kLimitBytes = 1 << 20;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  BufferView input(data, size);
  RecordBatchLimits limits;
  limits.decompressed_size_bytes_max = kLimitBytes;
  auto batches = parse_record_batches(input, /*allow_partial_tail=*/true);
  if (batches.has_value()) {
    for (const RecordBatchView& b : *batches) {
      auto set = b.decode_records(limits);
      if (set.has_value() && set->storage.size() > kLimitBytes) std::abort();
      if (b.validate_for_produce(limits).is_ok()) {
        Buffer copy(b.bytes());
        set_base_offset(std::span<std::uint8_t>(copy.data(), copy.size()), 1000);
        set_partition_leader_epoch(std::span<std::uint8_t>(copy.data(), copy.size()), 7);
        auto stamped = RecordBatchView::parse(copy);
        if (!stamped.has_value() || stamped->header().base_offset != 1000) {
          std::fprintf(stderr, "record_batch_fuzz: stamping broke a valid batch\n");
          std::abort();
        }
      }
    }
  }
  // Every codec directly on the bytes after the first (which picks the codec).
  if (size > 0) {
    Buffer out;
    Status st = decompress(static_cast<Compression>(data[0] % 5), input.subspan(1), kLimitBytes, &out);
    if (st.is_ok() && out.size() > kLimitBytes) std::abort();
  }
  return 0;
}

// The libFuzzer build needs no structured seeds (scripts/fuzz writes them with the g++ build).
#ifndef MQ_LIBFUZZER
namespace mq::fuzz {

std::vector<Buffer> seeds() {
  std::vector<Buffer> out;
  for (int codec = 0; codec <= 4; ++codec) {
    std::vector<RecordInput> recs(3);
    for (int i = 0; i < 3; ++i) {
      recs[i].key = Buffer(std::string_view("k" + std::to_string(i)));
      recs[i].value = Buffer(std::string_view(std::string(20 + i, 'v')));
      recs[i].headers.push_back({"h", Buffer(std::string_view("x"))});
      recs[i].timestamp = 1000 + i;
    }
    RecordBatchOptions o;
    o.compression = static_cast<Compression>(codec);
    o.producer_id = 5;
    o.producer_epoch = 1;
    o.base_sequence = 0;
    auto batch = build_record_batch(o, recs);
    if (batch.has_value()) out.push_back(std::move(batch).value());
    // The codec alone, behind a selector byte (second half of the target).
    Buffer raw;
    raw.push_back(static_cast<std::uint8_t>(codec));
    if (compress(static_cast<Compression>(codec), as_bytes("hello hello hello hello"), &raw).is_ok()) {
      out.push_back(std::move(raw));
    }
  }
  ControlBatchOptions c;
  auto control = build_control_batch(c, as_bytes("noop"));
  if (control.has_value()) out.push_back(std::move(control).value());
  if (out.size() >= 3) {  // two batches back to back
    Buffer two(out[0].view());
    two.append(out[2]);
    out.push_back(std::move(two));
  }
  return out;
}

}  // namespace mq::fuzz
#endif  // MQ_LIBFUZZER
