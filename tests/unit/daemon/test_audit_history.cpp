#define BOOST_TEST_MODULE daemon audit history
#include <boost/test/unit_test.hpp>
#include <sstream>
#include <string>

#include "daemon/system/audit.hpp"
#include "daemon/system/audit_history.hpp"

namespace kpanel::daemon::test {
namespace {

namespace protocol = common::protocol;
using audit_history::ChangeKind;
using audit_history::parse_line;
using audit_history::parse_timestamp;

constexpr std::int64_t k20261205T012830 = 1'796'434'110;

// A line as rsyslog writes it, around the daemon's own formatting.
std::string syslog_line(const std::string& stamp, const AuditEvent& event) {
  return stamp + " host kpanel-totpd[4242]: " + format_audit_event(event);
}

AuditEvent event(AuditEventKind kind, const std::string& user,
                 protocol::Status outcome = protocol::Status::ok) {
  AuditEvent e;
  e.kind = kind;
  e.user = user;
  e.peer_uid = 0;
  e.outcome = outcome;
  return e;
}

BOOST_AUTO_TEST_CASE(timestamps_of_rsyslog_and_journalctl) {
  // Debian 12's rsyslog (RFC 3339 with microseconds), journalctl -o short-iso
  // and short-iso-precise, and other zones.
  BOOST_TEST(parse_timestamp("2026-12-05T01:28:30.123456+00:00 h x").value_or(0) ==
             k20261205T012830);
  BOOST_TEST(parse_timestamp("2026-12-05T01:28:30+0000 h x").value_or(0) == k20261205T012830);
  BOOST_TEST(parse_timestamp("2026-12-05T02:28:30.5+0100 h").value_or(0) == k20261205T012830);
  BOOST_TEST(parse_timestamp("2026-12-04T20:28:30-05:00 h").value_or(0) == k20261205T012830);
  BOOST_TEST(parse_timestamp("2026-12-05T01:28:30Z h").value_or(0) == k20261205T012830);
  std::string_view rest;
  BOOST_TEST(parse_timestamp("2026-12-05T01:28:30Z host tag: m", &rest).has_value());
  BOOST_TEST(rest == "host tag: m");
}

BOOST_AUTO_TEST_CASE(malformed_timestamps_are_refused) {
  for (const char* bad :
       {"", "2026", "Dec  5 01:28:30 host kpanel-totpd[1]: event=reset", "2026-13-05T01:28:30Z x",
        "2026-02-30T01:28:30Z x", "2026-12-05T24:00:00Z x", "2026-12-05T01:28:30 x",
        "2026-12-05T01:28:30+2500 x", "2026-12-05T01:28:30.Z x", "2026-12-05T01:28:30Zjunk",
        "2026-12-0aT01:28:30Z x"}) {
    BOOST_TEST(!parse_timestamp(bad).has_value(), bad);
  }
}

BOOST_AUTO_TEST_CASE(the_daemons_own_lines_parse_back) {
  const std::string stamp = "2026-12-05T01:28:30.000001+00:00";
  auto reset = parse_line(syslog_line(stamp, event(AuditEventKind::reset, "alice")));
  BOOST_TEST_REQUIRE(reset.has_value());
  BOOST_TEST(reset->at == k20261205T012830);
  BOOST_TEST(reset->user == "alice");
  BOOST_TEST((reset->kind == ChangeKind::reset));

  AuditEvent recovery = event(AuditEventKind::verify, "bob");
  recovery.service = "sshd";
  recovery.rhost = "10.0.0.1";
  recovery.recovery_code_used = true;
  recovery.recovery_codes_left = 9;
  auto used = parse_line(syslog_line(stamp, recovery));
  BOOST_TEST_REQUIRE(used.has_value());
  BOOST_TEST((used->kind == ChangeKind::recovery_code_used));

  const std::pair<AuditEventKind, ChangeKind> kinds[] = {
      {AuditEventKind::disable, ChangeKind::disable},
      {AuditEventKind::enroll_confirm, ChangeKind::enrollment_confirmed},
      {AuditEventKind::recovery_regenerate, ChangeKind::recovery_regenerated},
  };
  for (const auto& [kind, change] : kinds) {
    auto parsed = parse_line(syslog_line(stamp, event(kind, "carol")));
    BOOST_TEST_REQUIRE(parsed.has_value());
    BOOST_TEST((parsed->kind == change));
  }
}

BOOST_AUTO_TEST_CASE(what_a_restore_does_not_undo_is_skipped) {
  const std::string stamp = "2026-12-05T01:28:30Z";
  // A TOTP code accepted (the fence covers it), refusals, other events.
  BOOST_TEST(!parse_line(syslog_line(stamp, event(AuditEventKind::verify, "a"))).has_value());
  BOOST_TEST(!parse_line(syslog_line(
                             stamp, event(AuditEventKind::reset, "a", protocol::Status::forbidden)))
                  .has_value());
  BOOST_TEST(!parse_line(syslog_line(stamp, event(AuditEventKind::unlock, "a"))).has_value());
  BOOST_TEST(!parse_line(syslog_line(stamp, event(AuditEventKind::enroll_begin, "a"))).has_value());
  BOOST_TEST(
      !parse_line(stamp + " host kpanel-totpd[1]: event=frobnicate user=a outcome=ok").has_value());
  // Another program's line, even one that looks like ours.
  BOOST_TEST(!parse_line(stamp + " host sshd[1]: event=reset user=a outcome=ok").has_value());
  BOOST_TEST(
      !parse_line(stamp + " host kpanel-totpd-x[1]: event=reset user=a outcome=ok").has_value());
  BOOST_TEST(
      !parse_line(stamp + " host kpanel-totpd[1x]: event=reset user=a outcome=ok").has_value());
  // journalctl's "-- Boot ... --" and "-- No entries --".
  BOOST_TEST(!parse_line("-- No entries --").has_value());
}

BOOST_AUTO_TEST_CASE(hostile_lines_are_skipped) {
  const std::string stamp = "2026-12-05T01:28:30Z host kpanel-totpd[1]: ";
  // Raw control characters or non-ASCII bytes: never written by the daemon,
  // which escapes them; a terminal escape must not reach the admin's screen.
  BOOST_TEST(!parse_line(stamp + "event=reset user=a\x1b[2J outcome=ok").has_value());
  BOOST_TEST(!parse_line(stamp + "event=reset user=a\r outcome=ok").has_value());
  BOOST_TEST(!parse_line(stamp + "event=reset user=\xc3\xa9 outcome=ok").has_value());
  BOOST_TEST(!parse_line(stamp + "event=reset user=\"unterminated outcome=ok").has_value());
  BOOST_TEST(!parse_line(stamp + "event=reset user= outcome=ok").has_value());
  BOOST_TEST(!parse_line(stamp + "event=reset =x user=a outcome=ok").has_value());
  // Escaped names as the daemon writes them are kept as written (printable).
  auto escaped = parse_line(stamp + "event=reset user=\"a b\\x1b\" outcome=ok");
  BOOST_TEST_REQUIRE(escaped.has_value());
  BOOST_TEST(escaped->user == "\"a b\\x1b\"");
}

BOOST_AUTO_TEST_CASE(a_log_is_read_from_the_snapshot_on) {
  std::ostringstream log;
  log << "2026-12-05T01:00:00+00:00 host kpanel-totpd[1]: event=reset user=before outcome=ok\n"
      << "2026-12-05T01:28:30+00:00 host kpanel-totpd[1]: event=reset user=same outcome=ok\r\n"
      << "2026-12-05T01:30:00+00:00 host sshd[9]: Accepted publickey for root\n"
      << std::string(audit_history::kMaxLineBytes + 10, 'x') << '\n'
      << "2026-12-05T01:31:00+00:00 host kpanel-totpd[1]: event=disable user=later outcome=ok\n"
      << "2026-12-05T01:32:00+00:00 host kpanel-totpd[1]: event=reset user=" +
             std::string(audit_history::kMaxLineBytes, 'y') + " outcome=ok\n"
      << "2026-12-05T01:33:00+00:00 host kpanel-totpd[1]: event=reset user=last outcome=ok";
  std::istringstream in(log.str());
  const auto history = audit_history::read_changes(in, k20261205T012830);
  BOOST_TEST(history.lines == 7U);
  BOOST_TEST(history.overlong == 2U);
  BOOST_TEST(history.first_stamp.value_or(0) == k20261205T012830 - 1710);
  BOOST_TEST_REQUIRE(history.changes.size() == 3U);
  BOOST_TEST(history.changes[0].user == "same");  // the snapshot's own second: listed
  BOOST_TEST(history.changes[1].user == "later");
  BOOST_TEST(history.changes[2].user == "last");  // no newline at the end
  BOOST_TEST(audit_history::describe(history.changes[0]).find("kpanel-totp admin reset same") !=
             std::string::npos);
}

}  // namespace
}  // namespace kpanel::daemon::test
