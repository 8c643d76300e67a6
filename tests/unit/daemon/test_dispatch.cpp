#define BOOST_TEST_MODULE daemon dispatch
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "common/base32.hpp"
#include "common/totp.hpp"
#include "daemon/authz/dispatch.hpp"
#include "support/harness.hpp"
#include "support/printing.hpp"

namespace kpanel::daemon::test {
namespace {

namespace protocol = common::protocol;
using protocol::Request;
using protocol::Status;

PeerCredentials peer(uid_t uid) { return PeerCredentials{uid, uid, 4321}; }

// A request of each operation, naming `user` where the operation has a user field.
std::vector<Request> every_operation(const std::string& user) {
  protocol::LoginCheckRequest login_check;
  login_check.user = user;
  protocol::VerifyRequest verify;
  verify.user = user;
  verify.code = common::SecureString("123456");
  protocol::StatusRequest status;
  status.user = user;
  protocol::EnrollBeginRequest enroll_begin;
  enroll_begin.user = user;
  protocol::EnrollConfirmRequest enroll_confirm;
  enroll_confirm.user = user;
  enroll_confirm.code = common::SecureString("123456");
  protocol::DisableRequest disable;
  disable.user = user;
  disable.password = common::SecureString("password");
  disable.code = common::SecureString("123456");
  protocol::RegenerateRecoveryCodesRequest regenerate;
  regenerate.user = user;
  regenerate.code = common::SecureString("123456");
  protocol::AdminResetRequest reset;
  reset.user = user;
  protocol::AdminUnlockRequest unlock;
  unlock.user = user;
  protocol::AdminImportRequest import;
  import.user = user;
  import.secret_base32 = common::SecureString("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
  protocol::ForgetRequest forget;
  forget.user = user;
  return {login_check,
          verify,
          status,
          enroll_begin,
          enroll_confirm,
          disable,
          regenerate,
          protocol::AdminListRequest{},
          reset,
          unlock,
          protocol::AdminStatsRequest{},
          import,
          forget};
}

// Expected: true = allowed (anything but forbidden), false = forbidden.
struct Row {
  const char* op;
  bool root;        // root, for bob
  bool self;        // alice, for herself (empty user field)
  bool self_named;  // alice, naming herself
  bool other;       // alice, for bob
  bool admin;       // carol (admin_group), for bob
  bool non_member;  // dave (not in admin_group), for bob
  bool no_passwd;   // a uid without a passwd entry, for itself
};

// clang-format off
const std::vector<Row> kExpected{
  //  op                      root   self   named  other  admin  member no-passwd
  {"login_check",            true,  true,  true,  false, false, false, false},
  {"verify",                 true,  true,  true,  false, false, false, false},
  {"status",                 true,  true,  true,  false, true,  false, false},
  {"enroll_begin",           true,  true,  true,  false, true,  false, false},
  {"enroll_confirm",         true,  true,  true,  false, true,  false, false},
  {"disable",                true,  true,  true,  false, true,  false, false},
  {"recovery_regenerate",    true,  true,  true,  false, true,  false, false},
  {"admin_list",             true,  false, false, false, true,  false, false},
  {"admin_reset",            true,  false, false, false, true,  false, false},
  {"admin_unlock",           true,  false, false, false, true,  false, false},
  {"admin_stats",            true,  false, false, false, true,  false, false},
  // Sets a user's secret from a file only root can read: not even admin_group.
  {"admin_import",           true,  false, false, false, false, false, false},
  {"forget",                 true,  true,  true,  false, true,  false, false},
};
// clang-format on

bool allowed(Dispatcher& dispatcher, uid_t uid, const Request& request) {
  const protocol::Response response = dispatcher.handle(peer(uid), request);
  BOOST_TEST(response.status != Status::internal_error);
  BOOST_TEST(!protocol::encode_response(response).empty(), "the reply must encode");
  return response.status != Status::forbidden;
}

BOOST_AUTO_TEST_CASE(every_operation_times_every_kind_of_peer) {
  Harness h(std::make_unique<MemoryBackend>());
  Dispatcher dispatcher(h.rules(), h.accounts);
  const std::vector<Request> for_bob = every_operation("bob");
  const std::vector<Request> for_self = every_operation("");
  const std::vector<Request> for_alice = every_operation("alice");
  BOOST_TEST_REQUIRE(for_bob.size() == kExpected.size());
  for (std::size_t i = 0; i < kExpected.size(); ++i) {
    const Row& row = kExpected[i];
    BOOST_TEST_REQUIRE(protocol::op_name(for_bob[i]) == row.op);
    BOOST_TEST_CONTEXT("op " << row.op) {
      BOOST_TEST(allowed(dispatcher, 0, for_bob[i]) == row.root, "root for bob");
      BOOST_TEST(allowed(dispatcher, kAlice, for_self[i]) == row.self, "alice for herself");
      BOOST_TEST(allowed(dispatcher, kAlice, for_alice[i]) == row.self_named,
                 "alice naming herself");
      BOOST_TEST(allowed(dispatcher, kAlice, for_bob[i]) == row.other, "alice for bob");
      BOOST_TEST(allowed(dispatcher, kCarol, for_bob[i]) == row.admin, "admin for bob");
      BOOST_TEST(allowed(dispatcher, kDave, for_bob[i]) == row.non_member, "non-member for bob");
      BOOST_TEST(allowed(dispatcher, kNoPasswdEntry, for_self[i]) == row.no_passwd,
                 "uid without passwd entry");
      BOOST_TEST(allowed(dispatcher, kNoPasswdEntry, for_bob[i]) == row.no_passwd,
                 "uid without passwd entry, for bob");
    }
  }
}

BOOST_AUTO_TEST_CASE(the_table_is_the_documented_permission) {
  const std::vector<Request> requests = every_operation("");
  BOOST_TEST((Dispatcher::permit(requests[0]) == Permit::self_or_root));
  BOOST_TEST((Dispatcher::permit(requests[1]) == Permit::self_or_root));
  for (std::size_t i = 2; i <= 6; ++i) {
    BOOST_TEST((Dispatcher::permit(requests[i]) == Permit::self_or_admin));
  }
  for (std::size_t i = 7; i <= 10; ++i) {
    BOOST_TEST((Dispatcher::permit(requests[i]) == Permit::admin));
  }
  BOOST_TEST((Dispatcher::permit(requests[11]) == Permit::root));
  BOOST_TEST((Dispatcher::permit(requests[12]) == Permit::self_or_admin));  // forget
}

// scrypt work belongs to the slow lane: a recovery code, and 8 digits, which
// may be an imported scratch code; a 6-digit code and the import's hashing
// of scratch codes as they say.
BOOST_AUTO_TEST_CASE(a_code_that_may_be_hashed_takes_the_slow_lane) {
  const auto lane_of = [](const char* code) {
    protocol::VerifyRequest verify;
    verify.user = "alice";
    verify.code = common::SecureString(code);
    return Dispatcher::lane(verify);
  };
  BOOST_TEST((lane_of("123456") == Lane::fast));
  BOOST_TEST((lane_of("1234567") == Lane::fast));
  BOOST_TEST((lane_of("1234 5678") == Lane::slow));
  BOOST_TEST((lane_of("7KQ2-9MXD-4T") == Lane::slow));
  BOOST_TEST((Dispatcher::lane(every_operation("alice")[11]) == Lane::slow));
}

// Listing every account enumerates NSS, which may be a directory server
// across the network: never in the fast lane, where logins are answered.
BOOST_AUTO_TEST_CASE(listing_every_account_runs_in_the_slow_lane) {
  BOOST_TEST((Dispatcher::lane(protocol::AdminListRequest{}) == Lane::fast));
  BOOST_TEST((Dispatcher::lane(protocol::AdminListRequest{.all = true}) == Lane::slow));
  BOOST_TEST((Dispatcher::lane(protocol::AdminStatsRequest{}) == Lane::fast));
}

BOOST_AUTO_TEST_CASE(a_non_admin_asking_for_stats_is_refused_and_audited) {
  Harness h(std::make_unique<MemoryBackend>());
  Dispatcher dispatcher(h.rules(), h.accounts);
  BOOST_TEST(
      (dispatcher.handle(peer(kDave), protocol::AdminStatsRequest{}).status == Status::forbidden));
  const auto events = h.audit.events();
  BOOST_TEST_REQUIRE(events.size() == 1U);
  BOOST_TEST((events[0].kind == AuditEventKind::admin_stats));
  BOOST_TEST((events[0].outcome == Status::forbidden));
  BOOST_TEST((dispatcher.handle(peer(kCarol), protocol::AdminStatsRequest{}).status == Status::ok));
}

BOOST_AUTO_TEST_CASE(an_empty_user_field_means_the_peer_itself) {
  Harness h(std::make_unique<MemoryBackend>());
  Dispatcher dispatcher(h.rules(), h.accounts);
  const protocol::Response response = dispatcher.handle(peer(kAlice), protocol::StatusRequest{});
  BOOST_TEST_REQUIRE(response.status == Status::ok);
  BOOST_TEST(std::get<protocol::StatusResult>(response.result).status.user == "alice");
}

BOOST_AUTO_TEST_CASE(admin_only_detail_follows_the_peer_not_the_request) {
  Harness h(std::make_unique<MemoryBackend>());
  Dispatcher dispatcher(h.rules(), h.accounts);
  BOOST_TEST_REQUIRE(h.store()
                         .update("alice",
                                 [](UserRecord& record) {
                                   record.last_skew_seconds = 90;
                                   record.failures = 1;
                                   return true;
                                 })
                         .has_value());
  protocol::StatusRequest request;
  request.user = "alice";
  const auto as_self = dispatcher.handle(peer(kAlice), request);
  const auto as_admin = dispatcher.handle(peer(kCarol), request);
  BOOST_TEST(!std::get<protocol::StatusResult>(as_self.result).status.last_skew_seconds);
  BOOST_TEST(std::get<protocol::StatusResult>(as_admin.result).status.last_skew_seconds.value() ==
             90);
}

BOOST_AUTO_TEST_CASE(a_policy_reload_changes_the_admin_group) {
  Harness h(std::make_unique<MemoryBackend>());
  Dispatcher dispatcher(h.rules(), h.accounts);
  BOOST_TEST(dispatcher.handle(peer(kCarol), protocol::AdminListRequest{}).status == Status::ok);
  Policy policy = *h.rules().policy();
  policy.admin_group = "";  // root only
  h.rules().set_policy(policy);
  BOOST_TEST(dispatcher.handle(peer(kCarol), protocol::AdminListRequest{}).status ==
             Status::forbidden);
  BOOST_TEST(dispatcher.handle(peer(0), protocol::AdminListRequest{}).status == Status::ok);
}

BOOST_AUTO_TEST_CASE(a_refused_request_is_audited) {
  Harness h(std::make_unique<MemoryBackend>());
  Dispatcher dispatcher(h.rules(), h.accounts);
  protocol::VerifyRequest request;
  request.user = "bob";
  request.code = common::SecureString("123456");
  BOOST_TEST(dispatcher.handle(peer(kAlice), request).status == Status::forbidden);
  const auto event = h.audit.last(AuditEventKind::verify);
  BOOST_TEST_REQUIRE(event.has_value());
  BOOST_TEST(event->outcome == Status::forbidden);
  BOOST_TEST(event->user == "bob");
  BOOST_TEST(event->peer_uid.value() == kAlice);
  BOOST_TEST(h.audit.text().find("123456") == std::string::npos);
}

// The tool names the store that failed instead of guessing a path.
BOOST_AUTO_TEST_CASE(a_store_failure_names_the_configured_store) {
  Harness h(std::make_unique<MemoryBackend>());
  Dispatcher dispatcher(h.rules(), h.accounts);
  protocol::StatusRequest request;
  request.user = "alice";
  dynamic_cast<MemoryStore&>(h.store()).fail_with(StoreErrorKind::io);
  BOOST_TEST(!dispatcher.handle(peer(0), request).store.has_value());  // not configured: silent
  dispatcher.set_store_name("the SQLite database in /srv/totp");
  const protocol::Response response = dispatcher.handle(peer(0), request);
  BOOST_TEST(response.status == Status::store_unavailable);
  BOOST_TEST(response.store.value() == "the SQLite database in /srv/totp");
  BOOST_TEST(!protocol::encode_response(response).empty());
  dynamic_cast<MemoryStore&>(h.store()).fail_with(std::nullopt);
  BOOST_TEST(!dispatcher.handle(peer(0), request).store.has_value());  // only on a failure
}

BOOST_AUTO_TEST_CASE(root_verifies_for_any_user_through_the_table) {
  Harness h(std::make_unique<MemoryBackend>());
  Dispatcher dispatcher(h.rules(), h.accounts);
  protocol::VerifyRequest request;
  request.user = "bob";
  request.code = common::SecureString("123456");
  BOOST_TEST(dispatcher.handle(peer(0), request).status == Status::not_enrolled);
}

// ---- one account, one enrollment ------------------------------------------------------

using namespace std::chrono_literals;

// An alias with alice's uid (useradd -o) and a spelling NSS maps to her
// account (SSSD with case-insensitive names).
void add_alice_aliases(Harness& h) {
  h.accounts.add_alias(kAlice, "alias");
  h.accounts.add_alias(kAlice, "Alice");
}

// Enrolls `user` through the dispatcher as root; returns the secret. The
// clock then moves one step on, so the confirming code is spent.
common::SecureBytes enroll_as_root(Harness& h, Dispatcher& dispatcher, const std::string& user) {
  protocol::EnrollBeginRequest begin;
  begin.user = user;
  const auto begun = dispatcher.handle(peer(0), begin);
  BOOST_REQUIRE_EQUAL(begun.status, Status::ok);
  auto secret = common::base32_decode(
      std::get<protocol::EnrollBeginResult>(begun.result).secret_base32.view());
  BOOST_REQUIRE(secret.has_value());
  protocol::EnrollConfirmRequest confirm;
  confirm.user = user;
  const auto code =
      common::totp_code(secret->view(), common::totp_step(h.clock.now(), 30), common::TotpParams{});
  BOOST_REQUIRE(code.has_value());
  confirm.code = *code;
  BOOST_REQUIRE_EQUAL(dispatcher.handle(peer(0), confirm).status, Status::ok);
  h.clock.advance(30s);
  return *secret;
}

protocol::Response verify_as_root(Dispatcher& dispatcher, const std::string& user,
                                  const std::string& code) {
  protocol::VerifyRequest request;
  request.user = user;
  request.service = "sshd";
  request.code = common::SecureString(code);
  return dispatcher.handle(peer(0), request);
}

protocol::Response login_check_as_root(Dispatcher& dispatcher, const std::string& user) {
  protocol::LoginCheckRequest request;
  request.user = user;
  request.service = "sshd";
  request.nullok = true;
  return dispatcher.handle(peer(0), request);
}

protocol::LoginDecision decision_of(const protocol::Response& response) {
  BOOST_REQUIRE_EQUAL(response.status, Status::ok);
  return std::get<protocol::LoginCheckResult>(response.result).decision;
}

// Remembered logins: only root's word on where a login comes from counts.
BOOST_AUTO_TEST_CASE(only_root_may_open_or_use_a_remembered_login) {
  Policy policy = test_policy();
  policy.remember = 60s;
  policy.host_id = "machine-id:one";
  Harness h(std::make_unique<MemoryBackend>(), policy);
  Dispatcher dispatcher(h.rules(), h.accounts);
  const auto secret = enroll_as_root(h, dispatcher, "alice");
  const auto code = [&](std::int64_t offset) {
    const auto typed = common::totp_code(
        secret.view(), common::totp_step(h.clock.now(), 30) + offset, common::TotpParams{});
    BOOST_REQUIRE(typed.has_value());
    return common::SecureString(typed->view());
  };
  const auto check = [&](uid_t uid) {
    protocol::LoginCheckRequest request;
    request.user = "alice";
    request.remember = true;
    request.source = "192.0.2.7";
    return decision_of(dispatcher.handle(peer(uid), request));
  };
  protocol::VerifyRequest verify;
  verify.user = "alice";
  verify.remember = true;
  verify.source = "192.0.2.7";
  verify.code = code(0);
  BOOST_TEST(dispatcher.handle(peer(kAlice), verify).status == Status::ok);  // her own process
  BOOST_TEST((check(0) == protocol::LoginDecision::prompt));
  verify.code = code(1);
  BOOST_TEST(dispatcher.handle(peer(0), verify).status == Status::ok);  // the module, as root
  BOOST_TEST((check(0) == protocol::LoginDecision::remembered));
  BOOST_TEST((check(kAlice) == protocol::LoginDecision::prompt));
  // She may end her own windows; another user may not.
  BOOST_TEST(dispatcher.handle(peer(kBob), protocol::ForgetRequest{"alice"}).status ==
             Status::forbidden);
  BOOST_TEST((check(0) == protocol::LoginDecision::remembered));
  BOOST_TEST(dispatcher.handle(peer(kAlice), protocol::ForgetRequest{}).status == Status::ok);
  BOOST_TEST((check(0) == protocol::LoginDecision::prompt));
}

BOOST_AUTO_TEST_CASE(an_alias_and_another_spelling_reach_the_accounts_enrollment) {
  Harness h(std::make_unique<MemoryBackend>());
  add_alice_aliases(h);
  Dispatcher dispatcher(h.rules(), h.accounts);
  const common::SecureBytes secret = enroll_as_root(h, dispatcher, "alice");
  for (const std::string name : {"alias", "Alice"}) {
    BOOST_TEST_CONTEXT(name) {
      // Under nullok an unenrolled name would pass without a code.
      BOOST_TEST(decision_of(login_check_as_root(dispatcher, name)) ==
                 protocol::LoginDecision::prompt);
      h.clock.advance(30s);
      const auto code = common::totp_code(secret.view(), common::totp_step(h.clock.now(), 30), {});
      BOOST_TEST(verify_as_root(dispatcher, name, std::string(code->view())).status == Status::ok);
      BOOST_TEST(h.audit.last(AuditEventKind::verify)->user == "alice");
      // The same code through the account's own name is spent.
      BOOST_TEST(verify_as_root(dispatcher, "alice", std::string(code->view())).status !=
                 Status::ok);
    }
  }
  BOOST_TEST(!h.store().load("alias")->has_value());
  BOOST_TEST(!h.store().load("Alice")->has_value());
}

BOOST_AUTO_TEST_CASE(wrong_codes_through_an_alias_lock_the_account) {
  Harness h(std::make_unique<MemoryBackend>());
  add_alice_aliases(h);
  Dispatcher dispatcher(h.rules(), h.accounts);
  enroll_as_root(h, dispatcher, "alice");
  Status last = Status::ok;
  for (int i = 0; i < 5; ++i) {  // max_failures
    last = verify_as_root(dispatcher, i % 2 == 0 ? "alias" : "Alice", "000000").status;
  }
  BOOST_TEST(last == Status::locked);
  BOOST_TEST(decision_of(login_check_as_root(dispatcher, "alice")) ==
             protocol::LoginDecision::locked);
}

BOOST_AUTO_TEST_CASE(a_peer_naming_itself_by_an_alias_acts_on_its_own_account) {
  Harness h(std::make_unique<MemoryBackend>());
  add_alice_aliases(h);
  Dispatcher dispatcher(h.rules(), h.accounts);
  protocol::StatusRequest request;
  request.user = "alias";
  const auto response = dispatcher.handle(peer(kAlice), request);
  BOOST_TEST_REQUIRE(response.status == Status::ok);
  BOOST_TEST(std::get<protocol::StatusResult>(response.result).status.user == "alice");
  // Someone else naming alice's alias is still someone else.
  BOOST_TEST(dispatcher.handle(peer(kBob), request).status == Status::forbidden);
  BOOST_TEST(h.audit.last(AuditEventKind::status)->user == "alice");
}

BOOST_AUTO_TEST_CASE(a_name_nss_does_not_know_is_no_such_user) {
  Harness h(std::make_unique<MemoryBackend>());
  Dispatcher dispatcher(h.rules(), h.accounts);
  const std::vector<Request> for_ghost = every_operation("ghost");
  for (std::size_t i = 0; i < kExpected.size(); ++i) {
    if (std::holds_alternative<protocol::AdminListRequest>(for_ghost[i]) ||
        std::holds_alternative<protocol::AdminStatsRequest>(for_ghost[i])) {
      continue;  // names nobody
    }
    BOOST_TEST_CONTEXT("op " << kExpected[i].op) {
      BOOST_TEST(dispatcher.handle(peer(0), for_ghost[i]).status == Status::no_such_user);
      BOOST_TEST(dispatcher.handle(peer(kCarol), for_ghost[i]).status ==
                 (kExpected[i].admin ? Status::no_such_user : Status::forbidden));
      // Whether a name exists is nobody else's business.
      BOOST_TEST(dispatcher.handle(peer(kAlice), for_ghost[i]).status == Status::forbidden);
    }
  }
  h.audit.clear();
  BOOST_TEST(dispatcher.handle(peer(0), for_ghost[0]).status == Status::no_such_user);
  BOOST_TEST(h.audit.last(AuditEventKind::login_check)->outcome == Status::no_such_user);
  BOOST_TEST(h.audit.last(AuditEventKind::login_check)->user == "ghost");
  BOOST_TEST(h.store().list()->records.empty(), "nothing is stored for an unknown name");
}

BOOST_AUTO_TEST_CASE(an_admin_resets_and_unlocks_a_deleted_accounts_leftover_state) {
  Harness h(std::make_unique<MemoryBackend>());
  Dispatcher dispatcher(h.rules(), h.accounts);
  BOOST_TEST_REQUIRE(h.store()
                         .update("gone",
                                 [](UserRecord& record) {
                                   record.failures = 2;
                                   record.lockout_level = 1;
                                   return true;
                                 })
                         .has_value());
  protocol::AdminUnlockRequest unlock;
  unlock.user = "gone";
  BOOST_TEST(dispatcher.handle(peer(kCarol), unlock).status == Status::ok);
  BOOST_TEST_REQUIRE(h.store()
                         .update("gone",
                                 [](UserRecord& record) {
                                   record.failures = 1;
                                   return true;
                                 })
                         .has_value());
  protocol::AdminResetRequest reset;
  reset.user = "gone";
  BOOST_TEST(dispatcher.handle(peer(0), reset).status == Status::ok);
  BOOST_TEST(h.audit.last(AuditEventKind::reset)->user == "gone");
  BOOST_TEST(dispatcher.handle(peer(0), reset).status == Status::no_such_user);  // nothing left
  // Every other operation still refuses the name.
  BOOST_TEST(verify_as_root(dispatcher, "gone", "123456").status == Status::no_such_user);
}

BOOST_AUTO_TEST_CASE(a_name_is_resolved_once_per_request_and_not_for_the_peer_itself) {
  Harness h(std::make_unique<MemoryBackend>());
  Dispatcher dispatcher(h.rules(), h.accounts);
  BOOST_TEST(dispatcher.handle(peer(kAlice), protocol::StatusRequest{}).status == Status::ok);
  BOOST_TEST(h.accounts.canonical_lookups() == 0);
  static_cast<void>(verify_as_root(dispatcher, "bob", "123456"));
  BOOST_TEST(h.accounts.canonical_lookups() == 1);
}

// The real directory, against entries every Debian system has.
BOOST_AUTO_TEST_CASE(the_system_account_directory_reads_nss) {
  const SystemAccountDirectory accounts;
  BOOST_TEST(accounts.name_for_uid(0).value() == "root");
  BOOST_TEST(!accounts.name_for_uid(static_cast<uid_t>(3'999'999'999U)).has_value());
  BOOST_TEST(accounts.exists("root"));
  BOOST_TEST(accounts.canonical_name("root").value() == "root");
  BOOST_TEST(!accounts.canonical_name("kpanel-no-such-user").has_value());
  BOOST_TEST(!accounts.canonical_name("").has_value());
  BOOST_TEST(!accounts.exists("kpanel-no-such-user"));
  BOOST_TEST(!accounts.exists(""));
  BOOST_TEST(!accounts.exists(std::string_view("root\0x", 6)));
  BOOST_TEST(accounts.is_member("root", "root"));  // primary group
  BOOST_TEST(!accounts.is_member("root", ""));
  BOOST_TEST(!accounts.is_member("root", "kpanel-no-such-group"));
  BOOST_TEST(!accounts.is_member("kpanel-no-such-user", "root"));
  BOOST_TEST(!accounts.is_member("nobody", "root"));
}

}  // namespace
}  // namespace kpanel::daemon::test
