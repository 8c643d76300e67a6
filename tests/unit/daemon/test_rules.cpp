#define BOOST_TEST_MODULE daemon rules
// The rules suite (one binary with rules_tests/*.cpp): logins and verify --
// the window, replay, clock jumps, lockout, login_check, skew, code shapes.
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <latch>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "rules_tests/rules_helpers.hpp"

namespace kpanel::daemon::test {
namespace {

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
