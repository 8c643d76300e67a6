// Rules: recovery codes, enrollment (begin, confirm, replace) and new
// recovery codes.
#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "common/recovery_code.hpp"
#include "rules_helpers.hpp"

namespace kpanel::daemon::test {
namespace {

// ---- recovery codes -----------------------------------------------------------------

RULES_TEST(a_recovery_code_works_once_typed_in_lower_case_with_spaces) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  BOOST_TEST_REQUIRE(e.recovery_codes.size() == 4U);
  const std::string typed = lower_spaced(e.recovery_codes[1]);
  const Response first = verify(h, typed);
  BOOST_TEST_REQUIRE(first.status == Status::ok);
  const auto& result = std::get<protocol::VerifyResult>(first.result);
  BOOST_TEST(result.used_recovery_code);
  BOOST_TEST(result.recovery_codes_left == 3U);
  const Response second = verify(h, e.recovery_codes[1]);
  BOOST_TEST(second.status == Status::wrong_code);
  BOOST_TEST(second.failures_left.value() == 4U);
  BOOST_TEST(status_of(h, kSelf).recovery_codes_left == 3U);
}

RULES_TEST(recovery_codes_left_counts_down_to_zero) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  std::uint32_t left = 4;
  for (const std::string& code : e.recovery_codes) {
    const Response response = verify(h, code);
    BOOST_TEST_REQUIRE(response.status == Status::ok);
    BOOST_TEST(std::get<protocol::VerifyResult>(response.result).recovery_codes_left == --left);
  }
  BOOST_TEST(status_of(h, kSelf).recovery_codes_left == 0U);
  BOOST_TEST(h.audit.last(AuditEventKind::verify)->recovery_codes_left.value() == 0U);
}

RULES_TEST(a_totp_success_reports_no_recovery_code) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const Response response = verify(h, code_at(h, e.secret, 0));
  BOOST_TEST_REQUIRE(response.status == Status::ok);
  BOOST_TEST(!std::get<protocol::VerifyResult>(response.result).used_recovery_code);
  BOOST_TEST(std::get<protocol::VerifyResult>(response.result).recovery_codes_left == 4U);
}

RULES_TEST(a_code_of_another_user_is_wrong) {
  Harness h(std::make_unique<Backend>());
  const Enrolled alice = enroll(h, "alice");
  const Enrolled bob = enroll(h, "bob");
  BOOST_TEST(verify(h, bob.recovery_codes[0], "alice").status == Status::wrong_code);
  BOOST_TEST(verify(h, code_at(h, alice.secret, 0), "bob").status == Status::wrong_code);
}

// ---- enrollment -----------------------------------------------------------------------

RULES_TEST(enroll_begin_returns_uri_secret_and_expiry) {
  Harness h(std::make_unique<Backend>());
  const Response response = begin(h);
  BOOST_TEST_REQUIRE(response.status == Status::ok);
  const auto& result = std::get<protocol::EnrollBeginResult>(response.result);
  BOOST_TEST(result.secret_base32.size() == 32U);  // 20 bytes, base32, no padding
  BOOST_TEST(result.expires_at == common::to_unix(h.clock.now() + 600s));
  BOOST_TEST(result.uri.view().starts_with("otpauth://totp/Kapsule:alice"));
  BOOST_TEST(result.uri.view().find("secret=" + std::string(result.secret_base32.view())) !=
             std::string::npos);
  BOOST_TEST(result.qr_text.empty());
  BOOST_TEST(status_of(h, kSelf).enrollment_pending);
  BOOST_TEST(!status_of(h, kSelf).enrolled);
}

RULES_TEST(a_pending_enrollment_expires) {
  Harness h(std::make_unique<Backend>());
  const common::SecureBytes secret = secret_of(begin(h));
  h.clock.advance(600s);
  BOOST_TEST(confirm(h, code_at(h, secret, 0)).status == Status::no_pending_enrollment);
  BOOST_TEST(!status_of(h, kSelf).enrollment_pending);
  BOOST_TEST(confirm(h, code_at(h, secret, 0)).status == Status::no_pending_enrollment);
}

RULES_TEST(a_pending_enrollment_is_confirmable_until_it_expires) {
  Harness h(std::make_unique<Backend>());
  const common::SecureBytes secret = secret_of(begin(h));
  h.clock.advance(599s);
  BOOST_TEST(confirm(h, code_at(h, secret, 0)).status == Status::ok);
}

RULES_TEST(confirm_with_nothing_pending_is_refused) {
  Harness h(std::make_unique<Backend>());
  BOOST_TEST(confirm(h, "123456").status == Status::no_pending_enrollment);
}

RULES_TEST(a_new_begin_replaces_the_pending_enrollment) {
  Harness h(std::make_unique<Backend>());
  const common::SecureBytes first = secret_of(begin(h));
  const common::SecureBytes second = secret_of(begin(h));
  BOOST_TEST(!(first == second));
  BOOST_TEST(confirm(h, code_at(h, first, 0)).status == Status::wrong_code);
  BOOST_TEST(confirm(h, code_at(h, second, 0)).status == Status::ok);
}

RULES_TEST(a_first_confirm_issues_recovery_codes_that_work) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  BOOST_TEST(e.recovery_codes.size() == 4U);
  for (const std::string& code : e.recovery_codes) {
    BOOST_TEST(common::normalize_recovery_code(code).has_value());
  }
  const protocol::UserStatus status = status_of(h, kSelf);
  BOOST_TEST(status.enrolled);
  BOOST_TEST(status.enrolled_at.value() == common::to_unix(h.clock.now() - 30s));
  BOOST_TEST(status.recovery_codes_left == 4U);
  BOOST_TEST(!status.enrollment_pending);
}

RULES_TEST(confirm_with_a_wrong_code_counts_a_failure) {
  Harness h(std::make_unique<Backend>());
  const common::SecureBytes secret = secret_of(begin(h));
  const Response response = confirm(h, wrong_code(h, secret));
  BOOST_TEST(response.status == Status::wrong_code);
  BOOST_TEST(response.failures_left.value() == 4U);
  for (int i = 0; i < 3; ++i) {
    confirm(h, wrong_code(h, secret));
  }
  BOOST_TEST(confirm(h, wrong_code(h, secret)).status == Status::locked);
  BOOST_TEST(confirm(h, code_at(h, secret, 0)).status == Status::locked);
  BOOST_TEST(h.audit.last(AuditEventKind::enroll_confirm)->outcome == Status::locked);
  BOOST_TEST(!status_of(h, kSelf).enrolled);
}

RULES_TEST(begin_while_enrolled_needs_replace) {
  Harness h(std::make_unique<Backend>());
  enroll(h);
  BOOST_TEST(begin(h).status == Status::already_enrolled);
}

RULES_TEST(begin_for_an_unknown_account_is_no_such_user) {
  Harness h(std::make_unique<Backend>());
  BOOST_TEST(begin(h, "ghost").status == Status::no_such_user);
}

RULES_TEST(replace_without_an_enrollment_is_not_enrolled) {
  Harness h(std::make_unique<Backend>());
  BOOST_TEST(begin(h, kUser, true, "123456").status == Status::not_enrolled);
}

RULES_TEST(replace_with_a_wrong_proof_counts_a_failure_and_starts_nothing) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const Response response = begin(h, kUser, true, wrong_code(h, e.secret));
  BOOST_TEST(response.status == Status::wrong_code);
  BOOST_TEST(response.failures_left.value() == 4U);
  BOOST_TEST(!status_of(h, kSelf).enrollment_pending);
}

RULES_TEST(replace_consumes_its_proof) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const std::string proof = code_at(h, e.secret, 0);
  BOOST_TEST(begin(h, kUser, true, proof).status == Status::ok);
  BOOST_TEST(verify(h, proof).status == Status::replayed);
  BOOST_TEST(begin(h, kUser, true, proof).status == Status::replayed);
}

RULES_TEST(replace_keeps_the_old_secret_until_confirmed_and_keeps_recovery_codes) {
  Harness h(std::make_unique<Backend>());
  const Enrolled old = enroll(h);
  const common::SecureBytes fresh = secret_of(begin(h, kUser, true, code_at(h, old.secret, 0)));
  h.clock.advance(30s);
  BOOST_TEST(verify(h, code_at(h, old.secret, 0)).status == Status::ok);  // old phone still works
  BOOST_TEST(verify(h, code_at(h, fresh, +1)).status == Status::wrong_code);  // not yet active
  h.clock.advance(30s);
  const Response confirmed = confirm(h, code_at(h, fresh, 0));
  BOOST_TEST(codes_of(confirmed).empty());
  h.clock.advance(30s);
  BOOST_TEST(verify(h, code_at(h, old.secret, 0)).status == Status::wrong_code);
  BOOST_TEST(verify(h, code_at(h, fresh, 0)).status == Status::ok);
  BOOST_TEST(status_of(h, kSelf).recovery_codes_left == 4U);
  BOOST_TEST(verify(h, old.recovery_codes[0]).status == Status::ok);
}

// Changing phones: the old phone's code proves the user and the new phone's
// first code comes within the same 30 s step. The new secret has its own,
// empty, replay state, so it is accepted; then its confirming step is used.
RULES_TEST(replace_accepts_the_new_phones_first_code_in_the_old_phones_step) {
  Harness h(std::make_unique<Backend>());
  const Enrolled old = enroll(h);
  const common::SecureBytes fresh = secret_of(begin(h, kUser, true, code_at(h, old.secret, +1)));
  const std::string first = code_at(h, fresh, 0);
  const Response confirmed = confirm(h, first);
  BOOST_TEST(confirmed.status == Status::ok);
  BOOST_TEST(status_of(h, kRoot).enrolled);
  BOOST_TEST(!status_of(h, kRoot).enrollment_pending);
  BOOST_TEST(verify(h, first).status == Status::replayed);
  BOOST_TEST(verify(h, code_at(h, fresh, +1)).status == Status::ok);
  BOOST_TEST(status_of(h, kRoot).locked_until.has_value() == false);
}

RULES_TEST(replace_accepts_a_recovery_code_as_proof) {
  Harness h(std::make_unique<Backend>());
  const Enrolled old = enroll(h);
  const Response response = begin(h, kUser, true, old.recovery_codes[2]);
  BOOST_TEST(response.status == Status::ok);
  BOOST_TEST(h.audit.last(AuditEventKind::enroll_begin)->recovery_code_used);
  BOOST_TEST(status_of(h, kSelf).recovery_codes_left == 3U);
  BOOST_TEST(begin(h, kUser, true, old.recovery_codes[2]).status == Status::wrong_code);
}

// ---- regenerate ---------------------------------------------------------------------------

RULES_TEST(regenerate_needs_a_current_code_and_replaces_every_recovery_code) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  BOOST_TEST(verify(h, e.recovery_codes[0]).status == Status::ok);
  const Response wrong = regenerate(h, wrong_code(h, e.secret));
  BOOST_TEST(wrong.status == Status::wrong_code);
  BOOST_TEST(regenerate(h, e.recovery_codes[1]).status == Status::wrong_code);  // TOTP only
  const std::vector<std::string> fresh = codes_of(regenerate(h, code_at(h, e.secret, 0)));
  BOOST_TEST(fresh.size() == 4U);
  BOOST_TEST(status_of(h, kSelf).recovery_codes_left == 4U);
  BOOST_TEST(verify(h, e.recovery_codes[2]).status == Status::wrong_code);
  BOOST_TEST(verify(h, fresh[0]).status == Status::ok);
}

}  // namespace
}  // namespace kpanel::daemon::test
