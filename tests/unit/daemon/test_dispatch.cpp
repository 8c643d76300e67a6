#define BOOST_TEST_MODULE daemon dispatch
#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "daemon/dispatch.hpp"
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
  return {login_check,    verify,  status,     enroll_begin,
          enroll_confirm, disable, regenerate, protocol::AdminListRequest{},
          reset,          unlock};
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
  for (std::size_t i = 7; i <= 9; ++i) {
    BOOST_TEST((Dispatcher::permit(requests[i]) == Permit::admin));
  }
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

BOOST_AUTO_TEST_CASE(root_verifies_for_any_user_through_the_table) {
  Harness h(std::make_unique<MemoryBackend>());
  Dispatcher dispatcher(h.rules(), h.accounts);
  protocol::VerifyRequest request;
  request.user = "bob";
  request.code = common::SecureString("123456");
  BOOST_TEST(dispatcher.handle(peer(0), request).status == Status::not_enrolled);
}

// The real directory, against entries every Debian system has.
BOOST_AUTO_TEST_CASE(the_system_account_directory_reads_nss) {
  const SystemAccountDirectory accounts;
  BOOST_TEST(accounts.name_for_uid(0).value() == "root");
  BOOST_TEST(!accounts.name_for_uid(static_cast<uid_t>(3'999'999'999U)).has_value());
  BOOST_TEST(accounts.exists("root"));
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
