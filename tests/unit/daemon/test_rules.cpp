#define BOOST_TEST_MODULE daemon rules
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <functional>
#include <latch>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/base32.hpp"
#include "common/recovery_code.hpp"
#include "common/totp.hpp"
#include "daemon/rules/rules.hpp"
#include "support/harness.hpp"
#include "support/printing.hpp"

namespace kpanel::daemon::test {
namespace {

namespace protocol = common::protocol;
using namespace std::chrono_literals;
using protocol::LoginDecision;
using protocol::Response;
using protocol::Status;

// Every test runs once per store backend; on one with no server (PostgreSQL
// outside CTest's fixture) it says SKIPPED instead.
#define RULES_TEST(name)                                        \
  template <typename Backend>                                   \
  void name##_body();                                           \
  BOOST_AUTO_TEST_CASE_TEMPLATE(name, Backend, StoreBackends) { \
    if (!backend_available<Backend>()) {                        \
      BOOST_WARN_MESSAGE(false,                                 \
                         "SKIPPED: no PostgreSQL server "       \
                         "(set KPANEL_TEST_POSTGRESQL_DSN "     \
                         "or run through ctest)");              \
      return;                                                   \
    }                                                           \
    name##_body<Backend>();                                     \
  }                                                             \
  template <typename Backend>                                   \
  void name##_body()

const Caller kSelf{kAlice, false};
const Caller kRoot{0, true};
const std::string kUser = "alice";
const common::TotpParams kParams{};

// ---- helpers -------------------------------------------------------------------

std::int64_t step_now(const Harness& h) { return common::totp_step(h.clock.now(), 30); }

std::string code_for(const common::SecureBytes& secret, std::int64_t step) {
  const auto code = common::totp_code(secret.view(), step, kParams);
  BOOST_REQUIRE(code.has_value());
  return std::string(code->view());
}

// The code of the step `offset` steps from now.
std::string code_at(const Harness& h, const common::SecureBytes& secret, std::int64_t offset) {
  return code_for(secret, step_now(h) + offset);
}

// A code that is right for no step near now.
std::string wrong_code(const Harness& h, const common::SecureBytes& secret) {
  for (int candidate = 0;; ++candidate) {
    std::string code = std::to_string(100000 + candidate);
    bool used = false;
    for (std::int64_t offset = -30; offset <= 30; ++offset) {
      used = used || code == code_at(h, secret, offset);
    }
    if (!used) {
      return code;
    }
  }
}

Response verify(Harness& h, const std::string& code, const std::string& user = kUser) {
  protocol::VerifyRequest request;
  request.user = user;
  request.service = "sshd";
  request.rhost = "192.0.2.7";
  request.tty = "ssh";
  request.code = common::SecureString(code);
  return h.rules().verify(kRoot, user, request);
}

Response begin(Harness& h, const std::string& user = kUser, bool replace = false,
               const std::string& proof = "") {
  protocol::EnrollBeginRequest request;
  request.user = user;
  request.replace = replace;
  request.proof = common::SecureString(proof);
  return h.rules().enroll_begin(kSelf, user, request);
}

common::SecureBytes secret_of(const Response& response) {
  BOOST_REQUIRE_EQUAL(response.status, Status::ok);
  const auto& result = std::get<protocol::EnrollBeginResult>(response.result);
  auto secret = common::base32_decode(result.secret_base32.view());
  BOOST_REQUIRE(secret.has_value());
  return *secret;
}

Response confirm(Harness& h, const std::string& code, const std::string& user = kUser) {
  protocol::EnrollConfirmRequest request;
  request.user = user;
  request.code = common::SecureString(code);
  return h.rules().enroll_confirm(kSelf, user, request);
}

std::vector<std::string> codes_of(const Response& response) {
  BOOST_REQUIRE_EQUAL(response.status, Status::ok);
  std::vector<std::string> codes;
  for (const auto& code : std::get<protocol::RecoveryCodesResult>(response.result).codes) {
    codes.emplace_back(code.view());
  }
  return codes;
}

struct Enrolled {
  common::SecureBytes secret;
  std::vector<std::string> recovery_codes;
};

// Enrolls `user`, then moves the clock one step on, so that the confirming
// code is spent and the next step's code is fresh.
Enrolled enroll(Harness& h, const std::string& user = kUser) {
  Enrolled enrolled;
  enrolled.secret = secret_of(begin(h, user));
  enrolled.recovery_codes = codes_of(confirm(h, code_at(h, enrolled.secret, 0), user));
  h.clock.advance(30s);
  return enrolled;
}

protocol::UserStatus status_of(Harness& h, const Caller& caller, const std::string& user = kUser) {
  protocol::StatusRequest request;
  request.user = user;
  const Response response = h.rules().status(caller, user, request);
  BOOST_REQUIRE_EQUAL(response.status, Status::ok);
  return std::get<protocol::StatusResult>(response.result).status;
}

Response disable(Harness& h, const std::string& password, const std::string& code) {
  protocol::DisableRequest request;
  request.password = common::SecureString(password);
  request.code = common::SecureString(code);
  return h.rules().disable(kSelf, kUser, request);
}

Response regenerate(Harness& h, const std::string& code) {
  protocol::RegenerateRecoveryCodesRequest request;
  request.code = common::SecureString(code);
  return h.rules().regenerate_recovery_codes(kSelf, kUser, request);
}

Response login_check(Harness& h, const std::string& user, bool nullok = false,
                     bool enroll_option = false) {
  protocol::LoginCheckRequest request;
  request.user = user;
  request.service = "sshd";
  request.nullok = nullok;
  request.enroll = enroll_option;
  return h.rules().login_check(kRoot, user, request);
}

LoginDecision decision_of(const Response& response) {
  BOOST_REQUIRE_EQUAL(response.status, Status::ok);
  return std::get<protocol::LoginCheckResult>(response.result).decision;
}

// Fails until a lockout starts; returns the reply that started it.
Response fail_until_locked(Harness& h, const Enrolled& enrolled) {
  for (int i = 0; i < 100; ++i) {
    Response response = verify(h, wrong_code(h, enrolled.secret));
    if (response.status != Status::wrong_code) {
      return response;
    }
  }
  BOOST_FAIL("no lockout after 100 failures");
  return {};
}

std::string lower_spaced(const std::string& code) {
  std::string out;
  for (const char c : code) {
    if (c == '-') {
      out.push_back(' ');
    } else {
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
    }
  }
  return out;
}

// ---- the verification window --------------------------------------------------

RULES_TEST(codes_at_both_window_edges_are_accepted) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  h.clock.advance(90s);  // three steps on: the step before now is fresh
  BOOST_TEST(verify(h, code_at(h, e.secret, -1)).status == Status::ok);
  BOOST_TEST(verify(h, code_at(h, e.secret, +1)).status == Status::ok);
}

RULES_TEST(codes_just_outside_the_window_are_refused) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  h.clock.advance(120s);
  const Response before = verify(h, code_at(h, e.secret, -2));
  BOOST_TEST(before.status == Status::wrong_code);
  BOOST_TEST(verify(h, code_at(h, e.secret, +2)).status == Status::wrong_code);
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::ok);
}

RULES_TEST(a_wider_window_from_the_policy_is_honoured) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  Policy wide = *h.rules().policy();
  wide.window = 3;
  h.rules().set_policy(wide);
  h.clock.advance(150s);
  BOOST_TEST(verify(h, code_at(h, e.secret, -3)).status == Status::ok);
  BOOST_TEST(verify(h, code_at(h, e.secret, +3)).status == Status::ok);
  BOOST_TEST(verify(h, code_at(h, e.secret, +4)).status == Status::wrong_code);
}

RULES_TEST(a_code_typed_with_a_space_is_accepted) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const std::string code = code_at(h, e.secret, 0);
  BOOST_TEST(verify(h, code.substr(0, 3) + " " + code.substr(3)).status == Status::ok);
}

// ---- replay -----------------------------------------------------------------------

RULES_TEST(an_accepted_code_is_refused_the_second_time) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const std::string code = code_at(h, e.secret, 0);
  BOOST_TEST(verify(h, code).status == Status::ok);
  const Response again = verify(h, code);
  BOOST_TEST(again.status == Status::replayed);  // said so, and counted like a wrong code
  BOOST_TEST(again.failures_left.value() == 4U);
  BOOST_TEST(h.audit.last(AuditEventKind::verify)->outcome == Status::replayed);
  BOOST_TEST(h.audit.lines().back().find("outcome=replayed failures_left=4") != std::string::npos);
}

RULES_TEST(replayed_codes_count_toward_the_lockout) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const std::string code = code_at(h, e.secret, 0);
  BOOST_TEST(verify(h, code).status == Status::ok);
  for (std::uint32_t left = 4; left >= 1; --left) {
    const Response response = verify(h, code);
    BOOST_TEST(response.status == Status::replayed);
    BOOST_TEST(response.failures_left.value() == left);
  }
  BOOST_TEST(verify(h, code).status == Status::locked);
  BOOST_TEST(h.audit.last(AuditEventKind::verify)->outcome == Status::locked);
  BOOST_TEST(h.audit.last(AuditEventKind::lockout)->outcome == Status::locked);
}

// A code outside the window, or wrong, is not called a replay even when it
// matches a step that was once accepted.
RULES_TEST(only_a_spent_step_inside_the_window_is_a_replay) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const std::string code = code_at(h, e.secret, 0);
  BOOST_TEST(verify(h, code).status == Status::ok);
  BOOST_TEST(verify(h, wrong_code(h, e.secret)).status == Status::wrong_code);
  h.clock.advance(60s);  // the spent step is now two steps back
  BOOST_TEST(verify(h, code).status == Status::wrong_code);
}

RULES_TEST(an_older_step_after_a_newer_one_is_refused) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  h.clock.advance(60s);
  BOOST_TEST(verify(h, code_at(h, e.secret, +1)).status == Status::ok);
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::replayed);
  BOOST_TEST(verify(h, code_at(h, e.secret, -1)).status == Status::replayed);
}

RULES_TEST(the_confirming_code_counts_as_used) {
  Harness h(std::make_unique<Backend>());
  const common::SecureBytes secret = secret_of(begin(h));
  const std::string code = code_at(h, secret, 0);
  BOOST_TEST(confirm(h, code).status == Status::ok);
  BOOST_TEST(verify(h, code).status == Status::replayed);
}

RULES_TEST(replay_is_refused_across_a_restart) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const std::string code = code_at(h, e.secret, 0);
  BOOST_TEST(verify(h, code).status == Status::ok);
  h.restart();
  BOOST_TEST(verify(h, code).status == Status::replayed);
  h.clock.advance(30s);
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::ok);
}

RULES_TEST(a_clock_moved_backwards_never_reopens_a_used_step) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const std::string confirming = code_at(h, e.secret, -1);
  const std::string used = code_at(h, e.secret, 0);
  BOOST_TEST(verify(h, used).status == Status::ok);
  h.clock.advance(-30s);  // the last accepted step is still in the window: no jump
  BOOST_TEST(verify(h, used).status == Status::replayed);
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::replayed);  // the confirming one
  BOOST_TEST(h.audit.count(AuditEventKind::clock_moved) == 0U);
  h.clock.advance(30s);
  h.clock.advance(-600s);  // back past the window: a step never accepted works
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::ok);
  h.clock.advance(600s);  // forward again: both codes used before stay used
  BOOST_TEST(verify(h, used).status == Status::replayed);
  BOOST_TEST(verify(h, confirming).status == Status::replayed);
}

// ---- the clock jumps -----------------------------------------------------------------

// The host clock stepped a day ahead (an NTP misstep, a VM snapshot), a user
// logged in, and the clock came back: the right code works at once, with no
// lockout; the codes used meanwhile and before stay used.
RULES_TEST(a_clock_back_from_a_day_ahead_locks_nobody_out_and_reopens_nothing) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const std::string before = code_at(h, e.secret, 0);
  BOOST_TEST(verify(h, before).status == Status::ok);
  h.clock.advance(24h);
  const std::string ahead = code_at(h, e.secret, 0);
  BOOST_TEST(verify(h, ahead).status == Status::ok);
  h.clock.advance(-24h + 30s);
  const Response back = verify(h, code_at(h, e.secret, 0));
  BOOST_TEST(back.status == Status::ok);
  const auto moved = h.audit.last(AuditEventKind::clock_moved);
  BOOST_TEST_REQUIRE(moved.has_value());
  BOOST_TEST(moved->user == kUser);
  BOOST_TEST(moved->clock_moved_seconds.value() == -(24 * 3600 - 30));
  BOOST_TEST(moved->outcome == Status::ok);
  BOOST_TEST(h.audit.lines().back().find("clock_moved_seconds=-86370") != std::string::npos);
  // Logged once: the next login finds the last accepted step near the clock.
  h.clock.advance(30s);
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::ok);
  BOOST_TEST(h.audit.count(AuditEventKind::clock_moved) == 1U);
  // No code works twice, whichever side of the jump it was used on.
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::replayed);
  BOOST_TEST(verify(h, code_at(h, e.secret, -1)).status == Status::replayed);
  h.clock.advance(24h - 60s);  // the day-ahead step is back in the window
  BOOST_TEST(verify(h, ahead).status == Status::replayed);
  BOOST_TEST(!status_of(h, kRoot).locked_until.has_value());
}

RULES_TEST(a_step_accepted_before_the_jump_is_refused_after_it) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const std::string before = code_at(h, e.secret, 0);
  BOOST_TEST(verify(h, before).status == Status::ok);
  h.clock.advance(24h);
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::ok);
  h.clock.advance(-24h);  // back to the very step of `before`
  BOOST_TEST(verify(h, before).status == Status::replayed);
  BOOST_TEST(verify(h, code_at(h, e.secret, +1)).status == Status::ok);
}

// NTP steps a clock that ran 5 minutes fast back: the right code is accepted
// at once (it used to be refused until the clock caught up, locking the user
// out for 7 minutes).
RULES_TEST(a_clock_set_back_five_minutes_accepts_the_right_code_at_once) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::ok);
  h.clock.advance(-5min);
  for (int login = 0; login < 6; ++login) {
    BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::ok);
    h.clock.advance(30s);
  }
  BOOST_TEST(status_of(h, kRoot).locked_until.has_value() == false);
  BOOST_TEST(h.audit.count(AuditEventKind::clock_moved) == 1U);
  BOOST_TEST(h.audit.last(AuditEventKind::clock_moved)->clock_moved_seconds.value() == -300);
}

// More separate logins during the jump than the replay state keeps runs of:
// still no lockout after the clock comes back, and no code works twice.
RULES_TEST(many_logins_during_a_jump_still_neither_lock_out_nor_replay) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  h.clock.advance(24h);
  std::vector<std::string> used;
  for (std::size_t login = 0; login < kMaxStepRuns + 8; ++login) {
    used.push_back(code_at(h, e.secret, 0));
    BOOST_TEST(verify(h, used.back()).status == Status::ok);
    h.clock.advance(5min);
  }
  h.clock.advance(-24h - 5min * static_cast<int>(kMaxStepRuns + 8));
  for (int login = 0; login < 3; ++login) {
    BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::ok);
    h.clock.advance(30s);
  }
  h.clock.advance(24h - 90s);
  for (const std::string& code : used) {
    BOOST_TEST(verify(h, code).status != Status::ok);
    h.clock.advance(5min);
    h.rules().admin_unlock(kRoot, kUser, {});  // the refusals count: keep checking
  }
}

// A refused code matched outside the window, then the clock was put right:
// the hint is gone after the next good login.
RULES_TEST(the_skew_hint_clears_after_a_good_login) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  h.clock.advance(300s);  // so that five steps back is after the confirming step
  BOOST_TEST(verify(h, code_at(h, e.secret, -5)).status == Status::wrong_code);
  BOOST_TEST(status_of(h, kRoot).last_skew_seconds.value() == -150);
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::ok);
  BOOST_TEST(!status_of(h, kRoot).last_skew_seconds.has_value());
}

RULES_TEST(of_eight_concurrent_verifies_of_one_code_exactly_one_is_accepted) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const std::string code = code_at(h, e.secret, 0);
  constexpr int kThreads = 8;
  std::latch start(kThreads);
  std::vector<Status> results(kThreads, Status::internal_error);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      results[static_cast<std::size_t>(i)] = verify(h, code).status;
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  int accepted = 0;
  int refused = 0;
  for (const Status status : results) {
    accepted += status == Status::ok ? 1 : 0;
    refused += status == Status::replayed || status == Status::locked ? 1 : 0;
  }
  BOOST_TEST(accepted == 1);
  BOOST_TEST(refused == kThreads - 1);
}

// ---- lockout ---------------------------------------------------------------------

RULES_TEST(max_failures_start_a_lockout_with_the_exact_end) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  for (std::uint32_t left = 4; left >= 1; --left) {
    const Response response = verify(h, wrong_code(h, e.secret));
    BOOST_TEST(response.status == Status::wrong_code);
    BOOST_TEST(response.failures_left.value() == left);
  }
  const Response locked = verify(h, wrong_code(h, e.secret));
  BOOST_TEST(locked.status == Status::locked);
  BOOST_TEST(locked.locked_until.value() == common::to_unix(h.clock.now() + 300s));
  BOOST_TEST(h.audit.count(AuditEventKind::lockout) == 1U);
  BOOST_TEST(h.audit.last(AuditEventKind::lockout)->outcome == Status::locked);
  BOOST_TEST(h.audit.last(AuditEventKind::verify)->outcome == Status::locked);
  BOOST_TEST(status_of(h, kSelf).locked_until.value() == *locked.locked_until);
}

RULES_TEST(a_locked_account_is_refused_even_with_the_right_code) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const Response locked = fail_until_locked(h, e);
  const std::string right = code_at(h, e.secret, 0);
  const Response response = verify(h, right);
  BOOST_TEST(response.status == Status::locked);
  BOOST_TEST((response.locked_until == locked.locked_until));  // not extended
  BOOST_TEST(verify(h, e.recovery_codes[0]).status == Status::locked);
  h.clock.advance(299s);
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::locked);
  h.clock.advance(1s);
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::ok);
  // The recovery code refused during the lockout was not spent.
  BOOST_TEST(verify(h, e.recovery_codes[0]).status == Status::ok);
}

RULES_TEST(lockouts_double_up_to_the_cap) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  for (const std::int64_t expected : {300, 600, 1200, 2400, 3600, 3600}) {
    const Response locked = fail_until_locked(h, e);
    BOOST_TEST(locked.status == Status::locked);
    BOOST_TEST(*locked.locked_until - common::to_unix(h.clock.now()) == expected);
    h.clock.set(common::from_unix(*locked.locked_until));
  }
}

RULES_TEST(a_success_resets_the_count_and_the_level) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  fail_until_locked(h, e);
  h.clock.advance(300s);
  for (int i = 0; i < 3; ++i) {
    verify(h, wrong_code(h, e.secret));
  }
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::ok);
  h.clock.advance(30s);
  const Response first = verify(h, wrong_code(h, e.secret));
  BOOST_TEST(first.failures_left.value() == 4U);  // the count restarted
  const Response locked = fail_until_locked(h, e);
  BOOST_TEST(*locked.locked_until - common::to_unix(h.clock.now()) == 300);  // level 0 again
}

RULES_TEST(admin_unlock_clears_the_lockout_and_the_level) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  fail_until_locked(h, e);
  h.clock.advance(300s);
  fail_until_locked(h, e);  // level 2 now
  const Response unlocked = h.rules().admin_unlock(kRoot, kUser, {});
  BOOST_TEST(unlocked.status == Status::ok);
  BOOST_TEST(h.audit.count(AuditEventKind::unlock) == 1U);
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::ok);
  h.clock.advance(30s);
  const Response locked = fail_until_locked(h, e);
  BOOST_TEST(*locked.locked_until - common::to_unix(h.clock.now()) == 300);
}

RULES_TEST(admin_unlock_of_an_unknown_name_is_no_such_user) {
  Harness h(std::make_unique<Backend>());
  BOOST_TEST(h.rules().admin_unlock(kRoot, "nobody-here", {}).status == Status::no_such_user);
  BOOST_TEST(h.rules().admin_unlock(kRoot, "bob", {}).status == Status::ok);  // nothing to do
}

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

// ---- login_check ---------------------------------------------------------------------------

RULES_TEST(login_check_decision_table) {
  Harness h(std::make_unique<Backend>());
  using std::chrono::sys_days;
  const auto today = std::chrono::floor<std::chrono::days>(h.clock.now());
  const auto with_enforce = [&](std::optional<sys_days> date) {
    Policy policy = test_policy();
    policy.exempt_group = "breakglass";
    policy.enforce_after = date;
    h.rules().set_policy(policy);
  };

  // Not enrolled, no enforce_after.
  with_enforce(std::nullopt);
  BOOST_TEST(decision_of(login_check(h, "eve")) == LoginDecision::pass);
  BOOST_TEST(h.audit.last(AuditEventKind::exempt_login)->user == "eve");
  BOOST_TEST(decision_of(login_check(h, "alice")) == LoginDecision::refuse);
  BOOST_TEST(h.audit.last(AuditEventKind::login_check)->outcome == Status::not_enrolled);
  BOOST_TEST(decision_of(login_check(h, "alice", true)) == LoginDecision::ignore);
  BOOST_TEST(h.audit.count(AuditEventKind::nullok_login) == 1U);
  BOOST_TEST(h.audit.last(AuditEventKind::nullok_login)->outcome == Status::ok);
  BOOST_TEST(decision_of(login_check(h, "alice", true, true)) == LoginDecision::enroll);
  BOOST_TEST(decision_of(login_check(h, "alice", false, true)) == LoginDecision::enroll);
  BOOST_TEST(decision_of(login_check(h, "no-such-account", true)) == LoginDecision::ignore);

  // Before enforce_after: let through with a notice, whatever the options.
  with_enforce(today + std::chrono::days{10});
  for (const bool nullok : {false, true}) {
    for (const bool enroll_option : {false, true}) {
      const Response response = login_check(h, "alice", nullok, enroll_option);
      BOOST_TEST(decision_of(response) == LoginDecision::ignore);
      const std::string& notice = std::get<protocol::LoginCheckResult>(response.result).notice;
      BOOST_TEST(notice.find("kpanel-totp enroll") != std::string::npos);
      BOOST_TEST(notice.find("10 days left") != std::string::npos);
      BOOST_TEST(notice.find("2027-01-25") != std::string::npos);
    }
  }
  BOOST_TEST(h.audit.last(AuditEventKind::grace_login)->days_left.value() == 10);
  with_enforce(today + std::chrono::days{1});
  const Response tomorrow = login_check(h, "alice");
  BOOST_TEST(std::get<protocol::LoginCheckResult>(tomorrow.result).notice.find("(1 day left)") !=
             std::string::npos);

  // From 00:00 UTC of the enforce_after day on, nullok no longer lets anyone in.
  with_enforce(today);
  BOOST_TEST(decision_of(login_check(h, "alice", true)) == LoginDecision::refuse);
  BOOST_TEST(decision_of(login_check(h, "alice", true, true)) == LoginDecision::enroll);
  BOOST_TEST(decision_of(login_check(h, "eve", true)) == LoginDecision::pass);
  with_enforce(today - std::chrono::days{30});
  BOOST_TEST(decision_of(login_check(h, "alice", true)) == LoginDecision::refuse);

  // Enrolled.
  with_enforce(today + std::chrono::days{10});
  const Enrolled alice = enroll(h, "alice");
  enroll(h, "eve");
  BOOST_TEST(decision_of(login_check(h, "alice", true)) == LoginDecision::prompt);
  BOOST_TEST(decision_of(login_check(h, "eve")) == LoginDecision::pass);
  const Response locked_reply = fail_until_locked(h, alice);
  const Response locked = login_check(h, "alice");
  BOOST_TEST(decision_of(locked) == LoginDecision::locked);
  BOOST_TEST(h.audit.last(AuditEventKind::login_check)->outcome == Status::locked);
  BOOST_TEST((std::get<protocol::LoginCheckResult>(locked.result).locked_until ==
              locked_reply.locked_until));
}

// ---- clock skew ----------------------------------------------------------------------------

RULES_TEST(skew_is_recorded_for_admins_and_never_told_to_the_client) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const Response ahead = verify(h, code_at(h, e.secret, +5));
  BOOST_TEST(ahead.status == Status::wrong_code);
  BOOST_TEST(ahead.failures_left.value() == 4U);  // like any wrong code
  BOOST_TEST(std::holds_alternative<protocol::EmptyResult>(ahead.result));
  BOOST_TEST(h.audit.last(AuditEventKind::clock_skew)->skew_seconds.value() == 150);
  BOOST_TEST(h.audit.last(AuditEventKind::clock_skew)->outcome == Status::wrong_code);
  BOOST_TEST(status_of(h, kRoot).last_skew_seconds.value() == 150);
  BOOST_TEST(!status_of(h, kSelf).last_skew_seconds.has_value());

  h.clock.advance(600s);  // so that ten steps back is after the last accepted step
  const Response behind = verify(h, code_at(h, e.secret, -10));
  BOOST_TEST(behind.status == Status::wrong_code);
  BOOST_TEST(status_of(h, kRoot).last_skew_seconds.value() == -300);
  const auto listed = h.rules().admin_list(kRoot, {});
  BOOST_TEST_REQUIRE(listed.status == Status::ok);
  BOOST_TEST(
      std::get<protocol::AdminListResult>(listed.result).users.at(0).last_skew_seconds.value() ==
      -300);

  // Eleven steps off is too far to call it skew; a wrong code is not skew either.
  const std::size_t recorded = h.audit.count(AuditEventKind::clock_skew);
  verify(h, code_at(h, e.secret, 11));
  verify(h, wrong_code(h, e.secret));
  BOOST_TEST(h.audit.count(AuditEventKind::clock_skew) == recorded);
}

RULES_TEST(an_old_accepted_code_is_not_taken_for_skew) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const std::string code = code_at(h, e.secret, 0);
  BOOST_TEST(verify(h, code).status == Status::ok);
  h.clock.advance(150s);
  BOOST_TEST(verify(h, code).status == Status::wrong_code);
  BOOST_TEST(h.audit.count(AuditEventKind::clock_skew) == 0U);
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

// ---- the audit log ----------------------------------------------------------------------------

RULES_TEST(audit_events_never_contain_codes_secrets_or_passwords) {
  Harness h(std::make_unique<Backend>());
  const Response begun = begin(h);
  const common::SecureBytes secret = secret_of(begun);
  std::vector<std::string> secrets{
      std::string(std::get<protocol::EnrollBeginResult>(begun.result).secret_base32.view())};
  const std::string confirming = code_at(h, secret, 0);
  const std::vector<std::string> recovery = codes_of(confirm(h, confirming));
  h.clock.advance(30s);
  const std::string right = code_at(h, secret, 0);
  const std::string wrong = wrong_code(h, secret);
  const std::string skewed = code_at(h, secret, 4);
  verify(h, right);
  verify(h, right);
  verify(h, wrong);
  verify(h, skewed);
  verify(h, lower_spaced(recovery[0]));
  verify(h, recovery[0]);
  h.clock.advance(30s);
  const std::string disabling = code_at(h, secret, 0);
  disable(h, "wrong-password-xyz", disabling);
  disable(h, "alice-password", disabling);

  secrets.insert(secrets.end(), {confirming, right, wrong, skewed, disabling, "wrong-password-xyz",
                                 "alice-password"});
  for (const std::string& code : recovery) {
    secrets.push_back(code);
    secrets.emplace_back(common::normalize_recovery_code(code)->view());
  }
  const std::string text = h.audit.text();
  BOOST_TEST(h.audit.count(AuditEventKind::verify) == 6U);
  BOOST_TEST(h.audit.count(AuditEventKind::clock_skew) == 1U);
  for (const std::string& secret_text : secrets) {
    BOOST_TEST(text.find(secret_text) == std::string::npos, secret_text << " appears in the log");
  }
}

RULES_TEST(audit_events_carry_user_service_rhost_tty_and_outcome) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  verify(h, wrong_code(h, e.secret));
  const auto event = h.audit.last(AuditEventKind::verify);
  BOOST_TEST_REQUIRE(event.has_value());
  BOOST_TEST(event->user == "alice");
  BOOST_TEST(event->service == "sshd");
  BOOST_TEST(event->rhost == "192.0.2.7");
  BOOST_TEST(event->tty == "ssh");
  BOOST_TEST(event->outcome == Status::wrong_code);
  BOOST_TEST(event->failures_left.value() == 4U);
  BOOST_TEST(event->peer_uid.value() == 0U);
  BOOST_TEST(h.audit.lines().back() ==
             "event=verify user=alice peer_uid=0 service=sshd rhost=192.0.2.7 tty=ssh "
             "outcome=wrong_code failures_left=4");
}

BOOST_AUTO_TEST_CASE(audit_lines_sanitize_client_strings) {
  AuditEvent event;
  event.kind = AuditEventKind::verify;
  event.user = "mallory";
  event.rhost = "evil\nevent=verify outcome=ok";
  event.tty = std::string(300, 'x');
  event.service = "";
  event.outcome = Status::ok;
  const std::string line = format_audit_event(event);
  BOOST_TEST(line.find('\n') == std::string::npos);
  BOOST_TEST(line.find(R"(rhost="evil\x0aevent=verify outcome=ok")") != std::string::npos);
  BOOST_TEST(line.find("tty=" + std::string(128, 'x') + "...") != std::string::npos);
  event.user = "a\"b\\c\x1b[31m\xc3\xa9";
  BOOST_TEST(format_audit_event(event).find(R"(user="a\"b\\c\x1b[31m\xc3\xa9")") !=
             std::string::npos);
}

// ---- failures of collaborators -----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_failing_store_gives_store_unavailable_never_a_crash) {
  auto backend = std::make_unique<MemoryBackend>();
  Harness h(std::move(backend));
  const Enrolled e = enroll(h);
  auto& store = dynamic_cast<MemoryStore&>(h.store());
  store.fail_with(StoreErrorKind::io);
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::store_unavailable);
  BOOST_TEST(login_check(h, kUser).status == Status::store_unavailable);
  BOOST_TEST(begin(h).status == Status::store_unavailable);
  BOOST_TEST(confirm(h, "123456").status == Status::store_unavailable);
  BOOST_TEST(disable(h, "alice-password", "123456").status == Status::store_unavailable);
  BOOST_TEST(regenerate(h, "123456").status == Status::store_unavailable);
  BOOST_TEST(h.rules().status(kSelf, kUser, {}).status == Status::store_unavailable);
  BOOST_TEST(h.rules().admin_list(kRoot, {}).status == Status::store_unavailable);
  BOOST_TEST(h.rules().admin_reset(kRoot, kUser, {}).status == Status::store_unavailable);
  BOOST_TEST(h.rules().admin_unlock(kRoot, kUser, {}).status == Status::store_unavailable);
  BOOST_TEST((h.audit.last(AuditEventKind::verify)->store_error == StoreErrorKind::io));
  // Each refusal is an audit event; the failure itself is logged once, by
  // LoggedStore (test_store_health), not by the rules for every request.
  BOOST_TEST(h.audit.errors().empty());
  store.fail_with(std::nullopt);
  BOOST_TEST(verify(h, code_at(h, e.secret, 0)).status == Status::ok);
}

// A store whose every call throws: the rules answer internal_error.
class ThrowingStore final : public Store {
 public:
  std::expected<std::optional<UserRecord>, StoreError> load(std::string_view) override {
    throw std::runtime_error("load exploded");
  }
  std::expected<void, StoreError> update(std::string_view,
                                         const std::function<bool(UserRecord&)>&) override {
    throw std::runtime_error("update exploded");
  }
  std::expected<std::vector<UserRecord>, StoreError> list() override {
    throw std::runtime_error("list exploded");
  }
};

BOOST_AUTO_TEST_CASE(an_exception_inside_a_handler_is_an_internal_error) {
  ThrowingStore store;
  const common::ManualClock clock(kStart);
  MapAccountDirectory accounts;
  accounts.add_user(kAlice, "alice");
  TablePasswordChecker passwords;
  RecordingAuditLog audit;
  Rules rules(test_policy(), store, clock, passwords, accounts, audit);
  BOOST_TEST(rules.verify(kRoot, kUser, {}).status == Status::internal_error);
  BOOST_TEST(rules.login_check(kRoot, kUser, {}).status == Status::internal_error);
  BOOST_TEST(rules.admin_list(kRoot, {}).status == Status::internal_error);
  BOOST_TEST(rules.admin_reset(kRoot, kUser, {}).status == Status::internal_error);
  // verify with a TOTP code goes straight to update; the others load first.
  BOOST_TEST(audit.errors().at(0).find("update exploded") != std::string::npos);
  BOOST_TEST(audit.errors().at(1).find("load exploded") != std::string::npos);
}

// ---- codes of the wrong shape ---------------------------------------------------

RULES_TEST(a_code_of_the_wrong_shape_is_refused_without_counting) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  const std::string right = code_at(h, e.secret, 0);
  // Far more slips than max_failures: none counts, so no lockout follows.
  for (const std::string& typed :
       {right.substr(0, 5), right + "7", std::string("12a456"), std::string("ABCDE"),
        std::string("12345"), std::string("1234567"), std::string(""), std::string("123-456")}) {
    BOOST_TEST_CONTEXT("typed '" << typed << "'") {
      const Response response = verify(h, typed);
      BOOST_TEST(response.status == Status::malformed_code);
      BOOST_TEST(!response.failures_left.has_value());
    }
  }
  BOOST_TEST(!status_of(h, kSelf).locked_until.has_value());
  BOOST_TEST(h.audit.last(AuditEventKind::verify)->outcome == Status::malformed_code);
  // The first real wrong code is the first failure.
  BOOST_TEST(verify(h, wrong_code(h, e.secret)).failures_left.value() == 4U);
  // Spaces as apps show them, and recovery-code shapes, are still checked.
  BOOST_TEST(verify(h, right.substr(0, 3) + " " + right.substr(3)).status == Status::ok);
  BOOST_TEST(verify(h, "AAAA-BBBB-CC").status == Status::wrong_code);
}

RULES_TEST(a_confirming_code_of_the_wrong_shape_is_not_counted) {
  Harness h(std::make_unique<Backend>());
  const common::SecureBytes secret = secret_of(begin(h));
  for (int i = 0; i < 8; ++i) {
    BOOST_TEST(confirm(h, "12345").status == Status::malformed_code);
  }
  BOOST_TEST(confirm(h, wrong_code(h, secret)).failures_left.value() == 4U);
  BOOST_TEST(confirm(h, code_at(h, secret, 0)).status == Status::ok);
}

RULES_TEST(a_locked_account_answers_locked_whatever_the_shape) {
  Harness h(std::make_unique<Backend>());
  const Enrolled e = enroll(h);
  for (int i = 0; i < 5; ++i) {
    verify(h, wrong_code(h, e.secret));
  }
  BOOST_TEST(verify(h, "12345").status == Status::locked);
}

}  // namespace
}  // namespace kpanel::daemon::test
