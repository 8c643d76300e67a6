#pragma once
// Every policy decision of kpanel-totpd, in one class (as OpenSSH
// keeps its privileged answers in monitor.c): the login decision table,
// the verification window, replay protection, lockout, recovery codes and
// enrollment. rules.cpp has logins, verify, status, disable and the admin ops,
// rules_enroll.cpp enrollment and new recovery codes, checks.cpp the pieces
// both are made of (one checked code, lockout, replies, audit events).
//
// Callers (the Dispatcher) have already decided that the peer may act on
// `user`; Rules never looks at who asked except to log it and to decide
// whether admin-only detail is shown.
//
// Threads: every method may run concurrently with any other. Each request
// reads one snapshot of the policy; Store::update serializes changes to one
// user, and every change is durable before the method returns its reply.
// Collaborators must be thread-safe too (the AuditLog, the AccountDirectory,
// the PasswordChecker; the clock is only read).

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/protocol.hpp"
#include "daemon/authz/accounts.hpp"
#include "daemon/rules/lockout.hpp"
#include "daemon/rules/policy.hpp"
#include "daemon/store/store.hpp"
#include "daemon/system/audit.hpp"
#include "daemon/system/audit_counts.hpp"
#include "daemon/system/password_check.hpp"

namespace kpanel::daemon {

// Who asked, as far as the rules care.
struct Caller {
  uid_t uid = static_cast<uid_t>(-1);  // the peer's uid, for the audit log
  bool privileged = false;             // root or admin_group: may see admin-only detail
  // Root only (the PAM module in sshd, login, su, sudo): may open and use
  // remembered-login windows. A user's own process must not, or it could
  // vouch for any source it likes.
  bool may_remember = false;
};

// The gauges of admin_stats that the server side knows.
struct RuntimeGauges {
  std::int64_t in_flight_fast = 0, in_flight_slow = 0;  // lane jobs queued or running
  std::int64_t connections = 0;
};
// Where admin_stats reads what the Rules do not keep themselves. Either may
// be unset (tests): its numbers are then 0.
struct StatsSources {
  const CountingAuditLog* counts = nullptr;
  std::function<RuntimeGauges()> runtime;  // must be thread-safe and not throw
};

class Rules {
 public:
  Rules(Policy policy, Store& store, const common::Clock& clock, PasswordChecker& passwords,
        const AccountDirectory& accounts, AuditLog& audit);

  // SIGHUP: requests already running finish with the policy they started with.
  // The fence in force stays.
  void set_policy(Policy policy);
  // At start, before serving: the crash fence from the store's run state.
  void set_fence(std::optional<Fence> fence);
  // At start: this host's id, which tags its remembered-login windows (remember.hpp).
  void set_host_id(std::string host_id);
  [[nodiscard]] std::shared_ptr<const Policy> policy() const;
  // Before serving: never changed while requests run.
  void set_stats_sources(StatsSources sources) { stats_ = std::move(sources); }

  // Does this login need a code? LoginCheckResult.
  common::protocol::Response login_check(
      const Caller& caller, const std::string& user,
      const common::protocol::LoginCheckRequest& request) noexcept;
  // A TOTP code or a recovery code. VerifyResult.
  common::protocol::Response verify(const Caller& caller, const std::string& user,
                                    const common::protocol::VerifyRequest& request) noexcept;
  // StatusResult; last_skew_seconds only for a privileged caller.
  common::protocol::Response status(const Caller& caller, const std::string& user,
                                    const common::protocol::StatusRequest& request) noexcept;
  // EnrollBeginResult. With replace: proof (a code or a recovery code) is
  // checked and consumed exactly as verify would.
  common::protocol::Response enroll_begin(
      const Caller& caller, const std::string& user,
      const common::protocol::EnrollBeginRequest& request) noexcept;
  // RecoveryCodesResult: new codes for a first enrollment, empty for a replace.
  common::protocol::Response enroll_confirm(
      const Caller& caller, const std::string& user,
      const common::protocol::EnrollConfirmRequest& request) noexcept;
  // Password and a current TOTP code; EmptyResult.
  common::protocol::Response disable(const Caller& caller, const std::string& user,
                                     const common::protocol::DisableRequest& request) noexcept;
  // A current TOTP code; RecoveryCodesResult with the new set.
  common::protocol::Response regenerate_recovery_codes(
      const Caller& caller, const std::string& user,
      const common::protocol::RegenerateRecoveryCodesRequest& request) noexcept;
  // AdminListResult: every user the store knows; with `all` also every
  // account that can log in (AccountDirectory::login_accounts), each marked
  // exempt or not.
  common::protocol::Response admin_list(const Caller& caller,
                                        const common::protocol::AdminListRequest& request) noexcept;
  // Removes enrollment, pending enrollment, recovery codes and lockout state.
  common::protocol::Response admin_reset(
      const Caller& caller, const std::string& user,
      const common::protocol::AdminResetRequest& request) noexcept;
  // Clears failures, lockout and lockout level.
  common::protocol::Response admin_unlock(
      const Caller& caller, const std::string& user,
      const common::protocol::AdminUnlockRequest& request) noexcept;
  // Ends the user's remembered-login windows (every host's); EmptyResult.
  common::protocol::Response forget(const Caller& caller, const std::string& user,
                                    const common::protocol::ForgetRequest& request) noexcept;

  // AdminStatsResult: the counters since this Rules was made (the daemon's
  // start) and the gauges now.
  common::protocol::Response admin_stats(
      const Caller& caller, const common::protocol::AdminStatsRequest& request) noexcept;
  // Root only: a google-authenticator secret becomes the user's enrollment
  // (rules_import.cpp). AdminImportResult: imported, or skipped and why.
  common::protocol::Response admin_import(
      const Caller& caller, const std::string& user,
      const common::protocol::AdminImportRequest& request) noexcept;

  // The Dispatcher refused a request (forbidden, no_such_user): logged like
  // the operation it asked for, with the request's service, rhost and tty.
  void record_refused(const Caller& caller, const common::protocol::Request& request,
                      const std::string& user, common::protocol::Status status) noexcept;

 private:
  void add_login_accounts(common::protocol::AdminListResult& result) const;
  void log_unreadable(const std::vector<std::string>& users) const noexcept;

  Store& store_;
  const common::Clock& clock_;
  PasswordChecker& passwords_;
  const AccountDirectory& accounts_;
  AuditLog& audit_;
  SlowCheckReservations slow_checks_;
  StatsSources stats_;
  common::TimePoint started_at_;
  mutable std::mutex policy_mutex_;
  std::shared_ptr<const Policy> policy_;
};

}  // namespace kpanel::daemon
