#pragma once
// The wire protocol between kpanel-totpd, pam_kpanel_totp.so and kpanel-totp.
// The full description (framing, every message, every status code and the
// rules for changing them) is common/PROTOCOL.md; keep the two in step.
//
// This unit depends on nothing but the C++ runtime and nlohmann-json (header
// only), so the PAM module can link it without pulling OpenSSL or Boost into
// sshd. Nothing here throws: every decode error is a typed value.

#include <array>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/secure_buffer.hpp"

namespace kpanel::common::protocol {

// ---- framing ---------------------------------------------------------------
// Every frame: 'K' 'P' | version (u8) | reserved (u8, 0) | body length (u32, big
// endian) | body (UTF-8 JSON object, exactly `length` bytes).
inline constexpr std::array<std::uint8_t, 2> kMagic{'K', 'P'};
inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 8;
// Checked against the header before a single body byte is allocated.
inline constexpr std::size_t kMaxBodySize = 64 * 1024;
// Per-field bounds, enforced by the decoder for every message.
inline constexpr std::size_t kMaxUserLength = 256;      // POSIX login names are far shorter
inline constexpr std::size_t kMaxCodeLength = 64;       // TOTP or recovery code as typed
inline constexpr std::size_t kMaxPasswordLength = 512;  // PAM_MAX_RESP_SIZE
inline constexpr std::size_t kMaxFieldLength = 1024;    // service, rhost, tty, notices

enum class DecodeError : std::uint8_t {
  truncated,         // fewer bytes than the header or the declared length
  bad_magic,
  unsupported_version,
  oversized,         // declared body length above kMaxBodySize
  malformed_body,    // not valid JSON / not UTF-8 / not an object
  unknown_op,
  missing_field,
  wrong_type,
  unknown_field,
  field_too_long,
  invalid_value,     // e.g. an enum string that is not one of its values
};
[[nodiscard]] std::string_view to_string(DecodeError e) noexcept;

struct FrameHeader {
  std::uint8_t version = kVersion;
  std::uint32_t body_length = 0;
};

// Parses and validates the 8 header bytes (magic, version, reserved, length cap).
[[nodiscard]] std::expected<FrameHeader, DecodeError> parse_header(
    std::span<const std::uint8_t> header) noexcept;

// ---- requests ----------------------------------------------------------------
// `user` empty means "the peer's own account"; the daemon always decides who
// the peer is from SO_PEERCRED, never from these fields.

// Asked by the module before prompting: does this login need a code?
struct LoginCheckRequest {
  std::string user, service, rhost, tty;
  bool nullok = false;  // module option nullok
  bool enroll = false;  // module option enroll
};
struct VerifyRequest {
  std::string user, service, rhost, tty;
  SecureString code;  // a TOTP code or a recovery code, as typed
};
struct StatusRequest {
  std::string user;
};
struct EnrollBeginRequest {
  std::string user;
  bool replace = false;  // changing phones: `proof` must be a current code or a recovery code
  SecureString proof;
  bool want_qr_text = false;  // the module's inline enrollment: daemon renders the QR as text
  std::string service, rhost, tty;  // for the audit log (inline enrollment)
};
struct EnrollConfirmRequest {
  std::string user;
  SecureString code;
  std::string service, rhost, tty;
};
struct DisableRequest {
  std::string user;
  SecureString password;
  SecureString code;
};
struct RegenerateRecoveryCodesRequest {
  std::string user;
  SecureString code;
};
struct AdminListRequest {};
struct AdminResetRequest {
  std::string user;
};
struct AdminUnlockRequest {
  std::string user;
};

using Request = std::variant<LoginCheckRequest, VerifyRequest, StatusRequest, EnrollBeginRequest,
                             EnrollConfirmRequest, DisableRequest, RegenerateRecoveryCodesRequest,
                             AdminListRequest, AdminResetRequest, AdminUnlockRequest>;

// Wire names ("login_check", "verify", "status", "enroll_begin", "enroll_confirm",
// "disable", "recovery_regenerate", "admin_list", "admin_reset", "admin_unlock").
[[nodiscard]] std::string_view op_name(const Request& request) noexcept;

// ---- responses -------------------------------------------------------------
// A closed set. Numbers are never reused; the wire carries the names.
enum class Status : std::uint8_t {
  ok = 0,
  bad_request = 1,        // malformed or not valid for this op
  forbidden = 2,          // the peer may not do this (SPEC §1)
  not_enrolled = 3,
  wrong_code = 4,         // wrong, replayed or used code: all look the same
  locked = 5,             // see locked_until
  wrong_password = 6,
  no_pending_enrollment = 7,
  already_enrolled = 8,   // enroll_begin without replace while enrolled
  no_such_user = 9,       // admin ops on an unknown account name
  store_unavailable = 10, // the state store failed: refuse, never "daemon down"
  internal_error = 11,
  unsupported_version = 12,
};
[[nodiscard]] std::string_view to_string(Status s) noexcept;

enum class LoginDecision : std::uint8_t {
  prompt = 0,   // enrolled: ask for a code, then verify
  pass = 1,     // exempt_group: PAM_SUCCESS without a code (logged)
  ignore = 2,   // not enrolled, allowed through (grace period or nullok): PAM_IGNORE
  enroll = 3,   // not enrolled, must enroll now inside the login (module option enroll)
  refuse = 4,   // not enrolled and must be: PAM_AUTH_ERR
  locked = 5,   // locked out: refuse without prompting (see locked_until)
};
[[nodiscard]] std::string_view to_string(LoginDecision d) noexcept;

struct UserStatus {
  std::string user;
  bool enrolled = false;
  std::optional<std::int64_t> enrolled_at;   // unix seconds
  std::uint32_t recovery_codes_left = 0;
  std::optional<std::int64_t> locked_until;  // unix seconds, only while locked
  bool enrollment_pending = false;
  std::optional<std::int64_t> last_skew_seconds;  // only sent to root / admin peers
};

struct EmptyResult {};
struct LoginCheckResult {
  LoginDecision decision = LoginDecision::refuse;
  std::string notice;  // text for the user (e.g. grace-period reminder), may be empty
  std::optional<std::int64_t> locked_until;
};
struct VerifyResult {
  bool used_recovery_code = false;
  std::uint32_t recovery_codes_left = 0;
};
struct StatusResult {
  UserStatus status;
};
struct EnrollBeginResult {
  std::string uri;
  SecureString secret_base32;
  std::int64_t expires_at = 0;  // unix seconds
  std::string qr_text;          // only when asked for
};
struct RecoveryCodesResult {
  std::vector<SecureString> codes;
};
struct AdminListResult {
  std::vector<UserStatus> users;
};

using Result = std::variant<EmptyResult, LoginCheckResult, VerifyResult, StatusResult,
                            EnrollBeginResult, RecoveryCodesResult, AdminListResult>;

// Every reply. On a status other than ok, `result` is EmptyResult and the
// detail fields below say what the user needs to know; never internal detail.
struct Response {
  Status status = Status::internal_error;
  Result result = EmptyResult{};
  std::optional<std::int64_t> locked_until;   // with Status::locked
  std::optional<std::uint32_t> failures_left; // with Status::wrong_code (before a lockout)
};

// ---- codec -----------------------------------------------------------------
// encode_* return a complete frame (header + body), in wiping storage since a
// frame may carry a code or a password. decode_* take a complete body (after
// parse_header), validate it fully and never throw.
[[nodiscard]] SecureBytes encode_request(const Request& request);
[[nodiscard]] SecureBytes encode_response(const Response& response);
[[nodiscard]] std::expected<Request, DecodeError> decode_request(
    std::span<const std::uint8_t> body) noexcept;
// The body names its result type, so the decoded variant is checked, not guessed.
[[nodiscard]] std::expected<Response, DecodeError> decode_response(
    std::span<const std::uint8_t> body) noexcept;

}  // namespace kpanel::common::protocol
