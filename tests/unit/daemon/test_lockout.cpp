#define BOOST_TEST_MODULE daemon lockout
#include <boost/test/unit_test.hpp>
#include <chrono>

#include "common/clock.hpp"
#include "daemon/rules/lockout.hpp"

namespace kpanel::daemon {
namespace {

using namespace std::chrono_literals;

const common::TimePoint kNow = common::from_unix(1'800'000'000);

Policy policy() {
  Policy p;
  p.max_failures = 5;
  p.lockout = 300s;
  p.lockout_max = 3600s;
  return p;
}

// Fails until a lockout starts; returns how many failures it took.
unsigned fail_until_locked(UserRecord& record, const Policy& p, common::TimePoint now) {
  unsigned n = 0;
  while (!register_failure(record, p, now)) {
    ++n;
  }
  return n + 1;
}

BOOST_AUTO_TEST_CASE(duration_doubles_from_the_first_lockout_up_to_the_cap) {
  const Policy p = policy();
  BOOST_TEST(lockout_duration(p, 0).count() == 300);
  BOOST_TEST(lockout_duration(p, 1).count() == 600);
  BOOST_TEST(lockout_duration(p, 2).count() == 1200);
  BOOST_TEST(lockout_duration(p, 3).count() == 2400);
  BOOST_TEST(lockout_duration(p, 4).count() == 3600);
  BOOST_TEST(lockout_duration(p, 5).count() == 3600);
  BOOST_TEST(lockout_duration(p, 64).count() == 3600);
  BOOST_TEST(lockout_duration(p, 0xFFFFFFFFU).count() == 3600);
}

BOOST_AUTO_TEST_CASE(duration_respects_odd_settings) {
  Policy p = policy();
  p.lockout_max = 100s;  // below the first lockout: the cap wins
  BOOST_TEST(lockout_duration(p, 0).count() == 100);
  p.lockout = 0s;
  BOOST_TEST(lockout_duration(p, 0xFFFFFFFFU).count() == 0);
  p = policy();
  p.lockout_max = std::chrono::seconds::max();
  p.lockout = std::chrono::seconds::max() / 3;
  BOOST_TEST((lockout_duration(p, 10) == std::chrono::seconds::max()));
}

BOOST_AUTO_TEST_CASE(max_failures_consecutive_failures_start_a_lockout) {
  const Policy p = policy();
  UserRecord record;
  for (std::uint32_t left = 4; left >= 1; --left) {
    BOOST_TEST(!register_failure(record, p, kNow));
    BOOST_TEST(!is_locked(record, kNow));
    BOOST_TEST(failures_left(record, p).value() == left);
  }
  BOOST_TEST(register_failure(record, p, kNow));
  BOOST_TEST(is_locked(record, kNow));
  BOOST_TEST((record.locked_until == kNow + 300s));
  BOOST_TEST(record.failures == 0U);  // the count restarts
  BOOST_TEST(record.lockout_level == 1U);
  BOOST_TEST(failures_left(record, p).value() == 5U);
}

BOOST_AUTO_TEST_CASE(locked_until_is_exclusive) {
  const Policy p = policy();
  UserRecord record;
  fail_until_locked(record, p, kNow);
  BOOST_TEST(is_locked(record, kNow + 299s));
  BOOST_TEST(!is_locked(record, kNow + 300s));
}

BOOST_AUTO_TEST_CASE(level_persists_across_lockouts_and_doubles) {
  const Policy p = policy();
  UserRecord record;
  common::TimePoint now = kNow;
  for (const long expected : {300, 600, 1200, 2400, 3600, 3600}) {
    BOOST_TEST(fail_until_locked(record, p, now) == 5U);
    BOOST_TEST((*record.locked_until - now).count() == expected);
    now = *record.locked_until;  // wait it out
  }
  BOOST_TEST(record.lockout_level == 6U);
}

BOOST_AUTO_TEST_CASE(success_resets_count_level_and_lockout) {
  const Policy p = policy();
  UserRecord record;
  fail_until_locked(record, p, kNow);
  register_failure(record, p, kNow + 300s);
  register_success(record);
  BOOST_TEST(record.failures == 0U);
  BOOST_TEST(record.lockout_level == 0U);
  BOOST_TEST(!record.locked_until.has_value());
  fail_until_locked(record, p, kNow + 400s);
  BOOST_TEST((record.locked_until == kNow + 700s));  // 300 s again, not 600
}

BOOST_AUTO_TEST_CASE(an_expired_lockout_is_cleared_by_the_next_failure) {
  const Policy p = policy();
  UserRecord record;
  fail_until_locked(record, p, kNow);
  BOOST_TEST(!register_failure(record, p, kNow + 301s));
  BOOST_TEST(!record.locked_until.has_value());
  BOOST_TEST(record.lockout_level == 1U);
}

BOOST_AUTO_TEST_CASE(max_failures_zero_turns_lockouts_off) {
  Policy p = policy();
  p.max_failures = 0;
  UserRecord record;
  for (int i = 0; i < 100; ++i) {
    BOOST_TEST(!register_failure(record, p, kNow));
  }
  BOOST_TEST(!is_locked(record, kNow));
  BOOST_TEST(!failures_left(record, p).has_value());
}

BOOST_AUTO_TEST_CASE(max_failures_one_locks_on_every_failure) {
  Policy p = policy();
  p.max_failures = 1;
  UserRecord record;
  BOOST_TEST(failures_left(record, p).value() == 1U);
  BOOST_TEST(register_failure(record, p, kNow));
}

}  // namespace
}  // namespace kpanel::daemon
