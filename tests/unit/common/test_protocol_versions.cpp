#define BOOST_TEST_MODULE protocol_versions
// Protocol versions 1 and 2, the typed code and the op table.
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
  // Later versions send the same body; only the header's version differs.
  BOOST_TEST(frame_text(encode_request(verify, 2)) ==
             std::string("KP\x02\x00", 4) + length + std::string(kV1VerifyBody));
  BOOST_TEST(frame_text(encode_request(verify, 3)) ==
             std::string("KP\x03\x00", 4) + length + std::string(kV1VerifyBody));
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
  const auto past = static_cast<std::uint8_t>(kVersion + 1);
  BOOST_TEST(encode_response(Response{.status = Status::busy}, past).empty());
  BOOST_TEST(to_string(decode_request(bytes(R"({"op":"admin_list"})"), 0).error()) ==
             "unsupported_version");
  BOOST_TEST(
      to_string(decode_response(bytes(R"({"status":"ok","result":"empty"})"), past).error()) ==
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

// 8 digits: a TOTP code by shape, and maybe an imported scratch code (which
// one the daemon decides from the enrollment's digits).
BOOST_AUTO_TEST_CASE(eight_digits_may_be_a_scratch_code) {
  BOOST_TEST(Code(SecureString("12345678")).may_be_scratch_code());
  BOOST_TEST(Code(SecureString("1234 5678")).may_be_scratch_code());
  BOOST_TEST(!Code(SecureString("123456")).may_be_scratch_code());
  BOOST_TEST(!Code(SecureString("1234567")).may_be_scratch_code());
  BOOST_TEST(!Code(SecureString("123456789")).may_be_scratch_code());
  BOOST_TEST(!Code(SecureString("1234-5678")).may_be_scratch_code());  // malformed
  BOOST_TEST(!Code(SecureString("ABCD-EFGH-JK")).may_be_scratch_code());
}

AdminImportRequest sample_import() {
  return AdminImportRequest{.user = "alice",
                            .secret_base32 = SecureString("JBSWY3DPEHPK3PXP"),
                            .period = 60,
                            .window_size = 5,
                            .time_skew = -2,
                            .used_steps = {56'666'666, 56'666'667},
                            .scratch_codes = {SecureString("12345678")}};
}

BOOST_AUTO_TEST_CASE(admin_import_is_version_3) {
  const Request request = sample_import();
  check_request_round_trip(request);
  check_response_round_trip(
      Response{.status = Status::ok, .result = AdminImportResult{.imported = true}});
  check_response_round_trip(
      Response{.status = Status::ok,
               .result = AdminImportResult{.imported = false, .reason = "already enrolled"}});
  // Unknown in a version 2 frame, either way: never sent to an older daemon,
  // refused from an older client.
  const std::string body = text_of(encode_request(request));
  for (const std::uint8_t version : {std::uint8_t{1}, std::uint8_t{2}}) {
    BOOST_TEST(encode_request(request, version).empty());
    BOOST_TEST(to_string(decode_request(bytes(body), version).error()) == "unknown_op");
    BOOST_TEST(
        encode_response(Response{.status = Status::ok, .result = AdminImportResult{}}, version)
            .empty());
  }
}

BOOST_AUTO_TEST_CASE(admin_import_steps_are_whole_numbers) {
  check_request_error(
      R"({"op":"admin_import","user":"a","secret_base32":"S","period":30,"window_size":3,)"
      R"("used_steps":["1"]})",
      DecodeError::wrong_type);
  check_request_error(
      R"({"op":"admin_import","user":"a","secret_base32":"S","period":30,"window_size":3,)"
      R"("used_steps":[1.5]})",
      DecodeError::wrong_type);
  check_request_error(
      R"({"op":"admin_import","user":"a","secret_base32":"S","period":30,"window_size":3,)"
      R"("used_steps":7})",
      DecodeError::wrong_type);
  check_request_error(R"({"op":"admin_import","user":"a","period":30,"window_size":3})",
                      DecodeError::missing_field);
}

BOOST_AUTO_TEST_SUITE_END()

// ---- version 3: remembered logins ----
BOOST_AUTO_TEST_SUITE(remembered_logins)

BOOST_AUTO_TEST_CASE(forget_is_a_version_3_op) {
  const Request forget = ForgetRequest{.user = "alice"};
  const SecureBytes v3 = encode_request(forget);
  BOOST_TEST(text_of(v3) == R"({"op":"forget","user":"alice"})");
  const auto decoded = decode_request(body_of(v3));
  BOOST_REQUIRE(decoded.has_value());
  BOOST_TEST((*decoded == forget));
  BOOST_TEST((op_of(forget) == Op::forget));
  for (const std::uint8_t version : {std::uint8_t{1}, std::uint8_t{2}}) {
    BOOST_TEST(encode_request(forget, version).empty());
    BOOST_TEST(to_string(decode_request(body_of(v3), version).error()) == "unknown_op");
  }
}

BOOST_AUTO_TEST_CASE(remember_and_source_are_version_3_fields) {
  const LoginCheckRequest check{.user = "alice", .remember = true, .source = "192.0.2.7"};
  const VerifyRequest verify{.user = "alice",
                             .code = SecureString("123456"),
                             .remember = true,
                             .source = "tty=pts/3 ruser=bob"};
  for (const Request& request : {Request{check}, Request{verify}}) {
    const SecureBytes v3 = encode_request(request);
    const std::string text = text_of(v3);
    BOOST_TEST(text.find(R"("remember":true)") != std::string::npos, text);
    const auto decoded = decode_request(body_of(v3));
    BOOST_REQUIRE(decoded.has_value());
    BOOST_TEST((*decoded == request));
    // Left out of a version 2 frame; unknown in one.
    BOOST_TEST(text_of(encode_request(request, 2)).find("remember") == std::string::npos);
    BOOST_TEST(to_string(decode_request(body_of(v3), 2).error()) == "unknown_field");
  }
  // Not set: a version 3 frame has the older shape.
  BOOST_TEST(text_of(encode_request(LoginCheckRequest{.user = "a"})) ==
             R"({"enroll":false,"nullok":false,"op":"login_check","rhost":"","service":"",)"
             R"("tty":"","user":"a"})");
  // A source is a bounded line.
  BOOST_TEST(
      encode_request(LoginCheckRequest{.user = "a", .remember = true, .source = "a\nb"}).empty());
  BOOST_TEST(encode_request(LoginCheckRequest{.user = "a",
                                              .remember = true,
                                              .source = std::string(kMaxSourceLength + 1, 'h')})
                 .empty());
}

BOOST_AUTO_TEST_CASE(the_remembered_decision_is_never_sent_to_an_older_client) {
  const Response skip{.status = Status::ok,
                      .result = LoginCheckResult{.decision = LoginDecision::remembered}};
  const SecureBytes v3 = encode_response(skip);
  BOOST_TEST(text_of(v3).find(R"("decision":"remembered")") != std::string::npos);
  const auto decoded = decode_response(body_of(v3));
  BOOST_REQUIRE(decoded.has_value());
  BOOST_TEST((*decoded == skip));
  for (const std::uint8_t version : {std::uint8_t{1}, std::uint8_t{2}}) {
    // An old module asks for the code (it never asked to be remembered).
    const SecureBytes old = encode_response(skip, version);
    BOOST_TEST(text_of(old).find(R"("decision":"prompt")") != std::string::npos);
    BOOST_TEST(to_string(decode_response(body_of(v3), version).error()) == "invalid_value");
  }
}

BOOST_AUTO_TEST_CASE(status_lists_open_windows_from_version_3) {
  const Response status{
      .status = Status::ok,
      .result = StatusResult{.status = UserStatus{.user = "alice"},
                             .remembered = {{.source = "192.0.2.7", .until = 1800000000},
                                            {.source = "tty=pts/1 ruser=alice", .until = 5}}}};
  const SecureBytes v3 = encode_response(status);
  BOOST_TEST(text_of(v3).find(R"("remembered":[{"source":"192.0.2.7","until":1800000000},)") !=
             std::string::npos);
  const auto decoded = decode_response(body_of(v3));
  BOOST_REQUIRE(decoded.has_value());
  BOOST_TEST((*decoded == status));
  BOOST_TEST(text_of(encode_response(status, 2)).find("remembered") == std::string::npos);
  BOOST_TEST(to_string(decode_response(body_of(v3), 2).error()) == "unknown_field");
  // Bounded.
  StatusResult many{.status = UserStatus{.user = "alice"}};
  many.remembered.resize(kMaxRememberedWindows + 1, {.source = "h", .until = 1});
  BOOST_TEST(encode_response(Response{.status = Status::ok, .result = many}).empty());
  BOOST_TEST(
      to_string(decode_response(bytes(R"({"status":"ok","result":"status",)"
                                      R"("user_status":{"user":"a","recovery_codes_left":0},)"
                                      R"("remembered":[{"source":"h"}]})"))
                    .error()) == "missing_field");
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
      {Op::admin_unlock, "admin_unlock", "unlock"},
      {Op::admin_stats, "admin_stats", "admin_stats"},
      {Op::admin_import, "admin_import", "import"},
      {Op::forget, "forget", "forget"}};
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
