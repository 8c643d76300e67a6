// Rules: what the audit log gets, and answers when a collaborator fails.
#include <boost/test/unit_test.hpp>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/recovery_code.hpp"
#include "rules_helpers.hpp"

namespace kpanel::daemon::test {
namespace {

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
  std::expected<void, StoreError> update(std::string_view, Durability,
                                         const std::function<bool(UserRecord&)>&) override {
    throw std::runtime_error("update exploded");
  }
  std::expected<UserList, StoreError> list() override { throw std::runtime_error("list exploded"); }
  std::expected<void, StoreError> erase(std::string_view) override {
    throw std::runtime_error("erase exploded");
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

}  // namespace
}  // namespace kpanel::daemon::test
