#pragma once
// The pieces every operation of Rules is made of: replies, audit events, one
// checked code (TOTP window, replay, recovery codes) with its lockout
// bookkeeping, and the status a record is described with. Private to
// daemon/rules/rules*.cpp; rules.cpp holds logins, verify, status, disable and
// the admin ops, rules_enroll.cpp enrollment and new recovery codes.

#include <chrono>
#include <cstdint>
#include <exception>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "common/protocol.hpp"
#include "common/totp.hpp"
#include "daemon/rules/policy.hpp"
#include "daemon/rules/remember.hpp"
#include "daemon/rules/replay_steps.hpp"
#include "daemon/rules/rules.hpp"
#include "daemon/store/store.hpp"
#include "daemon/system/audit.hpp"

namespace kpanel::daemon::rules_detail {

namespace protocol = common::protocol;
using common::TimePoint;
using protocol::Code;
using protocol::Response;
using protocol::Status;

// ---- replies -----------------------------------------------------------------
Response reply(Status status) noexcept;
Response reply_ok(protocol::Result result);
Response reply_locked(TimePoint until) noexcept;

// ---- audit helpers -------------------------------------------------------------
AuditEvent make_event(AuditEventKind kind, const Caller& caller, const std::string& user);
AuditEvent make_event(AuditEventKind kind, const Caller& caller, const std::string& user,
                      const std::string& service, const std::string& rhost, const std::string& tty);
Response refuse(AuditLog& log, AuditEvent event, Status status);
// The failure itself is logged once, by LoggedStore (store_health.hpp), not
// once per refused request.
Response store_failed(AuditLog& log, AuditEvent event, const StoreError& error);
Response internal_failure(AuditLog& log, AuditEvent event, const std::string& what);

// Every public method runs its body through this: no exception leaves Rules.
template <typename Body>
Response guarded(AuditLog& log, protocol::Op op, Body&& body) noexcept {
  const std::string_view operation = protocol::op_name(op);
  try {
    return std::forward<Body>(body)();
  } catch (const std::exception& e) {
    log.error(std::string(operation) + ": " + e.what());
  } catch (...) {
    log.error(std::string(operation) + ": unknown exception");
  }
  return reply(Status::internal_error);
}

// ---- how soon each update must be on disk -------------------------------------
// The one place that says it (store.hpp's Durability). Deferred: a TOTP code
// checked by verify (the step it spends, or the failure and any lockout it
// counts), the login path: the crash fence covers what a host crash loses.
// Durable: everything that can never be undone or repeated — a recovery
// code (consumed, or its failure counted with it), an enrollment begun or
// confirmed, disable, new recovery codes, reset, unlock — and the rarer ops
// whose TOTP proof guards one of those.
[[nodiscard]] Durability durability_of(protocol::Op op, const Code& code) noexcept;
[[nodiscard]] Durability durability_of(protocol::Op op) noexcept;  // ops without a code

// ---- TOTP codes ----------------------------------------------------------------
struct TotpMatch {
  std::optional<std::int64_t> step;          // accepted: inside the window, fresh
  std::optional<std::int64_t> skew_seconds;  // refused, but right for a fresh step further out
  // The last accepted step lies ahead of the window: this host's clock moved
  // back by about this much (negative seconds).
  std::optional<std::int64_t> clock_moved_seconds;
  bool replayed = false;  // refused: right for a step in the window already accepted
  // refused: right for a step never accepted on record but closed by the crash
  // fence (it may have been accepted in what the crash lost)
  bool fenced = false;
  bool failed = false;  // HMAC failure: neither right nor wrong
};

// The replay state a code is checked against: its own secret's. A pending
// secret has accepted nothing yet, so a new phone's first code is fresh even
// in the step of the old phone's last one.
struct ReplayState {
  std::optional<std::int64_t> last_step;
  std::vector<StepRun> used_steps;
};

ReplayState replay_state_of(const UserRecord& record);
// The record's replay state after accepting `step` of its active secret.
void accept_step(UserRecord& record, std::int64_t step);
// A typed code against `key` for the steps around `now` (see checks.cpp).
TotpMatch match_totp(std::span<const std::uint8_t> key, const common::TotpParams& params,
                     const Code& code, const ReplayState& replay, unsigned window, TimePoint now,
                     const std::optional<Fence>& fence);

// ---- recovery codes ------------------------------------------------------------
std::uint32_t recovery_codes_left(const UserRecord& record);
// Whether `code` is checked against the recovery codes: a recovery code, or 8
// digits (an imported google-authenticator scratch code) when the active
// enrollment's own codes are not 8 digits long. An 8-digit enrollment's
// 8-digit code is only ever a TOTP code; its recovery codes are ours.
bool is_recovery_attempt(const UserRecord& record, const Code& code) noexcept;
// One code's stored form: every recovery code (made here or imported) is
// hashed through this, the same way.
std::optional<RecoveryCodeRecord> recovery_code_record(std::string_view normalized);
// The stored hash of the unused recovery code `code` is, if any. Slow (one
// scrypt per unused code), so it runs before the store update; the update
// then marks that hash used only if it still is unused, so two requests with
// the same code cannot both succeed.
std::optional<std::string> find_recovery_hash(const UserRecord& record, const Code& code);
bool consume_recovery_code(UserRecord& record, const std::string& hash);

// A new set: the codes to show the user once, and their hashes to store.
struct RecoveryBatch {
  std::vector<common::SecureString> codes;
  std::vector<RecoveryCodeRecord> records;
};
std::optional<RecoveryBatch> make_recovery_codes(unsigned count);
// A batch made ahead of the update, only for a code about to be accepted
// against `key` (see checks.cpp). Unexpected: making the batch failed.
std::expected<std::optional<RecoveryBatch>, Status> batch_for_code(
    std::span<const std::uint8_t> key, const common::TotpParams& params, const ReplayState& replay,
    const Code& code, const Policy& policy, TimePoint now);

// ---- one checked code, with the lockout bookkeeping ----------------------------
struct Attempt {
  Status status = Status::internal_error;
  bool changed = false;  // the record must be written back
  bool recovery_code_used = false;
  bool lockout_started = false;
  bool fenced = false;  // refused by the crash fence: not counted, nothing written
  std::optional<TimePoint> locked_until;
  std::optional<std::uint32_t> failures_left;
  std::optional<std::int64_t> skew_seconds;
  std::optional<std::int64_t> clock_moved_seconds;
};

// Counts a checked code: success resets the lockout state, a failure counts
// toward it (wrong, replayed and used codes alike). `failure` is what a
// failure that starts no lockout is called: wrong_code, or replayed for the
// right code of a step already accepted.
void settle(Attempt& attempt, UserRecord& record, bool accepted, const Policy& policy,
            TimePoint now, Status failure = Status::wrong_code);
Status failure_of(const TotpMatch& match);
void note_skew(Attempt& attempt, UserRecord& record, const TotpMatch& match);
// A code that cannot be right by its shape alone (see checks.cpp).
bool malformed_code(const Code& code, unsigned digits) noexcept;
// Inside a store update: `code` against the active secret or, when the caller
// found one before the update, that unused recovery code (see checks.cpp).
Attempt prove(UserRecord& record, const Code& code, const std::optional<std::string>& recovery_hash,
              const Policy& policy, TimePoint now);
Response refusal(const Attempt& attempt);
// The operation's own event, then the lockout and skew it caused.
void audit_attempt(AuditLog& log, AuditEvent event, const Attempt& attempt);

// ---- remembered logins (remember.hpp) -------------------------------------------
// Both settings on (the daemon's remember_seconds, the module's remember), a
// root peer, and a source to remember: `request` may open or use a window.
template <typename Request>
bool remembering(const Caller& caller, const Request& request, const Policy& policy) noexcept {
  return caller.may_remember && request.remember && !request.source.empty() &&
         policy.remember.count() > 0 && !policy.host_id.empty();
}
// This host's open windows, for status.
std::vector<protocol::RememberedWindow> open_windows(const UserRecord& record, const Policy& policy,
                                                     TimePoint now);

// ---- status --------------------------------------------------------------------
protocol::UserStatus describe(const UserRecord& record, TimePoint now, bool privileged);
// Disable and reset: the secret, its replay state and the recovery codes go.
void forget_enrollment(UserRecord& record);
bool has_state(const UserRecord& record);
std::string grace_notice(std::chrono::sys_days enforce_after, std::int64_t days_left);

}  // namespace kpanel::daemon::rules_detail
