#pragma once
// What the commands print: JSON with exactly the documented keys (times ISO 8601 UTC
// with 'Z', null when absent) and the human forms.

#include <cstdint>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>

#include "common/clock.hpp"
#include "common/protocol.hpp"
#include "common/secure_buffer.hpp"

namespace kpanel::cli {

// ---- JSON: one object, one line, no trailing newline ------------------------
// {"user","enrolled","enrolled_at","recovery_codes_left","locked_until","clock_offset_seconds",
//  "remembered"}
// clock_offset_seconds: how far the phone's clock seemed off (positive: ahead)
// when a refused code matched outside the window; null when not known (or
// not told: the daemon tells only root and admins). remembered: this host's
// open remembered-login windows, [{"source":...,"until":ISO 8601}].
[[nodiscard]] std::string status_json(
    const common::protocol::UserStatus& status,
    std::span<const common::protocol::RememberedWindow> remembered = {});
// {"users":[status objects]}; `with_exempt` (admin list --all): each object
// also has "exempt", and "truncated":true follows when the daemon's account
// enumeration stopped at its bound; "unreadable":[names] when some users'
// stored records cannot be read.
[[nodiscard]] std::string admin_list_json(std::span<const common::protocol::UserStatus> users,
                                          bool with_exempt = false, bool truncated = false,
                                          std::span<const std::string> unreadable = {});
// These carry secrets, so they are built in wiping storage.
// {"recovery_codes":[...]}
[[nodiscard]] common::SecureString recovery_codes_json(std::span<const common::SecureString> codes);
// {"uri":...,"secret":...,"expires_at":ISO 8601} (expires_at: until when the
// started enrollment waits for its confirming code; null when not known)
[[nodiscard]] common::SecureString enroll_begin_json(std::string_view uri,
                                                     std::string_view secret_base32,
                                                     std::int64_t expires_at);
// A refusal or error: {"error":REASON,"message":MESSAGE}.
[[nodiscard]] std::string error_json(std::string_view reason, std::string_view message);
// Commands with nothing to report (disable, admin reset, admin unlock, forget).
inline constexpr std::string_view kEmptyJsonObject = "{}";

// ---- human -------------------------------------------------------------------
[[nodiscard]] std::string iso8601(std::int64_t unix_seconds);

// `tool` starts the commands it suggests: "kpanel-totp " or, for another
// user, "kpanel-totp --user NAME ".
void print_status(std::ostream& out, const common::protocol::UserStatus& status,
                  common::TimePoint now, std::string_view tool = "kpanel-totp ",
                  std::span<const common::protocol::RememberedWindow> remembered = {});
// `with_exempt` (admin list --all): an EXEMPT column, and the rollout's
// counts at the end.
void print_user_table(std::ostream& out, std::span<const common::protocol::UserStatus> users,
                      common::TimePoint now, bool with_exempt = false);
// For stderr, one line per user whose stored record cannot be read, with what clears it.
void print_unreadable(std::ostream& err, std::span<const std::string> unreadable);
// The codes, one per line, with what to do with them.
void print_recovery_codes(std::ostream& out, std::span<const common::SecureString> codes);
// QR code (already rendered), URI, key in groups of four and the TOTP settings.
void print_enrollment(std::ostream& out, const common::protocol::EnrollBeginResult& begun,
                      std::string_view qr_text, common::TimePoint now);

}  // namespace kpanel::cli
