#include "pam_module/outcome.hpp"

#include <algorithm>
#include <cstddef>
#include <variant>

#include "common/text.hpp"

namespace kpanel::pam {
namespace {

namespace protocol = common::protocol;
using common::ClientError;
using protocol::Status;

constexpr std::int64_t kSecondsPerMinute = 60;
// Below this many recovery codes the user is told how to make new ones.
constexpr std::uint32_t kFewRecoveryCodes = 2;

Outcome refuse(std::string_view message, LogLevel level, std::string log) {
  return Outcome{.pam_code = PAM_AUTH_ERR,
                 .style = message.empty() ? MessageStyle::none : MessageStyle::error,
                 .message = std::string(message),
                 .log_level = level,
                 .log = std::move(log)};
}

// ok with a result of another op: a daemon bug or a foreign daemon. Refuse.
Outcome unexpected_result(Stage stage) {
  return refuse(kFailedMessage, LogLevel::error,
                "daemon answered " + std::string(to_string(stage)) + " with the wrong result type");
}

}  // namespace

std::string_view to_string(Stage stage) noexcept {
  switch (stage) {
    case Stage::login_check:  // a stage is named after the op it sends
      return protocol::op_name(protocol::Op::login_check);
    case Stage::verify:
      return protocol::op_name(protocol::Op::verify);
    case Stage::enroll_begin:
      return protocol::op_name(protocol::Op::enroll_begin);
    case Stage::enroll_confirm:
      return protocol::op_name(protocol::Op::enroll_confirm);
  }
  return "unknown";
}

std::string locked_message(std::optional<std::int64_t> locked_until, std::int64_t now) {
  if (!locked_until) {
    return "Too many failed attempts; try again later.";
  }
  // Rounded up so that "try again in N minutes" is never too early; at least 1.
  const std::int64_t seconds = *locked_until > now ? *locked_until - now : 0;
  const std::int64_t minutes =
      std::max<std::int64_t>(1, (seconds + kSecondsPerMinute - 1) / kSecondsPerMinute);
  return "Too many failed attempts; try again in " + std::to_string(minutes) +
         (minutes == 1 ? " minute." : " minutes.");
}

std::string recovery_accepted_message(std::uint32_t left) {
  std::string text = "Recovery code accepted; " + std::to_string(left) + " left.";
  if (left <= kFewRecoveryCodes) {
    text += " Make new ones with: kpanel-totp recovery-codes --regenerate";
  }
  return text;
}

std::string audit_field(const char* item) {
  if (item == nullptr) return {};
  const std::string_view text(item);
  std::string out(text.substr(0, protocol::kMaxFieldLength));
  std::ranges::replace_if(
      out, [](char c) { return !common::is_printable_ascii(static_cast<unsigned char>(c)); }, '?');
  return out;
}

TypedCode check_typed_code(std::string_view code) noexcept {
  if (code.empty()) return TypedCode::empty;
  if (code.size() > protocol::kMaxCodeLength) return TypedCode::too_long;
  // Codes are digits, recovery codes letters, digits, dashes and spaces.
  const bool printable = std::ranges::all_of(
      code, [](char c) { return common::is_printable_ascii(static_cast<unsigned char>(c)); });
  return printable ? TypedCode::ok : TypedCode::bad_characters;
}

Outcome typed_code_refusal(TypedCode problem) {
  switch (problem) {
    case TypedCode::ok:
      break;
    case TypedCode::empty:
      return refuse(kNoCodeMessage, LogLevel::debug, "no code entered; daemon not asked");
    case TypedCode::too_long:
      return refuse(kWrongCodeMessage, LogLevel::debug, "code too long; daemon not asked");
    case TypedCode::bad_characters:
      return refuse(kWrongCodeMessage, LogLevel::debug,
                    "code with unprintable characters; daemon not asked");
  }
  return refuse(kFailedMessage, LogLevel::error, "internal: typed code refused while valid");
}

Outcome client_failure(ClientError error, Stage stage, const Options& options) {
  const std::string where = "daemon at " + options.socket_path + " (" +
                            std::string(to_string(stage)) +
                            "): " + std::string(common::to_string(error));
  switch (error) {
    case ClientError::untrusted_peer:
      // Someone else owns the socket or answers on it: an attack or a broken
      // install, never an outage, so unavailable=ignore does not apply.
      return refuse(kFailedMessage, LogLevel::error,
                    where + "; socket or peer not owned by root or kpanel-totp, refusing");
    case ClientError::unreachable:
      // Nobody is listening (no socket, connection refused): the one case in
      // which unavailable=ignore may let the login go on, and only before
      // anything was asked: once the user typed a code, a daemon that went away
      // must not turn a wrong code into PAM_IGNORE.
      if (stage == Stage::login_check && options.unavailable == Unavailable::ignore) {
        return Outcome{.pam_code = PAM_IGNORE,
                       .log_level = LogLevel::warning,
                       .log = where +
                              "; no daemon listening, unavailable=ignore: leaving the "
                              "decision to the stack"};
      }
      break;
    case ClientError::timeout:
      // A daemon is listening but did not answer in time (it accepted and
      // stalled, or its listen backlog is full). Any local user can bring that
      // about with a flood, so it never counts as "no daemon": refused whatever
      // unavailable= says, or one user could switch the factor off for all.
    case ClientError::io_error:
    case ClientError::protocol_error:
      // The daemon is there but the exchange broke (a crash mid-request, a
      // version mismatch): fail closed whatever unavailable= says, so that a
      // request that crashes the daemon cannot open the door.
      break;
  }
  return Outcome{.pam_code = PAM_AUTHINFO_UNAVAIL,
                 .style = MessageStyle::error,
                 .message = std::string(kUnavailableMessage),
                 .log_level = LogLevel::error,
                 .log = where + "; refusing"};
}

Outcome daemon_refusal(const protocol::Response& response, Stage stage, std::int64_t now) {
  const std::string what =
      std::string(to_string(stage)) + ": " + std::string(protocol::to_string(response.status));
  switch (response.status) {
    case Status::ok:
      break;  // not a refusal; the callers handle ok themselves
    case Status::locked:
      return refuse(locked_message(response.locked_until, now), LogLevel::debug, what);
    case Status::wrong_code:
      return refuse(kWrongCodeMessage, LogLevel::debug, what);
    case Status::replayed:
      return refuse(kReplayedMessage, LogLevel::debug, what);
    case Status::malformed_code:
      return refuse(kMalformedCodeMessage, LogLevel::debug, what);
    case Status::busy:
    case Status::internal_error:
      // A daemon that is overloaded or failing: the factor could not be
      // checked. Never PAM_IGNORE (an overload is in any local user's reach).
      return Outcome{.pam_code = PAM_AUTHINFO_UNAVAIL,
                     .style = MessageStyle::error,
                     .message = std::string(kUnavailableMessage),
                     .log_level = LogLevel::error,
                     .log = "daemon answered " + what + "; refusing"};
    case Status::no_such_user:
      // The daemon resolves names through NSS and does not know this one.
      return Outcome{.pam_code = PAM_USER_UNKNOWN,
                     .style = MessageStyle::error,
                     .message = std::string(kFailedMessage),
                     .log_level = LogLevel::warning,
                     .log = what + " (the daemon's user database does not know this name)"};
    case Status::store_unavailable:
      // A failing store is not "daemon down": refuse whatever unavailable= says.
      return refuse(kStoreMessage, LogLevel::error, what + "; refusing");
    case Status::no_pending_enrollment:
      return refuse(kEnrollExpiredMessage, LogLevel::debug, what);
    case Status::not_enrolled:
    case Status::already_enrolled:
      // The enrollment changed during this login (an admin reset, a parallel
      // enrollment): refuse rather than guess.
      return refuse(kFailedMessage, LogLevel::warning, what + " (changed during the login)");
    case Status::forbidden:
      return refuse(kFailedMessage, LogLevel::error,
                    what + " (this process may not act for the user; the module needs root)");
    case Status::bad_request:
    case Status::wrong_password:
    case Status::unsupported_version:
      break;
  }
  return refuse(kFailedMessage, LogLevel::error, "daemon answered " + what + "; refusing");
}

LoginStep after_login_check(const Answer& answer, const Options& options, std::int64_t now) {
  if (!answer) {
    return LoginStep{.outcome = client_failure(answer.error(), Stage::login_check, options)};
  }
  if (answer->status != Status::ok) {
    return LoginStep{.outcome = daemon_refusal(*answer, Stage::login_check, now)};
  }
  const auto* result = std::get_if<protocol::LoginCheckResult>(&answer->result);
  if (result == nullptr) {
    return LoginStep{.outcome = unexpected_result(Stage::login_check)};
  }
  LoginStep step{.notice = result->notice};
  switch (result->decision) {
    case protocol::LoginDecision::prompt:
      step.next = Next::prompt;
      step.outcome.log_level = LogLevel::debug;
      step.outcome.log = "login_check: prompt (enrolled)";
      return step;
    case protocol::LoginDecision::pass:
      step.outcome = Outcome{.pam_code = PAM_SUCCESS,
                             .log_level = LogLevel::debug,
                             .log = "login_check: pass (exempt, no code asked)"};
      return step;
    case protocol::LoginDecision::ignore:
      step.outcome = Outcome{.pam_code = PAM_IGNORE,
                             .log_level = LogLevel::debug,
                             .log = "login_check: ignore (not enrolled, allowed through)"};
      return step;
    case protocol::LoginDecision::enroll:
      if (options.enroll) {
        step.next = Next::enroll;
        step.outcome.log_level = LogLevel::debug;
        step.outcome.log = "login_check: enroll (inline enrollment)";
        return step;
      }
      // The daemon only asks for this when the request said enroll=true.
      step.outcome = refuse(kRequiredMessage, LogLevel::error,
                            "login_check: enroll, but the module has no enroll option; refusing");
      return step;
    case protocol::LoginDecision::refuse:
      step.outcome =
          refuse(kRequiredMessage, LogLevel::debug, "login_check: refuse (not enrolled)");
      return step;
    case protocol::LoginDecision::locked:
      step.outcome =
          refuse(locked_message(result->locked_until, now), LogLevel::debug, "login_check: locked");
      return step;
    case protocol::LoginDecision::remembered:
      // No message: the daemon's audit log has the skip, and a line on every
      // sudo would only teach users to ignore the module's messages.
      step.outcome = Outcome{.pam_code = PAM_SUCCESS,
                             .log_level = LogLevel::debug,
                             .log = "login_check: remembered (inside a remembered-login window)"};
      return step;
  }
  step.outcome = refuse(kFailedMessage, LogLevel::error, "login_check: unknown decision");
  return step;
}

Outcome after_verify(const Answer& answer, const Options& options, std::int64_t now) {
  if (!answer) {
    return client_failure(answer.error(), Stage::verify, options);
  }
  if (answer->status != Status::ok) {
    return daemon_refusal(*answer, Stage::verify, now);
  }
  const auto* result = std::get_if<protocol::VerifyResult>(&answer->result);
  if (result == nullptr) {
    return unexpected_result(Stage::verify);
  }
  if (result->used_recovery_code) {
    return Outcome{.pam_code = PAM_SUCCESS,
                   .style = MessageStyle::info,
                   .message = recovery_accepted_message(result->recovery_codes_left),
                   .log_level = LogLevel::debug,
                   .log = "verify: ok (recovery code)"};
  }
  return Outcome{.pam_code = PAM_SUCCESS, .log_level = LogLevel::debug, .log = "verify: ok"};
}

std::optional<Outcome> after_enroll_begin(const Answer& answer, const Options& options,
                                          std::int64_t now) {
  if (!answer) {
    return client_failure(answer.error(), Stage::enroll_begin, options);
  }
  if (answer->status != Status::ok) {
    return daemon_refusal(*answer, Stage::enroll_begin, now);
  }
  if (!std::holds_alternative<protocol::EnrollBeginResult>(answer->result)) {
    return unexpected_result(Stage::enroll_begin);
  }
  return std::nullopt;
}

ConfirmStep after_enroll_confirm(const Answer& answer, const Options& options, std::int64_t now,
                                 bool last_attempt) {
  if (!answer) {
    return ConfirmStep{.outcome = client_failure(answer.error(), Stage::enroll_confirm, options)};
  }
  if (answer->status == Status::wrong_code) {
    // A typo while copying a fresh code should not throw away the scanned
    // secret; a few tries are allowed (the daemon counts them toward lockout).
    if (!last_attempt) {
      return ConfirmStep{.next = ConfirmNext::retry,
                         .outcome = refuse(kEnrollRetryMessage, LogLevel::debug,
                                           "enroll_confirm: wrong_code, asking again")};
    }
    return ConfirmStep{.outcome = refuse(kEnrollFailedMessage, LogLevel::debug,
                                         "enroll_confirm: wrong_code, giving up")};
  }
  if (answer->status == Status::malformed_code) {
    // Not counted by the daemon: a slip while typing; ask again.
    if (!last_attempt) {
      return ConfirmStep{.next = ConfirmNext::retry,
                         .outcome = refuse(kMalformedCodeMessage, LogLevel::debug,
                                           "enroll_confirm: malformed_code, asking again")};
    }
    return ConfirmStep{.outcome = refuse(kEnrollFailedMessage, LogLevel::debug,
                                         "enroll_confirm: malformed_code, giving up")};
  }
  if (answer->status == Status::replayed) {
    // A step the daemon will not take again (e.g. codes fenced after a crash):
    // the next code of the same secret works, so the user may wait and retry.
    if (!last_attempt) {
      return ConfirmStep{.next = ConfirmNext::retry,
                         .outcome = refuse(kReplayedMessage, LogLevel::debug,
                                           "enroll_confirm: replayed, asking again")};
    }
    return ConfirmStep{.outcome = refuse(kEnrollFailedMessage, LogLevel::debug,
                                         "enroll_confirm: replayed, giving up")};
  }
  if (answer->status != Status::ok) {
    return ConfirmStep{.outcome = daemon_refusal(*answer, Stage::enroll_confirm, now)};
  }
  if (!std::holds_alternative<protocol::RecoveryCodesResult>(answer->result)) {
    return ConfirmStep{.outcome = unexpected_result(Stage::enroll_confirm)};
  }
  return ConfirmStep{.next = ConfirmNext::done,
                     .outcome = Outcome{.pam_code = PAM_SUCCESS,
                                        .log_level = LogLevel::debug,
                                        .log = "enroll_confirm: ok (enrolled inside the login)"}};
}

std::string enrollment_intro() {
  return "Two-factor authentication must be set up for this account now. Scan the QR code "
         "with an authenticator app (Google Authenticator, Authy, Apple Passwords) or type "
         "in the key, then enter the code the app shows.";
}

common::SecureString uri_message(std::string_view uri) {
  common::SecureString text("URI: ");
  text.append(uri);
  return text;
}

common::SecureString key_message(std::string_view secret_base32) {
  common::SecureString text("Key: ");
  for (std::size_t i = 0; i < secret_base32.size(); ++i) {
    if (i > 0 && i % 4 == 0) text.push_back(' ');
    text.push_back(secret_base32[i]);
  }
  return text;
}

common::SecureString recovery_codes_message(std::span<const common::SecureString> codes) {
  common::SecureString text(
      "Two-factor authentication is set up. Recovery codes (each works once; keep them "
      "somewhere safe, they are not shown again):");
  for (const auto& code : codes) {
    text.append("\n  ");
    text.append(code.view());
  }
  return text;
}

}  // namespace kpanel::pam
