// The zero-copy form of a Fetch response frame: the generated codec encodes every field, and
// the record batches of each partition are spliced in as file extents (sendfile) or shared
// buffers instead of being copied into the frame (docs/kafka_apis.md, "Fetch").
#pragma once

#include <vector>

#include "base/result.h"
#include "cluster/api.h"
#include "kafka/out_frame.h"
#include "protocol/gen/messages.h"

namespace mq::kafka {

// The records of each partition of a FetchResponse, in its order: [topic][partition].
using FetchRecordChunks = std::vector<std::vector<std::vector<cluster::RecordsChunk>>>;

// Encodes the frame (size prefix, response header, body) of `response` for `api_version`.
// A partition whose `records` has a value gets `chunks[t][p]` as its records (the value
// itself must be empty); one whose records are null stays null. The result's bytes are
// exactly what encode_response_frame() gives for the response with the chunks' bytes as
// records. Errors: kInvalidArgument when chunks do not match the response's shape or a
// partition's records exceed the wire limit; the codec's own errors.
Result<OutFrame> encode_fetch_frame(std::int32_t correlation_id, std::int16_t api_version,
                                    protocol::FetchResponse response,
                                    const FetchRecordChunks& chunks);

}  // namespace mq::kafka
