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
#include "common/totp_params.hpp"

namespace kpanel::common::protocol {

// ---- framing ---------------------------------------------------------------
// Every frame: 'K' 'P' | version (u8) | reserved (u8, 0) | body length (u32, big
// endian) | body (UTF-8 JSON object, exactly `length` bytes).
inline constexpr std::array<std::uint8_t, 2> kMagic{'K', 'P'};
// What the module and the tool send. The daemon answers every version from
// kOldestVersion up, each in its own shape: after an upgrade, sshd keeps the
// old module loaded until it restarts. PROTOCOL.md lists what each one has.
inline constexpr std::uint8_t kVersion = 3;
inline constexpr std::uint8_t kOldestVersion = 1;
inline constexpr std::size_t kHeaderSize = 8;
// Checked against the header before a single body byte is allocated. Requests
// are small; a response may list every user (admin_list), so it gets more room.
inline constexpr std::size_t kMaxBodySize = std::size_t{64} * 1024;
inline constexpr std::size_t kMaxResponseBodySize = std::size_t{4} * 1024 * 1024;
// Per-field bounds, enforced by the decoder for every message.
inline constexpr std::size_t kMaxUserLength = 256;      // POSIX login names are far shorter
inline constexpr std::size_t kMaxCodeLength = 64;       // TOTP or recovery code as typed
inline constexpr std::size_t kMaxPasswordLength = 512;  // PAM_MAX_RESP_SIZE
inline constexpr std::size_t kMaxFieldLength = 1024;    // service, rhost, tty, notices
inline constexpr std::size_t kMaxUriLength = 4096;      // otpauth:// URI
inline constexpr std::size_t kMaxQrTextLength = std::size_t{64} * 1024;  // QR code rendered as text
// A remembered login's source (version 3): a host name or address, or a
// terminal and the user who ran the program.
inline constexpr std::size_t kMaxSourceLength = 300;
// Open remembered-login windows one status reply may list (the daemon keeps fewer).
inline constexpr std::size_t kMaxRememberedWindows = 64;

enum class DecodeError : std::uint8_t {
  truncated,  // fewer bytes than the header or the declared length
  bad_magic,
  unsupported_version,  // version outside kOldestVersion..kVersion, or reserved byte not 0
  oversized,            // declared body length above the cap
  malformed_body,       // not valid JSON / not UTF-8 / not an object
  unknown_op,
  missing_field,
  wrong_type,
  unknown_field,
  field_too_long,
  invalid_value,  // e.g. an enum string that is not one of its values
};
[[nodiscard]] std::string_view to_string(DecodeError e) noexcept;

struct FrameHeader {
  std::uint8_t version = kVersion;
  std::uint32_t body_length = 0;
};

// Parses and validates the first 8 bytes of `header` (magic, version, reserved,
// length cap). Readers of responses pass kMaxResponseBodySize as `max_body`.
[[nodiscard]] std::expected<FrameHeader, DecodeError> parse_header(
    std::span<const std::uint8_t> header, std::size_t max_body = kMaxBodySize) noexcept;

// ---- operations --------------------------------------------------------------
// One row per request type, in the order of `Request` below: the op's wire
// name and the event name the daemon's audit log gives it. The admin ops were
// logged as "reset" and "unlock" before they had wire names, and log readers
// match on those, so the column keeps them.
enum class Op : std::uint8_t {
  login_check,
  verify,
  status,
  enroll_begin,
  enroll_confirm,
  disable,
  recovery_regenerate,
  admin_list,
  admin_reset,
  admin_unlock,
  admin_stats,  // version 3
  admin_import,
  forget,  // version 3
};
struct OpNames {
  Op op;
  std::string_view wire;
  std::string_view audit;
};
inline constexpr std::array<OpNames, 13> kOps{{
    {Op::login_check, "login_check", "login_check"},
    {Op::verify, "verify", "verify"},
    {Op::status, "status", "status"},
    {Op::enroll_begin, "enroll_begin", "enroll_begin"},
    {Op::enroll_confirm, "enroll_confirm", "enroll_confirm"},
    {Op::disable, "disable", "disable"},
    {Op::recovery_regenerate, "recovery_regenerate", "recovery_regenerate"},
    {Op::admin_list, "admin_list", "admin_list"},
    {Op::admin_reset, "admin_reset", "reset"},
    {Op::admin_unlock, "admin_unlock", "unlock"},
    {Op::admin_stats, "admin_stats", "admin_stats"},
    {Op::admin_import, "admin_import", "import"},
    {Op::forget, "forget", "forget"},
}};
[[nodiscard]] constexpr std::string_view op_name(Op op) noexcept {
  const auto index = static_cast<std::size_t>(op);
  return index < kOps.size() ? kOps.at(index).wire : std::string_view{};
}
[[nodiscard]] constexpr std::string_view audit_name(Op op) noexcept {
  const auto index = static_cast<std::size_t>(op);
  return index < kOps.size() ? kOps.at(index).audit : std::string_view{};
}

// ---- the typed code ----------------------------------------------------------
// A TOTP code or a recovery code as the user typed it, classified once where
// it enters (the codec, or a client building a request): the daemon's rules
// and the TOTP check take it typed and never look at its characters again.
class Code {
 public:
  enum class Kind : std::uint8_t {
    malformed,  // neither: refused as malformed_code, never counted as a guess
    totp,       // ASCII digits, spaces ignored (apps show "123 456"); any count:
                // the daemon compares it with the enrollment's digits
    recovery,   // a recovery code's length (10 symbols, dashes and spaces ignored)
  };

  Code() = default;
  // Implicit: a request is built from what was typed.
  Code(SecureString typed);  // NOLINT(google-explicit-constructor)

  [[nodiscard]] Kind kind() const noexcept { return kind_; }
  // As typed: what the wire carries.
  [[nodiscard]] std::string_view view() const noexcept { return typed_.view(); }
  [[nodiscard]] bool empty() const noexcept { return typed_.empty(); }
  // Kind::totp: the digits without the spaces; otherwise empty.
  [[nodiscard]] std::string_view digits() const noexcept { return digits_.view(); }
  // Kind::totp with exactly kScratchCodeDigits digits: a google-authenticator
  // scratch code imported as a recovery code, unless the enrollment's own
  // codes have that many digits (then it is only ever a TOTP code). The
  // daemon decides which, from the enrollment; see PROTOCOL.md.
  [[nodiscard]] bool may_be_scratch_code() const noexcept;

  // The kind and digits follow from the typed text.
  friend bool operator==(const Code& a, const Code& b) noexcept { return a.typed_ == b.typed_; }

 private:
  SecureString typed_{};
  SecureString digits_{};
  Kind kind_ = Kind::malformed;
};

// ---- requests ----------------------------------------------------------------
// Every message compares field by field (secrets in constant time).
// `user` empty means "the peer's own account"; the daemon always decides who
// the peer is from SO_PEERCRED, never from these fields.

// Asked by the module before prompting: does this login need a code?
struct LoginCheckRequest {
  std::string user{}, service{}, rhost{}, tty{};
  bool nullok = false;  // module option nullok
  bool enroll = false;  // module option enroll
  // Version 3: module option remember, and where the login comes from (see
  // pam_module/login_source.hpp). The daemon honours them from root only.
  bool remember = false;
  std::string source{};
  friend bool operator==(const LoginCheckRequest&, const LoginCheckRequest&) = default;
};
struct VerifyRequest {
  std::string user{}, service{}, rhost{}, tty{};
  Code code{};            // a TOTP code or a recovery code
  bool remember = false;  // version 3: a success opens a window for `source`
  std::string source{};   // version 3
  friend bool operator==(const VerifyRequest&, const VerifyRequest&) = default;
};
struct StatusRequest {
  std::string user{};
  friend bool operator==(const StatusRequest&, const StatusRequest&) = default;
};
struct EnrollBeginRequest {
  std::string user{};
  bool replace = false;  // changing phones: `proof` must be a current code or a recovery code
  Code proof{};
  bool want_qr_text = false;  // the module's inline enrollment: daemon renders the QR as text
  std::string service{}, rhost{}, tty{};  // for the audit log (inline enrollment)
  friend bool operator==(const EnrollBeginRequest&, const EnrollBeginRequest&) = default;
};
struct EnrollConfirmRequest {
  std::string user{};
  Code code{};
  std::string service{}, rhost{}, tty{};
  friend bool operator==(const EnrollConfirmRequest&, const EnrollConfirmRequest&) = default;
};
struct DisableRequest {
  std::string user{};
  SecureString password{};
  Code code{};
  friend bool operator==(const DisableRequest&, const DisableRequest&) = default;
};
struct RegenerateRecoveryCodesRequest {
  std::string user{};
  Code code{};
  friend bool operator==(const RegenerateRecoveryCodesRequest&,
                         const RegenerateRecoveryCodesRequest&) = default;
};
struct AdminListRequest {
  // Version 3: also every account that can log in (uid >= UID_MIN, a login
  // shell) with no enrollment, and each user's exempt_group membership.
  bool all = false;
  friend bool operator==(const AdminListRequest&, const AdminListRequest&) = default;
};
struct AdminResetRequest {
  std::string user{};
  friend bool operator==(const AdminResetRequest&, const AdminResetRequest&) = default;
};
struct AdminUnlockRequest {
  std::string user{};
  friend bool operator==(const AdminUnlockRequest&, const AdminUnlockRequest&) = default;
};
// Version 3: the daemon's counters and gauges (AdminStatsResult).
struct AdminStatsRequest {
  friend bool operator==(const AdminStatsRequest&, const AdminStatsRequest&) = default;
};

// Version 3, root only: a user's google-authenticator-libpam secret, read
// from their ~/.google_authenticator by the tool, becomes their enrollment
// (six digits, SHA1). The daemon decides what it can honour.
struct AdminImportRequest {
  std::string user{};
  SecureString secret_base32{};
  std::uint32_t period = 30;      // the file's STEP_SIZE
  std::uint32_t window_size = 3;  // the file's WINDOW_SIZE: how many steps in all
  std::int64_t time_skew = 0;     // the file's TIME_SKEW, in steps
  // The file's DISALLOW_REUSE: steps (unix time / period) already used.
  std::vector<std::int64_t> used_steps{};
  std::vector<SecureString> scratch_codes{};  // 8 digits each
  friend bool operator==(const AdminImportRequest&, const AdminImportRequest&) = default;
};
// What admin_import takes: google-authenticator writes at most 10 scratch
// codes, keeps one window's worth of used steps, looks for a phone's skew up
// to 25 minutes (of 1 s steps) either way, and makes secrets of 80 to 160
// bits. Steps beyond 2^40 (unix time / period) are no time of this era.
inline constexpr std::size_t kMaxImportedScratchCodes = 10;
inline constexpr std::size_t kMaxImportedUsedSteps = 128;
inline constexpr std::int64_t kMaxImportedTimeSkew = 1500;
inline constexpr std::int64_t kMaxImportedStep = std::int64_t{1} << 40;
inline constexpr std::size_t kMinImportedSecretBytes = 10;
inline constexpr std::size_t kMaxImportedSecretBytes = 64;
// Version 3: ends the user's remembered-login windows (`user` empty: the peer's own).
struct ForgetRequest {
  std::string user{};
  friend bool operator==(const ForgetRequest&, const ForgetRequest&) = default;
};

using Request = std::variant<LoginCheckRequest, VerifyRequest, StatusRequest, EnrollBeginRequest,
                             EnrollConfirmRequest, DisableRequest, RegenerateRecoveryCodesRequest,
                             AdminListRequest, AdminResetRequest, AdminUnlockRequest,
                             AdminStatsRequest, AdminImportRequest, ForgetRequest>;

// The request's row of kOps (the variant's index) and its wire name.
[[nodiscard]] Op op_of(const Request& request) noexcept;
[[nodiscard]] std::string_view op_name(const Request& request) noexcept;

// ---- responses -------------------------------------------------------------
// A closed set. Numbers are never reused; the wire carries the names.
enum class Status : std::uint8_t {
  ok = 0,
  bad_request = 1,  // malformed or not valid for this op
  forbidden = 2,    // the peer may not do this (daemon/authz/dispatch.cpp decides)
  not_enrolled = 3,
  wrong_code = 4,  // wrong code or used recovery code
  locked = 5,      // see locked_until
  wrong_password = 6,
  no_pending_enrollment = 7,
  already_enrolled = 8,    // enroll_begin without replace while enrolled
  no_such_user = 9,        // admin ops on an unknown account name
  store_unavailable = 10,  // the state store failed: refuse, never "daemon down"
  internal_error = 11,
  unsupported_version = 12,
  busy = 13,      // slow work (password check, recovery-code hashing) already in flight for
                  // this caller or the daemon's slow lane full: nothing was checked; try again
  replayed = 14,  // the right code for a step already accepted: counts as a failure
  malformed_code = 15,  // neither the enrollment's digits nor a recovery code: not checked,
                        // not counted (a slip of the finger is no guess)
};
[[nodiscard]] std::string_view to_string(Status s) noexcept;

enum class LoginDecision : std::uint8_t {
  prompt = 0,  // enrolled: ask for a code, then verify
  pass = 1,    // exempt_group: PAM_SUCCESS without a code (logged)
  ignore = 2,  // not enrolled, allowed through (grace period or nullok): PAM_IGNORE
  enroll = 3,  // not enrolled, must enroll now inside the login (module option enroll)
  refuse = 4,  // not enrolled and must be: PAM_AUTH_ERR
  locked = 5,  // locked out: refuse without prompting (see locked_until)
  // Version 3: inside a remembered-login window: PAM_SUCCESS without a code
  // (logged). Never encoded into an older frame (it becomes prompt there).
  remembered = 6,
};
[[nodiscard]] std::string_view to_string(LoginDecision d) noexcept;

struct UserStatus {
  std::string user{};
  bool enrolled = false;
  std::optional<std::int64_t> enrolled_at{};  // unix seconds
  std::uint32_t recovery_codes_left = 0;
  std::optional<std::int64_t> locked_until{};  // unix seconds, only while locked
  bool enrollment_pending = false;
  std::optional<std::int64_t> last_skew_seconds{};  // only sent to root / admin peers
  // Version 3, set only by admin_list with `all`: a member of exempt_group
  // (primary or supplementary), who logs in without a code.
  std::optional<bool> exempt{};
  friend bool operator==(const UserStatus&, const UserStatus&) = default;
};

// An open remembered-login window (version 3, in StatusResult).
struct RememberedWindow {
  std::string source{};
  std::int64_t until = 0;  // unix seconds
  friend bool operator==(const RememberedWindow&, const RememberedWindow&) = default;
};

struct EmptyResult {
  friend bool operator==(const EmptyResult&, const EmptyResult&) = default;
};
struct LoginCheckResult {
  LoginDecision decision = LoginDecision::refuse;
  std::string notice{};  // text for the user (e.g. grace-period reminder), may be empty
  std::optional<std::int64_t> locked_until{};
  friend bool operator==(const LoginCheckResult&, const LoginCheckResult&) = default;
};
struct VerifyResult {
  bool used_recovery_code = false;
  std::uint32_t recovery_codes_left = 0;
  friend bool operator==(const VerifyResult&, const VerifyResult&) = default;
};
struct StatusResult {
  UserStatus status{};                         // wire key "user_status": the envelope owns "status"
  std::vector<RememberedWindow> remembered{};  // version 3: this host's open windows
  friend bool operator==(const StatusResult&, const StatusResult&) = default;
};
// The URI and the QR text spell out the secret too: wiped like it.
struct EnrollBeginResult {
  SecureString uri{};
  SecureString secret_base32{};
  std::int64_t expires_at = 0;  // unix seconds
  SecureString qr_text{};       // only when asked for
  // Version 2: what the URI says, typed, for a reader that shows it (a v1
  // reply leaves them out, and a v1 reader gets these defaults).
  TotpAlgorithm algorithm = TotpAlgorithm::sha1;
  std::uint32_t digits = 6;
  std::uint32_t period = 30;
  friend bool operator==(const EnrollBeginResult&, const EnrollBeginResult&) = default;
};
struct RecoveryCodesResult {
  std::vector<SecureString> codes{};
  friend bool operator==(const RecoveryCodesResult&, const RecoveryCodesResult&) = default;
};
struct AdminListResult {
  std::vector<UserStatus> users{};
  // Version 3, with `all`: the account enumeration stopped at its bound, so
  // some accounts may be missing.
  bool truncated = false;
  // Version 3: users whose stored record cannot be read (a wrong key_file or
  // a row changed outside kpanel-totpd); `admin reset` clears one. Sorted.
  std::vector<std::string> unreadable{};
  friend bool operator==(const AdminListResult&, const AdminListResult&) = default;
};

// Version 3: counters since the daemon started (every audit event counted
// once, before the audit log's rate limit) and gauges read at the request.
// Times are unix seconds.
struct AdminStatsResult {
  std::int64_t started_at = 0;
  std::int64_t now = 0;  // the daemon's clock when it answered
  // verify requests by outcome; `recovery` is a recovery code accepted.
  std::int64_t verify_ok = 0, verify_recovery = 0, verify_wrong_code = 0, verify_replayed = 0,
               verify_locked = 0, verify_malformed = 0, verify_busy = 0,
               verify_store_unavailable = 0, verify_other = 0;
  std::int64_t lockouts = 0;
  std::int64_t enrollments = 0;  // confirmed (the tool's and inside a login)
  std::int64_t imports = 0;
  // Logins let through without a code, by why.
  std::int64_t remembered_skips = 0, exempt_logins = 0, grace_logins = 0, nullok_logins = 0;
  std::int64_t users_enrolled = 0, users_locked = 0;
  std::int64_t in_flight_fast = 0, in_flight_slow = 0;  // lane jobs queued or running
  std::int64_t connections = 0;                         // open on the socket
  friend bool operator==(const AdminStatsResult&, const AdminStatsResult&) = default;
};
// Version 3. imported: the enrollment is on disk (or was already, with this
// very secret). Otherwise `reason` says why it was skipped.
struct AdminImportResult {
  bool imported = false;
  std::string reason{};
  friend bool operator==(const AdminImportResult&, const AdminImportResult&) = default;
};

using Result =
    std::variant<EmptyResult, LoginCheckResult, VerifyResult, StatusResult, EnrollBeginResult,
                 RecoveryCodesResult, AdminListResult, AdminStatsResult, AdminImportResult>;

// Every reply. On a status other than ok, `result` is EmptyResult and the
// detail fields below say what the user needs to know; never internal detail.
// With ok they stay empty (the wire puts both in one JSON object).
struct Response {
  Status status = Status::internal_error;
  Result result = EmptyResult{};
  std::optional<std::int64_t> locked_until{};    // with Status::locked
  std::optional<std::uint32_t> failures_left{};  // with Status::wrong_code (before a lockout)
  // With Status::store_unavailable: which store failed, for the admin's next
  // step ("the SQLite database in /var/lib/kpanel-totp", "the PostgreSQL
  // database"); names a place, never a password or a DSN.
  std::optional<std::string> store{};
  friend bool operator==(const Response&, const Response&) = default;
};

// ---- codec -----------------------------------------------------------------
// encode_* return a complete frame (header + body), in wiping storage since a
// frame may carry a code or a password. They apply the decoder's rules, so a
// frame they produce always decodes; a message that breaks one (a string not
// UTF-8 or over its bound, a bad user name, a body over the cap, a non-ok
// Response with a result, an ok Response with locked_until/failures_left/store) or
// running out of memory gives an EMPTY buffer. A daemon whose reply does not
// encode sends Response{Status::internal_error}, which always does.
// decode_* take a complete body (after parse_header), validate it fully and
// never throw.
// `version` (kOldestVersion..kVersion) is the frame's: the daemon reads a
// request with its header's version and answers in the same one, so a v1
// client gets exactly the v1 shape; fields newer than `version` are left out
// when encoding and are unknown fields when decoding. Any other version
// encodes to an empty buffer and decodes to unsupported_version.
[[nodiscard]] SecureBytes encode_request(const Request& request,
                                         std::uint8_t version = kVersion) noexcept;
[[nodiscard]] SecureBytes encode_response(const Response& response,
                                          std::uint8_t version = kVersion) noexcept;
[[nodiscard]] std::expected<Request, DecodeError> decode_request(
    std::span<const std::uint8_t> body, std::uint8_t version = kVersion) noexcept;
// The body names its result type, so the decoded variant is checked, not guessed.
[[nodiscard]] std::expected<Response, DecodeError> decode_response(
    std::span<const std::uint8_t> body, std::uint8_t version = kVersion) noexcept;

}  // namespace kpanel::common::protocol
