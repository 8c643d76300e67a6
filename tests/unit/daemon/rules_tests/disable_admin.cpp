// Rules: disable, status and the admin ops.
#include <boost/test/unit_test.hpp>
#include <string>
#include <thread>
#include <vector>

#include "rules_helpers.hpp"

namespace kpanel::daemon::test {
namespace {

// ---- disable and regenerate -------------------------------------------------------------

RULES_TEST(disable_with_a_wrong_password_is_refused_and_counted) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const std::string code = code_at(h, e.secret, 0);
  const Response response = disable(h, "not-the-password", code);
  BOOST_TEST(response.status == Status::wrong_password);
  BOOST_TEST(response.failures_left.value() == 4U);
  BOOST_TEST(!protocol::encode_response(response).empty());
  BOOST_TEST(status_of(h, kSelf).enrolled);
  BOOST_TEST(verify(h, code).status == Status::ok);  // the code was not spent
}

RULES_TEST(parallel_wrong_passwords_cost_at_most_max_failures_checks) {
  // Twelve disables at once, each with a wrong password, while PAM is slow:
  // only as many checks start as the user has failures left (5); the rest
  // are answered busy without a check, and the five failures lock the account.
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const std::string code = code_at(h, e.secret, 0);
  h.passwords.hold();
  std::vector<Response> responses(12);
  std::vector<std::thread> threads;
  threads.reserve(responses.size());
  for (Response& response : responses) {
    threads.emplace_back(
        [&h, &response, &code] { response = disable(h, "not-the-password", code); });
  }
  for (int i = 0; i < 500 && h.passwords.waiting() < 5; ++i) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(100ms);  // the others have had time to get in line
  h.passwords.release();
  for (std::thread& thread : threads) thread.join();
  BOOST_TEST(h.passwords.calls() == 5);
  int busy = 0;
  int wrong = 0;
  int locked = 0;
  for (const Response& response : responses) {
    busy += response.status == Status::busy ? 1 : 0;
    wrong += response.status == Status::wrong_password ? 1 : 0;
    locked += response.status == Status::locked ? 1 : 0;
  }
  BOOST_TEST(busy == 7);
  BOOST_TEST(wrong == 4);
  BOOST_TEST(locked == 1);
  BOOST_TEST(status_of(h, kSelf).locked_until.has_value());
  // Once they end, the next request is judged again (here: refused as locked, unchecked).
  BOOST_TEST(disable(h, "alice-password", code).status == Status::locked);
  BOOST_TEST(h.passwords.calls() == 5);
}

RULES_TEST(disable_with_a_wrong_code_is_refused_and_counted) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const Response response = disable(h, "alice-password", wrong_code(h, e.secret));
  BOOST_TEST(response.status == Status::wrong_code);
  BOOST_TEST(response.failures_left.value() == 4U);
  BOOST_TEST(disable(h, "alice-password", e.recovery_codes[0]).status == Status::wrong_code);
  BOOST_TEST(status_of(h, kSelf).enrolled);
}

RULES_TEST(disable_with_both_right_removes_everything) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  BOOST_TEST(begin(h, kUser, true, e.recovery_codes[0]).status == Status::ok);  // pending too
  h.clock.advance(30s);
  BOOST_TEST(disable(h, "alice-password", code_at(h, e.secret, 0)).status == Status::ok);
  const protocol::UserStatus status = status_of(h, kSelf);
  BOOST_TEST(!status.enrolled);
  BOOST_TEST(!status.enrolled_at.has_value());
  BOOST_TEST(status.recovery_codes_left == 0U);
  BOOST_TEST(!status.enrollment_pending);
  BOOST_TEST(verify(h, e.recovery_codes[1]).status == Status::not_enrolled);
  BOOST_TEST(h.audit.last(AuditEventKind::disable)->outcome == Status::ok);
}

RULES_TEST(disable_is_refused_while_locked_without_asking_pam) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  fail_until_locked(h, e);
  const int calls = h.passwords.calls();
  BOOST_TEST(disable(h, "alice-password", code_at(h, e.secret, 0)).status == Status::locked);
  BOOST_TEST(h.passwords.calls() == calls);
}

RULES_TEST(disable_when_pam_fails_is_an_internal_error) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  h.passwords.fail_with(
      "pam_authenticate: Authentication service cannot retrieve authentication info");
  BOOST_TEST(disable(h, "alice-password", code_at(h, e.secret, 0)).status ==
             Status::internal_error);
  BOOST_TEST(status_of(h, kSelf).enrolled);
  BOOST_TEST(h.audit.errors().size() == 1U);
}

RULES_TEST(disable_without_an_enrollment_is_not_enrolled) {
  Harness h(std::make_unique<Backend>());
  BOOST_TEST(disable(h, "alice-password", "123456").status == Status::not_enrolled);
}

// ---- status, admin ----------------------------------------------------------------------------

RULES_TEST(status_of_a_user_without_enrollment) {
  Harness h(std::make_unique<Backend>());
  const protocol::UserStatus status = status_of(h, kSelf);
  BOOST_TEST(status.user == "alice");
  BOOST_TEST(!status.enrolled);
  BOOST_TEST(!status.enrolled_at.has_value());
  BOOST_TEST(status.recovery_codes_left == 0U);
  BOOST_TEST(!status.locked_until.has_value());
  BOOST_TEST(h.rules().status(kRoot, "ghost", {}).status == Status::no_such_user);
}

RULES_TEST(admin_list_shows_every_known_user) {
  Harness h(std::make_unique<Backend>());
  enroll(h, "bob");
  enroll(h, "alice");
  BOOST_TEST(begin(h, "dave").status == Status::ok);
  const Response response = h.rules().admin_list(kRoot, {});
  BOOST_TEST_REQUIRE(response.status == Status::ok);
  const auto& users = std::get<protocol::AdminListResult>(response.result).users;
  BOOST_TEST_REQUIRE(users.size() == 3U);
  BOOST_TEST(users[0].user == "alice");
  BOOST_TEST(users[1].user == "bob");
  BOOST_TEST(users[2].user == "dave");
  BOOST_TEST(users[0].enrolled);
  BOOST_TEST(!users[2].enrolled);
  BOOST_TEST(users[2].enrollment_pending);
}

RULES_TEST(admin_reset_removes_enrollment_recovery_codes_and_lockout) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  fail_until_locked(h, e);
  BOOST_TEST(h.rules().admin_reset(kRoot, kUser, {}).status == Status::ok);
  BOOST_TEST(h.audit.last(AuditEventKind::reset)->outcome == Status::ok);
  const protocol::UserStatus status = status_of(h, kSelf);
  BOOST_TEST(!status.enrolled);
  BOOST_TEST(!status.locked_until.has_value());
  BOOST_TEST(verify(h, e.recovery_codes[0]).status == Status::not_enrolled);
  // Enrolling again starts from scratch, with new recovery codes.
  const Enrolled again = enroll(h);
  BOOST_TEST(again.recovery_codes.size() == 4U);
  BOOST_TEST(verify(h, e.recovery_codes[0]).status == Status::wrong_code);
}

// A reset destroys the secret and the replay state that guarded it: the new
// phone's first code is accepted even within the step of the last one used.
RULES_TEST(enrolling_again_right_after_a_reset_is_not_a_replay) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::ok);
  BOOST_TEST(h.rules().admin_reset(kRoot, kUser, {}).status == Status::ok);
  const auto secret = secret_of(begin(h, kUser));
  BOOST_TEST(confirm(h, code_at(h, secret, 0), kUser).status == Status::ok);
}

RULES_TEST(admin_reset_of_a_user_without_enrollment) {
  Harness h(std::make_unique<Backend>());
  BOOST_TEST(h.rules().admin_reset(kRoot, "bob", {}).status == Status::not_enrolled);
  BOOST_TEST(h.rules().admin_reset(kRoot, "ghost", {}).status == Status::no_such_user);
}

}  // namespace
}  // namespace kpanel::daemon::test
