// Up-conversion of legacy Kafka message sets (magic 0 and 1; what Produce v0-2 clients send)
// into one record batch v2, so that raftmq can keep storing v2 only.
//
// message set := (offset int64, message_size int32, message)*
// message v0  := crc uint32 (CRC-32/IEEE of magic..end), magic int8 = 0, attributes int8,
//                key bytes (int32 length, -1 = null), value bytes (int32 length, -1 = null)
// message v1  := as v0 with timestamp int64 after attributes (KIP-32)
// attributes: bits 0-2 codec (0 none, 1 gzip, 2 snappy (xerial framing), 3 lz4), bit 3
// timestamp type (v1). A compressed "wrapper" message holds an inner message set in its value;
// inner messages may not be compressed again.
//
// The result: one uncompressed-or-same-codec v2 batch, offset deltas 0..n-1, producer id/epoch/
// sequence -1 (legacy producers are not idempotent), v0 timestamps -1 (no timestamp), a v1
// wrapper with LogAppendTime gives its timestamp to every inner record.
#pragma once

#include "base/buffer.h"
#include "base/result.h"
#include "protocol/record_batch.h"

namespace mq::protocol {

// True if the bytes start with a legacy message (magic byte 0 or 1 at offset 16).
bool is_legacy_message_set(BufferView bytes);

// Validates every message (size, CRC-32, magic, lengths) and converts the whole set.
// Errors: Corruption (bad CRC, lengths, nested compression, incomplete message), Unsupported
// (unknown codec, magic > 1 mixed in), LimitExceeded (decompression limit).
Result<Buffer> convert_legacy_message_set(BufferView bytes, const RecordBatchLimits& limits = {});

}  // namespace mq::protocol
