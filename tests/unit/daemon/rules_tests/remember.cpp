// Remembered logins in the rules (remember.hpp, rules.cpp): who may open and
// use a window, what ends one, the fence, one host's windows against another's.
#include "daemon/rules/remember.hpp"

#include <chrono>
#include <memory>
#include <string>

#include "rules_helpers.hpp"

namespace kpanel::daemon::test {
namespace {

// The PAM module in sshd or sudo: root, whose word on the source counts.
const Caller kPam{0, true, true};
const std::string kHost = "192.0.2.7";

Policy remembering_policy(std::chrono::seconds length = 60s) {
  Policy policy = test_policy();
  policy.remember = length;
  policy.host_id = "machine-id:one";
  return policy;
}

Response verify_from(Harness& h, const std::string& code, const std::string& source = kHost,
                     const Caller& caller = kPam, bool remember = true) {
  protocol::VerifyRequest request;
  request.user = kUser;
  request.service = "sshd";
  request.rhost = source;
  request.code = common::SecureString(code);
  request.remember = remember;
  request.source = source;
  return h.rules().verify(caller, kUser, request);
}

LoginDecision check_from(Harness& h, const std::string& source = kHost, const Caller& caller = kPam,
                         bool remember = true) {
  protocol::LoginCheckRequest request = login_check_request(kUser);
  request.rhost = source;
  request.remember = remember;
  request.source = source;
  return decision_of(h.rules().login_check(caller, kUser, request));
}

std::vector<protocol::RememberedWindow> windows_of(Harness& h) {
  protocol::StatusRequest request;
  const Response response = h.rules().status(kSelf, kUser, request);
  BOOST_REQUIRE_EQUAL(response.status, Status::ok);
  return std::get<protocol::StatusResult>(response.result).remembered;
}

// Enrolled, with a window open from kHost (a recovery code opened it).
Enrolled enrolled_with_window(Harness& h) {
  Enrolled enrolled = enroll(h);
  BOOST_REQUIRE_EQUAL(verify_from(h, enrolled.recovery_codes.back()).status, Status::ok);
  enrolled.recovery_codes.pop_back();
  BOOST_REQUIRE_EQUAL(check_from(h), LoginDecision::remembered);
  return enrolled;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(remembered_logins)

RULES_TEST(a_code_opens_a_window_and_each_skip_is_an_audit_event) {
  Harness h(std::make_unique<Backend>(), remembering_policy());
  const Enrolled enrolled = enroll(h);
  BOOST_TEST(check_from(h) == LoginDecision::prompt);
  BOOST_TEST(verify_from(h, code_at(h, enrolled.secret, 0)).status == Status::ok);
  const AuditEvent opened = h.audit.events().back();
  BOOST_TEST(opened.source == kHost);
  BOOST_TEST(opened.remembered_until.value_or(0) == common::to_unix(h.clock.now()) + 60);
  BOOST_TEST(check_from(h) == LoginDecision::remembered);
  const AuditEvent skip = h.audit.events().back();
  BOOST_TEST(to_string(skip.kind) == "remembered_login");
  BOOST_TEST(skip.user == kUser);
  BOOST_TEST(skip.source == kHost);
  BOOST_TEST((skip.decision == LoginDecision::remembered));
  // Another source, another user's window: the code is asked.
  BOOST_TEST(check_from(h, "192.0.2.8") == LoginDecision::prompt);
  const auto windows = windows_of(h);
  BOOST_REQUIRE_EQUAL(windows.size(), 1U);
  BOOST_TEST(windows.front().source == kHost);
}

RULES_TEST(never_without_both_settings_nor_for_a_peer_other_than_root) {
  Harness h(std::make_unique<Backend>(), remembering_policy());
  const Enrolled enrolled = enroll(h);
  // The stack without `remember`, or the user's own process: nothing opened.
  BOOST_TEST(verify_from(h, enrolled.recovery_codes.at(0), kHost, kPam, false).status ==
             Status::ok);
  BOOST_TEST(verify_from(h, enrolled.recovery_codes.at(1), kHost, kSelf).status == Status::ok);
  BOOST_TEST(verify_from(h, enrolled.recovery_codes.at(2), kHost, kRoot).status == Status::ok);
  BOOST_TEST(check_from(h) == LoginDecision::prompt);
  BOOST_TEST(windows_of(h).empty());
  BOOST_TEST(verify_from(h, enrolled.recovery_codes.at(3)).status == Status::ok);
  BOOST_TEST(check_from(h) == LoginDecision::remembered);
  // Not used either without the option, or for another peer.
  BOOST_TEST(check_from(h, kHost, kPam, false) == LoginDecision::prompt);
  BOOST_TEST(check_from(h, kHost, kSelf) == LoginDecision::prompt);
  BOOST_TEST(check_from(h, kHost, kRoot) == LoginDecision::prompt);
  // remember_seconds = 0 after a reload: off at once.
  h.rules().set_policy(remembering_policy(0s));
  BOOST_TEST(check_from(h) == LoginDecision::prompt);
}

RULES_TEST(a_window_lasts_its_length_from_the_code_and_a_skip_does_not_extend_it) {
  Harness h(std::make_unique<Backend>(), remembering_policy(60s));
  enrolled_with_window(h);
  h.clock.advance(59s);
  BOOST_TEST(check_from(h) == LoginDecision::remembered);
  h.clock.advance(1s);
  BOOST_TEST(check_from(h) == LoginDecision::prompt);
  BOOST_TEST(windows_of(h).empty());
}

RULES_TEST(a_shorter_setting_shortens_open_windows) {
  Harness h(std::make_unique<Backend>(), remembering_policy(60s));
  enrolled_with_window(h);
  h.rules().set_policy(remembering_policy(10s));
  BOOST_TEST(h.rules().policy()->host_id == "machine-id:one");  // kept across reloads
  h.clock.advance(10s);
  BOOST_TEST(check_from(h) == LoginDecision::prompt);
}

RULES_TEST(a_lockout_ends_the_windows_and_a_locked_user_is_never_skipped) {
  Harness h(std::make_unique<Backend>(), remembering_policy(3600s));
  const Enrolled enrolled = enrolled_with_window(h);
  // The failures before the lockout leave the window alone.
  BOOST_TEST(verify(h, wrong_code(h, enrolled.secret)).status == Status::wrong_code);
  BOOST_TEST(check_from(h) == LoginDecision::remembered);
  fail_until_locked(h, enrolled);
  BOOST_TEST(check_from(h) == LoginDecision::locked);
  protocol::AdminUnlockRequest unlock;
  BOOST_TEST(h.rules().admin_unlock(kRoot, kUser, unlock).status == Status::ok);
  BOOST_TEST(check_from(h) == LoginDecision::prompt);
}

RULES_TEST(reset_disable_and_replace_end_the_windows) {
  Harness h(std::make_unique<Backend>(), remembering_policy(3600s));
  {
    enrolled_with_window(h);
    protocol::AdminResetRequest reset;
    BOOST_TEST(h.rules().admin_reset(kRoot, kUser, reset).status == Status::ok);
    enroll(h);
    BOOST_TEST(check_from(h) == LoginDecision::prompt);
  }
  {
    h.rules().admin_reset(kRoot, kUser, protocol::AdminResetRequest{});
    const Enrolled enrolled = enrolled_with_window(h);
    BOOST_TEST(disable(h, "alice-password", code_at(h, enrolled.secret, 0)).status == Status::ok);
    const auto loaded = h.store().load(kUser);
    BOOST_REQUIRE(loaded.has_value());
    BOOST_TEST((!loaded->has_value() || (*loaded)->remembered.empty()));
  }
  {
    const Enrolled enrolled = enrolled_with_window(h);
    // Beginning to change phones ends them; the old phone opens one meanwhile,
    // and confirming the new one ends that too.
    const auto new_secret = secret_of(begin(h, kUser, true, enrolled.recovery_codes.at(0)));
    BOOST_TEST(check_from(h) == LoginDecision::prompt);
    BOOST_TEST(verify_from(h, enrolled.recovery_codes.at(1)).status == Status::ok);
    BOOST_TEST(check_from(h) == LoginDecision::remembered);
    BOOST_TEST(confirm(h, code_at(h, new_secret, 0)).status == Status::ok);
    BOOST_TEST(check_from(h) == LoginDecision::prompt);
  }
}

RULES_TEST(forget_ends_every_window_of_the_user_durably) {
  Harness h(std::make_unique<Backend>(), remembering_policy(3600s));
  const Enrolled enrolled = enrolled_with_window(h);
  BOOST_TEST(verify_from(h, enrolled.recovery_codes.at(0), "tty=pts/1 ruser=alice").status ==
             Status::ok);
  BOOST_TEST(windows_of(h).size() == 2U);
  BOOST_TEST(h.rules().forget(kSelf, kUser, protocol::ForgetRequest{}).status == Status::ok);
  BOOST_TEST(to_string(h.audit.events().back().kind) == "forget");
  h.restart();  // durable: still ended after a restart
  BOOST_TEST(check_from(h) == LoginDecision::prompt);
  BOOST_TEST(check_from(h, "tty=pts/1 ruser=alice") == LoginDecision::prompt);
  BOOST_TEST(windows_of(h).empty());
  // Nothing to forget is a success too.
  BOOST_TEST(h.rules().forget(kSelf, kUser, protocol::ForgetRequest{}).status == Status::ok);
}

RULES_TEST(windows_survive_a_restart_but_not_the_crash_fence) {
  Harness h(std::make_unique<Backend>(), remembering_policy(3600s));
  const Enrolled enrolled = enrolled_with_window(h);
  h.restart();
  BOOST_TEST(check_from(h) == LoginDecision::remembered);
  h.clock.advance(5s);
  h.rules().set_fence(Fence{common::to_unix(h.clock.now()), 1});
  BOOST_TEST(check_from(h) == LoginDecision::prompt);
  BOOST_TEST(windows_of(h).empty());
  // One opened after the fence's time counts.
  BOOST_TEST(verify_from(h, enrolled.recovery_codes.at(0)).status == Status::ok);
  BOOST_TEST(check_from(h) == LoginDecision::remembered);
}

RULES_TEST(each_host_honours_only_its_own_windows) {
  Harness h(std::make_unique<Backend>(), remembering_policy(3600s));
  const Enrolled enrolled = enrolled_with_window(h);
  h.rules().set_host_id("machine-id:two");  // another host of the fleet, same store
  BOOST_TEST(check_from(h) == LoginDecision::prompt);
  BOOST_TEST(windows_of(h).empty());
  BOOST_TEST(verify_from(h, enrolled.recovery_codes.at(0)).status == Status::ok);
  BOOST_TEST(check_from(h) == LoginDecision::remembered);
  h.rules().set_host_id("machine-id:one");  // its own window is still there
  BOOST_TEST(check_from(h) == LoginDecision::remembered);
  const auto loaded = h.store().load(kUser);
  BOOST_REQUIRE((loaded.has_value() && loaded->has_value()));
  BOOST_TEST((*loaded)->remembered.size() == 2U);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace kpanel::daemon::test
