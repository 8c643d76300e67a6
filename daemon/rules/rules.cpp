#include "daemon/rules/rules.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <expected>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/base32.hpp"
#include "common/otpauth_uri.hpp"
#include "common/qr.hpp"
#include "common/random.hpp"
#include "common/recovery_code.hpp"
#include "common/totp.hpp"
#include "daemon/rules/lockout.hpp"

namespace kpanel::daemon {
namespace {

namespace protocol = common::protocol;
using common::TimePoint;
using protocol::LoginDecision;
using protocol::Response;
using protocol::Status;

// How far from now a refused code is still looked for, to spot a phone whose
// clock is off: logged and kept for admins, never told to the client.
constexpr std::int64_t kSkewSearchSteps = 10;

// ---- replies -----------------------------------------------------------------

Response reply(Status status) noexcept {
  Response response;
  response.status = status;
  return response;
}

Response reply_ok(protocol::Result result) {
  Response response;
  response.status = Status::ok;
  response.result = std::move(result);
  return response;
}

Response reply_locked(TimePoint until) noexcept {
  Response response = reply(Status::locked);
  response.locked_until = common::to_unix(until);
  return response;
}

// ---- audit helpers -------------------------------------------------------------

AuditEvent make_event(AuditEventKind kind, const Caller& caller, const std::string& user) {
  AuditEvent event;
  event.kind = kind;
  event.user = user;
  event.peer_uid = caller.uid;
  return event;
}

AuditEvent make_event(AuditEventKind kind, const Caller& caller, const std::string& user,
                      const std::string& service, const std::string& rhost,
                      const std::string& tty) {
  AuditEvent event = make_event(kind, caller, user);
  event.service = service;
  event.rhost = rhost;
  event.tty = tty;
  return event;
}

Response refuse(AuditLog& log, AuditEvent event, Status status) {
  event.outcome = status;
  log.record(event);
  return reply(status);
}

// The failure itself is logged once, by LoggedStore (store_health.hpp), not
// once per refused request.
Response store_failed(AuditLog& log, AuditEvent event, const StoreError& error) {
  event.store_error = error.kind;
  return refuse(log, std::move(event), Status::store_unavailable);
}

Response internal_failure(AuditLog& log, AuditEvent event, const std::string& what) {
  log.error(std::string(to_string(event.kind)) + " for " + event.user + ": " + what);
  return refuse(log, std::move(event), Status::internal_error);
}

// Every public method runs its body through this: no exception leaves Rules.
template <typename Body>
Response guarded(AuditLog& log, std::string_view operation, Body&& body) noexcept {
  try {
    return std::forward<Body>(body)();
  } catch (const std::exception& e) {
    log.error(std::string(operation) + ": " + e.what());
  } catch (...) {
    log.error(std::string(operation) + ": unknown exception");
  }
  return reply(Status::internal_error);
}

// ---- TOTP codes ----------------------------------------------------------------

struct TotpMatch {
  std::optional<std::int64_t> step;          // accepted: inside the window, fresh
  std::optional<std::int64_t> skew_seconds;  // refused, but right for a fresh step further out
  // The last accepted step lies ahead of the window: this host's clock moved
  // back by about this much (negative seconds).
  std::optional<std::int64_t> clock_moved_seconds;
  bool replayed = false;  // refused: right for a step in the window already accepted
  bool failed = false;    // HMAC failure: neither right nor wrong
};

// The replay state a code is checked against: its own secret's. A pending
// secret has accepted nothing yet, so a new phone's first code is fresh even
// in the step of the old phone's last one.
struct ReplayState {
  std::optional<std::int64_t> last_step;
  std::vector<StepRun> used_steps;
};

ReplayState replay_state_of(const UserRecord& record) {
  ReplayState state{record.last_step, record.used_steps};
  // Every step up to last_step may have been used when that is all we know.
  if (state.used_steps.empty() && state.last_step) {
    state.used_steps = step_runs_up_to(*state.last_step);
  }
  return state;
}

// The record's replay state after accepting `step` of its active secret.
void accept_step(UserRecord& record, std::int64_t step) {
  ReplayState state = replay_state_of(record);
  mark_step_used(state.used_steps, step);
  record.last_step = step;
  record.used_steps = std::move(state.used_steps);
}

// Checks a typed code against `key` for the steps around `now`. A step is
// fresh when it was never accepted (RFC 6238 §5.2: a code works once) and is
// after the last accepted step; but when that step lies ahead of the window
// (the clock moved back: an NTP step, a VM restored), any step never accepted
// is fresh, so a jump back does not lock users out for its length and still
// never reopens a used step. Every candidate in the window is computed and
// compared in constant time whether or not one matches; only a refused code
// is then looked for further out (the skew hint), which tells a timer nothing
// the refusal itself does not. Whether a refused code was a replay is read off
// the scan's result, after it has run in full. Authenticator apps show
// "123 456", so spaces are ignored.
TotpMatch match_totp(std::span<const std::uint8_t> key, const common::TotpParams& params,
                     std::string_view typed, const ReplayState& replay, unsigned window,
                     TimePoint now) {
  TotpMatch match;
  common::SecureString code;
  for (const char c : typed) {
    if (c != ' ') {
      code.push_back(c);
    }
  }
  if (!common::looks_like_totp_code(code.view(), params.digits)) {
    return match;
  }

  const auto generator = common::CodeGenerator::create(key, params);
  if (!generator) {
    match.failed = true;
    return match;
  }
  const std::int64_t center = common::totp_step(now, params.period);
  const auto inner = static_cast<std::int64_t>(window);
  const bool moved_back = replay.last_step && *replay.last_step > center + inner;
  if (moved_back) {
    match.clock_moved_seconds =
        (center - *replay.last_step) * static_cast<std::int64_t>(params.period);
  }
  const auto fresh = [&](std::int64_t step) {
    return !step_used(replay.used_steps, step) &&
           (moved_back || !replay.last_step || step > *replay.last_step);
  };
  // Every step of the window, none skipped: the latest fresh one with this
  // code wins; a code right only for spent steps is a replay.
  bool right = false;
  for (std::int64_t step = center - inner; step <= center + inner; ++step) {
    const auto candidate = generator->at_step(step);
    if (!candidate) {
      match.failed = true;
      return match;
    }
    if (common::constant_time_equal(candidate->view(), code.view())) {
      right = true;
      if (fresh(step)) {
        match.step = step;
      }
    }
  }
  if (match.step) {
    return match;
  }
  match.replayed = right;
  const std::int64_t reach = std::max(inner, kSkewSearchSteps);
  std::optional<std::int64_t> outer_offset;
  // All of them, with no exit at a match: when the search stopped would tell
  // a timer which step a wrong guess is right for, and it would work there.
  for (std::int64_t distance = inner + 1; distance <= reach; ++distance) {
    // Nearest wins; at one distance, behind (a slow phone) before ahead.
    for (const std::int64_t offset : {-distance, distance}) {
      const std::int64_t step = center + offset;
      const auto candidate = generator->at_step(step);
      if (!candidate) {
        match.failed = true;
        return match;
      }
      if (common::constant_time_equal(candidate->view(), code.view()) && fresh(step) &&
          !outer_offset) {
        outer_offset = offset;
      }
    }
  }
  if (outer_offset) {
    match.skew_seconds = *outer_offset * static_cast<std::int64_t>(params.period);
  }
  return match;
}

// ---- recovery codes ------------------------------------------------------------

std::uint32_t recovery_codes_left(const UserRecord& record) {
  return static_cast<std::uint32_t>(
      std::count_if(record.recovery_codes.begin(), record.recovery_codes.end(),
                    [](const RecoveryCodeRecord& code) { return !code.used; }));
}

// The stored hash of the unused recovery code `typed` is, if any. Slow (one
// scrypt per unused code), so it runs before the store update; the update
// then marks that hash used only if it still is unused, so two requests with
// the same code cannot both succeed.
std::optional<std::string> find_recovery_hash(const UserRecord& record, std::string_view typed) {
  if (!common::looks_like_recovery_code(typed)) {
    return std::nullopt;
  }
  const auto normalized = common::normalize_recovery_code(typed);
  if (!normalized) {
    return std::nullopt;
  }
  for (const RecoveryCodeRecord& code : record.recovery_codes) {
    if (!code.used && common::verify_recovery_code(normalized->view(), code.hash)) {
      return code.hash;
    }
  }
  return std::nullopt;
}

bool consume_recovery_code(UserRecord& record, const std::string& hash) {
  for (RecoveryCodeRecord& code : record.recovery_codes) {
    if (!code.used && code.hash == hash) {
      code.used = true;
      return true;
    }
  }
  return false;
}

// A new set: the codes to show the user once, and their hashes to store.
struct RecoveryBatch {
  std::vector<common::SecureString> codes;
  std::vector<RecoveryCodeRecord> records;
};

std::optional<RecoveryBatch> make_recovery_codes(unsigned count) {
  auto codes = common::generate_recovery_codes(count);
  if (!codes) {
    return std::nullopt;
  }
  RecoveryBatch batch;
  for (const common::SecureString& code : *codes) {
    const auto normalized = common::normalize_recovery_code(code.view());
    if (!normalized) {
      return std::nullopt;
    }
    auto hash = common::hash_recovery_code(normalized->view());
    if (!hash) {
      return std::nullopt;
    }
    batch.records.push_back(RecoveryCodeRecord{std::move(*hash), false});
  }
  batch.codes = std::move(*codes);
  return batch;
}

// Hashing recovery codes (scrypt) is too slow to do inside a store update, so
// a batch is made beforehand, judged on the record as loaded, and only for a
// code about to be accepted against `key`. nullopt inside: no batch needed
// (the update decides again; should the record have changed, it makes one).
// Unexpected: making the batch failed.
std::expected<std::optional<RecoveryBatch>, Status> batch_for_code(
    std::span<const std::uint8_t> key, const common::TotpParams& params, const ReplayState& replay,
    std::string_view typed, const Policy& policy, TimePoint now) {
  if (!match_totp(key, params, typed, replay, policy.window, now).step) {
    return std::nullopt;
  }
  auto batch = make_recovery_codes(policy.recovery_codes);
  if (!batch) {
    return std::unexpected(Status::internal_error);
  }
  return batch;
}

// ---- one checked code, with the lockout bookkeeping ----------------------------

struct Attempt {
  Status status = Status::internal_error;
  bool changed = false;  // the record must be written back
  bool recovery_code_used = false;
  bool lockout_started = false;
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
            TimePoint now, Status failure = Status::wrong_code) {
  attempt.changed = true;
  if (accepted) {
    register_success(record);
    attempt.status = Status::ok;
  } else if (register_failure(record, policy, now)) {
    attempt.status = Status::locked;
    attempt.lockout_started = true;
    attempt.locked_until = record.locked_until;
  } else {
    attempt.status = failure;
    attempt.failures_left = failures_left(record, policy);
  }
}

Status failure_of(const TotpMatch& match) {
  return match.replayed ? Status::replayed : Status::wrong_code;
}

void note_skew(Attempt& attempt, UserRecord& record, const TotpMatch& match) {
  if (!match.skew_seconds) {
    return;
  }
  record.last_skew_seconds = match.skew_seconds;
  attempt.skew_seconds = match.skew_seconds;
}

// A code that cannot be right by its shape alone: neither the enrollment's
// digits (spaces ignored: apps show "123 456") nor a recovery code's length.
// Such a slip of the finger is refused without counting toward lockout: no
// secret was compared, and the shape of a code is public anyway.
bool malformed_code(std::string_view typed, unsigned digits) noexcept {
  if (common::looks_like_recovery_code(typed)) {
    return false;
  }
  std::size_t length = 0;
  bool all_digits = true;
  for (const char c : typed) {
    if (c != ' ') {
      ++length;
      all_digits = all_digits && c >= '0' && c <= '9';
    }
  }
  return !all_digits || length != digits;
}

// Inside a store update: `typed` against the active secret or, when the caller
// found one before the update, that unused recovery code. This is what verify,
// enroll --replace, disable and regenerate share. A locked account is refused
// without looking at the code.
Attempt prove(UserRecord& record, std::string_view typed,
              const std::optional<std::string>& recovery_hash, const Policy& policy,
              TimePoint now) {
  Attempt attempt;
  if (!record.active) {
    attempt.status = Status::not_enrolled;
    return attempt;
  }
  if (is_locked(record, now)) {
    attempt.status = Status::locked;
    attempt.locked_until = record.locked_until;
    return attempt;
  }
  if (malformed_code(typed, record.active->params.digits)) {
    attempt.status = Status::malformed_code;  // nothing written
    return attempt;
  }
  const TotpMatch match = match_totp(record.active->secret.view(), record.active->params, typed,
                                     replay_state_of(record), policy.window, now);
  if (match.failed) {
    return attempt;  // internal_error, nothing written
  }
  attempt.clock_moved_seconds = match.clock_moved_seconds;
  bool accepted = false;
  if (match.step) {
    accept_step(record, *match.step);
    record.last_skew_seconds.reset();  // the phone's clock is right again
    accepted = true;
  } else if (recovery_hash && consume_recovery_code(record, *recovery_hash)) {
    accepted = true;
    attempt.recovery_code_used = true;
  }
  note_skew(attempt, record, match);
  settle(attempt, record, accepted, policy, now, failure_of(match));
  return attempt;
}

Response refusal(const Attempt& attempt) {
  if (attempt.status == Status::locked && attempt.locked_until) {
    return reply_locked(*attempt.locked_until);
  }
  Response response = reply(attempt.status);
  if (attempt.status == Status::wrong_code || attempt.status == Status::replayed ||
      attempt.status == Status::wrong_password) {
    response.failures_left = attempt.failures_left;
  }
  return response;
}

// The operation's own event, then the lockout and skew it caused.
void audit_attempt(AuditLog& log, AuditEvent event, const Attempt& attempt) {
  const AuditEvent base = event;
  event.outcome = attempt.status;
  event.recovery_code_used = attempt.recovery_code_used;
  event.failures_left = attempt.failures_left;
  if (attempt.locked_until) {
    event.locked_until = common::to_unix(*attempt.locked_until);
  }
  log.record(event);
  if (attempt.skew_seconds) {
    AuditEvent skew = base;
    skew.kind = AuditEventKind::clock_skew;
    skew.outcome = attempt.status;  // the refused code's outcome
    skew.skew_seconds = attempt.skew_seconds;
    log.record(skew);
  }
  if (attempt.clock_moved_seconds) {
    AuditEvent moved = base;
    moved.kind = AuditEventKind::clock_moved;
    moved.outcome = attempt.status;  // what became of the code checked meanwhile
    moved.clock_moved_seconds = attempt.clock_moved_seconds;
    log.record(moved);
  }
  if (attempt.lockout_started && attempt.locked_until) {
    AuditEvent lockout = base;
    lockout.kind = AuditEventKind::lockout;
    lockout.outcome = Status::locked;
    lockout.locked_until = common::to_unix(*attempt.locked_until);
    log.record(lockout);
  }
}

// ---- status --------------------------------------------------------------------

protocol::UserStatus describe(const UserRecord& record, TimePoint now, bool privileged) {
  protocol::UserStatus status;
  status.user = record.user;
  status.enrolled = record.active.has_value();
  if (record.active) {
    status.enrolled_at = common::to_unix(record.active->enrolled_at);
    status.recovery_codes_left = recovery_codes_left(record);
  }
  if (record.locked_until && is_locked(record, now)) {
    status.locked_until = common::to_unix(*record.locked_until);
  }
  status.enrollment_pending = record.pending.has_value() && now < record.pending->expires_at;
  if (privileged) {
    status.last_skew_seconds = record.last_skew_seconds;
  }
  return status;
}

// Disable and reset: the secret is destroyed, and with it the replay state
// that guarded it. A new enrollment gets a fresh secret, so no code seen
// before can match it; keeping last_step would only refuse the new phone's
// first code for up to a step after an admin reset.
void forget_enrollment(UserRecord& record) {
  record.active.reset();
  record.pending.reset();
  record.recovery_codes.clear();
  record.last_step.reset();
  record.used_steps.clear();
  record.last_skew_seconds.reset();
}

bool has_state(const UserRecord& record) {
  return record.active || record.pending || !record.recovery_codes.empty() ||
         record.failures != 0 || record.lockout_level != 0 || record.locked_until;
}

std::string grace_notice(std::chrono::sys_days enforce_after, std::int64_t days_left) {
  const std::string date = common::format_iso8601(TimePoint{enforce_after}).substr(0, 10);
  return "Two-factor authentication will be required from " + date + " (" +
         std::to_string(days_left) + (days_left == 1 ? " day" : " days") +
         " left): run `kpanel-totp enroll` to set it up.";
}

}  // namespace

Rules::Rules(Policy policy, Store& store, const common::Clock& clock, PasswordChecker& passwords,
             const AccountDirectory& accounts, AuditLog& audit)
    : store_(store),
      clock_(clock),
      passwords_(passwords),
      accounts_(accounts),
      audit_(audit),
      policy_(std::make_shared<const Policy>(std::move(policy))) {}

void Rules::set_policy(Policy policy) {
  auto replacement = std::make_shared<const Policy>(std::move(policy));
  const std::lock_guard lock(policy_mutex_);
  policy_ = std::move(replacement);
}

std::shared_ptr<const Policy> Rules::policy() const {
  const std::lock_guard lock(policy_mutex_);
  return policy_;
}

// ---- login_check ------------------------------------------------------------------

Response Rules::login_check(const Caller& caller, const std::string& user,
                            const protocol::LoginCheckRequest& request) noexcept {
  return guarded(audit_, "login_check", [&] {
    const auto policy = this->policy();
    const TimePoint now = clock_.now();
    AuditEvent event = make_event(AuditEventKind::login_check, caller, user, request.service,
                                  request.rhost, request.tty);
    const auto loaded = store_.load(user);
    if (!loaded) {
      return store_failed(audit_, event, loaded.error());
    }
    const std::optional<UserRecord>& record = *loaded;
    const bool enrolled = record && record->active;

    protocol::LoginCheckResult result;
    const auto decide = [&](AuditEventKind kind, LoginDecision decision) {
      result.decision = decision;
      event.kind = kind;
      event.decision = decision;
      // The reply is ok (the module acts on the decision); the log says what
      // happened to the login.
      if (decision == LoginDecision::refuse) {
        event.outcome = Status::not_enrolled;
      } else if (decision == LoginDecision::locked) {
        event.outcome = Status::locked;
      }
      audit_.record(event);
      return reply_ok(result);
    };

    // Break-glass: exempt_group members never need a code, enrolled or not.
    if (!policy->exempt_group.empty() && accounts_.is_member(user, policy->exempt_group)) {
      return decide(AuditEventKind::exempt_login, LoginDecision::pass);
    }
    if (!enrolled) {
      if (policy->enforce_after) {
        const TimePoint enforced_from{*policy->enforce_after};  // 00:00 UTC that day
        if (now < enforced_from) {
          const std::int64_t days =
              std::chrono::ceil<std::chrono::days>(enforced_from - now).count();
          result.notice = grace_notice(*policy->enforce_after, days);
          event.days_left = days;
          return decide(AuditEventKind::grace_login, LoginDecision::ignore);
        }
      }
      if (request.enroll) {
        return decide(AuditEventKind::login_check, LoginDecision::enroll);
      }
      // Once an enforce_after date has passed, nullok no longer lets anyone in.
      if (request.nullok && !policy->enforce_after) {
        return decide(AuditEventKind::nullok_login, LoginDecision::ignore);
      }
      return decide(AuditEventKind::login_check, LoginDecision::refuse);
    }
    if (is_locked(*record, now)) {
      result.locked_until = common::to_unix(*record->locked_until);
      event.locked_until = result.locked_until;
      return decide(AuditEventKind::login_check, LoginDecision::locked);
    }
    // Not logged: the verify that follows the prompt is.
    result.decision = LoginDecision::prompt;
    return reply_ok(result);
  });
}

// ---- verify --------------------------------------------------------------------------

Response Rules::verify(const Caller& caller, const std::string& user,
                       const protocol::VerifyRequest& request) noexcept {
  return guarded(audit_, "verify", [&] {
    const auto policy = this->policy();
    const TimePoint now = clock_.now();
    AuditEvent event = make_event(AuditEventKind::verify, caller, user, request.service,
                                  request.rhost, request.tty);
    // Only a typed recovery code needs the record ahead of the update (to
    // hash outside it); a TOTP code, the usual case, goes straight to it.
    std::optional<std::string> recovery_hash;
    std::optional<SlowCheckReservations::Reservation> reservation;  // held until counted
    if (common::looks_like_recovery_code(request.code.view())) {
      const auto loaded = store_.load(user);
      if (!loaded) {
        return store_failed(audit_, event, loaded.error());
      }
      if (const auto& record = *loaded; record && record->active && !is_locked(*record, now)) {
        reservation = slow_checks_.reserve(user, *record, *policy);
        if (!reservation) {
          return refuse(audit_, event, Status::busy);
        }
        recovery_hash = find_recovery_hash(*record, request.code.view());
      }
    }

    // Check and consume in one update: of concurrent requests with one code,
    // exactly one is accepted, and the acceptance is on disk before the reply.
    Attempt attempt;
    std::uint32_t codes_left = 0;
    const auto updated = store_.update(user, [&](UserRecord& record) {
      attempt = prove(record, request.code.view(), recovery_hash, *policy, now);
      codes_left = recovery_codes_left(record);
      return attempt.changed;
    });
    if (!updated) {
      return store_failed(audit_, event, updated.error());
    }
    if (attempt.status == Status::internal_error) {
      return internal_failure(audit_, event, "TOTP computation failed");
    }
    if (attempt.recovery_code_used) {
      event.recovery_codes_left = codes_left;
    }
    audit_attempt(audit_, event, attempt);
    if (attempt.status != Status::ok) {
      return refusal(attempt);
    }
    return reply_ok(protocol::VerifyResult{attempt.recovery_code_used, codes_left});
  });
}

// ---- enrollment ---------------------------------------------------------------------

Response Rules::enroll_begin(const Caller& caller, const std::string& user,
                             const protocol::EnrollBeginRequest& request) noexcept {
  return guarded(audit_, "enroll_begin", [&] {
    const auto policy = this->policy();
    const TimePoint now = clock_.now();
    const AuditEvent event = make_event(AuditEventKind::enroll_begin, caller, user, request.service,
                                        request.rhost, request.tty);
    if (!accounts_.exists(user)) {
      return refuse(audit_, event, Status::no_such_user);
    }
    const auto loaded = store_.load(user);
    if (!loaded) {
      return store_failed(audit_, event, loaded.error());
    }
    const std::optional<UserRecord>& record = *loaded;
    std::optional<std::string> recovery_hash;
    if (!request.replace && record && record->active) {
      return refuse(audit_, event, Status::already_enrolled);
    }
    std::optional<SlowCheckReservations::Reservation> reservation;  // held until counted
    if (request.replace && record && record->active && !is_locked(*record, now) &&
        common::looks_like_recovery_code(request.proof.view())) {
      reservation = slow_checks_.reserve(user, *record, *policy);
      if (!reservation) {
        return refuse(audit_, event, Status::busy);
      }
      recovery_hash = find_recovery_hash(*record, request.proof.view());
    }

    auto secret = common::generate_totp_secret();
    if (!secret) {
      return internal_failure(audit_, event, "random number generator failed");
    }
    const PendingEnrollment pending{*secret, policy->totp, now + policy->enrollment_timeout};

    // A new pending enrollment replaces an older one. Changing phones needs a
    // proof, checked like verify; the active secret keeps working until confirm.
    Attempt attempt;
    const auto updated = store_.update(user, [&](UserRecord& current) {
      attempt = Attempt{};
      if (request.replace) {
        attempt = prove(current, request.proof.view(), recovery_hash, *policy, now);
        if (attempt.status != Status::ok) {
          return attempt.changed;
        }
      } else if (current.active) {
        attempt.status = Status::already_enrolled;
        return false;
      }
      attempt.status = Status::ok;
      current.pending = pending;
      return true;
    });
    if (!updated) {
      return store_failed(audit_, event, updated.error());
    }
    if (attempt.status == Status::internal_error) {
      return internal_failure(audit_, event, "TOTP computation failed");
    }
    audit_attempt(audit_, event, attempt);
    if (attempt.status != Status::ok) {
      return refusal(attempt);
    }

    const common::SecureString secret_base32 = common::base32_encode(secret->view());
    const common::SecureString uri = common::build_otpauth_uri(
        policy->issuer, user, common::short_host_name(), secret_base32.view(), policy->totp);
    protocol::EnrollBeginResult result;
    result.uri = uri;
    result.secret_base32 = secret_base32;
    result.expires_at = common::to_unix(pending.expires_at);
    if (request.want_qr_text) {
      // Rendered here so the PAM module never links libqrencode (it stays small).
      // Plain text: OpenSSH shows colour escapes literally.
      auto text = common::qr_text(result.uri.view());
      if (text) result.qr_text = std::move(*text);
    }
    return reply_ok(std::move(result));
  });
}

Response Rules::enroll_confirm(const Caller& caller, const std::string& user,
                               const protocol::EnrollConfirmRequest& request) noexcept {
  return guarded(audit_, "enroll_confirm", [&] {
    const auto policy = this->policy();
    const TimePoint now = clock_.now();
    AuditEvent event = make_event(AuditEventKind::enroll_confirm, caller, user, request.service,
                                  request.rhost, request.tty);
    const auto loaded = store_.load(user);
    if (!loaded) {
      return store_failed(audit_, event, loaded.error());
    }

    // A first enrollment gets recovery codes, hashed before the update.
    std::optional<RecoveryBatch> batch;
    if (const auto& record = *loaded; record && record->pending && !record->active &&
                                      now < record->pending->expires_at &&
                                      !is_locked(*record, now)) {
      auto made = batch_for_code(record->pending->secret.view(), record->pending->params,
                                 ReplayState{}, request.code.view(), *policy, now);
      if (!made) {
        return internal_failure(audit_, event, "making recovery codes failed");
      }
      batch = std::move(*made);
    }

    Attempt attempt;
    std::vector<common::SecureString> issued;
    std::uint32_t codes_left = 0;
    const auto updated = store_.update(user, [&](UserRecord& record) {
      attempt = Attempt{};
      issued.clear();
      if (!record.pending) {
        attempt.status = Status::no_pending_enrollment;
        return false;
      }
      if (now >= record.pending->expires_at) {
        attempt.status = Status::no_pending_enrollment;
        record.pending.reset();  // tidy up the expired one
        return true;
      }
      if (is_locked(record, now)) {
        attempt.status = Status::locked;
        attempt.locked_until = record.locked_until;
        return false;
      }
      if (malformed_code(request.code.view(), record.pending->params.digits)) {
        attempt.status = Status::malformed_code;
        return false;
      }
      // The new secret's own replay state, which is empty: the old phone's
      // last code, maybe in this very step, says nothing about the new one.
      const TotpMatch match = match_totp(record.pending->secret.view(), record.pending->params,
                                         request.code.view(), ReplayState{}, policy->window, now);
      if (match.failed) {
        return false;  // internal_error
      }
      const bool first = !record.active;
      if (match.step && first && !batch) {  // the record changed since it was loaded
        batch = make_recovery_codes(policy->recovery_codes);
        if (!batch) {
          return false;  // internal_error
        }
      }
      note_skew(attempt, record, match);
      settle(attempt, record, match.step.has_value(), *policy, now, failure_of(match));
      if (!match.step) {
        return true;
      }

      // From now on the record's replay state is the new secret's, in which
      // the confirming code counts as used.
      record.last_step = match.step;
      record.used_steps.clear();
      mark_step_used(record.used_steps, *match.step);
      record.last_skew_seconds.reset();
      record.active = Enrollment{record.pending->secret, record.pending->params, now};
      record.pending.reset();
      // A replace keeps the recovery codes: they are not on the phone.
      if (first) {
        record.recovery_codes = batch->records;
        issued = batch->codes;
      }
      codes_left = recovery_codes_left(record);
      return true;
    });
    if (!updated) {
      return store_failed(audit_, event, updated.error());
    }
    if (attempt.status == Status::internal_error) {
      return internal_failure(audit_, event, "TOTP computation or making recovery codes failed");
    }
    if (attempt.status == Status::ok) {
      event.recovery_codes_left = codes_left;
    }
    audit_attempt(audit_, event, attempt);
    if (attempt.status != Status::ok) {
      return refusal(attempt);
    }
    return reply_ok(protocol::RecoveryCodesResult{std::move(issued)});
  });
}

// ---- status ------------------------------------------------------------------------------

Response Rules::status(const Caller& caller, const std::string& user,
                       const protocol::StatusRequest& /*request*/) noexcept {
  return guarded(audit_, "status", [&] {
    const TimePoint now = clock_.now();
    const auto loaded = store_.load(user);
    if (!loaded) {
      return store_failed(audit_, make_event(AuditEventKind::status, caller, user), loaded.error());
    }
    if (!loaded->has_value()) {
      if (!accounts_.exists(user)) {
        return reply(Status::no_such_user);
      }
      protocol::UserStatus status;
      status.user = user;
      return reply_ok(protocol::StatusResult{status});
    }
    return reply_ok(protocol::StatusResult{describe(**loaded, now, caller.privileged)});
  });
}

// ---- disable and recovery codes -------------------------------------------------------------

Response Rules::disable(const Caller& caller, const std::string& user,
                        const protocol::DisableRequest& request) noexcept {
  return guarded(audit_, "disable", [&] {
    const auto policy = this->policy();
    const TimePoint now = clock_.now();
    AuditEvent event = make_event(AuditEventKind::disable, caller, user);
    const auto loaded = store_.load(user);
    if (!loaded) {
      return store_failed(audit_, event, loaded.error());
    }
    const std::optional<UserRecord>& record = *loaded;
    if (!record || !record->active) {
      return refuse(audit_, event, Status::not_enrolled);
    }
    if (is_locked(*record, now)) {
      event.outcome = Status::locked;
      event.locked_until = common::to_unix(*record->locked_until);
      audit_.record(event);
      return reply_locked(*record->locked_until);
    }

    // The password first and outside the update: PAM may take seconds. A wrong
    // password counts as a failure and leaves the code unchecked and unspent.
    // Parallel requests may not together check more passwords than the user
    // has failures left.
    const auto reservation = slow_checks_.reserve(user, *record, *policy);
    if (!reservation) {
      return refuse(audit_, event, Status::busy);
    }
    const auto password_ok = passwords_.check(user, request.password);
    if (!password_ok) {
      return internal_failure(audit_, event, "password check: " + password_ok.error().message);
    }
    Attempt attempt;
    const auto updated = store_.update(user, [&](UserRecord& current) {
      if (!*password_ok) {
        attempt = Attempt{};
        if (!current.active) {
          attempt.status = Status::not_enrolled;
        } else if (is_locked(current, now)) {
          attempt.status = Status::locked;
          attempt.locked_until = current.locked_until;
        } else {
          settle(attempt, current, false, *policy, now);
          if (attempt.status == Status::wrong_code) {
            attempt.status = Status::wrong_password;
          }
        }
        return attempt.changed;
      }
      // Only a TOTP code: whoever has just the password and a recovery code
      // should not be able to turn the second factor off.
      attempt = prove(current, request.code.view(), std::nullopt, *policy, now);
      if (attempt.status == Status::ok) {
        forget_enrollment(current);
      }
      return attempt.changed;
    });
    if (!updated) {
      return store_failed(audit_, event, updated.error());
    }
    if (attempt.status == Status::internal_error) {
      return internal_failure(audit_, event, "TOTP computation failed");
    }
    audit_attempt(audit_, event, attempt);
    if (attempt.status != Status::ok) {
      return refusal(attempt);
    }
    return reply_ok(protocol::EmptyResult{});
  });
}

Response Rules::regenerate_recovery_codes(
    const Caller& caller, const std::string& user,
    const protocol::RegenerateRecoveryCodesRequest& request) noexcept {
  return guarded(audit_, "recovery_regenerate", [&] {
    const auto policy = this->policy();
    const TimePoint now = clock_.now();
    AuditEvent event = make_event(AuditEventKind::recovery_regenerate, caller, user);
    const auto loaded = store_.load(user);
    if (!loaded) {
      return store_failed(audit_, event, loaded.error());
    }

    std::optional<RecoveryBatch> batch;
    if (const auto& record = *loaded; record && record->active && !is_locked(*record, now)) {
      auto made = batch_for_code(record->active->secret.view(), record->active->params,
                                 replay_state_of(*record), request.code.view(), *policy, now);
      if (!made) {
        return internal_failure(audit_, event, "making recovery codes failed");
      }
      batch = std::move(*made);
    }

    Attempt attempt;
    std::vector<common::SecureString> issued;
    const auto updated = store_.update(user, [&](UserRecord& record) {
      issued.clear();
      // A TOTP code only: replacing the recovery codes is not a recovery.
      attempt = prove(record, request.code.view(), std::nullopt, *policy, now);
      if (attempt.status != Status::ok) {
        return attempt.changed;
      }
      if (!batch) {
        batch = make_recovery_codes(policy->recovery_codes);
      }
      if (!batch) {
        attempt = Attempt{};  // internal_error, nothing written
        return false;
      }
      record.recovery_codes = batch->records;
      issued = batch->codes;
      return true;
    });
    if (!updated) {
      return store_failed(audit_, event, updated.error());
    }
    if (attempt.status == Status::internal_error) {
      return internal_failure(audit_, event, "TOTP computation or making recovery codes failed");
    }
    if (attempt.status == Status::ok) {
      event.recovery_codes_left = static_cast<std::uint32_t>(issued.size());
    }
    audit_attempt(audit_, event, attempt);
    if (attempt.status != Status::ok) {
      return refusal(attempt);
    }
    return reply_ok(protocol::RecoveryCodesResult{std::move(issued)});
  });
}

// ---- admin ----------------------------------------------------------------------------------

Response Rules::admin_list(const Caller& caller,
                           const protocol::AdminListRequest& /*request*/) noexcept {
  return guarded(audit_, "admin_list", [&] {
    const TimePoint now = clock_.now();
    const auto records = store_.list();
    if (!records) {
      return store_failed(audit_, make_event(AuditEventKind::admin_list, caller, ""),
                          records.error());
    }
    protocol::AdminListResult result;
    result.users.reserve(records->size());
    for (const UserRecord& record : *records) {
      result.users.push_back(describe(record, now, caller.privileged));
    }
    return reply_ok(std::move(result));
  });
}

// Resetting a name the store has nothing for: not_enrolled for an account,
// no_such_user for a name that is not one. A record left behind by a deleted
// account can still be reset.
Response Rules::admin_reset(const Caller& caller, const std::string& user,
                            const protocol::AdminResetRequest& /*request*/) noexcept {
  return guarded(audit_, "admin_reset", [&] {
    const AuditEvent event = make_event(AuditEventKind::reset, caller, user);
    bool existed = false;
    const auto updated = store_.update(user, [&](UserRecord& record) {
      existed = has_state(record);
      if (!existed) {
        return false;
      }
      forget_enrollment(record);
      register_success(record);  // failures, lockout and level
      return true;
    });
    if (!updated) {
      return store_failed(audit_, event, updated.error());
    }
    if (!existed) {
      return refuse(audit_, event,
                    accounts_.exists(user) ? Status::not_enrolled : Status::no_such_user);
    }
    audit_.record(event);
    return reply_ok(protocol::EmptyResult{});
  });
}

// Unlocking an account that is not locked is a success (nothing to do).
Response Rules::admin_unlock(const Caller& caller, const std::string& user,
                             const protocol::AdminUnlockRequest& /*request*/) noexcept {
  return guarded(audit_, "admin_unlock", [&] {
    const AuditEvent event = make_event(AuditEventKind::unlock, caller, user);
    bool known = false;
    const auto updated = store_.update(user, [&](UserRecord& record) {
      known = has_state(record);
      const bool locked_state =
          record.failures != 0 || record.lockout_level != 0 || record.locked_until;
      register_success(record);
      return locked_state;
    });
    if (!updated) {
      return store_failed(audit_, event, updated.error());
    }
    if (!known && !accounts_.exists(user)) {
      return refuse(audit_, event, Status::no_such_user);
    }
    audit_.record(event);
    return reply_ok(protocol::EmptyResult{});
  });
}

void Rules::record_refused(const Caller& caller, const protocol::Request& request,
                           AuditEventKind operation, const std::string& user,
                           Status status) noexcept {
  try {
    AuditEvent event = make_event(operation, caller, user);
    std::visit(
        [&event](const auto& r) {
          if constexpr (requires { r.rhost; }) {
            event.service = r.service;
            event.rhost = r.rhost;
            event.tty = r.tty;
          }
        },
        request);
    event.outcome = status;
    audit_.record(event);
  } catch (...) {
    audit_.error("recording a refused request failed");
  }
}

}  // namespace kpanel::daemon
