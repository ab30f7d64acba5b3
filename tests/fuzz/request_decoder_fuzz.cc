// Fuzz target: the Kafka request decoder (header + body, any API key and version), the
// response body decoders on the same bytes, and the frame reader.
//
// Property: decoding never crashes; whatever decodes re-encodes, and re-decoding that encoding
// gives the same encoding again (encode . decode is idempotent).
#include <cstdlib>
#include <cstdio>

#include "fuzz_target.h"
#include "protocol/headers.h"
#ifndef MQ_LIBFUZZER
#include "base/prng.h"
#include "protocol/gen/randomize.h"
#endif

namespace {

using namespace mq;
using namespace mq::protocol;

void fail(const char* what, const Status& st) {
  std::fprintf(stderr, "request_decoder_fuzz: %s: %s\n", what, st.to_string().c_str());
  std::abort();
}

void check_request_round_trip(const DecodedRequest& req) {
  Buffer first;
  Status st = encode_request_frame(req.header, req.body, &first);
  if (!st.is_ok()) fail("a decoded request does not re-encode", st);
  auto again = decode_request(first.view(4, first.size() - 4));
  if (!again.has_value()) fail("a re-encoded request does not decode", again.error());
  Buffer second;
  st = encode_request_frame(again->header, again->body, &second);
  if (!st.is_ok()) fail("second encoding failed", st);
  if (!(first == second)) fail("encode(decode(x)) is not stable", Status::internal("mismatch"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  BufferView input(data, size);
  auto req = decode_request(input);
  if (req.has_value()) check_request_round_trip(*req);

  // Response decoders for the API/version the header names, on the bytes after the header.
  KafkaReader in(input);
  auto header = decode_request_header(in);
  if (header.has_value()) {
    KafkaReader rest(in.rest());
    auto resp = decode_response_body(header->request_api_key, header->request_api_version, rest);
    if (resp.has_value()) {
      Buffer out;
      KafkaWriter w(&out);
      Status st = encode_response_body(*resp, header->request_api_version, w);
      if (!st.is_ok()) fail("a decoded response does not re-encode", st);
    }
  }

  // The same bytes as a stream of frames, with a small maximum.
  FrameReader frames(4096);
  if (frames.feed(input).is_ok()) {
    int n = 0;
    while (frames.next_frame().has_value() && ++n < 1000) {
    }
  }
  return 0;
}

// The libFuzzer build needs no structured seeds (scripts/fuzz writes them with the g++ build).
#ifndef MQ_LIBFUZZER
namespace mq::fuzz {

// One encoded request (header v1/v2 + body) per API and version, with random contents.
std::vector<Buffer> seeds() {
  std::vector<Buffer> out;
  Prng rng(1);
  for (const ApiSpec& api : api_table()) {
    for (std::int16_t v = api.min_version; v <= api.max_version; ++v) {
      AnyRequest body;
      bool found = false;
      // Pick the alternative with this api key.
      auto try_one = [&](auto tag) {
        using T = typename decltype(tag)::type;
        if (!found && T::kApiKey == api.api_key) {
          T m;
          randomize(m, rng, v);
          body = std::move(m);
          found = true;
        }
      };
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (try_one(std::type_identity<std::variant_alternative_t<I, AnyRequest>>{}), ...);
      }(std::make_index_sequence<std::variant_size_v<AnyRequest>>{});
      RequestHeader h;
      h.request_api_key = api.api_key;
      h.request_api_version = v;
      h.correlation_id = v;
      h.client_id = "fuzz";
      Buffer frame;
      if (found && encode_request_frame(h, body, &frame).is_ok()) {
        out.emplace_back(frame.view(4, frame.size() - 4));
      }
    }
  }
  return out;
}

}  // namespace mq::fuzz
#endif  // MQ_LIBFUZZER
