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
#include "tests/unit/common/protocol_samples.hpp"

using namespace kpanel::common;
using namespace kpanel::common::protocol;
using namespace kpanel::test_protocol;

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
  check_header_error(header_bytes('K', 'P', kVersion + 1, 0, 10), DecodeError::unsupported_version);
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
