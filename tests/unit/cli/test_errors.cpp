// Every daemon status and every client failure maps to an exit code and one
// line that says what to do next, from the one table in cli/errors.cpp.
#define BOOST_TEST_MODULE cli_errors
#include <boost/test/unit_test.hpp>
#include <string>

#include "cli/errors.hpp"
#include "support/fake_environment.hpp"

namespace {

namespace protocol = kpanel::common::protocol;
using kpanel::cli::describe_client_error;
using kpanel::cli::describe_status;
using kpanel::cli::FailureContext;
using kpanel::cli::reason_of;
using kpanel::cli::testing::kNow;
using kpanel::common::ClientError;
using kpanel::common::from_unix;

const FailureContext kContext{"alice", "/run/kpanel-totp/kpanel-totpd.sock", from_unix(kNow)};

kpanel::cli::Failure for_status(protocol::Status status) {
  protocol::Response response;
  response.status = status;
  return describe_status(response, kContext);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_refusal_exits_1_with_one_line) {
  for (int value = 1; value <= static_cast<int>(protocol::Status::malformed_code); ++value) {
    const auto status = static_cast<protocol::Status>(value);
    const auto failure = for_status(status);
    BOOST_TEST_INFO("status " << protocol::to_string(status));
    BOOST_TEST(failure.exit_code == 1);
    BOOST_TEST(!failure.message.empty());
    BOOST_TEST(!contains(failure.message, "\n"));
    BOOST_TEST(!failure.message.starts_with("kpanel-totp:"));  // the prefix is added once, later
    BOOST_TEST((failure.status == status));
  }
}

BOOST_AUTO_TEST_CASE(refusal_messages_say_what_to_do) {
  BOOST_TEST(contains(for_status(protocol::Status::forbidden).message, "admin_group"));
  BOOST_TEST(contains(for_status(protocol::Status::not_enrolled).message, "kpanel-totp enroll"));
  BOOST_TEST(contains(for_status(protocol::Status::not_enrolled).message, "alice"));
  BOOST_TEST(contains(for_status(protocol::Status::already_enrolled).message, "enroll --replace"));
  BOOST_TEST(
      contains(for_status(protocol::Status::no_pending_enrollment).message, "kpanel-totp enroll"));
  BOOST_TEST(contains(for_status(protocol::Status::wrong_password).message, "password"));
  BOOST_TEST(contains(for_status(protocol::Status::no_such_user).message, "alice"));
  BOOST_TEST(contains(for_status(protocol::Status::internal_error).message, "journalctl"));
}

// A code already accepted for this secret: the module's sentence, exit 1.
BOOST_AUTO_TEST_CASE(replayed_code_says_wait_for_the_next_one) {
  const auto failure = for_status(protocol::Status::replayed);
  BOOST_TEST(failure.exit_code == 1);
  BOOST_TEST(failure.message == "That code was already used; wait for the next one.");
}

// busy: the daemon's slow lane refused; nothing was checked, so retrying is right.
BOOST_AUTO_TEST_CASE(busy_says_try_again_shortly) {
  const auto failure = for_status(protocol::Status::busy);
  BOOST_TEST(failure.exit_code == 1);
  BOOST_TEST(contains(failure.message, "busy"));
  BOOST_TEST(contains(failure.message, "nothing was checked"));
  BOOST_TEST(contains(failure.message, "try again in a few seconds"));
  BOOST_TEST(!contains(failure.message, "\n"));
}

// The daemon refuses names its user database does not know.
BOOST_AUTO_TEST_CASE(no_such_user_names_the_user_on_one_line) {
  const auto failure = for_status(protocol::Status::no_such_user);
  BOOST_TEST(failure.exit_code == 1);
  BOOST_TEST(failure.message ==
             "no such user: alice (this host's user database does not know it); check the name");
}

BOOST_AUTO_TEST_CASE(store_unavailable_names_the_state_store) {
  const auto failure = for_status(protocol::Status::store_unavailable);
  BOOST_TEST(failure.exit_code == 1);
  BOOST_TEST(contains(failure.message, "state store"));
  // Which store is the daemon's to say: the tool does not read its config.
  BOOST_TEST(!contains(failure.message, "/var/lib/kpanel-totp"));
  protocol::Response response;
  response.status = protocol::Status::store_unavailable;
  response.store = "the PostgreSQL database";
  const auto named = describe_status(response, kContext);
  BOOST_TEST(contains(named.message, "cannot use its state store (the PostgreSQL database)"));
  BOOST_TEST(reason_of(named) == "store_unavailable");
}

BOOST_AUTO_TEST_CASE(malformed_code_says_it_was_not_counted) {
  const auto failure = for_status(protocol::Status::malformed_code);
  BOOST_TEST(failure.exit_code == 1);
  BOOST_TEST(contains(failure.message, "not a code"));
  BOOST_TEST(contains(failure.message, "nothing was checked or counted"));
}

BOOST_AUTO_TEST_CASE(locked_says_how_long_and_who_can_unlock) {
  protocol::Response response;
  response.status = protocol::Status::locked;
  response.locked_until = kNow + 250;  // 4m10s: rounds up
  BOOST_TEST(describe_status(response, kContext).message ==
             "too many failed attempts; try again in 5 minutes (or ask an admin: kpanel-totp "
             "admin unlock alice)");
  response.locked_until = kNow + 20;
  BOOST_TEST(contains(describe_status(response, kContext).message, "in 1 minute "));
  response.locked_until.reset();
  BOOST_TEST(contains(describe_status(response, kContext).message, "try again later"));
}

BOOST_AUTO_TEST_CASE(wrong_code_counts_attempts_left) {
  protocol::Response response;
  response.status = protocol::Status::wrong_code;
  BOOST_TEST(!contains(describe_status(response, kContext).message, "left"));
  response.failures_left = 2;
  BOOST_TEST(
      contains(describe_status(response, kContext).message, "2 attempts left before a lockout"));
  response.failures_left = 1;
  BOOST_TEST(contains(describe_status(response, kContext).message, "1 attempt left"));
}

BOOST_AUTO_TEST_CASE(no_daemon_exits_3_and_says_how_to_start_it) {
  for (const auto error :
       {ClientError::unreachable, ClientError::timeout, ClientError::untrusted_peer}) {
    const auto failure = describe_client_error(error, kContext);
    BOOST_TEST_INFO("client error " << kpanel::common::to_string(error));
    BOOST_TEST(failure.exit_code == 3);
    BOOST_TEST(contains(failure.message, "/run/kpanel-totp/kpanel-totpd.sock"));
    BOOST_TEST(contains(failure.message, "sudo systemctl start kpanel-totpd.socket"));
    BOOST_TEST(reason_of(failure) == kpanel::common::to_string(error));
    BOOST_TEST(!contains(failure.message, "\n"));
    BOOST_TEST(!failure.status.has_value());
  }
}

BOOST_AUTO_TEST_CASE(not_installed_hint_only_when_nothing_listens) {
  BOOST_TEST(contains(describe_client_error(ClientError::unreachable, kContext).message,
                      "not installed yet: sudo scripts/install.sh"));
  BOOST_TEST(!contains(describe_client_error(ClientError::timeout, kContext).message,
                       "not installed yet"));
}

BOOST_AUTO_TEST_CASE(without_systemd_the_hints_name_kpanel_totpd_ctl_and_the_log_file) {
  auto context = kContext;
  context.service_manager = kpanel::cli::ServiceManager::none;
  for (const auto error :
       {ClientError::unreachable, ClientError::timeout, ClientError::untrusted_peer}) {
    const auto failure = describe_client_error(error, context);
    BOOST_TEST_INFO("client error " << kpanel::common::to_string(error));
    BOOST_TEST(contains(failure.message, "sudo kpanel-totpd-ctl start"));
    BOOST_TEST(!contains(failure.message, "systemctl"));
  }
  BOOST_TEST(contains(describe_client_error(ClientError::io_error, context).message,
                      "/var/log/kpanel-totpd.log"));
  BOOST_TEST(contains(for_status(protocol::Status::internal_error).message, "journalctl"));
}

BOOST_AUTO_TEST_CASE(broken_connection_and_garbled_answer) {
  BOOST_TEST(describe_client_error(ClientError::io_error, kContext).exit_code == 3);
  // The daemon is there but the exchange is not understood: starting it again won't help.
  const auto garbled = describe_client_error(ClientError::protocol_error, kContext);
  BOOST_TEST(garbled.exit_code == 1);
  BOOST_TEST(contains(garbled.message, "same version"));
}

BOOST_AUTO_TEST_CASE(minutes_round_up_and_never_say_zero) {
  using kpanel::cli::minutes_until;
  BOOST_TEST(minutes_until(kNow - 5, from_unix(kNow)) == 1);
  BOOST_TEST(minutes_until(kNow + 60, from_unix(kNow)) == 1);
  BOOST_TEST(minutes_until(kNow + 61, from_unix(kNow)) == 2);
  BOOST_TEST(minutes_until(kNow + 3600, from_unix(kNow)) == 60);
}
