#define BOOST_TEST_MODULE daemon audit
#include <unistd.h>

#include <array>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "daemon/system/audit.hpp"
#include "support/printing.hpp"
#include "support/recording_audit.hpp"

namespace kpanel::daemon::test {
namespace {

namespace protocol = common::protocol;
using namespace std::chrono_literals;
using protocol::Status;

constexpr uid_t kFlooder = 1001;
constexpr uid_t kOther = 1000;

AuditEvent event(AuditEventKind kind, uid_t uid, Status outcome, const std::string& user) {
  AuditEvent e;
  e.kind = kind;
  e.peer_uid = uid;
  e.outcome = outcome;
  e.user = user;
  return e;
}

struct Limited {
  common::ManualClock clock{common::from_unix(1'800'000'000)};
  RecordingAuditLog written;
  RateLimitedAuditLog log;
  explicit Limited(AuditRateLimits limits = {}) : log(written, clock, limits) {}

  void flood(uid_t uid, int count, AuditEventKind kind = AuditEventKind::status,
             Status outcome = Status::forbidden) {
    for (int i = 0; i < count; ++i) {
      log.record(event(kind, uid, outcome, "root"));
    }
  }
  std::size_t written_for(uid_t uid, AuditEventKind kind) const {
    std::size_t n = 0;
    for (const AuditEvent& e : written.events()) {
      n += e.kind == kind && e.peer_uid == uid ? 1 : 0;
    }
    return n;
  }
};

BOOST_AUTO_TEST_CASE(a_flood_of_one_uid_collapses_into_a_summary) {
  Limited l;
  l.flood(kFlooder, 5000);
  l.flood(kFlooder, 310, AuditEventKind::verify, Status::wrong_code);
  BOOST_TEST(l.written_for(kFlooder, AuditEventKind::status) == 20U);  // the burst

  // Another user's refused verify, root's, and what must never be dropped.
  l.log.record(event(AuditEventKind::verify, kOther, Status::wrong_code, "alice"));
  l.log.record(event(AuditEventKind::verify, 0, Status::wrong_code, "bob"));
  l.log.record(event(AuditEventKind::verify, kFlooder, Status::ok, "flooder"));
  l.log.record(event(AuditEventKind::lockout, kFlooder, Status::locked, "flooder"));
  BOOST_TEST(l.written_for(kOther, AuditEventKind::verify) == 1U);
  BOOST_TEST(l.written_for(0, AuditEventKind::verify) == 1U);
  BOOST_TEST(l.written_for(kFlooder, AuditEventKind::verify) == 1U);  // the success
  BOOST_TEST(l.written_for(kFlooder, AuditEventKind::lockout) == 1U);

  l.clock.advance(9s);
  l.log.flush();
  BOOST_TEST(l.written.count(AuditEventKind::audit_suppressed) == 0U);  // not yet due
  l.clock.advance(1s);
  l.log.flush();
  const auto summary = l.written.last(AuditEventKind::audit_suppressed);
  BOOST_TEST_REQUIRE(summary.has_value());
  BOOST_TEST(summary->peer_uid.value() == kFlooder);
  BOOST_TEST(summary->suppressed == 5290U);
  BOOST_TEST(l.written.lines().back() ==
             "event=audit_suppressed peer_uid=1001 suppressed=5290 seconds=10 "
             "counts=verify/wrong_code:310,status/forbidden:4980");
  l.log.flush(true);
  BOOST_TEST(l.written.count(AuditEventKind::audit_suppressed) == 1U);  // once
}

BOOST_AUTO_TEST_CASE(after_the_burst_two_lines_a_second) {
  Limited l;
  l.flood(kFlooder, 100);
  for (int second = 0; second < 5; ++second) {
    l.clock.advance(1s);
    l.flood(kFlooder, 100);
  }
  BOOST_TEST(l.written_for(kFlooder, AuditEventKind::status) == 30U);
  l.clock.advance(60s);  // refilled, but no more than the burst
  l.flood(kFlooder, 100);
  BOOST_TEST(l.written_for(kFlooder, AuditEventKind::status) == 50U);
}

BOOST_AUTO_TEST_CASE(the_summary_comes_with_the_uids_next_event_when_due) {
  Limited l;
  l.flood(kFlooder, 25);
  l.clock.advance(15s);
  l.flood(kFlooder, 1);
  const auto summary = l.written.last(AuditEventKind::audit_suppressed);
  BOOST_TEST_REQUIRE(summary.has_value());
  BOOST_TEST(summary->suppressed == 5U);
  BOOST_TEST(summary->suppressed_seconds == 15);
  BOOST_TEST(l.written.events().back().kind == AuditEventKind::status);  // then the event itself
}

BOOST_AUTO_TEST_CASE(root_and_successes_never_spend_or_need_a_budget) {
  Limited l;
  l.flood(0, 1000, AuditEventKind::verify, Status::wrong_code);
  l.flood(kFlooder, 1000, AuditEventKind::enroll_confirm, Status::ok);
  l.flood(kFlooder, 1000, AuditEventKind::reset, Status::ok);
  BOOST_TEST(l.written.events().size() == 3000U);
  l.flood(kFlooder, 20);
  BOOST_TEST(l.written_for(kFlooder, AuditEventKind::status) == 20U);
}

BOOST_AUTO_TEST_CASE(the_table_of_uids_is_bounded) {
  AuditRateLimits limits;
  limits.max_uids = 2;
  Limited l(limits);
  l.flood(2001, 30);
  l.flood(2002, 30);
  l.flood(2003, 30);  // beyond the table: a shared budget
  l.flood(2004, 30);
  l.clock.advance(10s);
  l.log.flush();
  const auto lines = l.written.text();
  BOOST_TEST(lines.find("peer_uid=2001 suppressed=10 ") != std::string::npos);
  BOOST_TEST(lines.find("peer_uid=2002 suppressed=10 ") != std::string::npos);
  BOOST_TEST(lines.find("peer_uid=other suppressed=40 ") != std::string::npos);
  // Idle uids are forgotten, so a new one gets its own budget again.
  l.clock.advance(30s);
  l.log.flush();
  l.flood(2005, 30);
  l.clock.advance(10s);
  l.log.flush();
  BOOST_TEST(l.written.text().find("peer_uid=2005 suppressed=10 ") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(which_events_a_budget_applies_to) {
  BOOST_TEST(RateLimitedAuditLog::may_suppress(
      event(AuditEventKind::status, kFlooder, Status::forbidden, "root")));
  BOOST_TEST(RateLimitedAuditLog::may_suppress(
      event(AuditEventKind::verify, kFlooder, Status::replayed, "x")));
  BOOST_TEST(!RateLimitedAuditLog::may_suppress(
      event(AuditEventKind::verify, 0, Status::wrong_code, "x")));
  BOOST_TEST(
      !RateLimitedAuditLog::may_suppress(event(AuditEventKind::verify, kFlooder, Status::ok, "x")));
  BOOST_TEST(!RateLimitedAuditLog::may_suppress(
      event(AuditEventKind::lockout, kFlooder, Status::locked, "x")));
  // Successes a user can repeat at will spend the budget too: a login_check
  // that lets an unenrolled user through, a started enrollment.
  BOOST_TEST(RateLimitedAuditLog::may_suppress(
      event(AuditEventKind::nullok_login, kFlooder, Status::ok, "x")));
  BOOST_TEST(RateLimitedAuditLog::may_suppress(
      event(AuditEventKind::enroll_begin, kFlooder, Status::ok, "x")));
  BOOST_TEST(
      !RateLimitedAuditLog::may_suppress(event(AuditEventKind::nullok_login, 0, Status::ok, "x")));
  AuditEvent no_peer;
  no_peer.outcome = Status::store_unavailable;
  BOOST_TEST(!RateLimitedAuditLog::may_suppress(no_peer));
}

}  // namespace
}  // namespace kpanel::daemon::test

namespace {

// What SyslogAuditLog writes to stderr while `body` runs, and after it.
struct StderrCapture {
  StderrCapture() {
    saved = ::dup(2);
    file = std::tmpfile();
    ::dup2(::fileno(file), 2);
  }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;
  StderrCapture(StderrCapture&&) = delete;
  StderrCapture& operator=(StderrCapture&&) = delete;
  ~StderrCapture() {
    ::dup2(saved, 2);
    ::close(saved);
    std::fclose(file);
  }
  [[nodiscard]] std::string text() const {
    std::string out;
    std::array<char, 4096> chunk{};
    const auto size = ::lseek(::fileno(file), 0, SEEK_END);
    for (off_t at = 0; at < size;) {
      const ssize_t got = ::pread(::fileno(file), chunk.data(), chunk.size(), at);
      if (got <= 0) break;
      out.append(chunk.data(), static_cast<std::size_t>(got));
      at += got;
    }
    return out;
  }
  int saved = -1;
  std::FILE* file = nullptr;
};

}  // namespace

BOOST_AUTO_TEST_CASE(held_audit_lines_are_written_when_the_hold_ends_and_not_before) {
  // The server holds a request's lines until its reply is sent.
  kpanel::daemon::SyslogAuditLog log;
  const StderrCapture captured;
  kpanel::daemon::AuditEvent event;
  event.user = "alice";
  {
    const kpanel::daemon::HoldAuditLines hold;
    log.record(event);
    {
      const kpanel::daemon::HoldAuditLines nested;  // adds to the outer hold
      event.user = "bob";
      log.record(event);
    }
    BOOST_TEST(captured.text().empty());
  }
  const std::string text = captured.text();
  BOOST_TEST(text.find("user=alice") != std::string::npos);
  BOOST_TEST(text.find("user=bob") != std::string::npos);
  BOOST_TEST(text.find("user=alice") < text.find("user=bob"));
  event.user = "carol";
  log.record(event);  // no hold: at once
  BOOST_TEST(captured.text().find("user=carol") != std::string::npos);
}
