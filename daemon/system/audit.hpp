#pragma once
// Security events (verify outcomes, enrollments, disables,
// resets, unlocks, exempt logins) to syslog authpriv and to stderr.
//
// An AuditEvent has no free-text field: every detail is typed (a status from
// the protocol's closed set, numbers, times), so a code, secret or password
// cannot reach the log through it. The strings it does carry (user, service,
// rhost, tty) come from clients and are sanitized when formatted.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "common/protocol.hpp"
#include "daemon/store/store.hpp"

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
  lockout,      // a failure started a lockout (see locked_until)
  clock_skew,   // a refused code matched a step outside the window (see skew_seconds)
  clock_moved,  // the last accepted step lies ahead of this host's clock (see clock_moved_seconds)
  audit_suppressed,  // one uid's refused requests over its budget, counted (see suppressed)
  fence,   // at start after an unclean host stop or a restore: TOTP codes up to fence_time refused
  import,  // admin_import: a google-authenticator file's secret imported (or skipped: see cause)
  remembered_login,  // a login let through without a code inside a remembered-login window
  admin_stats,
  forget,  // the op: a user's remembered-login windows ended
};
// The kinds that are ops are named by protocol::kOps' audit column.
[[nodiscard]] std::string_view to_string(AuditEventKind kind) noexcept;
// The kind an op's event is logged as.
[[nodiscard]] AuditEventKind audit_kind(common::protocol::Op op) noexcept;

// How many events of one kind and outcome were counted instead of written.
struct SuppressedCount {
  AuditEventKind kind = AuditEventKind::verify;
  common::protocol::Status outcome = common::protocol::Status::ok;
  std::uint64_t count = 0;
};

struct AuditEvent {
  AuditEventKind kind = AuditEventKind::verify;
  std::string user;                              // the account acted on
  std::optional<uid_t> peer_uid;                 // who asked (SO_PEERCRED)
  std::string service, rhost, tty;               // from the PAM module, for logins
  std::string source;                            // remembered logins: the window's source
  std::optional<std::int64_t> remembered_until;  // remembered_login: the window's end
  common::protocol::Status outcome = common::protocol::Status::ok;
  std::optional<common::protocol::LoginDecision> decision;
  bool recovery_code_used = false;
  std::optional<std::uint32_t> recovery_codes_left;
  std::optional<std::uint32_t> failures_left;
  std::optional<std::int64_t> locked_until;  // unix seconds
  std::optional<std::int64_t> skew_seconds;  // phone clock minus ours, probable
  // How far this host's clock moved, at least (negative: back), as the last
  // accepted step tells.
  std::optional<std::int64_t> clock_moved_seconds;
  std::optional<std::int64_t> days_left;  // grace period
  std::optional<StoreErrorKind> store_error;
  // fence: why (cause), until when (fence_time), the restored snapshot's time.
  std::string cause;
  std::optional<std::int64_t> fence_time;
  std::optional<std::int64_t> snapshot_taken_at;
  bool fenced = false;  // verify and the like: the code was right but for a fenced step
  // audit_suppressed only; peer_uid unset means "every uid beyond the table".
  std::uint64_t suppressed = 0;
  std::int64_t suppressed_seconds = 0;
  std::vector<SuppressedCount> suppressed_by;
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
  // The state store failing or working again. Logins are refused meanwhile,
  // so the line goes to authpriv too, where admins watching auth.log look,
  // besides error()'s operational log. Same rules for `message` as error().
  virtual void store_health(std::string_view message) noexcept { error(message); }
};

struct HeldAuditLine;

// While one lives on a thread, the audit lines SyslogAuditLog records on that
// thread are kept, and written when it ends. The server holds them while it
// answers a request, so a login's reply does not wait for syslog (a quarter
// of a verification's time when measured): the line follows the reply, from
// the same thread, microseconds later. Nested holds add to the outer one.
class HoldAuditLines {
 public:
  HoldAuditLines() noexcept;
  HoldAuditLines(const HoldAuditLines&) = delete;
  HoldAuditLines& operator=(const HoldAuditLines&) = delete;
  HoldAuditLines(HoldAuditLines&&) = delete;
  HoldAuditLines& operator=(HoldAuditLines&&) = delete;
  ~HoldAuditLines();

 private:
  std::vector<HeldAuditLine> lines_;
  bool holding_ = false;
};

// syslog(LOG_AUTHPRIV | LOG_NOTICE, or LOG_WARNING for refusals, lockouts and
// break-glass logins) plus the same line on stderr. No openlog(): the
// program's name is the ident, and main() may call openlog() if it wants more.
class SyslogAuditLog final : public AuditLog {
 public:
  explicit SyslogAuditLog(bool also_stderr = true) : also_stderr_(also_stderr) {}
  void record(const AuditEvent& event) noexcept override;
  void error(std::string_view message) noexcept override;
  void store_health(std::string_view message) noexcept override;

 private:
  bool also_stderr_;
};

// Audit lines of one uid's refused requests, within a budget, so that one
// local user flooding the socket with requests that are refused cannot bury
// other users' security events, nor push syslog (journald rate-limits per
// service) into dropping them. A token bucket per peer uid: `burst` lines at
// once, then `per_second`. Beyond it the uid's events are counted by kind and
// outcome, and one audit_suppressed line per uid says how many, when
// `summary_period` has passed since the first one counted (at the uid's next
// event or at flush(), whichever comes first).
//
// Never counted against the budget, always written: everything root asked
// (the PAM module in sshd, login, su, sudo: real logins), everything that
// succeeded (logins, enrollments, disables, resets, unlocks), lockouts, and
// a clock found moved back.
// Root's events do not even take the lock, so a flood never delays them.
struct AuditRateLimits {
  // A person mistyping produces a refused request every few seconds; a
  // script run by an admin a short burst. 20 at once, then 2 a second, keeps
  // every such line, while a flooding uid costs syslog at most ~2.1 lines a
  // second: journald's default (10000 per 30 s per service) would need over a
  // hundred uids flooding at once to drop a line.
  double burst = 20;
  double per_second = 2;
  std::chrono::seconds summary_period{10};
  // Memory is bounded: uids beyond this share one budget (their summary has no
  // peer_uid); idle uids are forgotten at flush().
  std::size_t max_uids = 1024;
};

class RateLimitedAuditLog final : public AuditLog {
 public:
  RateLimitedAuditLog(AuditLog& inner, const common::Clock& clock, AuditRateLimits limits = {})
      : inner_(inner), clock_(clock), limits_(limits) {}

  void record(const AuditEvent& event) noexcept override;
  void error(std::string_view message) noexcept override { inner_.error(message); }
  void store_health(std::string_view message) noexcept override { inner_.store_health(message); }

  // Writes the summaries that are due (every one with `everything`, at exit)
  // and forgets idle uids. The daemon calls it every second.
  void flush(bool everything = false) noexcept;

  // Whether the budget applies to `event` at all.
  [[nodiscard]] static bool may_suppress(const AuditEvent& event) noexcept;

 private:
  struct Budget {
    double tokens = 0;
    common::TimePoint refilled{};
    std::uint64_t suppressed = 0;
    common::TimePoint since{};  // the first event counted in this period
    std::map<std::pair<AuditEventKind, common::protocol::Status>, std::uint64_t> counts;
  };
  Budget& budget_for(std::optional<uid_t>& uid, common::TimePoint now);
  void refill(Budget& budget, common::TimePoint now) const;
  [[nodiscard]] static AuditEvent take_summary(std::optional<uid_t> uid, Budget& budget,
                                               common::TimePoint now);

  AuditLog& inner_;
  const common::Clock& clock_;
  AuditRateLimits limits_;
  std::mutex mutex_;
  std::unordered_map<uid_t, Budget> budgets_;
  std::optional<Budget> overflow_;  // the uids beyond max_uids, together
};

// Operational lines (start, stop, reload, refused connections) that are not
// security events: syslog daemon facility plus stderr, sanitized like the rest.
void log_notice(std::string_view message) noexcept;
void log_error(std::string_view message) noexcept;

}  // namespace kpanel::daemon
