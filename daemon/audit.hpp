#pragma once
// Security events (SPEC §3, §9: verify outcomes, enrollments, disables,
// resets, unlocks, exempt logins) to syslog authpriv and to stderr.
//
// An AuditEvent has no free-text field: every detail is typed (a status from
// the protocol's closed set, numbers, times), so a code, secret or password
// cannot reach the log through it. The strings it does carry (user, service,
// rhost, tty) come from clients and are sanitized when formatted.

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/protocol.hpp"
#include "daemon/store.hpp"

namespace kpanel::daemon {

enum class AuditEventKind : std::uint8_t {
  login_check,   // a login that was refused, locked or sent to enroll (see decision)
  exempt_login,  // exempt_group member let through without a code (break-glass)
  grace_login,   // not enrolled, let through before enforce_after
  nullok_login,  // not enrolled, let through by the module's nullok
  verify,
  status,
  enroll_begin,
  enroll_confirm,
  disable,
  recovery_regenerate,
  admin_list,
  reset,
  unlock,
  lockout,     // a failure started a lockout (see locked_until)
  clock_skew,  // a refused code matched a step outside the window (see skew_seconds)
};
[[nodiscard]] std::string_view to_string(AuditEventKind kind) noexcept;

struct AuditEvent {
  AuditEventKind kind = AuditEventKind::verify;
  std::string user;                 // the account acted on
  std::optional<uid_t> peer_uid;    // who asked (SO_PEERCRED)
  std::string service, rhost, tty;  // from the PAM module, for logins
  common::protocol::Status outcome = common::protocol::Status::ok;
  std::optional<common::protocol::LoginDecision> decision;
  bool recovery_code_used = false;
  std::optional<std::uint32_t> recovery_codes_left;
  std::optional<std::uint32_t> failures_left;
  std::optional<std::int64_t> locked_until;  // unix seconds
  std::optional<std::int64_t> skew_seconds;  // phone clock minus ours, probable
  std::optional<std::int64_t> days_left;     // grace period
  std::optional<StoreErrorKind> store_error;
};

// One line of key=value fields, user-controlled values sanitized: no control
// characters or newlines (escaped as \xNN), quoted when needed, bounded length.
[[nodiscard]] std::string format_audit_event(const AuditEvent& event);

class AuditLog {
 public:
  AuditLog() = default;
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;
  AuditLog(AuditLog&&) = delete;
  AuditLog& operator=(AuditLog&&) = delete;
  virtual ~AuditLog() = default;

  // Must be callable from several threads at once.
  virtual void record(const AuditEvent& event) noexcept = 0;
  // An operational failure (store, PAM) worth an admin's attention. `message`
  // comes from the daemon's own components, never with secrets in it.
  virtual void error(std::string_view message) noexcept = 0;
};

// syslog(LOG_AUTHPRIV | LOG_NOTICE, or LOG_WARNING for refusals, lockouts and
// break-glass logins) plus the same line on stderr. No openlog(): the
// program's name is the ident, and main() may call openlog() if it wants more.
class SyslogAuditLog final : public AuditLog {
 public:
  explicit SyslogAuditLog(bool also_stderr = true) : also_stderr_(also_stderr) {}
  void record(const AuditEvent& event) noexcept override;
  void error(std::string_view message) noexcept override;

 private:
  bool also_stderr_;
};

// Operational lines (start, stop, reload, refused connections) that are not
// security events: syslog daemon facility plus stderr, sanitized like the rest.
void log_notice(std::string_view message) noexcept;
void log_error(std::string_view message) noexcept;

}  // namespace kpanel::daemon
