#pragma once
// Sample messages and checks shared by the protocol codec tests
// (test_protocol.cpp, test_protocol_versions.cpp).

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

#include "common/protocol.hpp"
#include "common/totp.hpp"

namespace kpanel::test_protocol {

using namespace kpanel::common;
using namespace kpanel::common::protocol;

inline std::vector<std::uint8_t> bytes(std::string_view text) { return {text.begin(), text.end()}; }

inline std::span<const std::uint8_t> body_of(const SecureBytes& frame) {
  BOOST_REQUIRE_GE(frame.size(), kHeaderSize);
  return frame.view().subspan(kHeaderSize);
}

inline std::string text_of(const SecureBytes& frame) {
  const auto body = body_of(frame);
  return {body.begin(), body.end()};
}

inline std::expected<Request, DecodeError> decode_request_text(std::string_view json) {
  return decode_request(bytes(json));
}
inline std::expected<Response, DecodeError> decode_response_text(std::string_view json,
                                                                 std::uint8_t version = kVersion) {
  return decode_response(bytes(json), version);
}

inline void check_request_error(std::string_view json, DecodeError expected) {
  const auto decoded = decode_request_text(json);
  BOOST_TEST_INFO(json);
  BOOST_REQUIRE(!decoded.has_value());
  BOOST_TEST(to_string(decoded.error()) == to_string(expected));
}
inline void check_response_error(std::string_view json, DecodeError expected) {
  const auto decoded = decode_response_text(json);
  BOOST_TEST_INFO(json);
  BOOST_REQUIRE(!decoded.has_value());
  BOOST_TEST(to_string(decoded.error()) == to_string(expected));
}

// The header must describe the body exactly; the body must decode to `request`.
inline void check_request_round_trip(const Request& request) {
  const SecureBytes frame = encode_request(request);
  BOOST_TEST_INFO(op_name(request));
  BOOST_REQUIRE(!frame.empty());
  const auto header = parse_header(frame.view());
  BOOST_REQUIRE(header.has_value());
  BOOST_TEST(header->version == kVersion);
  BOOST_TEST(header->body_length == frame.size() - kHeaderSize);
  const auto decoded = decode_request(body_of(frame));
  BOOST_REQUIRE(decoded.has_value());
  BOOST_TEST(decoded->index() == request.index());
  BOOST_TEST((*decoded == request));
}

inline void check_response_round_trip(const Response& response) {
  const SecureBytes frame = encode_response(response);
  BOOST_TEST_INFO(to_string(response.status) << " / result #" << response.result.index());
  BOOST_REQUIRE(!frame.empty());
  const auto header = parse_header(frame.view(), kMaxResponseBodySize);
  BOOST_REQUIRE(header.has_value());
  BOOST_TEST(header->body_length == frame.size() - kHeaderSize);
  const auto decoded = decode_response(body_of(frame));
  BOOST_REQUIRE(decoded.has_value());
  BOOST_TEST(decoded->result.index() == response.result.index());
  BOOST_TEST((*decoded == response));
}

inline UserStatus full_status(std::string user) {
  return UserStatus{.user = std::move(user),
                    .enrolled = true,
                    .enrolled_at = 1'700'000'000,
                    .recovery_codes_left = 7,
                    .locked_until = 1'700'000'300,
                    .enrollment_pending = true,
                    .last_skew_seconds = -30};
}

inline std::vector<Request> all_requests() {
  return {
      LoginCheckRequest{.user = "alice",
                        .service = "sshd",
                        .rhost = "192.0.2.7",
                        .tty = "ssh",
                        .nullok = true,
                        .enroll = true},
      VerifyRequest{.user = "alice",
                    .service = "sshd",
                    .rhost = "2001:db8::1",
                    .tty = "/dev/pts/3",
                    .code = SecureString("123456")},
      StatusRequest{.user = "bob"},
      EnrollBeginRequest{.user = "carol",
                         .replace = true,
                         .proof = SecureString("ABCD-EFGH-JKLM"),
                         .want_qr_text = true,
                         .service = "sshd",
                         .rhost = "host.example",
                         .tty = "ssh"},
      EnrollConfirmRequest{.user = "carol",
                           .code = SecureString("654321"),
                           .service = "login",
                           .rhost = "",
                           .tty = "tty1"},
      DisableRequest{.user = "dave",
                     .password = SecureString("p\"a\\ss w\x01rd \xc3\xa9\xe2\x82\xac"),
                     .code = SecureString("000000")},
      RegenerateRecoveryCodesRequest{.user = "erin", .code = SecureString("999999")},
      AdminListRequest{},
      AdminResetRequest{.user = "frank"},
      AdminUnlockRequest{.user = "grace"},
  };
}

inline std::vector<Response> all_responses() {
  return {
      Response{.status = Status::ok, .result = EmptyResult{}},
      Response{.status = Status::ok,
               .result = LoginCheckResult{.decision = LoginDecision::locked,
                                          .notice = "Enroll within 3 days:\nkpanel-totp enroll",
                                          .locked_until = 1'700'000'600}},
      Response{.status = Status::ok,
               .result = VerifyResult{.used_recovery_code = true, .recovery_codes_left = 3}},
      Response{.status = Status::ok, .result = StatusResult{.status = full_status("alice")}},
      Response{.status = Status::ok,
               .result =
                   EnrollBeginResult{
                       .uri = SecureString("otpauth://totp/Kapsule:alice%40web1?secret="
                                           "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Kapsule"),
                       .secret_base32 = SecureString("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"),
                       .expires_at = 1'700'000'900,
                       .qr_text = SecureString("\xe2\x96\x88\xe2\x96\x80 \x1b[0m\n")}},
      Response{.status = Status::ok,
               .result = RecoveryCodesResult{.codes = {SecureString("aaaa-bbbb-cccc"),
                                                       SecureString("dddd-eeee-ffff")}}},
      Response{
          .status = Status::ok,
          .result = AdminListResult{.users = {full_status("alice"), UserStatus{.user = "bob"}}}},
      Response{.status = Status::locked, .locked_until = 1'700'001'000},
      Response{.status = Status::wrong_code, .failures_left = 2},
      Response{.status = Status::store_unavailable},
      Response{.status = Status::store_unavailable,
               .store = "the SQLite database in /var/lib/kpanel-totp"},
      Response{.status = Status::malformed_code},
  };
}

inline std::vector<SecureBytes> valid_frames() {
  std::vector<SecureBytes> frames;
  for (const Request& request : all_requests()) frames.push_back(encode_request(request));
  for (const Response& response : all_responses()) frames.push_back(encode_response(response));
  return frames;
}

}  // namespace kpanel::test_protocol
