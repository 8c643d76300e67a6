// Rules: admin_import (a google-authenticator file's secret, scratch codes
// and used steps) and the scratch codes it leaves as recovery codes.
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "rules_helpers.hpp"

namespace kpanel::daemon::test {
namespace {

// "JBSWY3DPEHPK3PXP" twice: 20 bytes.
const std::string kSecret32 = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

common::SecureBytes raw(const std::string& base32) {
  auto decoded = common::base32_decode(base32);
  BOOST_REQUIRE(decoded.has_value());
  return *decoded;
}

protocol::AdminImportRequest file_request(const std::string& user = kUser) {
  protocol::AdminImportRequest request;
  request.user = user;
  request.secret_base32 = common::SecureString(kSecret32);
  request.scratch_codes = {common::SecureString("12345678"), common::SecureString("87654321")};
  return request;
}

protocol::AdminImportResult import(Harness& h, const protocol::AdminImportRequest& request) {
  const Response response = h.rules().admin_import(kRoot, request.user, request);
  BOOST_REQUIRE_EQUAL(response.status, Status::ok);
  return std::get<protocol::AdminImportResult>(response.result);
}

RULES_TEST(an_import_enrolls_with_the_secret_and_logs_one_import_line) {
  Harness h(std::make_unique<Backend>());
  const auto result = import(h, file_request());
  BOOST_TEST(result.imported);
  BOOST_TEST(result.reason.empty());
  const protocol::UserStatus status = status_of(h, kRoot);
  BOOST_TEST(status.enrolled);
  BOOST_TEST(status.recovery_codes_left == 2U);
  BOOST_TEST(h.audit.count(AuditEventKind::import) == 1U);
  BOOST_TEST(to_string(AuditEventKind::import) == "import");
  BOOST_TEST(format_audit_event(*h.audit.last(AuditEventKind::import)).find("event=import") !=
             std::string::npos);
  BOOST_TEST(verify(h, code_at(h, raw(kSecret32), 0)).status == Status::ok);
}

RULES_TEST(a_scratch_code_works_once_and_never_as_a_totp_code_of_an_8_digit_enrollment) {
  Harness h(std::make_unique<Backend>());
  BOOST_TEST(import(h, file_request()).imported);
  const Response first = verify(h, "1234 5678");
  BOOST_REQUIRE_EQUAL(first.status, Status::ok);
  BOOST_TEST(std::get<protocol::VerifyResult>(first.result).used_recovery_code);
  BOOST_TEST(std::get<protocol::VerifyResult>(first.result).recovery_codes_left == 1U);
  BOOST_TEST(verify(h, "12345678").status == Status::wrong_code);  // used
  BOOST_TEST(verify(h, "11111111").status == Status::wrong_code);  // counted, not malformed
  BOOST_TEST(verify(h, "1234567").status == Status::malformed_code);

  // An 8-digit enrollment's 8-digit code is only a TOTP code, never checked
  // against the recovery codes.
  Policy policy = test_policy();
  policy.totp.digits = 8;
  Harness eight(std::make_unique<Backend>(), policy);
  const common::SecureBytes secret = secret_of(begin(eight));
  const auto at = common::totp_code(secret.view(), step_now(eight), policy.totp);
  BOOST_REQUIRE(at.has_value());
  BOOST_TEST(confirm(eight, std::string(at->view())).status == Status::ok);
  eight.clock.advance(30s);
  const Response wrong = verify(eight, "12345678");
  BOOST_TEST(wrong.status == Status::wrong_code);
}

RULES_TEST(used_steps_are_replay_state) {
  Harness h(std::make_unique<Backend>());
  auto request = file_request();
  request.used_steps = {step_now(h)};
  BOOST_TEST(import(h, request).imported);
  BOOST_TEST(verify(h, code_at(h, raw(kSecret32), 0)).status == Status::replayed);
  BOOST_TEST(verify(h, code_at(h, raw(kSecret32), 1)).status == Status::ok);
}

RULES_TEST(an_enrollment_is_never_replaced_and_the_same_secret_again_adds_used_steps) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  auto other = import(h, file_request());
  BOOST_TEST(!other.imported);
  BOOST_TEST(other.reason == "already enrolled");
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::ok);

  Harness again(std::make_unique<Backend>());
  BOOST_TEST(import(again, file_request()).imported);
  auto request = file_request();
  request.used_steps = {step_now(again) + 1};
  BOOST_TEST(import(again, request).imported);  // a second run: nothing replaced
  BOOST_TEST(verify(again, code_at(again, raw(kSecret32), 1)).status == Status::replayed);
  BOOST_TEST(again.audit.count(AuditEventKind::import) == 2U);
}

RULES_TEST(scratch_codes_used_under_google_authenticator_since_stop_working_here) {
  Harness h(std::make_unique<Backend>());
  BOOST_TEST(import(h, file_request()).imported);
  // Meanwhile, 12345678 was typed at google-authenticator's prompt: its file
  // no longer lists it. The second run (e.g. with --remove) retires it.
  auto request = file_request();
  request.scratch_codes = {common::SecureString("87654321")};
  BOOST_TEST(import(h, request).imported);
  BOOST_TEST(status_of(h, kRoot).recovery_codes_left == 1U);
  BOOST_TEST(verify(h, "12345678").status == Status::wrong_code);
  BOOST_TEST(verify(h, "87654321").status == Status::ok);

  // New codes made here are not the file's: a later run leaves them alone.
  Harness regenerated(std::make_unique<Backend>());
  BOOST_TEST(import(regenerated, file_request()).imported);
  const auto fresh = codes_of(regenerate(regenerated, code_at(regenerated, raw(kSecret32), 0)));
  BOOST_TEST(import(regenerated, file_request()).imported);
  BOOST_TEST(status_of(regenerated, kRoot).recovery_codes_left == fresh.size());
  BOOST_TEST(verify(regenerated, fresh[0]).status == Status::ok);
}

RULES_TEST(a_begun_enrollment_is_not_overridden_but_an_expired_one_is) {
  Harness h(std::make_unique<Backend>());
  BOOST_TEST(begin(h).status == Status::ok);
  const auto skipped = import(h, file_request());
  BOOST_TEST(!skipped.imported);
  BOOST_TEST(skipped.reason.find("enrollment in progress") != std::string::npos);
  h.clock.advance(test_policy().enrollment_timeout + 1s);
  BOOST_TEST(import(h, file_request()).imported);
  BOOST_TEST(!status_of(h, kRoot).enrollment_pending);
}

RULES_TEST(windows_and_step_sizes_it_cannot_honour_are_skipped) {
  Harness h(std::make_unique<Backend>());  // window 1: now-1..now+1
  const auto skip_reason = [&](std::uint32_t window_size, std::int64_t skew, std::uint32_t period) {
    auto request = file_request();
    request.window_size = window_size;
    request.time_skew = skew;
    request.period = period;
    const auto result = import(h, request);
    return result.imported ? std::string() : result.reason;
  };
  BOOST_TEST(skip_reason(4, 0, 30).find("WINDOW_SIZE 4") != std::string::npos);  // -1..+2
  BOOST_TEST(skip_reason(3, 1, 30).find("TIME_SKEW 1") != std::string::npos);    // 0..+2
  BOOST_TEST(skip_reason(1, 0, 10).find("STEP_SIZE 10") != std::string::npos);
  BOOST_TEST(skip_reason(0, 0, 30).find("WINDOW_SIZE 0") != std::string::npos);
  BOOST_TEST(!status_of(h, kRoot).enrolled);
  BOOST_TEST(h.audit.count(AuditEventKind::import) == 4U);  // one line per skip too
  BOOST_TEST(skip_reason(2, 0, 60).empty());                // 0..+1 lies inside
}

RULES_TEST(a_malformed_secret_or_scratch_code_is_skipped) {
  Harness h(std::make_unique<Backend>());
  auto request = file_request();
  request.secret_base32 = common::SecureString("JBSWY3DP");  // 40 bits
  BOOST_TEST(!import(h, request).imported);
  request = file_request();
  request.scratch_codes = {common::SecureString("01234567")};
  BOOST_TEST(!import(h, request).imported);
  // Bounds the tool applies too, checked again here: no overflow, no era.
  request = file_request();
  request.time_skew = std::numeric_limits<std::int64_t>::min();
  BOOST_TEST(import(h, request).reason.find("TIME_SKEW") != std::string::npos);
  request = file_request();
  request.used_steps = {-1};
  BOOST_TEST(import(h, request).reason.find("DISALLOW_REUSE") != std::string::npos);
  request.used_steps = std::vector<std::int64_t>(protocol::kMaxImportedUsedSteps + 1, 1);
  BOOST_TEST(import(h, request).reason.find("more than 128") != std::string::npos);
  request = file_request();
  request.scratch_codes.assign(protocol::kMaxImportedScratchCodes + 1,
                               common::SecureString("12345678"));
  BOOST_TEST(import(h, request).reason.find("more than 10") != std::string::npos);
  BOOST_TEST(!status_of(h, kRoot).enrolled);
}

}  // namespace
}  // namespace kpanel::daemon::test
