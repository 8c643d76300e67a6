#define BOOST_TEST_MODULE daemon audit counts
// The counters of `admin stats`: which event moves which counter, counted
// before the audit log's rate limit, from several threads at once.
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include "common/clock.hpp"
#include "daemon/system/audit_counts.hpp"
#include "support/printing.hpp"
#include "support/recording_audit.hpp"

namespace kpanel::daemon::test {
namespace {

using common::protocol::Status;

AuditEvent event(AuditEventKind kind, Status outcome = Status::ok) {
  AuditEvent e;
  e.kind = kind;
  e.user = "alice";
  e.peer_uid = 0;
  e.outcome = outcome;
  return e;
}

std::optional<Counter> verify_counter(Status outcome, bool recovery = false) {
  AuditEvent e = event(AuditEventKind::verify, outcome);
  e.recovery_code_used = recovery;
  return counter_for(e);
}

BOOST_AUTO_TEST_CASE(every_verify_outcome_has_its_counter) {
  BOOST_TEST((verify_counter(Status::ok) == Counter::verify_ok));
  BOOST_TEST((verify_counter(Status::ok, true) == Counter::verify_recovery));
  BOOST_TEST((verify_counter(Status::wrong_code) == Counter::verify_wrong_code));
  BOOST_TEST((verify_counter(Status::wrong_code, false) == Counter::verify_wrong_code));
  BOOST_TEST((verify_counter(Status::replayed) == Counter::verify_replayed));
  BOOST_TEST((verify_counter(Status::locked) == Counter::verify_locked));
  BOOST_TEST((verify_counter(Status::malformed_code) == Counter::verify_malformed));
  BOOST_TEST((verify_counter(Status::busy) == Counter::verify_busy));
  BOOST_TEST((verify_counter(Status::store_unavailable) == Counter::verify_store_unavailable));
  for (const Status other : {Status::not_enrolled, Status::forbidden, Status::no_such_user,
                             Status::internal_error, Status::bad_request}) {
    BOOST_TEST((verify_counter(other) == Counter::verify_other), to_string(other));
  }
}

BOOST_AUTO_TEST_CASE(the_other_counted_events) {
  BOOST_TEST((counter_for(event(AuditEventKind::lockout, Status::locked)) == Counter::lockouts));
  BOOST_TEST((counter_for(event(AuditEventKind::enroll_confirm)) == Counter::enrollments));
  BOOST_TEST(!counter_for(event(AuditEventKind::enroll_confirm, Status::wrong_code)).has_value());
  BOOST_TEST((counter_for(event(AuditEventKind::import)) == Counter::imports));
  BOOST_TEST(!counter_for(event(AuditEventKind::import, Status::already_enrolled)).has_value(),
             "a skipped import is no import");
  BOOST_TEST((counter_for(event(AuditEventKind::remembered_login)) == Counter::remembered_skips));
  BOOST_TEST((counter_for(event(AuditEventKind::exempt_login)) == Counter::exempt_logins));
  BOOST_TEST((counter_for(event(AuditEventKind::grace_login)) == Counter::grace_logins));
  BOOST_TEST((counter_for(event(AuditEventKind::nullok_login)) == Counter::nullok_logins));
  for (const AuditEventKind ignored :
       {AuditEventKind::status, AuditEventKind::login_check, AuditEventKind::enroll_begin,
        AuditEventKind::admin_list, AuditEventKind::admin_stats, AuditEventKind::clock_skew,
        AuditEventKind::clock_moved, AuditEventKind::audit_suppressed, AuditEventKind::fence,
        AuditEventKind::reset, AuditEventKind::unlock}) {
    BOOST_TEST(!counter_for(event(ignored)).has_value(), to_string(ignored));
  }
}

BOOST_AUTO_TEST_CASE(the_new_kinds_have_their_log_names) {
  BOOST_TEST(to_string(AuditEventKind::import) == "import");
  BOOST_TEST(to_string(AuditEventKind::remembered_login) == "remembered_login");
  BOOST_TEST(to_string(AuditEventKind::admin_stats) == "admin_stats");
  BOOST_TEST((audit_kind(common::protocol::Op::admin_stats) == AuditEventKind::admin_stats));
}

BOOST_AUTO_TEST_CASE(counting_passes_every_event_on) {
  RecordingAuditLog inner;
  CountingAuditLog counting(inner);
  counting.record(event(AuditEventKind::import));
  counting.record(event(AuditEventKind::remembered_login));
  counting.record(event(AuditEventKind::remembered_login));
  counting.record(event(AuditEventKind::status));
  counting.error("boom");
  BOOST_TEST(inner.events().size() == 4U);
  BOOST_TEST(inner.errors().size() == 1U);
  const AuditCounts counts = counting.snapshot();
  BOOST_TEST(counts[Counter::imports] == 1U);
  BOOST_TEST(counts[Counter::remembered_skips] == 2U);
  BOOST_TEST(counts[Counter::verify_ok] == 0U);
}

// The daemon's order: counted, then rate-limited. An event the limit turns
// into a summary line still counts, exactly once.
BOOST_AUTO_TEST_CASE(events_the_rate_limit_suppresses_are_still_counted) {
  RecordingAuditLog written;
  const common::ManualClock clock{common::from_unix(1'800'000'000)};
  RateLimitedAuditLog limited(
      written, clock,
      AuditRateLimits{.burst = 2, .per_second = 0.001, .summary_period = std::chrono::seconds(10)});
  CountingAuditLog counting(limited);
  for (int i = 0; i < 50; ++i) {
    AuditEvent refused = event(AuditEventKind::verify, Status::wrong_code);
    refused.peer_uid = 1001;  // not root: within the budget
    counting.record(refused);
  }
  limited.flush(true);
  BOOST_TEST(written.count(AuditEventKind::verify) == 2U);
  BOOST_TEST(written.count(AuditEventKind::audit_suppressed) == 1U);
  BOOST_TEST(counting.snapshot()[Counter::verify_wrong_code] == 50U);
}

BOOST_AUTO_TEST_CASE(threads_count_without_losing_one) {
  RecordingAuditLog inner;
  CountingAuditLog counting(inner);
  constexpr int kThreads = 4;
  constexpr int kEach = 2000;
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&counting] {
        for (int i = 0; i < kEach; ++i) {
          counting.count(event(AuditEventKind::verify));
          counting.count(event(AuditEventKind::lockout, Status::locked));
        }
      });
    }
  }
  const AuditCounts counts = counting.snapshot();
  BOOST_TEST(counts[Counter::verify_ok] == std::uint64_t{kThreads * kEach});
  BOOST_TEST(counts[Counter::lockouts] == std::uint64_t{kThreads * kEach});
}

}  // namespace
}  // namespace kpanel::daemon::test
