#define BOOST_TEST_MODULE protocol
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

namespace {

using namespace kpanel::common;
using namespace kpanel::common::protocol;

std::vector<std::uint8_t> bytes(std::string_view text) { return {text.begin(), text.end()}; }

std::span<const std::uint8_t> body_of(const SecureBytes& frame) {
  BOOST_REQUIRE_GE(frame.size(), kHeaderSize);
  return frame.view().subspan(kHeaderSize);
}

std::string text_of(const SecureBytes& frame) {
  const auto body = body_of(frame);
  return {body.begin(), body.end()};
}

std::expected<Request, DecodeError> decode_request_text(std::string_view json) {
  return decode_request(bytes(json));
}
std::expected<Response, DecodeError> decode_response_text(std::string_view json,
                                                          std::uint8_t version = kVersion) {
  return decode_response(bytes(json), version);
}

void check_request_error(std::string_view json, DecodeError expected) {
  const auto decoded = decode_request_text(json);
  BOOST_TEST_INFO(json);
  BOOST_REQUIRE(!decoded.has_value());
  BOOST_TEST(to_string(decoded.error()) == to_string(expected));
}
void check_response_error(std::string_view json, DecodeError expected) {
  const auto decoded = decode_response_text(json);
  BOOST_TEST_INFO(json);
  BOOST_REQUIRE(!decoded.has_value());
  BOOST_TEST(to_string(decoded.error()) == to_string(expected));
}

// The header must describe the body exactly; the body must decode to `request`.
void check_request_round_trip(const Request& request) {
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

void check_response_round_trip(const Response& response) {
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

UserStatus full_status(std::string user) {
  return UserStatus{.user = std::move(user),
                    .enrolled = true,
                    .enrolled_at = 1'700'000'000,
                    .recovery_codes_left = 7,
                    .locked_until = 1'700'000'300,
                    .enrollment_pending = true,
                    .last_skew_seconds = -30};
}

std::vector<Request> all_requests() {
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

std::vector<Response> all_responses() {
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

std::vector<SecureBytes> valid_frames() {
  std::vector<SecureBytes> frames;
  for (const Request& request : all_requests()) frames.push_back(encode_request(request));
  for (const Response& response : all_responses()) frames.push_back(encode_response(response));
  return frames;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(names)

BOOST_AUTO_TEST_CASE(status_numbers_and_names_are_fixed) {
  // PROTOCOL.md lists these; numbers are never reused.
  const std::vector<std::pair<Status, std::string_view>> expected{
      {Status::ok, "ok"},
      {Status::bad_request, "bad_request"},
      {Status::forbidden, "forbidden"},
      {Status::not_enrolled, "not_enrolled"},
      {Status::wrong_code, "wrong_code"},
      {Status::locked, "locked"},
      {Status::wrong_password, "wrong_password"},
      {Status::no_pending_enrollment, "no_pending_enrollment"},
      {Status::already_enrolled, "already_enrolled"},
      {Status::no_such_user, "no_such_user"},
      {Status::store_unavailable, "store_unavailable"},
      {Status::internal_error, "internal_error"},
      {Status::unsupported_version, "unsupported_version"}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    BOOST_TEST(static_cast<std::size_t>(expected[i].first) == i);
    BOOST_TEST(to_string(expected[i].first) == expected[i].second);
  }
  BOOST_TEST(to_string(static_cast<Status>(200)) == "unknown");
}

BOOST_AUTO_TEST_CASE(login_decisions_and_ops_have_their_wire_names) {
  BOOST_TEST(to_string(LoginDecision::prompt) == "prompt");
  BOOST_TEST(to_string(LoginDecision::pass) == "pass");
  BOOST_TEST(to_string(LoginDecision::ignore) == "ignore");
  BOOST_TEST(to_string(LoginDecision::enroll) == "enroll");
  BOOST_TEST(to_string(LoginDecision::refuse) == "refuse");
  BOOST_TEST(to_string(LoginDecision::locked) == "locked");
  const std::vector<std::string_view> ops{"login_check",         "verify",         "status",
                                          "enroll_begin",        "enroll_confirm", "disable",
                                          "recovery_regenerate", "admin_list",     "admin_reset",
                                          "admin_unlock"};
  const auto requests = all_requests();
  BOOST_REQUIRE_EQUAL(requests.size(), ops.size());
  for (std::size_t i = 0; i < ops.size(); ++i) BOOST_TEST(op_name(requests[i]) == ops[i]);
  BOOST_TEST(to_string(DecodeError::invalid_value) == "invalid_value");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(round_trip)

BOOST_AUTO_TEST_CASE(every_request_with_every_field_set) {
  for (const Request& request : all_requests()) check_request_round_trip(request);
}

BOOST_AUTO_TEST_CASE(every_response_alternative_with_every_field_set) {
  for (const Response& response : all_responses()) check_response_round_trip(response);
}

BOOST_AUTO_TEST_CASE(defaults_and_bounds_round_trip) {
  check_request_round_trip(LoginCheckRequest{.user = "u"});
  check_request_round_trip(StatusRequest{});  // empty user: the peer itself
  check_request_round_trip(EnrollBeginRequest{});
  check_request_round_trip(DisableRequest{});  // empty password and code still travel
  check_request_round_trip(VerifyRequest{.user = std::string(kMaxUserLength, 'u'),
                                         .service = std::string(kMaxFieldLength, 's'),
                                         .rhost = std::string(kMaxFieldLength, 'r'),
                                         .tty = std::string(kMaxFieldLength, 't'),
                                         .code = SecureString(std::string(kMaxCodeLength, '7'))});
  check_request_round_trip(
      DisableRequest{.password = SecureString(std::string(kMaxPasswordLength, '\x01'))});
  check_response_round_trip(Response{.status = Status::ok, .result = LoginCheckResult{}});
  check_response_round_trip(
      Response{.status = Status::ok,
               .result = StatusResult{.status = UserStatus{.user = "nobody-enrolled"}}});
  check_response_round_trip(Response{.status = Status::ok, .result = RecoveryCodesResult{}});
  check_response_round_trip(Response{.status = Status::unsupported_version});
}

BOOST_AUTO_TEST_CASE(extreme_numbers_round_trip) {
  UserStatus status = full_status("alice");
  status.enrolled_at = std::numeric_limits<std::int64_t>::min();
  status.locked_until = std::numeric_limits<std::int64_t>::max();
  status.recovery_codes_left = std::numeric_limits<std::uint32_t>::max();
  check_response_round_trip(
      Response{.status = Status::ok, .result = StatusResult{.status = status}});
  check_response_round_trip(Response{.status = Status::wrong_code,
                                     .failures_left = std::numeric_limits<std::uint32_t>::max()});
}

BOOST_AUTO_TEST_CASE(a_long_admin_list_fits_in_a_response) {
  // Well over kMaxBodySize: responses have their own, larger cap.
  AdminListResult list;
  for (int i = 0; i < 2000; ++i) list.users.push_back(full_status("user" + std::to_string(i)));
  const Response response{.status = Status::ok, .result = list};
  const SecureBytes frame = encode_response(response);
  BOOST_REQUIRE(!frame.empty());
  BOOST_TEST(frame.size() > kMaxBodySize);
  BOOST_TEST(!parse_header(frame.view()).has_value());  // the request cap refuses it
  check_response_round_trip(response);
}

BOOST_AUTO_TEST_CASE(wire_shape_is_what_protocol_md_shows) {
  const SecureBytes verify = encode_request(
      VerifyRequest{.user = "alice", .service = "sshd", .code = SecureString("123456")});
  BOOST_TEST(
      text_of(verify) ==
      R"({"code":"123456","op":"verify","rhost":"","service":"sshd","tty":"","user":"alice"})");
  const SecureBytes locked = encode_response(Response{.status = Status::locked, .locked_until = 5});
  BOOST_TEST(text_of(locked) == R"({"locked_until":5,"result":"empty","status":"locked"})");
  const SecureBytes store = encode_response(
      Response{.status = Status::store_unavailable, .store = "the PostgreSQL database"});
  BOOST_TEST(text_of(store) == R"({"result":"empty","status":"store_unavailable",)"
                               R"("store":"the PostgreSQL database"})");
  const SecureBytes status = encode_response(
      Response{.status = Status::ok, .result = StatusResult{.status = UserStatus{.user = "a"}}});
  BOOST_TEST(text_of(status) ==
             R"({"result":"status","status":"ok","user_status":{"enrolled":false,)"
             R"("enrollment_pending":false,"recovery_codes_left":0,"user":"a"}})");
}

BOOST_AUTO_TEST_CASE(hand_written_bodies_decode) {
  // Optional fields may be left out or be null; non-ASCII names are fine.
  const auto minimal = decode_request_text(R"({"op":"verify","user":"jos\u00e9","code":"1"})");
  BOOST_REQUIRE(minimal.has_value());
  const auto& verify = std::get<VerifyRequest>(*minimal);
  BOOST_TEST(verify.user == "jos\xc3\xa9");
  BOOST_TEST(verify.service.empty());
  BOOST_TEST(verify.code.view() == "1");
  const auto nulls =
      decode_request_text(R"({"op":"login_check","user":"a","nullok":null,"tty":null})");
  BOOST_REQUIRE(nulls.has_value());
  BOOST_TEST(!std::get<LoginCheckRequest>(*nulls).nullok);
  const auto list = decode_request_text(R"( {"op":"admin_list"} )");
  BOOST_REQUIRE(list.has_value());
  BOOST_TEST(std::holds_alternative<AdminListRequest>(*list));
  const auto status = decode_response_text(
      R"({"status":"ok","result":"status","user_status":{"user":"a","recovery_codes_left":0,"locked_until":null}})");
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(!std::get<StatusResult>(status->result).status.locked_until.has_value());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(header)

std::vector<std::uint8_t> header_bytes(std::uint8_t m0, std::uint8_t m1, std::uint8_t version,
                                       std::uint8_t reserved, std::uint32_t length) {
  return {m0,
          m1,
          version,
          reserved,
          static_cast<std::uint8_t>(length >> 24U),
          static_cast<std::uint8_t>(length >> 16U),
          static_cast<std::uint8_t>(length >> 8U),
          static_cast<std::uint8_t>(length)};
}

void check_header_error(const std::vector<std::uint8_t>& header, DecodeError expected) {
  const auto parsed = parse_header(header);
  BOOST_REQUIRE(!parsed.has_value());
  BOOST_TEST(to_string(parsed.error()) == to_string(expected));
}

BOOST_AUTO_TEST_CASE(valid_header_is_big_endian) {
  const auto parsed = parse_header(header_bytes('K', 'P', 1, 0, 0x0000'0102));
  BOOST_REQUIRE(parsed.has_value());
  BOOST_TEST(parsed->body_length == 0x0102U);
  BOOST_TEST(parse_header(header_bytes('K', 'P', 1, 0, kMaxBodySize)).has_value());
}

BOOST_AUTO_TEST_CASE(header_errors) {
  auto header = header_bytes('K', 'P', 1, 0, 10);
  check_header_error({}, DecodeError::truncated);
  check_header_error({header.begin(), header.begin() + 7}, DecodeError::truncated);
  check_header_error(header_bytes('K', 'Q', 1, 0, 10), DecodeError::bad_magic);
  check_header_error(header_bytes('P', 'K', 1, 0, 10), DecodeError::bad_magic);
  check_header_error(header_bytes('K', 'P', 0, 0, 10), DecodeError::unsupported_version);
  check_header_error(header_bytes('K', 'P', 3, 0, 10), DecodeError::unsupported_version);
  check_header_error(header_bytes('K', 'P', 1, 1, 10), DecodeError::unsupported_version);
  check_header_error(header_bytes('K', 'P', 1, 0, kMaxBodySize + 1), DecodeError::oversized);
  check_header_error(header_bytes('K', 'P', 1, 0, 1U << 30U), DecodeError::oversized);
  check_header_error(header_bytes('K', 'P', 1, 0, 0xffff'ffff), DecodeError::oversized);
  // The response cap is larger but still bounded.
  BOOST_TEST(parse_header(header_bytes('K', 'P', 1, 0, kMaxBodySize + 1), kMaxResponseBodySize)
                 .has_value());
  const auto huge = parse_header(header_bytes('K', 'P', 1, 0, 1U << 30U), kMaxResponseBodySize);
  BOOST_REQUIRE(!huge.has_value());
  BOOST_TEST(to_string(huge.error()) == "oversized");
}

BOOST_AUTO_TEST_CASE(bodies_over_the_cap_are_refused_unread) {
  const std::vector<std::uint8_t> big(kMaxBodySize + 1, ' ');
  BOOST_TEST(to_string(decode_request(big).error()) == "oversized");
  const std::vector<std::uint8_t> bigger(kMaxResponseBodySize + 1, ' ');
  BOOST_TEST(to_string(decode_response(bigger).error()) == "oversized");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(request_errors)

BOOST_AUTO_TEST_CASE(not_a_json_object) {
  check_request_error("", DecodeError::malformed_body);
  check_request_error("not json", DecodeError::malformed_body);
  check_request_error(R"([{"op":"status"}])", DecodeError::malformed_body);
  check_request_error(R"("status")", DecodeError::malformed_body);
  check_request_error("null", DecodeError::malformed_body);
  check_request_error(R"({"op":"status"} {})", DecodeError::malformed_body);
  check_request_error(R"({"op":"status")", DecodeError::malformed_body);
  check_request_error(R"({"op":"status",})", DecodeError::malformed_body);
  check_request_error(R"({"op":"status"/*c*/})", DecodeError::malformed_body);
}

BOOST_AUTO_TEST_CASE(invalid_utf8_is_malformed) {
  check_request_error("{\"op\":\"status\",\"user\":\"\xff\"}", DecodeError::malformed_body);
  check_request_error("{\"op\":\"status\",\"user\":\"\xc3\"}", DecodeError::malformed_body);
  check_request_error("{\"op\":\"status\",\"user\":\"\xed\xa0\x80\"}",  // a surrogate
                      DecodeError::malformed_body);
  check_request_error(R"({"op":"status","user":"\ud800"})", DecodeError::malformed_body);
  check_request_error("{\"op\":\"status\",\"u\xfe\":1}", DecodeError::malformed_body);
}

BOOST_AUTO_TEST_CASE(duplicate_keys_and_deep_nesting_are_malformed) {
  check_request_error(R"({"op":"status","user":"a","user":"root"})", DecodeError::malformed_body);
  check_request_error(R"({"op":"status","user":"a","\u0075ser":"b"})", DecodeError::malformed_body);
  check_request_error(R"({"op":"status","op":"status"})", DecodeError::malformed_body);
  std::string deep = R"({"op":"status","user":)";
  deep += std::string(10'000, '[') + std::string(10'000, ']') + "}";
  check_request_error(deep, DecodeError::malformed_body);
  // Deep but within the byte cap, and not even a valid document.
  check_request_error(std::string(kMaxBodySize, '{'), DecodeError::malformed_body);
}

BOOST_AUTO_TEST_CASE(op_errors) {
  check_request_error(R"({})", DecodeError::missing_field);
  check_request_error(R"({"user":"a"})", DecodeError::missing_field);
  check_request_error(R"({"op":null})", DecodeError::missing_field);
  check_request_error(R"({"op":7})", DecodeError::wrong_type);
  check_request_error(R"({"op":["verify"]})", DecodeError::wrong_type);
  check_request_error(R"({"op":"shutdown"})", DecodeError::unknown_op);
  check_request_error(R"({"op":"VERIFY"})", DecodeError::unknown_op);
  check_request_error(R"({"op":""})", DecodeError::unknown_op);
}

BOOST_AUTO_TEST_CASE(field_errors) {
  check_request_error(R"({"op":"verify","user":"a"})", DecodeError::missing_field);
  check_request_error(R"({"op":"verify","code":"1"})", DecodeError::missing_field);
  check_request_error(R"({"op":"verify","user":"a","code":null})", DecodeError::missing_field);
  check_request_error(R"({"op":"admin_reset"})", DecodeError::missing_field);
  check_request_error(R"({"op":"disable","code":"1"})", DecodeError::missing_field);
  check_request_error(R"({"op":"verify","user":5,"code":"1"})", DecodeError::wrong_type);
  check_request_error(R"({"op":"verify","user":"a","code":123456})", DecodeError::wrong_type);
  check_request_error(R"({"op":"login_check","user":"a","nullok":"yes"})", DecodeError::wrong_type);
  check_request_error(R"({"op":"login_check","user":"a","nullok":1})", DecodeError::wrong_type);
  check_request_error(R"({"op":"status","user":{"name":"a"}})", DecodeError::wrong_type);
  check_request_error(R"({"op":"status","user":"a","extra":1})", DecodeError::unknown_field);
  check_request_error(R"({"op":"admin_list","user":"a"})", DecodeError::unknown_field);
  check_request_error(R"({"op":"status","status":"ok"})", DecodeError::unknown_field);
  check_request_error(R"({"op":"verify","user":"a","code":"1","nullok":true})",
                      DecodeError::unknown_field);
}

BOOST_AUTO_TEST_CASE(length_bounds) {
  const auto with_user = [](std::size_t length) {
    return R"({"op":"status","user":")" + std::string(length, 'u') + R"("})";
  };
  BOOST_TEST(decode_request_text(with_user(kMaxUserLength)).has_value());
  check_request_error(with_user(kMaxUserLength + 1), DecodeError::field_too_long);
  const auto with_code = [](std::size_t length) {
    return R"({"op":"verify","user":"a","code":")" + std::string(length, '1') + R"("})";
  };
  BOOST_TEST(decode_request_text(with_code(kMaxCodeLength)).has_value());
  check_request_error(with_code(kMaxCodeLength + 1), DecodeError::field_too_long);
  check_request_error(R"({"op":"login_check","user":"a","rhost":")" +
                          std::string(kMaxFieldLength + 1, 'h') + R"("})",
                      DecodeError::field_too_long);
  check_request_error(R"({"op":"disable","code":"1","password":")" +
                          std::string(kMaxPasswordLength + 1, 'p') + R"("})",
                      DecodeError::field_too_long);
  // The bound is on the decoded text: 64 escaped characters are 64 characters.
  std::string escaped = R"({"op":"verify","user":"a","code":")";
  for (std::size_t i = 0; i < kMaxCodeLength; ++i) escaped += R"(\u0031)";
  BOOST_TEST(decode_request_text(escaped + R"("})").has_value());
}

BOOST_AUTO_TEST_CASE(implausible_user_names) {
  for (const std::string_view user : {R"(../root)", R"(a/b)", R"(a:b)", R"(a\nb)", R"(a\u0000b)",
                                      R"(\u007f)", R"(\u009b)", R"(\t)"}) {
    check_request_error(R"({"op":"status","user":")" + std::string(user) + R"("})",
                        DecodeError::invalid_value);
  }
  check_request_error(R"({"op":"verify","user":"","code":"1"})", DecodeError::invalid_value);
  check_request_error(R"({"op":"admin_unlock","user":""})", DecodeError::invalid_value);
  check_request_error(R"({"op":"login_check","user":"a","tty":"x\ny"})",
                      DecodeError::invalid_value);
  // Codes and passwords are not names: anything UTF-8 goes through to the daemon.
  BOOST_TEST(decode_request_text(R"({"op":"verify","user":"a","code":"1/2:\n"})").has_value());
  BOOST_TEST(decode_request_text(R"({"op":"status","user":"Ren\u00e9e.o-k_1$"})").has_value());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(response_errors)

BOOST_AUTO_TEST_CASE(envelope_errors) {
  check_response_error("[]", DecodeError::malformed_body);
  check_response_error(R"({"result":"empty"})", DecodeError::missing_field);
  check_response_error(R"({"status":"ok"})", DecodeError::missing_field);
  check_response_error(R"({"status":0,"result":"empty"})", DecodeError::wrong_type);
  check_response_error(R"({"status":"fine","result":"empty"})", DecodeError::invalid_value);
  check_response_error(R"({"status":"ok","result":"shrug"})", DecodeError::invalid_value);
  check_response_error(R"({"status":"ok","result":"empty","op":"verify"})",
                       DecodeError::unknown_field);
}

BOOST_AUTO_TEST_CASE(result_must_match_its_payload) {
  check_response_error(R"({"status":"ok","result":"verify","decision":"prompt"})",
                       DecodeError::unknown_field);
  check_response_error(R"({"status":"ok","result":"verify"})", DecodeError::missing_field);
  check_response_error(R"({"status":"ok","result":"login_check","recovery_codes_left":1})",
                       DecodeError::unknown_field);
  check_response_error(R"({"status":"ok","result":"status","user":"a","recovery_codes_left":0})",
                       DecodeError::unknown_field);
  check_response_error(R"({"status":"ok","result":"admin_list","users":{"user":"a"}})",
                       DecodeError::wrong_type);
  check_response_error(R"({"status":"ok","result":"admin_list","users":[{"user":"a"}]})",
                       DecodeError::missing_field);
  check_response_error(
      R"({"status":"ok","result":"admin_list","users":[{"user":"a","recovery_codes_left":0,"x":1}]})",
      DecodeError::unknown_field);
  check_response_error(R"({"status":"ok","result":"recovery_codes","codes":["a",1]})",
                       DecodeError::wrong_type);
  check_response_error(R"({"status":"ok","result":"login_check","decision":"maybe"})",
                       DecodeError::invalid_value);
  check_response_error(R"({"status":"ok","result":"login_check","decision":4})",
                       DecodeError::wrong_type);
}

BOOST_AUTO_TEST_CASE(error_statuses_carry_no_payload) {
  check_response_error(R"({"status":"locked","result":"verify","recovery_codes_left":1})",
                       DecodeError::invalid_value);
  check_response_error(R"({"status":"wrong_code","result":"empty","recovery_codes_left":1})",
                       DecodeError::unknown_field);
  check_response_error(R"({"status":"ok","result":"empty","locked_until":5})",
                       DecodeError::unknown_field);
  const auto locked =
      decode_response_text(R"({"status":"locked","result":"empty","locked_until":5})");
  BOOST_REQUIRE(locked.has_value());
  BOOST_TEST((locked->status == Status::locked));
  BOOST_TEST(locked->locked_until.value_or(0) == 5);
}

BOOST_AUTO_TEST_CASE(numbers_out_of_range_or_not_integers) {
  const auto verify = [](std::string_view left) {
    return R"({"status":"ok","result":"verify","recovery_codes_left":)" + std::string(left) + "}";
  };
  BOOST_TEST(decode_response_text(verify("4294967295")).has_value());
  check_response_error(verify("4294967296"), DecodeError::invalid_value);
  check_response_error(verify("-1"), DecodeError::invalid_value);
  check_response_error(verify("1.5"), DecodeError::wrong_type);
  check_response_error(verify("1e2"), DecodeError::wrong_type);
  check_response_error(verify(R"("3")"), DecodeError::wrong_type);
  check_response_error(verify("true"), DecodeError::wrong_type);
  check_response_error(verify("99999999999999999999999"), DecodeError::wrong_type);  // a double
  const auto begin = [](std::string_view expires) {
    return R"({"status":"ok","result":"enroll_begin","uri":"u","secret_base32":"S","expires_at":)" +
           std::string(expires) + "}";
  };
  // A version 1 reply: no algorithm, digits, period.
  BOOST_TEST(decode_response_text(begin("-9223372036854775808"), 1).has_value());
  BOOST_TEST(decode_response_text(begin("9223372036854775807"), 1).has_value());
  check_response_error(begin("9223372036854775808"), DecodeError::invalid_value);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(encoder_refusals)

// The enrollment's URI and QR text spell out the secret: they travel in
// wiping storage like the secret itself, and keep their wire rules (the URI
// a line without control characters, both bounded).
static_assert(std::is_same_v<decltype(EnrollBeginResult::uri), SecureString>);
static_assert(std::is_same_v<decltype(EnrollBeginResult::qr_text), SecureString>);
static_assert(std::is_same_v<decltype(EnrollBeginResult::secret_base32), SecureString>);

BOOST_AUTO_TEST_CASE(enrollment_uri_and_qr_text_keep_their_rules) {
  const auto begun = [](std::string uri, std::string qr) {
    return Response{.status = Status::ok,
                    .result = EnrollBeginResult{.uri = SecureString(uri),
                                                .secret_base32 = SecureString("S"),
                                                .expires_at = 1,
                                                .qr_text = SecureString(qr)}};
  };
  BOOST_TEST(!encode_response(begun("otpauth://totp/x?secret=S", "\x1b[0m\n")).empty());
  BOOST_TEST(encode_response(begun("otpauth://evil\nline", "")).empty());
  BOOST_TEST(encode_response(begun(std::string(kMaxUriLength + 1, 'u'), "")).empty());
  BOOST_TEST(encode_response(begun("u", std::string(kMaxQrTextLength + 1, 'q'))).empty());
  const auto body = [](std::string_view uri, std::string_view qr) {
    return R"({"status":"ok","result":"enroll_begin","uri":")" + std::string(uri) +
           R"(","secret_base32":"S","expires_at":1,"qr_text":")" + std::string(qr) + R"("})";
  };
  const auto decoded = decode_response_text(body("otpauth://totp/x", "ab\\n"), 1);  // a v1 reply
  BOOST_REQUIRE(decoded.has_value());
  const auto& result = std::get<EnrollBeginResult>(decoded->result);
  BOOST_TEST(result.uri.view() == "otpauth://totp/x");
  BOOST_TEST(result.qr_text.view() == "ab\n");
  check_response_error(body("otpauth://x\\u0007", ""), DecodeError::invalid_value);
  check_response_error(body(std::string(kMaxUriLength + 1, 'u'), ""), DecodeError::field_too_long);
}

BOOST_AUTO_TEST_CASE(messages_that_would_not_decode_are_not_encoded) {
  BOOST_TEST(encode_request(VerifyRequest{.user = "a", .code = SecureString("\xff\xfe")}).empty());
  BOOST_TEST(encode_request(StatusRequest{.user = "caf\xc3"}).empty());
  BOOST_TEST(encode_request(StatusRequest{.user = "a/b"}).empty());
  BOOST_TEST(encode_request(VerifyRequest{.user = "", .code = SecureString("1")}).empty());
  BOOST_TEST(encode_request(AdminResetRequest{}).empty());
  BOOST_TEST(encode_request(StatusRequest{.user = std::string(kMaxUserLength + 1, 'u')}).empty());
  BOOST_TEST(encode_request(LoginCheckRequest{.user = "a", .rhost = "evil\nline"}).empty());
  BOOST_TEST(encode_response(Response{.status = Status::ok, .locked_until = 1}).empty());
  BOOST_TEST(encode_response(Response{.status = Status::ok, .failures_left = 1}).empty());
  BOOST_TEST(encode_response(Response{.status = Status::ok, .store = "x"}).empty());
  BOOST_TEST(
      encode_response(Response{.status = Status::store_unavailable, .store = "a\nb"}).empty());
  BOOST_TEST(encode_response(Response{.status = Status::locked, .result = VerifyResult{}}).empty());
  BOOST_TEST(encode_response(Response{.status = static_cast<Status>(99)}).empty());
  BOOST_TEST(encode_response(
                 Response{.status = Status::ok,
                          .result = LoginCheckResult{.decision = static_cast<LoginDecision>(42)}})
                 .empty());
  BOOST_TEST(encode_response(
                 Response{.status = Status::ok, .result = AdminListResult{.users = {UserStatus{}}}})
                 .empty());
  // The fallback a daemon sends when its real reply does not encode.
  BOOST_TEST(!encode_response(Response{.status = Status::internal_error}).empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(mutation)

// Random byte flips, truncations and extensions of valid frames: decoding never
// crashes, and whatever decodes re-encodes to the same message.
BOOST_AUTO_TEST_CASE(random_mutations_never_crash_and_stay_consistent) {
  const auto seeds = valid_frames();
  constexpr std::uint32_t kSeed = 0x6b70'7470;
  std::mt19937 rng(kSeed);
  BOOST_TEST_MESSAGE("mutation seed " << kSeed);
  std::size_t decoded_requests = 0;
  std::size_t decoded_responses = 0;
  const std::string_view interesting = "{}[]\":,\\0123456789-.eEtfnul \x7f\xc3\xff";
  for (int round = 0; round < 20'000; ++round) {
    const SecureBytes& seed = seeds[rng() % seeds.size()];
    std::vector<std::uint8_t> frame(seed.view().begin(), seed.view().end());
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) {
      const std::size_t at = rng() % frame.size();
      switch (rng() % 4) {
        case 0:
          frame[at] = static_cast<std::uint8_t>(rng());
          break;
        case 1:
          frame[at] = static_cast<std::uint8_t>(interesting[rng() % interesting.size()]);
          break;
        case 2:
          frame.resize(at);
          break;
        default:
          frame.insert(frame.begin() + static_cast<std::ptrdiff_t>(at),
                       static_cast<std::uint8_t>(interesting[rng() % interesting.size()]));
          break;
      }
      if (frame.empty()) frame.push_back('K');
    }
    const std::span<const std::uint8_t> all(frame);
    const auto header = parse_header(all, kMaxResponseBodySize);
    if (header) BOOST_TEST(header->body_length <= kMaxResponseBodySize);
    const auto body = all.subspan(std::min(all.size(), kHeaderSize));

    if (const auto request = decode_request(body)) {
      ++decoded_requests;
      const SecureBytes again = encode_request(*request);
      BOOST_REQUIRE(!again.empty());
      const auto redecoded = decode_request(body_of(again));
      BOOST_REQUIRE(redecoded.has_value());
      BOOST_REQUIRE((*redecoded == *request));
    } else {
      BOOST_REQUIRE(!to_string(request.error()).empty());
      BOOST_REQUIRE(to_string(request.error()) != "unknown");
    }
    if (const auto response = decode_response(body)) {
      ++decoded_responses;
      const SecureBytes again = encode_response(*response);
      BOOST_REQUIRE(!again.empty());
      const auto redecoded = decode_response(body_of(again));
      BOOST_REQUIRE(redecoded.has_value());
      BOOST_REQUIRE((*redecoded == *response));
    } else {
      BOOST_REQUIRE(to_string(response.error()) != "unknown");
    }
  }
  // Some mutants stay valid (e.g. a digit changed): the comparison above ran.
  BOOST_TEST_MESSAGE("decoded " << decoded_requests << " requests, " << decoded_responses
                                << " responses");
  BOOST_TEST(decoded_requests + decoded_responses > 0U);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(versions)

std::string frame_text(const SecureBytes& frame) {
  return {frame.view().begin(), frame.view().end()};
}

// The bytes today's (version 1) module sends for a verify, exactly: an
// upgraded daemon must keep reading them.
constexpr std::string_view kV1VerifyBody =
    R"({"code":"123456","op":"verify","rhost":"192.0.2.7","service":"sshd","tty":"ssh","user":"alice"})";

BOOST_AUTO_TEST_CASE(a_version_1_request_frame_is_unchanged) {
  const VerifyRequest verify{.user = "alice",
                             .service = "sshd",
                             .rhost = "192.0.2.7",
                             .tty = "ssh",
                             .code = SecureString("123456")};
  const std::string length{'\0', '\0', '\0', static_cast<char>(kV1VerifyBody.size())};
  BOOST_TEST(frame_text(encode_request(verify, 1)) ==
             std::string("KP\x01\x00", 4) + length + std::string(kV1VerifyBody));
  // Version 2 requests have the same bodies; only the header says 2.
  BOOST_TEST(frame_text(encode_request(verify)) ==
             std::string("KP\x02\x00", 4) + length + std::string(kV1VerifyBody));
  const auto decoded = decode_request(bytes(kV1VerifyBody), 1);
  BOOST_REQUIRE(decoded.has_value());
  BOOST_TEST((std::get<VerifyRequest>(*decoded) == verify));
}

BOOST_AUTO_TEST_CASE(every_message_round_trips_in_both_versions) {
  for (const std::uint8_t version : {std::uint8_t{1}, std::uint8_t{2}}) {
    BOOST_TEST_CONTEXT("version " << int{version}) {
      for (const Request& request : all_requests()) {
        const SecureBytes frame = encode_request(request, version);
        BOOST_REQUIRE(!frame.empty());
        const auto header = parse_header(frame.view());
        BOOST_REQUIRE(header.has_value());
        BOOST_TEST(header->version == version);
        const auto decoded = decode_request(body_of(frame), version);
        BOOST_REQUIRE(decoded.has_value());
        BOOST_TEST((*decoded == request));
      }
      for (const Response& response : all_responses()) {
        const SecureBytes frame = encode_response(response, version);
        BOOST_REQUIRE(!frame.empty());
        const auto header = parse_header(frame.view(), kMaxResponseBodySize);
        BOOST_REQUIRE(header.has_value());
        BOOST_TEST(header->version == version);
        const auto decoded = decode_response(body_of(frame), version);
        BOOST_REQUIRE(decoded.has_value());
        BOOST_TEST((*decoded == response));  // the TOTP settings are the defaults here
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(versions_outside_the_range_are_refused) {
  const Request request = StatusRequest{.user = "alice"};
  BOOST_TEST(encode_request(request, 0).empty());
  BOOST_TEST(encode_request(request, static_cast<std::uint8_t>(kVersion + 1)).empty());
  BOOST_TEST(encode_response(Response{.status = Status::busy}, 3).empty());
  BOOST_TEST(to_string(decode_request(bytes(R"({"op":"admin_list"})"), 0).error()) ==
             "unsupported_version");
  BOOST_TEST(to_string(decode_response(bytes(R"({"status":"ok","result":"empty"})"), 3).error()) ==
             "unsupported_version");
  BOOST_TEST(parse_header(std::vector<std::uint8_t>{'K', 'P', 2, 0, 0, 0, 0, 1}).has_value());
}

Response begun_with(TotpAlgorithm algorithm, std::uint32_t digits, std::uint32_t period) {
  return Response{.status = Status::ok,
                  .result = EnrollBeginResult{.uri = SecureString("otpauth://totp/x"),
                                              .secret_base32 = SecureString("S"),
                                              .expires_at = 5,
                                              .algorithm = algorithm,
                                              .digits = digits,
                                              .period = period}};
}

BOOST_AUTO_TEST_CASE(enrollment_carries_the_totp_settings_from_version_2) {
  const Response response = begun_with(TotpAlgorithm::sha256, 8, 60);
  const SecureBytes v2 = encode_response(response);
  BOOST_TEST(
      text_of(v2) ==
      R"({"algorithm":"SHA256","digits":8,"expires_at":5,"period":60,"qr_text":"","result":"enroll_begin",)"
      R"("secret_base32":"S","status":"ok","uri":"otpauth://totp/x"})");
  const auto decoded = decode_response(body_of(v2));
  BOOST_REQUIRE(decoded.has_value());
  BOOST_TEST((*decoded == response));

  // Version 1 has none of them: left out for a v1 reader, which gets the defaults.
  const SecureBytes v1 = encode_response(response, 1);
  BOOST_TEST(text_of(v1) ==
             R"({"expires_at":5,"qr_text":"","result":"enroll_begin","secret_base32":"S",)"
             R"("status":"ok","uri":"otpauth://totp/x"})");
  const auto old = decode_response(body_of(v1), 1);
  BOOST_REQUIRE(old.has_value());
  BOOST_TEST((*old == begun_with(TotpAlgorithm::sha1, 6, 30)));

  // Each version refuses the other's shape, like any unknown or missing field.
  check_response_error(text_of(v1), DecodeError::missing_field);
  BOOST_TEST(to_string(decode_response(body_of(v2), 1).error()) == "unknown_field");
}

BOOST_AUTO_TEST_CASE(algorithm_names_are_the_totp_ones) {
  for (const TotpAlgorithm algorithm :
       {TotpAlgorithm::sha1, TotpAlgorithm::sha256, TotpAlgorithm::sha512}) {
    const std::string text = text_of(encode_response(begun_with(algorithm, 6, 30)));
    const std::string expected = R"("algorithm":")" + std::string(to_string(algorithm)) + '"';
    BOOST_TEST(text.find(expected) != std::string::npos, text);
  }
  const auto with_algorithm = [](std::string_view name) {
    return R"({"status":"ok","result":"enroll_begin","uri":"u","secret_base32":"S","expires_at":1,)"
           R"("algorithm":)" +
           std::string(name) + R"(,"digits":6,"period":30})";
  };
  BOOST_TEST(decode_response_text(with_algorithm(R"("SHA512")")).has_value());
  check_response_error(with_algorithm(R"("sha1")"), DecodeError::invalid_value);
  check_response_error(with_algorithm(R"("MD5")"), DecodeError::invalid_value);
  check_response_error(with_algorithm("1"), DecodeError::wrong_type);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(typed_code)

Code::Kind kind_of(std::string_view typed) { return Code(SecureString(typed)).kind(); }

BOOST_AUTO_TEST_CASE(a_code_is_classified_once_by_its_shape) {
  BOOST_TEST((kind_of("123456") == Code::Kind::totp));
  BOOST_TEST((kind_of("123 456") == Code::Kind::totp));
  BOOST_TEST((kind_of("12345678") == Code::Kind::totp));
  BOOST_TEST((kind_of("12345") == Code::Kind::totp));  // the enrollment's length is the daemon's
  BOOST_TEST((kind_of("7KQ2-9MXD-4T") == Code::Kind::recovery));
  BOOST_TEST((kind_of("7kq2 9mxd4t") == Code::Kind::recovery));
  BOOST_TEST((kind_of("1234567890") == Code::Kind::recovery));  // 10 symbols
  BOOST_TEST((kind_of("") == Code::Kind::malformed));
  BOOST_TEST((kind_of("   ") == Code::Kind::malformed));
  BOOST_TEST((kind_of("12345a") == Code::Kind::malformed));
  BOOST_TEST((kind_of("123-456") == Code::Kind::malformed));
  BOOST_TEST((kind_of("hello") == Code::Kind::malformed));
  BOOST_TEST((Code{}.kind() == Code::Kind::malformed));
}

BOOST_AUTO_TEST_CASE(totp_digits_drop_the_spaces_and_the_wire_keeps_what_was_typed) {
  const Code code(SecureString(" 123 456 "));
  BOOST_TEST(code.digits() == "123456");
  BOOST_TEST(code.view() == " 123 456 ");
  BOOST_TEST(Code(SecureString("ABCD-EFGH-JK")).digits().empty());
  const auto decoded = decode_request(bytes(R"({"op":"verify","user":"a","code":"12 34 56"})"));
  BOOST_REQUIRE(decoded.has_value());
  const Code& typed = std::get<VerifyRequest>(*decoded).code;
  BOOST_TEST((typed.kind() == Code::Kind::totp));
  BOOST_TEST(typed.digits() == "123456");
  BOOST_TEST(text_of(encode_request(*decoded)).find(R"("code":"12 34 56")") != std::string::npos);
  const auto proof =
      decode_request(bytes(R"({"op":"enroll_begin","replace":true,"proof":"ABCD-EFGH-JK"})"));
  BOOST_REQUIRE(proof.has_value());
  BOOST_TEST((std::get<EnrollBeginRequest>(*proof).proof.kind() == Code::Kind::recovery));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(ops)

BOOST_AUTO_TEST_CASE(one_table_names_each_op_on_the_wire_and_in_the_audit_log) {
  const std::vector<std::tuple<Op, std::string_view, std::string_view>> expected{
      {Op::login_check, "login_check", "login_check"},
      {Op::verify, "verify", "verify"},
      {Op::status, "status", "status"},
      {Op::enroll_begin, "enroll_begin", "enroll_begin"},
      {Op::enroll_confirm, "enroll_confirm", "enroll_confirm"},
      {Op::disable, "disable", "disable"},
      {Op::recovery_regenerate, "recovery_regenerate", "recovery_regenerate"},
      {Op::admin_list, "admin_list", "admin_list"},
      {Op::admin_reset, "admin_reset", "reset"},
      {Op::admin_unlock, "admin_unlock", "unlock"}};
  BOOST_TEST(expected.size() == kOps.size());
  for (const auto& [op, wire, audit] : expected) {
    BOOST_TEST(op_name(op) == wire);
    BOOST_TEST(audit_name(op) == audit);
  }
  for (const Request& request : all_requests()) {
    BOOST_TEST((op_of(request) == static_cast<Op>(request.index())));
    BOOST_TEST(op_name(request) == op_name(op_of(request)));
    BOOST_TEST(
        text_of(encode_request(request)).find(R"("op":")" + std::string(op_name(request)) + '"') !=
        std::string::npos);
  }
}

BOOST_AUTO_TEST_SUITE_END()
