// Fuzz target: the record batch v2 parser, record decoding and the decompressors.
//
// Property: parsing and decoding never crash and never allocate beyond the decompression limit
// (1 MiB here); a batch that validates for produce re-decodes after stamping; a legacy
// message set that converts gives a valid v2 batch.
#include <cstdio>
#include <cstdlib>

#include <zlib.h>

#include "base/kafka_wire.h"
#include "fuzz_target.h"
#include "protocol/legacy_message_set.h"
#include "protocol/record_batch.h"

namespace {
using namespace mq;
using namespace mq::protocol;
constexpr std::size_t kLimitBytes = 1 << 20;

void check_batches(BufferView input, const RecordBatchLimits& limits);

// Mutations almost always break the CRC, which would hide the record decoder behind the CRC
// check; so the first batch is also tried with its CRC recomputed.
void check_with_fixed_crc(BufferView input, const RecordBatchLimits& limits) {
  if (input.size() < kRecordBatchHeaderBytes || input[kRecordBatchMagicOffset] != 2) return;
  std::int32_t length = 0;
  KafkaReader r(input.subspan(kRecordBatchLengthOffset, 4));
  if (!r.read_int32(&length).is_ok() || length < 49) return;
  std::size_t total = static_cast<std::size_t>(length) + kRecordBatchLengthOverhead;
  if (total > input.size()) return;
  Buffer fixed(input);
  update_crc(std::span<std::uint8_t>(fixed.data(), total));
  check_batches(fixed, limits);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  BufferView input(data, size);
  RecordBatchLimits limits;
  limits.decompressed_size_bytes_max = kLimitBytes;
  check_batches(input, limits);
  check_with_fixed_crc(input, limits);
  // Legacy message sets: whatever converts must be a valid v2 batch.
  if (is_legacy_message_set(input)) {
    auto converted = convert_legacy_message_set(input, limits);
    if (converted.has_value()) {
      auto v2 = RecordBatchView::parse(*converted);
      if (!v2.has_value() || !v2->validate_for_produce(limits).is_ok()) {
        std::fprintf(stderr, "record_batch_fuzz: converted legacy set is not a valid batch\n");
        std::abort();
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

namespace {

void check_batches(BufferView input, const RecordBatchLimits& limits) {
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
}

}  // namespace

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
  // A legacy v1 message set: one plain message and a gzip wrapper around another.
  auto legacy_message = [](Buffer* set, std::int8_t attributes, BufferView value) {
    Buffer body;
    KafkaWriter b(&body);
    b.write_int8(1);
    b.write_int8(attributes);
    b.write_int64(1234);
    b.write_null_bytes(false);
    (void)b.write_bytes(false, value);
    KafkaWriter w(set);
    w.write_int64(0);
    w.write_int32(static_cast<std::int32_t>(body.size() + 4));
    w.write_uint32(static_cast<std::uint32_t>(crc32(0L, body.data(), static_cast<uInt>(body.size()))));
    w.write_raw(body);
  };
  Buffer legacy;
  legacy_message(&legacy, 0, as_bytes("plain"));
  Buffer inner;
  legacy_message(&inner, 0, as_bytes("inner"));
  Buffer packed;
  if (compress(Compression::kGzip, inner, &packed).is_ok()) legacy_message(&legacy, 1, packed);
  out.push_back(std::move(legacy));
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
