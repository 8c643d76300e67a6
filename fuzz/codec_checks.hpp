#pragma once
// Round-trip properties of the protocol codec, shared by fuzz_frame,
// fuzz_request and fuzz_response: whatever the decoder accepts, the encoder
// must encode (the decoder's rules are the encoder's), and that frame must
// decode to an equal message.

#include <span>

#include "common/protocol.hpp"
#include "fuzz/fuzz_util.hpp"

namespace kpanel::fuzz {

namespace protocol = kpanel::common::protocol;

inline std::span<const std::uint8_t> frame_body(const common::SecureBytes& frame,
                                                std::size_t max_body) {
  const auto all = frame.view();
  KPANEL_FUZZ_CHECK(all.size() >= protocol::kHeaderSize);
  const auto header = protocol::parse_header(all.first(protocol::kHeaderSize), max_body);
  KPANEL_FUZZ_CHECK(header.has_value());
  KPANEL_FUZZ_CHECK(header->body_length == all.size() - protocol::kHeaderSize);
  return all.subspan(protocol::kHeaderSize);
}

// Every version the codec speaks: a body is read, written and read again in one.
inline void check_request_body(std::span<const std::uint8_t> body) {
  for (auto version = protocol::kOldestVersion; version <= protocol::kVersion; ++version) {
    const auto request = protocol::decode_request(body, version);
    if (!request) continue;
    (void)protocol::op_name(*request);
    const common::SecureBytes frame = protocol::encode_request(*request, version);
    KPANEL_FUZZ_CHECK(!frame.empty());
    const auto again = protocol::decode_request(frame_body(frame, protocol::kMaxBodySize), version);
    KPANEL_FUZZ_CHECK(again.has_value());
    KPANEL_FUZZ_CHECK(*again == *request);
  }
}

inline void check_response_body(std::span<const std::uint8_t> body) {
  for (auto version = protocol::kOldestVersion; version <= protocol::kVersion; ++version) {
    const auto response = protocol::decode_response(body, version);
    if (!response) continue;
    (void)protocol::to_string(response->status);
    const common::SecureBytes frame = protocol::encode_response(*response, version);
    KPANEL_FUZZ_CHECK(!frame.empty());
    const auto again =
        protocol::decode_response(frame_body(frame, protocol::kMaxResponseBodySize), version);
    KPANEL_FUZZ_CHECK(again.has_value());
    KPANEL_FUZZ_CHECK(*again == *response);
  }
}

}  // namespace kpanel::fuzz
