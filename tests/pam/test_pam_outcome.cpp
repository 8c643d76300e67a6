// The module's decision table (pam_module/outcome.hpp), row by row.
#define BOOST_TEST_MODULE pam_outcome
#include <security/pam_modules.h>

#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "common/user_name.hpp"
#include "pam_module/outcome.hpp"

namespace {

namespace protocol = kpanel::common::protocol;
using kpanel::common::ClientError;
using kpanel::common::SecureString;
using namespace kpanel::pam;
using protocol::LoginDecision;
using protocol::Response;
using protocol::Status;

constexpr std::int64_t kNow = 1'700'000'000;

Options with(Unavailable unavailable, bool enroll = false) {
  Options options;
  options.unavailable = unavailable;
  options.enroll = enroll;
  return options;
}

Answer decided(LoginDecision decision, std::string notice = {},
               std::optional<std::int64_t> locked_until = std::nullopt) {
  return Response{
      .status = Status::ok,
      .result = protocol::LoginCheckResult{
          .decision = decision, .notice = std::move(notice), .locked_until = locked_until}};
}

Answer status(Status s, std::optional<std::int64_t> locked_until = std::nullopt) {
  return Response{.status = s, .locked_until = locked_until};
}

Answer failed(ClientError error) { return std::unexpected(error); }

const std::vector<Status> kEveryStatus{Status::ok,
                                       Status::bad_request,
                                       Status::forbidden,
                                       Status::not_enrolled,
                                       Status::wrong_code,
                                       Status::locked,
                                       Status::wrong_password,
                                       Status::no_pending_enrollment,
                                       Status::already_enrolled,
                                       Status::no_such_user,
                                       Status::store_unavailable,
                                       Status::internal_error,
                                       Status::unsupported_version,
                                       Status::busy,
                                       Status::replayed,
                                       Status::malformed_code};
const std::vector<ClientError> kEveryClientError{
    ClientError::unreachable, ClientError::untrusted_peer, ClientError::timeout,
    ClientError::io_error, ClientError::protocol_error};
const std::vector<Stage> kEveryStage{Stage::login_check, Stage::verify, Stage::enroll_begin,
                                     Stage::enroll_confirm};

}  // namespace

BOOST_AUTO_TEST_SUITE(messages)

BOOST_AUTO_TEST_CASE(locked_minutes_round_up_and_are_at_least_one) {
  BOOST_TEST(locked_message(kNow + 300, kNow) ==
             "Too many failed attempts; try again in 5 minutes.");
  BOOST_TEST(locked_message(kNow + 241, kNow) ==
             "Too many failed attempts; try again in 5 minutes.");
  BOOST_TEST(locked_message(kNow + 240, kNow) ==
             "Too many failed attempts; try again in 4 minutes.");
  BOOST_TEST(locked_message(kNow + 1, kNow) == "Too many failed attempts; try again in 1 minute.");
  BOOST_TEST(locked_message(kNow, kNow) == "Too many failed attempts; try again in 1 minute.");
  BOOST_TEST(locked_message(kNow - 100, kNow) ==
             "Too many failed attempts; try again in 1 minute.");
  BOOST_TEST(locked_message(std::nullopt, kNow) == "Too many failed attempts; try again later.");
}

BOOST_AUTO_TEST_CASE(recovery_code_message) {
  BOOST_TEST(recovery_accepted_message(3) == "Recovery code accepted; 3 left.");
  BOOST_TEST(recovery_accepted_message(9) == "Recovery code accepted; 9 left.");
  BOOST_TEST(recovery_accepted_message(0).starts_with("Recovery code accepted; 0 left. "));
  BOOST_TEST(recovery_accepted_message(0).find("kpanel-totp recovery-codes --regenerate") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(key_in_groups_of_four) {
  BOOST_TEST(key_message("JBSWY3DPEHPK3PXP").view() == "Key: JBSW Y3DP EHPK 3PXP");
  BOOST_TEST(key_message("JBSWY3").view() == "Key: JBSW Y3");
  BOOST_TEST(key_message("").view() == "Key: ");
}

BOOST_AUTO_TEST_CASE(uri_and_recovery_codes_texts) {
  BOOST_TEST(uri_message("otpauth://totp/x").view() == "URI: otpauth://totp/x");
  const std::vector<SecureString> codes{SecureString("aaaa-bbbb"), SecureString("cccc-dddd")};
  const auto text = recovery_codes_message(codes);
  BOOST_TEST(text.view().find("\n  aaaa-bbbb\n  cccc-dddd") != std::string_view::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(inputs)

BOOST_AUTO_TEST_CASE(user_names) {
  const std::vector<std::string> good_names{
      "alice",    "a",           "first.last",
      "svc-1_x$", "j\xc3\xb6rg", std::string(protocol::kMaxUserLength, 'u')};
  for (const auto& good : good_names) {
    BOOST_TEST_CONTEXT(good) { BOOST_TEST(kpanel::common::valid_user_name(good)); }
  }
  const std::vector<std::string> bad_names{std::string{},
                                           std::string("../etc"),
                                           std::string("a:b"),
                                           std::string("a\nb"),
                                           std::string("tab\t"),
                                           std::string("del\x7f"),
                                           std::string("c1\xc2\x85"),
                                           std::string("bad\xff"),
                                           std::string("trunc\xc3"),
                                           std::string("over\xc0\xaf"),
                                           std::string("surr\xed\xa0\x80"),
                                           std::string("nul\0x", 5),
                                           std::string(protocol::kMaxUserLength + 1, 'u')};
  for (const auto& bad : bad_names) {
    BOOST_TEST_CONTEXT(bad.size()) { BOOST_TEST(!kpanel::common::valid_user_name(bad)); }
  }
}

BOOST_AUTO_TEST_CASE(audit_fields_are_printable_and_bounded) {
  BOOST_TEST(audit_field(nullptr).empty());
  BOOST_TEST(audit_field("sshd") == "sshd");
  BOOST_TEST(audit_field("203.0.113.9") == "203.0.113.9");
  BOOST_TEST(audit_field("a\nb\x1b[0m\xc3\xa9") == "a?b?[0m??");
  const std::string huge(5000, 'h');
  BOOST_TEST(audit_field(huge.c_str()).size() == protocol::kMaxFieldLength);
}

BOOST_AUTO_TEST_CASE(typed_codes) {
  BOOST_TEST((check_typed_code("123456") == TypedCode::ok));
  BOOST_TEST((check_typed_code("abcd-efgh 2345") == TypedCode::ok));
  BOOST_TEST((check_typed_code(std::string(protocol::kMaxCodeLength, '1')) == TypedCode::ok));
  BOOST_TEST((check_typed_code("") == TypedCode::empty));
  BOOST_TEST(
      (check_typed_code(std::string(protocol::kMaxCodeLength + 1, '1')) == TypedCode::too_long));
  BOOST_TEST((check_typed_code("12\t456") == TypedCode::bad_characters));
  BOOST_TEST((check_typed_code("12345\xc3\xa9") == TypedCode::bad_characters));

  const Outcome empty = typed_code_refusal(TypedCode::empty);
  BOOST_TEST(empty.pam_code == PAM_AUTH_ERR);
  BOOST_TEST(empty.message == "No code entered.");
  BOOST_TEST(typed_code_refusal(TypedCode::too_long).message == "Wrong code.");
  BOOST_TEST(typed_code_refusal(TypedCode::too_long).pam_code == PAM_AUTH_ERR);
  BOOST_TEST(typed_code_refusal(TypedCode::bad_characters).pam_code == PAM_AUTH_ERR);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(login_check)

BOOST_AUTO_TEST_CASE(decisions) {
  const Options options = with(Unavailable::deny);
  const auto prompt = after_login_check(decided(LoginDecision::prompt), options, kNow);
  BOOST_TEST((prompt.next == Next::prompt));

  const auto pass = after_login_check(decided(LoginDecision::pass), options, kNow);
  BOOST_TEST((pass.next == Next::finish));
  BOOST_TEST(pass.outcome.pam_code == PAM_SUCCESS);
  BOOST_TEST(pass.outcome.message.empty());

  // Inside a remembered-login window: success, no code, no message.
  const auto remembered = after_login_check(decided(LoginDecision::remembered), options, kNow);
  BOOST_TEST((remembered.next == Next::finish));
  BOOST_TEST(remembered.outcome.pam_code == PAM_SUCCESS);
  BOOST_TEST(remembered.outcome.message.empty());

  const auto ignore =
      after_login_check(decided(LoginDecision::ignore, "enroll soon"), options, kNow);
  BOOST_TEST((ignore.next == Next::finish));
  BOOST_TEST(ignore.outcome.pam_code == PAM_IGNORE);
  BOOST_TEST(ignore.notice == "enroll soon");

  const auto refuse = after_login_check(decided(LoginDecision::refuse), options, kNow);
  BOOST_TEST(refuse.outcome.pam_code == PAM_AUTH_ERR);
  BOOST_TEST(refuse.outcome.message == kRequiredMessage);
  BOOST_TEST((refuse.outcome.style == MessageStyle::error));

  const auto locked =
      after_login_check(decided(LoginDecision::locked, {}, kNow + 300), options, kNow);
  BOOST_TEST((locked.next == Next::finish));
  BOOST_TEST(locked.outcome.pam_code == PAM_AUTH_ERR);
  BOOST_TEST(locked.outcome.message == "Too many failed attempts; try again in 5 minutes.");
}

BOOST_AUTO_TEST_CASE(enroll_needs_the_module_option) {
  const auto with_option =
      after_login_check(decided(LoginDecision::enroll), with(Unavailable::deny, true), kNow);
  BOOST_TEST((with_option.next == Next::enroll));
  const auto without =
      after_login_check(decided(LoginDecision::enroll), with(Unavailable::deny, false), kNow);
  BOOST_TEST((without.next == Next::finish));
  BOOST_TEST(without.outcome.pam_code == PAM_AUTH_ERR);
  BOOST_TEST((without.outcome.log_level == LogLevel::error));
}

BOOST_AUTO_TEST_CASE(notice_comes_with_every_decision) {
  for (const auto decision : {LoginDecision::prompt, LoginDecision::pass, LoginDecision::ignore,
                              LoginDecision::refuse, LoginDecision::locked}) {
    BOOST_TEST(after_login_check(decided(decision, "n"), Options{}, kNow).notice == "n");
  }
}

BOOST_AUTO_TEST_CASE(wrong_result_type_fails_closed) {
  const Answer verify_result =
      Response{.status = Status::ok, .result = protocol::VerifyResult{.recovery_codes_left = 1}};
  const auto step = after_login_check(verify_result, with(Unavailable::ignore), kNow);
  BOOST_TEST((step.next == Next::finish));
  BOOST_TEST(step.outcome.pam_code == PAM_AUTH_ERR);
  const Answer empty = Response{.status = Status::ok};
  BOOST_TEST(after_login_check(empty, with(Unavailable::ignore), kNow).outcome.pam_code ==
             PAM_AUTH_ERR);
}

// The daemon answered, so it is there: whatever it says, no PAM_IGNORE.
BOOST_AUTO_TEST_CASE(every_refusal_status_fails_closed_whatever_unavailable_says) {
  for (const auto s : kEveryStatus) {
    if (s == Status::ok) continue;
    for (const auto unavailable : {Unavailable::deny, Unavailable::ignore}) {
      BOOST_TEST_CONTEXT(protocol::to_string(s)) {
        const auto step = after_login_check(status(s, kNow + 60), with(unavailable), kNow);
        BOOST_TEST((step.next == Next::finish));
        BOOST_TEST(step.outcome.pam_code != PAM_IGNORE);
        BOOST_TEST(step.outcome.pam_code != PAM_SUCCESS);
        BOOST_TEST((step.outcome.style == MessageStyle::error));
      }
    }
  }
}

// busy (the slow lane refused) and internal_error: an overloaded or failing
// daemon could not check the factor. Refused as unavailable under both
// settings: a local user who floods the daemon must not switch the factor off.
BOOST_AUTO_TEST_CASE(busy_or_failing_daemon_is_unavailable_and_never_ignored) {
  for (const auto s : {Status::busy, Status::internal_error}) {
    for (const auto unavailable : {Unavailable::deny, Unavailable::ignore}) {
      BOOST_TEST_CONTEXT(protocol::to_string(s)) {
        const auto step = after_login_check(status(s), with(unavailable), kNow);
        BOOST_TEST((step.next == Next::finish));
        BOOST_TEST(step.outcome.pam_code == PAM_AUTHINFO_UNAVAIL);
        BOOST_TEST(step.outcome.message == kUnavailableMessage);
        BOOST_TEST((step.outcome.log_level == LogLevel::error));
        for (const auto stage : {Stage::verify, Stage::enroll_begin, Stage::enroll_confirm}) {
          const Outcome later = daemon_refusal(*status(s), stage, kNow);
          BOOST_TEST(later.pam_code == PAM_AUTHINFO_UNAVAIL);
          BOOST_TEST(later.message == kUnavailableMessage);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(store_unavailable_is_refused_and_logged) {
  const auto step =
      after_login_check(status(Status::store_unavailable), with(Unavailable::ignore), kNow);
  BOOST_TEST(step.outcome.pam_code == PAM_AUTH_ERR);
  BOOST_TEST(step.outcome.message == kStoreMessage);
  BOOST_TEST((step.outcome.log_level == LogLevel::error));
}

BOOST_AUTO_TEST_CASE(locked_status_gives_the_minutes) {
  const auto step = after_login_check(status(Status::locked, kNow + 61), Options{}, kNow);
  BOOST_TEST(step.outcome.message == "Too many failed attempts; try again in 2 minutes.");
}

BOOST_AUTO_TEST_CASE(client_errors) {
  // unreachable (nobody listening): the unavailable= option decides at the first contact.
  const auto deny =
      after_login_check(failed(ClientError::unreachable), with(Unavailable::deny), kNow);
  BOOST_TEST(deny.outcome.pam_code == PAM_AUTHINFO_UNAVAIL);
  BOOST_TEST(deny.outcome.message == kUnavailableMessage);
  BOOST_TEST((deny.outcome.log_level == LogLevel::error));
  const auto ignore =
      after_login_check(failed(ClientError::unreachable), with(Unavailable::ignore), kNow);
  BOOST_TEST(ignore.outcome.pam_code == PAM_IGNORE);
  BOOST_TEST(ignore.outcome.message.empty());
  BOOST_TEST((ignore.outcome.log_level == LogLevel::warning));
  // A timeout is a daemon that is listening but stalled or overloaded (a flood,
  // a full backlog): refused under both settings, never PAM_IGNORE.
  for (const auto unavailable : {Unavailable::deny, Unavailable::ignore}) {
    const auto stalled = after_login_check(failed(ClientError::timeout), with(unavailable), kNow);
    BOOST_TEST((stalled.next == Next::finish));
    BOOST_TEST(stalled.outcome.pam_code == PAM_AUTHINFO_UNAVAIL);
    BOOST_TEST(stalled.outcome.message == kUnavailableMessage);
    BOOST_TEST((stalled.outcome.log_level == LogLevel::error));
  }
  // A broken exchange is not an outage: never PAM_IGNORE.
  for (const auto error : {ClientError::io_error, ClientError::protocol_error}) {
    for (const auto unavailable : {Unavailable::deny, Unavailable::ignore}) {
      BOOST_TEST(after_login_check(failed(error), with(unavailable), kNow).outcome.pam_code ==
                 PAM_AUTHINFO_UNAVAIL);
    }
  }
  // A foreign socket owner is an attack or a broken install: refused and logged.
  for (const auto unavailable : {Unavailable::deny, Unavailable::ignore}) {
    const auto step =
        after_login_check(failed(ClientError::untrusted_peer), with(unavailable), kNow);
    BOOST_TEST(step.outcome.pam_code == PAM_AUTH_ERR);
    BOOST_TEST((step.outcome.log_level == LogLevel::error));
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(verify)

BOOST_AUTO_TEST_CASE(ok) {
  const Answer totp =
      Response{.status = Status::ok, .result = protocol::VerifyResult{.recovery_codes_left = 10}};
  const Outcome code = after_verify(totp, Options{}, kNow);
  BOOST_TEST(code.pam_code == PAM_SUCCESS);
  BOOST_TEST(code.message.empty());

  const Answer recovery = Response{
      .status = Status::ok,
      .result = protocol::VerifyResult{.used_recovery_code = true, .recovery_codes_left = 3}};
  const Outcome used = after_verify(recovery, Options{}, kNow);
  BOOST_TEST(used.pam_code == PAM_SUCCESS);
  BOOST_TEST((used.style == MessageStyle::info));
  BOOST_TEST(used.message == "Recovery code accepted; 3 left.");
}

BOOST_AUTO_TEST_CASE(refusals) {
  const Outcome wrong = after_verify(status(Status::wrong_code), Options{}, kNow);
  BOOST_TEST(wrong.pam_code == PAM_AUTH_ERR);
  BOOST_TEST(wrong.message == "Wrong code.");
  BOOST_TEST((wrong.log_level == LogLevel::debug));

  const Outcome locked = after_verify(status(Status::locked, kNow + 3600), Options{}, kNow);
  BOOST_TEST(locked.pam_code == PAM_AUTH_ERR);
  BOOST_TEST(locked.message == "Too many failed attempts; try again in 60 minutes.");

  // Enrolled at login_check, not any more at verify: a race, refused.
  const Outcome gone = after_verify(status(Status::not_enrolled), with(Unavailable::ignore), kNow);
  BOOST_TEST(gone.pam_code == PAM_AUTH_ERR);

  const Outcome store =
      after_verify(status(Status::store_unavailable), with(Unavailable::ignore), kNow);
  BOOST_TEST(store.pam_code == PAM_AUTH_ERR);
  BOOST_TEST(store.message == kStoreMessage);
}

// A code already accepted for this secret: a failure with its own message,
// so the user waits for the next code instead of retyping the same one.
BOOST_AUTO_TEST_CASE(replayed_code) {
  for (const auto unavailable : {Unavailable::deny, Unavailable::ignore}) {
    const Outcome replayed = after_verify(status(Status::replayed), with(unavailable), kNow);
    BOOST_TEST(replayed.pam_code == PAM_AUTH_ERR);
    BOOST_TEST((replayed.style == MessageStyle::error));
    BOOST_TEST(replayed.message == "That code was already used; wait for the next one.");
    BOOST_TEST(replayed.log.find("replayed") != std::string::npos);
  }
}

// A code of the wrong shape (5 digits): refused with a message that says what
// a code looks like, and that this one did not count.
BOOST_AUTO_TEST_CASE(malformed_code) {
  for (const auto unavailable : {Unavailable::deny, Unavailable::ignore}) {
    const Outcome refused = after_verify(status(Status::malformed_code), with(unavailable), kNow);
    BOOST_TEST(refused.pam_code == PAM_AUTH_ERR);
    BOOST_TEST(refused.message == kMalformedCodeMessage);
    BOOST_TEST(refused.message.find("not counted") != std::string::npos);
  }
  const auto retry = after_enroll_confirm(status(Status::malformed_code), Options{}, kNow, false);
  BOOST_TEST((retry.next == ConfirmNext::retry));
  BOOST_TEST(retry.outcome.message == kMalformedCodeMessage);
  const auto last = after_enroll_confirm(status(Status::malformed_code), Options{}, kNow, true);
  BOOST_TEST((last.next == ConfirmNext::finish));
  BOOST_TEST(last.outcome.pam_code == PAM_AUTH_ERR);
}

// busy: the daemon's slow lane refused; nothing was checked. Refused, never ignored.
BOOST_AUTO_TEST_CASE(busy_daemon) {
  for (const auto unavailable : {Unavailable::deny, Unavailable::ignore}) {
    const Outcome busy = after_verify(status(Status::busy), with(unavailable), kNow);
    BOOST_TEST(busy.pam_code == PAM_AUTHINFO_UNAVAIL);
    BOOST_TEST(busy.message == kUnavailableMessage);
  }
}

// The daemon refuses names its user database (NSS) does not know.
BOOST_AUTO_TEST_CASE(unknown_user_is_user_unknown) {
  for (const auto unavailable : {Unavailable::deny, Unavailable::ignore}) {
    const Outcome at_verify = after_verify(status(Status::no_such_user), with(unavailable), kNow);
    BOOST_TEST(at_verify.pam_code == PAM_USER_UNKNOWN);
    BOOST_TEST(at_verify.message == kFailedMessage);  // says nothing about the account
    BOOST_TEST((at_verify.log_level == LogLevel::warning));
    const auto at_check = after_login_check(status(Status::no_such_user), with(unavailable), kNow);
    BOOST_TEST((at_check.next == Next::finish));
    BOOST_TEST(at_check.outcome.pam_code == PAM_USER_UNKNOWN);
  }
}

BOOST_AUTO_TEST_CASE(no_answer_after_the_code_was_typed_never_ignores) {
  for (const auto error : kEveryClientError) {
    BOOST_TEST_CONTEXT(kpanel::common::to_string(error)) {
      const Outcome outcome = after_verify(failed(error), with(Unavailable::ignore), kNow);
      BOOST_TEST(outcome.pam_code != PAM_IGNORE);
      BOOST_TEST(outcome.pam_code != PAM_SUCCESS);
    }
  }
  BOOST_TEST(after_verify(failed(ClientError::timeout), with(Unavailable::ignore), kNow).pam_code ==
             PAM_AUTHINFO_UNAVAIL);
}

BOOST_AUTO_TEST_CASE(every_status_but_ok_is_a_failure) {
  for (const auto s : kEveryStatus) {
    if (s == Status::ok) continue;
    BOOST_TEST_CONTEXT(protocol::to_string(s)) {
      const bool unavailable = s == Status::busy || s == Status::internal_error;
      const int expected = unavailable                 ? PAM_AUTHINFO_UNAVAIL
                           : s == Status::no_such_user ? PAM_USER_UNKNOWN
                                                       : PAM_AUTH_ERR;
      BOOST_TEST(after_verify(status(s), with(Unavailable::ignore), kNow).pam_code == expected);
    }
  }
  const Answer wrong_type = decided(LoginDecision::pass);
  BOOST_TEST(after_verify(wrong_type, Options{}, kNow).pam_code == PAM_AUTH_ERR);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(enrollment)

BOOST_AUTO_TEST_CASE(begin) {
  const Answer begun =
      Response{.status = Status::ok,
               .result = protocol::EnrollBeginResult{.uri = SecureString("otpauth://x"),
                                                     .secret_base32 = SecureString("AAAA")}};
  BOOST_TEST(!after_enroll_begin(begun, Options{}, kNow).has_value());
  const auto already = after_enroll_begin(status(Status::already_enrolled), Options{}, kNow);
  BOOST_REQUIRE(already.has_value());
  BOOST_TEST(already->pam_code == PAM_AUTH_ERR);
  const auto down =
      after_enroll_begin(failed(ClientError::unreachable), with(Unavailable::ignore), kNow);
  BOOST_REQUIRE(down.has_value());
  BOOST_TEST(down->pam_code == PAM_AUTHINFO_UNAVAIL);
  BOOST_TEST(after_enroll_begin(decided(LoginDecision::pass), Options{}, kNow).has_value());
}

BOOST_AUTO_TEST_CASE(confirm) {
  const Answer codes = Response{
      .status = Status::ok, .result = protocol::RecoveryCodesResult{.codes = {SecureString("c")}}};
  const auto done = after_enroll_confirm(codes, Options{}, kNow, false);
  BOOST_TEST((done.next == ConfirmNext::done));
  BOOST_TEST(done.outcome.pam_code == PAM_SUCCESS);

  const auto retry = after_enroll_confirm(status(Status::wrong_code), Options{}, kNow, false);
  BOOST_TEST((retry.next == ConfirmNext::retry));
  BOOST_TEST(retry.outcome.message == kEnrollRetryMessage);

  const auto last = after_enroll_confirm(status(Status::wrong_code), Options{}, kNow, true);
  BOOST_TEST((last.next == ConfirmNext::finish));
  BOOST_TEST(last.outcome.pam_code == PAM_AUTH_ERR);
  BOOST_TEST(last.outcome.message == kEnrollFailedMessage);

  // Replayed (e.g. codes fenced after a daemon crash): wait for the next code.
  const auto replayed = after_enroll_confirm(status(Status::replayed), Options{}, kNow, false);
  BOOST_TEST((replayed.next == ConfirmNext::retry));
  BOOST_TEST(replayed.outcome.message == kReplayedMessage);
  const auto replayed_last = after_enroll_confirm(status(Status::replayed), Options{}, kNow, true);
  BOOST_TEST((replayed_last.next == ConfirmNext::finish));
  BOOST_TEST(replayed_last.outcome.pam_code == PAM_AUTH_ERR);

  const auto busy =
      after_enroll_confirm(status(Status::busy), with(Unavailable::ignore), kNow, false);
  BOOST_TEST((busy.next == ConfirmNext::finish));
  BOOST_TEST(busy.outcome.pam_code == PAM_AUTHINFO_UNAVAIL);

  const auto expired =
      after_enroll_confirm(status(Status::no_pending_enrollment), Options{}, kNow, false);
  BOOST_TEST((expired.next == ConfirmNext::finish));
  BOOST_TEST(expired.outcome.message == kEnrollExpiredMessage);

  const auto locked =
      after_enroll_confirm(status(Status::locked, kNow + 120), Options{}, kNow, false);
  BOOST_TEST((locked.next == ConfirmNext::finish));
  BOOST_TEST(locked.outcome.message == "Too many failed attempts; try again in 2 minutes.");

  const auto down =
      after_enroll_confirm(failed(ClientError::timeout), with(Unavailable::ignore), kNow, false);
  BOOST_TEST((down.next == ConfirmNext::finish));
  BOOST_TEST(down.outcome.pam_code == PAM_AUTHINFO_UNAVAIL);

  const auto wrong_type =
      after_enroll_confirm(decided(LoginDecision::pass), Options{}, kNow, false);
  BOOST_TEST((wrong_type.next == ConfirmNext::finish));
  BOOST_TEST(wrong_type.outcome.pam_code == PAM_AUTH_ERR);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(unavailable_ignore)

// The whole table at once: PAM_IGNORE comes from exactly one row, nobody
// listening at login_check under unavailable=ignore.
BOOST_AUTO_TEST_CASE(only_no_daemon_at_the_first_contact_is_ignored) {
  for (const auto stage : kEveryStage) {
    for (const auto error : kEveryClientError) {
      BOOST_TEST_CONTEXT(to_string(stage) << " " << kpanel::common::to_string(error)) {
        const bool ignored =
            client_failure(error, stage, with(Unavailable::ignore)).pam_code == PAM_IGNORE;
        BOOST_TEST(ignored == (stage == Stage::login_check && error == ClientError::unreachable));
        BOOST_TEST(client_failure(error, stage, with(Unavailable::deny)).pam_code != PAM_IGNORE);
      }
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(logs)

// Logs name what happened, never the code; the socket path helps the admin.
BOOST_AUTO_TEST_CASE(client_failure_log_names_the_socket_and_stage) {
  Options options;
  options.socket_path = "/run/x.sock";
  for (const auto stage : kEveryStage) {
    const Outcome outcome = client_failure(ClientError::unreachable, stage, options);
    BOOST_TEST(outcome.log.find("/run/x.sock") != std::string::npos);
    BOOST_TEST(outcome.log.find(std::string(to_string(stage))) != std::string::npos);
  }
}

BOOST_AUTO_TEST_SUITE_END()
