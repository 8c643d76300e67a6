#pragma once
// The module's decision table: pure functions from what the daemon (or the
// socket client) answered to a PAM return code, a message for the user and a
// line for syslog. No PAM calls, no I/O, so every row is unit-tested.
//
// Rules behind the table (the "why" for each row is in outcome.cpp):
// - The daemon decides; the module only maps. Anything it does not expect
//   fails closed (PAM_AUTH_ERR).
// - "Unavailable" means the factor could not be checked (no daemon, no answer
//   in time, a broken exchange, a daemon answering busy or internal_error):
//   PAM_AUTHINFO_UNAVAIL, a failure for `required`. unavailable=ignore turns
//   it into PAM_IGNORE only when nobody listens on the socket (unreachable:
//   no socket file, connection refused), and only at the first contact
//   (login_check). A daemon that is listening but slow, overloaded (a full
//   listen backlog) or failing is refused under both settings: any local user
//   can flood it, and that must not switch the factor off for everyone.
// - A daemon that answers "store_unavailable" is not unavailable: refused.
// - A code already accepted for this secret ("replayed") is a wrong code with
//   its own message; a name the daemon's user database does not know
//   ("no_such_user") is PAM_USER_UNKNOWN.
// - Locked is PAM_AUTH_ERR, as common/PROTOCOL.md fixes for the module.

#include <security/pam_modules.h>

#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/daemon_client.hpp"
#include "common/protocol.hpp"
#include "common/secure_buffer.hpp"
#include "pam_module/options.hpp"

namespace kpanel::pam {

enum class MessageStyle : std::uint8_t { none, info, error };
enum class LogLevel : std::uint8_t {
  none,
  debug,    // only with the module option `debug`
  warning,  // always: a configuration or race the admin should know about
  error,    // always: the module could not do its job
};

struct Outcome {
  int pam_code = PAM_AUTH_ERR;
  MessageStyle style = MessageStyle::none;
  std::string message{};  // for the user, through the conversation
  LogLevel log_level = LogLevel::none;
  std::string log{};  // for syslog: what happened, never a code or a secret
  friend bool operator==(const Outcome&, const Outcome&) = default;
};

using Answer = std::expected<common::protocol::Response, common::ClientError>;

// Where in the login an answer came from; some rows depend on it.
enum class Stage : std::uint8_t { login_check, verify, enroll_begin, enroll_confirm };

// ---- user messages -----------------------------------------------------------
inline constexpr std::string_view kRequiredMessage =
    "Two-factor authentication is required for this account; ask an administrator.";
inline constexpr std::string_view kWrongCodeMessage = "Wrong code.";
inline constexpr std::string_view kReplayedMessage =
    "That code was already used; wait for the next one.";
inline constexpr std::string_view kNoCodeMessage = "No code entered.";
// Not digits of the right length and not a recovery code: not counted.
inline constexpr std::string_view kMalformedCodeMessage =
    "That is not a code; type the digits the app shows (not counted as a wrong code).";
inline constexpr std::string_view kUnavailableMessage =
    "The two-factor authentication service is unavailable; try again later.";
inline constexpr std::string_view kStoreMessage =
    "The two-factor authentication store is unavailable; ask an administrator.";
inline constexpr std::string_view kFailedMessage = "Two-factor authentication failed.";
inline constexpr std::string_view kEnrollExpiredMessage =
    "The enrollment timed out; log in again to start over.";
inline constexpr std::string_view kEnrollRetryMessage = "Wrong code; try again.";
inline constexpr std::string_view kEnrollFailedMessage =
    "Wrong code; the enrollment was not completed. Log in again to start over.";
inline constexpr std::string_view kSavedCodesPrompt = "Press Enter once you have saved these codes";
inline constexpr int kEnrollAttempts = 3;

// "Too many failed attempts; try again in N minutes." N rounded up, at least 1.
[[nodiscard]] std::string locked_message(std::optional<std::int64_t> locked_until,
                                         std::int64_t now);
// "Recovery code accepted; N left." (with a hint to make new ones when few are left)
[[nodiscard]] std::string recovery_accepted_message(std::uint32_t left);

// ---- inputs ------------------------------------------------------------------
// PAM_SERVICE/PAM_RHOST/PAM_TTY for the audit fields: printable ASCII only
// (anything else becomes '?'), cut to kMaxFieldLength. RHOST can come from
// reverse DNS, i.e. from the attacker; it must never make the request fail.
[[nodiscard]] std::string audit_field(const char* item);

enum class TypedCode : std::uint8_t { ok, empty, too_long, bad_characters };
// What the user typed, checked before it is sent: only a plausible code goes to
// the daemon (an empty or absurd answer is not a guess worth counting).
[[nodiscard]] TypedCode check_typed_code(std::string_view code) noexcept;
[[nodiscard]] Outcome typed_code_refusal(TypedCode problem);

// ---- answers -------------------------------------------------------------------
enum class Next : std::uint8_t { finish, prompt, enroll };
struct LoginStep {
  Next next = Next::finish;
  std::string notice{};  // from the daemon, shown (PAM_TEXT_INFO) before anything else
  Outcome outcome{};     // with Next::finish; otherwise only its log line counts
  friend bool operator==(const LoginStep&, const LoginStep&) = default;
};
[[nodiscard]] LoginStep after_login_check(const Answer& answer, const Options& options,
                                          std::int64_t now);
[[nodiscard]] Outcome after_verify(const Answer& answer, const Options& options, std::int64_t now);
// nullopt: the daemon answered ok with an enroll_begin result; go on.
[[nodiscard]] std::optional<Outcome> after_enroll_begin(const Answer& answer,
                                                        const Options& options, std::int64_t now);

enum class ConfirmNext : std::uint8_t { done, retry, finish };
struct ConfirmStep {
  ConfirmNext next = ConfirmNext::finish;
  Outcome outcome{};  // retry: the message to show before asking again
  friend bool operator==(const ConfirmStep&, const ConfirmStep&) = default;
};
// done: enrolled, the recovery codes are in the answer's result.
[[nodiscard]] ConfirmStep after_enroll_confirm(const Answer& answer, const Options& options,
                                               std::int64_t now, bool last_attempt);

// The rows shared by every stage.
[[nodiscard]] Outcome client_failure(common::ClientError error, Stage stage,
                                     const Options& options);
[[nodiscard]] Outcome daemon_refusal(const common::protocol::Response& response, Stage stage,
                                     std::int64_t now);

// ---- enrollment texts (they carry the secret: wiping storage) ---------------------
[[nodiscard]] std::string enrollment_intro();
[[nodiscard]] common::SecureString uri_message(std::string_view uri);  // the URI holds the secret
// "Key: ABCD EFGH IJKL ..." (groups of four, as authenticator apps show it).
[[nodiscard]] common::SecureString key_message(std::string_view secret_base32);
[[nodiscard]] common::SecureString recovery_codes_message(
    std::span<const common::SecureString> codes);

[[nodiscard]] std::string_view to_string(Stage stage) noexcept;

}  // namespace kpanel::pam
