#include "daemon/rules/checks.hpp"

#include <algorithm>

#include "common/recovery_code.hpp"
#include "daemon/rules/lockout.hpp"

namespace kpanel::daemon::rules_detail {
namespace {

// How far from now a refused code is still looked for, to spot a phone whose
// clock is off: logged and kept for admins, never told to the client.
constexpr std::int64_t kSkewSearchSteps = 10;

}  // namespace

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

// ---- how soon each update must be on disk -------------------------------------

// An 8-digit code may be an imported scratch code, consumed like a recovery
// code: durable too (for an 8-digit enrollment's TOTP codes that costs an
// fsync it would not need; a used scratch code must never come back).
Durability durability_of(protocol::Op op, const Code& code) noexcept {
  if (op == protocol::Op::verify && code.kind() != Code::Kind::recovery &&
      !code.may_be_scratch_code()) {
    return Durability::deferred;
  }
  return durability_of(op);
}

Durability durability_of(protocol::Op /*op*/) noexcept { return Durability::durable; }

// ---- TOTP codes ----------------------------------------------------------------

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
// the scan's result, after it has run in full. The code's digits come
// classified (spaces already dropped); only their count is the enrollment's.
TotpMatch match_totp(std::span<const std::uint8_t> key, const common::TotpParams& params,
                     const Code& code, const ReplayState& replay, unsigned window, TimePoint now,
                     const std::optional<Fence>& fence) {
  TotpMatch match;
  const std::string_view digits = code.digits();
  if (code.kind() != Code::Kind::totp || digits.size() != params.digits) {
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
  // code wins; a code right only for spent steps is a replay, one right for
  // a fresh step the crash fence closes is fenced.
  bool right = false;
  bool right_but_fenced = false;
  for (std::int64_t step = center - inner; step <= center + inner; ++step) {
    const auto candidate = generator->at_step(step);
    if (!candidate) {
      match.failed = true;
      return match;
    }
    if (common::constant_time_equal(candidate->view(), digits)) {
      right = true;
      if (fresh(step)) {
        if (fenced(fence, step, params.period)) {
          right_but_fenced = true;
        } else {
          match.step = step;
        }
      }
    }
  }
  if (match.step) {
    return match;
  }
  match.fenced = right_but_fenced;
  match.replayed = right && !right_but_fenced;
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
      if (common::constant_time_equal(candidate->view(), digits) && fresh(step) && !outer_offset) {
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

bool is_recovery_attempt(const UserRecord& record, const Code& code) noexcept {
  if (code.kind() == Code::Kind::recovery) {
    return true;
  }
  return code.may_be_scratch_code() && record.active &&
         record.active->params.digits != common::kScratchCodeDigits;
}

std::optional<std::string> find_recovery_hash(const UserRecord& record, const Code& code) {
  if (!is_recovery_attempt(record, code)) {
    return std::nullopt;
  }
  // Not a second classification: the kind said "10 symbols" (or 8 digits
  // that are not this enrollment's TOTP code); this checks them against the
  // alphabet (a wrong symbol is a wrong code, counted).
  const auto normalized = code.kind() == Code::Kind::recovery
                              ? common::normalize_recovery_code(code.view())
                              : common::normalize_scratch_code(code.digits());
  if (!normalized) {
    return std::nullopt;
  }
  for (const RecoveryCodeRecord& stored : record.recovery_codes) {
    if (!stored.used && common::verify_recovery_code(normalized->view(), stored.hash)) {
      return stored.hash;
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

std::optional<RecoveryCodeRecord> recovery_code_record(std::string_view normalized) {
  auto hash = common::hash_recovery_code(normalized);
  if (!hash) {
    return std::nullopt;
  }
  return RecoveryCodeRecord{std::move(*hash), false};
}

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
    auto record = recovery_code_record(normalized->view());
    if (!record) {
      return std::nullopt;
    }
    batch.records.push_back(std::move(*record));
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
    const Code& code, const Policy& policy, TimePoint now) {
  if (!match_totp(key, params, code, replay, policy.window, now, policy.fence).step) {
    return std::nullopt;
  }
  auto batch = make_recovery_codes(policy.recovery_codes);
  if (!batch) {
    return std::unexpected(Status::internal_error);
  }
  return batch;
}

// ---- one checked code, with the lockout bookkeeping ----------------------------

// Counts a checked code: success resets the lockout state, a failure counts
// toward it (wrong, replayed and used codes alike). `failure` is what a
// failure that starts no lockout is called: wrong_code, or replayed for the
// right code of a step already accepted.
void settle(Attempt& attempt, UserRecord& record, bool accepted, const Policy& policy,
            TimePoint now, Status failure) {
  attempt.changed = true;
  if (accepted) {
    register_success(record);
    attempt.status = Status::ok;
  } else if (register_failure(record, policy, now)) {
    record.remembered.clear();  // a lockout ends every remembered login
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
// digits nor a recovery code (nor 8 digits, which may be an imported
// scratch code: is_recovery_attempt). Such a slip of the finger is refused without
// counting toward lockout: no secret was compared, and the shape of a code is
// public anyway.
bool malformed_code(const Code& code, unsigned digits) noexcept {
  switch (code.kind()) {
    case Code::Kind::recovery:
      return false;
    case Code::Kind::totp:
      return code.digits().size() != digits && !code.may_be_scratch_code();
    case Code::Kind::malformed:
      break;
  }
  return true;
}

// Inside a store update: `code` against the active secret or, when the caller
// found one before the update, that unused recovery code. This is what verify,
// enroll --replace, disable and regenerate share. A locked account is refused
// without looking at the code.
Attempt prove(UserRecord& record, const Code& code, const std::optional<std::string>& recovery_hash,
              const Policy& policy, TimePoint now) {
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
  if (malformed_code(code, record.active->params.digits)) {
    attempt.status = Status::malformed_code;  // nothing written
    return attempt;
  }
  const TotpMatch match = match_totp(record.active->secret.view(), record.active->params, code,
                                     replay_state_of(record), policy.window, now, policy.fence);
  if (match.failed) {
    return attempt;  // internal_error, nothing written
  }
  if (match.fenced) {
    // Our doing, not the user's: not counted toward lockout, nothing
    // written. Answered as `replayed` (no new status, so every protocol
    // version carries it), whose message tells the user to wait for the
    // next code, which is what the fence asks; no failures_left with it.
    attempt.status = Status::replayed;
    attempt.fenced = true;
    return attempt;
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
  event.fenced = attempt.fenced;
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

// ---- remembered logins ----------------------------------------------------------

std::vector<protocol::RememberedWindow> open_windows(const UserRecord& record, const Policy& policy,
                                                     TimePoint now) {
  std::vector<protocol::RememberedWindow> open;
  const std::int64_t at = common::to_unix(now);
  for (const RememberedLogin& window : record.remembered) {
    if (window_open(window, policy.host_id, at, policy.remember, policy.fence) &&
        open.size() < protocol::kMaxRememberedWindows) {
      open.push_back({window.source, window_end(window, policy.remember)});
    }
  }
  return open;
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
  record.remembered.clear();
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

}  // namespace kpanel::daemon::rules_detail
