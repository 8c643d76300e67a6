// A whole frame as read from the socket: header, then the body as a request
// (request cap) and as a response (response cap), each round-tripped.

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/protocol.hpp"
#include "fuzz/codec_checks.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace protocol = kpanel::common::protocol;
  const std::span<const std::uint8_t> input(data, size);
  const auto header = protocol::parse_header(input, protocol::kMaxResponseBodySize);
  if (!header) {
    (void)protocol::to_string(header.error());
    return 0;
  }
  KPANEL_FUZZ_CHECK(size >= protocol::kHeaderSize);
  KPANEL_FUZZ_CHECK(header->body_length <= protocol::kMaxResponseBodySize);
  auto body = input.subspan(protocol::kHeaderSize);
  if (body.size() < header->body_length) return 0;  // a reader waits for more bytes
  body = body.first(header->body_length);
  if (protocol::parse_header(input, protocol::kMaxBodySize)) {
    kpanel::fuzz::check_request_body(body);
  }
  kpanel::fuzz::check_response_body(body);
  return 0;
}
