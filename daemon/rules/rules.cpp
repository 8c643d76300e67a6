#include "daemon/rules/rules.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <variant>

#include "common/user_name.hpp"
#include "daemon/rules/checks.hpp"
#include "daemon/rules/lockout.hpp"

// Logins, verify, status, disable and the admin ops; enrollment and new
// recovery codes are rules_enroll.cpp, the shared pieces checks.cpp.
namespace kpanel::daemon {

using namespace rules_detail;  // NOLINT(google-build-using-namespace): this file's vocabulary
using protocol::LoginDecision;

Rules::Rules(Policy policy, Store& store, const common::Clock& clock, PasswordChecker& passwords,
             const AccountDirectory& accounts, AuditLog& audit)
    : store_(store),
      clock_(clock),
      passwords_(passwords),
      accounts_(accounts),
      audit_(audit),
      started_at_(clock.now()),
      policy_(std::make_shared<const Policy>(std::move(policy))) {}

void Rules::set_policy(Policy policy) {
  const std::lock_guard lock(policy_mutex_);
  policy.fence = policy_->fence;
  policy.host_id = policy_->host_id;
  policy_ = std::make_shared<const Policy>(std::move(policy));
}

void Rules::set_fence(std::optional<Fence> fence) {
  const std::lock_guard lock(policy_mutex_);
  Policy policy = *policy_;
  policy.fence = fence;
  policy_ = std::make_shared<const Policy>(std::move(policy));
}

void Rules::set_host_id(std::string host_id) {
  const std::lock_guard lock(policy_mutex_);
  Policy policy = *policy_;
  policy.host_id = std::move(host_id);
  policy_ = std::make_shared<const Policy>(std::move(policy));
}

std::shared_ptr<const Policy> Rules::policy() const {
  const std::lock_guard lock(policy_mutex_);
  return policy_;
}

// ---- login_check ------------------------------------------------------------------

Response Rules::login_check(const Caller& caller, const std::string& user,
                            const protocol::LoginCheckRequest& request) noexcept {
  return guarded(audit_, protocol::Op::login_check, [&] {
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
    // Inside a remembered-login window: no code, but a security event.
    if (remembering(caller, request, *policy)) {
      if (const RememberedLogin* window =
              find_window(record->remembered, policy->host_id, request.source, common::to_unix(now),
                          policy->remember, policy->fence)) {
        event.source = request.source;
        event.remembered_until = window_end(*window, policy->remember);
        return decide(AuditEventKind::remembered_login, LoginDecision::remembered);
      }
    }
    // Not logged: the verify that follows the prompt is.
    result.decision = LoginDecision::prompt;
    return reply_ok(result);
  });
}

// ---- verify --------------------------------------------------------------------------

Response Rules::verify(const Caller& caller, const std::string& user,
                       const protocol::VerifyRequest& request) noexcept {
  return guarded(audit_, protocol::Op::verify, [&] {
    const auto policy = this->policy();
    const TimePoint now = clock_.now();
    AuditEvent event = make_event(AuditEventKind::verify, caller, user, request.service,
                                  request.rhost, request.tty);
    // Only a typed recovery code (or an 8-digit code, which may be an
    // imported scratch code) needs the record ahead of the update (to hash
    // outside it); a TOTP code, the usual case, goes straight to it.
    std::optional<std::string> recovery_hash;
    std::optional<SlowCheckReservations::Reservation> reservation;  // held until counted
    if (request.code.kind() == Code::Kind::recovery || request.code.may_be_scratch_code()) {
      const auto loaded = store_.load(user);
      if (!loaded) {
        return store_failed(audit_, event, loaded.error());
      }
      if (const auto& record = *loaded; record && record->active && !is_locked(*record, now) &&
                                        is_recovery_attempt(*record, request.code)) {
        reservation = slow_checks_.reserve(user, *record, *policy);
        if (!reservation) {
          return refuse(audit_, event, Status::busy);
        }
        recovery_hash = find_recovery_hash(*record, request.code);
      }
    }

    // Check and consume in one update: of concurrent requests with one code,
    // exactly one is accepted. A recovery code is on disk before the reply; a
    // TOTP step is committed without waiting for the disk (durability_of).
    Attempt attempt;
    std::uint32_t codes_left = 0;
    bool opened = false;
    const auto updated = store_.update(
        user, durability_of(protocol::Op::verify, request.code), [&](UserRecord& record) {
          opened = false;
          attempt = prove(record, request.code, recovery_hash, *policy, now);
          codes_left = recovery_codes_left(record);
          // A code from this source: its window (re)starts now. Deferred like
          // the step it rides with: losing it only means asking again.
          if (attempt.status == Status::ok && remembering(caller, request, *policy)) {
            open_window(record.remembered, policy->host_id, request.source, common::to_unix(now),
                        policy->remember);
            opened = true;
          }
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
    if (opened) {  // the window this login opened
      event.source = request.source;
      event.remembered_until = common::to_unix(now) + policy->remember.count();
    }
    audit_attempt(audit_, event, attempt);
    if (attempt.status != Status::ok) {
      return refusal(attempt);
    }
    return reply_ok(protocol::VerifyResult{attempt.recovery_code_used, codes_left});
  });
}

// ---- status ------------------------------------------------------------------------------

// Status lists this host's open remembered-login windows only: each host
// honours only its own.
Response Rules::status(const Caller& caller, const std::string& user,
                       const protocol::StatusRequest& /*request*/) noexcept {
  return guarded(audit_, protocol::Op::status, [&] {
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
    const auto policy = this->policy();
    return reply_ok(protocol::StatusResult{describe(**loaded, now, caller.privileged),
                                           open_windows(**loaded, *policy, now)});
  });
}

// ---- disable and recovery codes -------------------------------------------------------------

Response Rules::disable(const Caller& caller, const std::string& user,
                        const protocol::DisableRequest& request) noexcept {
  return guarded(audit_, protocol::Op::disable, [&] {
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
    const auto updated = store_.update(
        user, durability_of(protocol::Op::disable, request.code), [&](UserRecord& current) {
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
          attempt = prove(current, request.code, std::nullopt, *policy, now);
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

// ---- admin ----------------------------------------------------------------------------------

namespace {

// A record that does not decode (StoreErrorKind corrupt or key), as opposed
// to a store that cannot be read or written at all.
bool is_unreadable(StoreErrorKind kind) {
  return kind == StoreErrorKind::corrupt || kind == StoreErrorKind::key;
}

}  // namespace

// One line per user whose record list() could not read, each time it is
// listed: an admin looking (admin list, admin stats) sees it in the log too.
void Rules::log_unreadable(const std::vector<std::string>& users) const noexcept {
  for (const std::string& user : users) {
    try {
      audit_.error("the stored record of user '" + user +
                   "' cannot be read (a wrong key_file or a row changed outside kpanel-totpd); "
                   "that user's logins are refused; kpanel-totp admin reset " +
                   user + " clears it");
    } catch (...) {
      audit_.error("a stored record cannot be read");
    }
  }
}

Response Rules::admin_list(const Caller& caller,
                           const protocol::AdminListRequest& request) noexcept {
  return guarded(audit_, protocol::Op::admin_list, [&] {
    const TimePoint now = clock_.now();
    auto listed = store_.list();
    if (!listed) {
      return store_failed(audit_, make_event(AuditEventKind::admin_list, caller, ""),
                          listed.error());
    }
    log_unreadable(listed->unreadable);
    protocol::AdminListResult result;
    result.users.reserve(listed->records.size());
    for (const UserRecord& record : listed->records) {
      result.users.push_back(describe(record, now, caller.privileged));
    }
    // A name the protocol cannot carry (written into the database by hand)
    // would fail the whole reply: the log line above names it.
    std::erase_if(listed->unreadable,
                  [](const std::string& name) { return !common::check_user_name(name); });
    result.unreadable = std::move(listed->unreadable);
    if (request.all) {
      add_login_accounts(result);
    }
    return reply_ok(std::move(result));
  });
}

// The accounts that can log in and have no state yet, then who of everyone
// listed is exempt (as login_check decides it: exempt_group, by primary or
// supplementary group). Sorted by name, so the table reads as a roster.
void Rules::add_login_accounts(protocol::AdminListResult& result) const {
  const auto policy = this->policy();
  std::unordered_set<std::string> listed;
  for (const protocol::UserStatus& status : result.users) {
    listed.insert(status.user);
  }
  AccountDirectory::LoginAccounts accounts = accounts_.login_accounts();
  for (std::string& name : accounts.names) {
    if (listed.insert(name).second) {
      protocol::UserStatus status;
      status.user = std::move(name);
      result.users.push_back(std::move(status));
    }
  }
  result.truncated = accounts.truncated;
  for (protocol::UserStatus& status : result.users) {
    status.exempt =
        !policy->exempt_group.empty() && accounts_.is_member(status.user, policy->exempt_group);
  }
  std::ranges::sort(result.users, {}, &protocol::UserStatus::user);
}

Response Rules::admin_stats(const Caller& caller,
                            const protocol::AdminStatsRequest& /*request*/) noexcept {
  return guarded(audit_, protocol::Op::admin_stats, [&] {
    const TimePoint now = clock_.now();
    const auto listed = store_.list();
    if (!listed) {
      return store_failed(audit_, make_event(AuditEventKind::admin_stats, caller, ""),
                          listed.error());
    }
    log_unreadable(listed->unreadable);
    protocol::AdminStatsResult result;
    result.started_at = common::to_unix(started_at_);
    result.now = common::to_unix(now);
    // An unreadable record is counted in neither gauge: what it holds is not known.
    for (const UserRecord& record : listed->records) {
      result.users_enrolled += record.active ? 1 : 0;
      result.users_locked += record.locked_until && is_locked(record, now) ? 1 : 0;
    }
    const AuditCounts counts = stats_.counts != nullptr ? stats_.counts->snapshot() : AuditCounts{};
    const auto value = [&](Counter counter) {
      // A uint64 that overflows int64 would take 292 years at a billion a second.
      return static_cast<std::int64_t>(counts[counter]);
    };
    result.verify_ok = value(Counter::verify_ok);
    result.verify_recovery = value(Counter::verify_recovery);
    result.verify_wrong_code = value(Counter::verify_wrong_code);
    result.verify_replayed = value(Counter::verify_replayed);
    result.verify_locked = value(Counter::verify_locked);
    result.verify_malformed = value(Counter::verify_malformed);
    result.verify_busy = value(Counter::verify_busy);
    result.verify_store_unavailable = value(Counter::verify_store_unavailable);
    result.verify_other = value(Counter::verify_other);
    result.lockouts = value(Counter::lockouts);
    result.enrollments = value(Counter::enrollments);
    result.imports = value(Counter::imports);
    result.remembered_skips = value(Counter::remembered_skips);
    result.exempt_logins = value(Counter::exempt_logins);
    result.grace_logins = value(Counter::grace_logins);
    result.nullok_logins = value(Counter::nullok_logins);
    if (stats_.runtime) {
      const RuntimeGauges gauges = stats_.runtime();
      result.in_flight_fast = gauges.in_flight_fast;
      result.in_flight_slow = gauges.in_flight_slow;
      result.connections = gauges.connections;
    }
    return reply_ok(result);
  });
}

// Resetting a name the store has nothing for: not_enrolled for an account,
// no_such_user for a name that is not one. A record left behind by a deleted
// account can still be reset, and so can one that does not decode (a wrong
// key_file, a row changed outside the daemon): reset removes everything the
// user has, so removing it unread loses nothing reset would keep. Only a
// record found unreadable: a store that fails to read or write (io, busy,
// unavailable) is a refusal, never a reason to delete.
Response Rules::admin_reset(const Caller& caller, const std::string& user,
                            const protocol::AdminResetRequest& /*request*/) noexcept {
  return guarded(audit_, protocol::Op::admin_reset, [&] {
    const AuditEvent event = make_event(AuditEventKind::reset, caller, user);
    bool existed = false;
    const auto updated =
        store_.update(user, durability_of(protocol::Op::admin_reset), [&](UserRecord& record) {
          existed = has_state(record);
          if (!existed) {
            return false;
          }
          forget_enrollment(record);
          register_success(record);  // failures, lockout and level
          return true;
        });
    if (!updated && is_unreadable(updated.error().kind)) {
      if (const auto erased = store_.erase(user); !erased) {
        return store_failed(audit_, event, erased.error());
      }
      audit_.error("admin reset of user '" + user +
                   "': removed a stored record that could not be read (" + updated.error().message +
                   ")");
      audit_.record(event);
      return reply_ok(protocol::EmptyResult{});
    }
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
  return guarded(audit_, protocol::Op::admin_unlock, [&] {
    const AuditEvent event = make_event(AuditEventKind::unlock, caller, user);
    bool known = false;
    const auto updated =
        store_.update(user, durability_of(protocol::Op::admin_unlock), [&](UserRecord& record) {
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

// Forgetting with no window open is a success (nothing to do); durable, so a
// window the user ended stays ended whatever stops.
Response Rules::forget(const Caller& caller, const std::string& user,
                       const protocol::ForgetRequest& /*request*/) noexcept {
  return guarded(audit_, protocol::Op::forget, [&] {
    const AuditEvent event = make_event(AuditEventKind::forget, caller, user);
    const auto updated =
        store_.update(user, durability_of(protocol::Op::forget), [&](UserRecord& record) {
          const bool had = !record.remembered.empty();
          record.remembered.clear();
          return had;
        });
    if (!updated) {
      return store_failed(audit_, event, updated.error());
    }
    audit_.record(event);
    return reply_ok(protocol::EmptyResult{});
  });
}

void Rules::record_refused(const Caller& caller, const protocol::Request& request,
                           const std::string& user, Status status) noexcept {
  try {
    AuditEvent event = make_event(audit_kind(protocol::op_of(request)), caller, user);
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
