#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/base32.hpp"
#include "common/otpauth_uri.hpp"
#include "common/qr.hpp"
#include "common/random.hpp"
#include "daemon/rules/checks.hpp"
#include "daemon/rules/lockout.hpp"
#include "daemon/rules/rules.hpp"

// Enrollment (begin, confirm, changing phones) and new recovery codes; the
// shared pieces are checks.cpp.
namespace kpanel::daemon {

using namespace rules_detail;  // NOLINT(google-build-using-namespace): this file's vocabulary

namespace {

// How an update that issues recovery codes ends (enroll_confirm, regenerate):
// a store or internal failure, else the audit line and either the codes or
// the refusal the attempt settled on.
Response codes_issued_reply(AuditLog& log, AuditEvent event,
                            const std::expected<void, StoreError>& updated, const Attempt& attempt,
                            std::uint32_t codes_left, std::vector<common::SecureString> issued) {
  if (!updated) {
    return store_failed(log, event, updated.error());
  }
  if (attempt.status == Status::internal_error) {
    return internal_failure(log, event, "TOTP computation or making recovery codes failed");
  }
  if (attempt.status == Status::ok) {
    event.recovery_codes_left = codes_left;
  }
  audit_attempt(log, event, attempt);
  if (attempt.status != Status::ok) {
    return refusal(attempt);
  }
  return reply_ok(protocol::RecoveryCodesResult{std::move(issued)});
}

}  // namespace

// ---- enrollment ---------------------------------------------------------------------

// Long: the proof of a replace (slow recovery-code hash outside the update),
// the update and the reply with its URI and QR text read best in one piece.
Response Rules::enroll_begin(const Caller& caller, const std::string& user,
                             const protocol::EnrollBeginRequest& request) noexcept {
  return guarded(audit_, protocol::Op::enroll_begin, [&] {
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
        is_recovery_attempt(*record, request.proof)) {
      reservation = slow_checks_.reserve(user, *record, *policy);
      if (!reservation) {
        return refuse(audit_, event, Status::busy);
      }
      recovery_hash = find_recovery_hash(*record, request.proof);
    }

    auto secret = common::generate_totp_secret();
    if (!secret) {
      return internal_failure(audit_, event, "random number generator failed");
    }
    const PendingEnrollment pending{*secret, policy->totp, now + policy->enrollment_timeout};

    // A new pending enrollment replaces an older one. Changing phones needs a
    // proof, checked like verify; the active secret keeps working until confirm.
    Attempt attempt;
    const auto updated = store_.update(
        user, durability_of(protocol::Op::enroll_begin, request.proof), [&](UserRecord& current) {
          attempt = Attempt{};
          if (request.replace) {
            attempt = prove(current, request.proof, recovery_hash, *policy, now);
            if (attempt.status != Status::ok) {
              return attempt.changed;
            }
          } else if (current.active) {
            attempt.status = Status::already_enrolled;
            return false;
          }
          attempt.status = Status::ok;
          current.pending = pending;
          // Changing phones: the old one may be lost, so no login skips a code
          // any more (remember.hpp); confirming ends any opened meanwhile.
          if (request.replace) {
            current.remembered.clear();
          }
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
    result.algorithm = policy->totp.algorithm;
    result.digits = policy->totp.digits;
    result.period = policy->totp.period;
    if (request.want_qr_text) {
      // Rendered here so the PAM module never links libqrencode (it stays small).
      // Plain text: OpenSSH shows colour escapes literally.
      auto text = common::qr_text(result.uri.view());
      if (text) result.qr_text = std::move(*text);
    }
    return reply_ok(std::move(result));
  });
}

// Long: recovery codes hashed before the update and the update's own checks
// (expiry, lockout, shape, window) must stay in this order, in one place.
Response Rules::enroll_confirm(const Caller& caller, const std::string& user,
                               const protocol::EnrollConfirmRequest& request) noexcept {
  return guarded(audit_, protocol::Op::enroll_confirm, [&] {
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
                                 ReplayState{}, request.code, *policy, now);
      if (!made) {
        return internal_failure(audit_, event, "making recovery codes failed");
      }
      batch = std::move(*made);
    }

    Attempt attempt;
    std::vector<common::SecureString> issued;
    std::uint32_t codes_left = 0;
    const auto updated = store_.update(
        user, durability_of(protocol::Op::enroll_confirm, request.code), [&](UserRecord& record) {
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
          if (malformed_code(request.code, record.pending->params.digits)) {
            attempt.status = Status::malformed_code;
            return false;
          }
          // The new secret's own replay state, which is empty: the old phone's
          // last code, maybe in this very step, says nothing about the new one.
          // No fence either: a pending secret accepted nothing before any crash.
          const TotpMatch match =
              match_totp(record.pending->secret.view(), record.pending->params, request.code,
                         ReplayState{}, policy->window, now, std::nullopt);
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
          record.remembered.clear();
          // A replace keeps the recovery codes: they are not on the phone.
          if (first) {
            record.recovery_codes = batch->records;
            issued = batch->codes;
          }
          codes_left = recovery_codes_left(record);
          return true;
        });
    return codes_issued_reply(audit_, std::move(event), updated, attempt, codes_left,
                              std::move(issued));
  });
}

Response Rules::regenerate_recovery_codes(
    const Caller& caller, const std::string& user,
    const protocol::RegenerateRecoveryCodesRequest& request) noexcept {
  return guarded(audit_, protocol::Op::recovery_regenerate, [&] {
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
                                 replay_state_of(*record), request.code, *policy, now);
      if (!made) {
        return internal_failure(audit_, event, "making recovery codes failed");
      }
      batch = std::move(*made);
    }

    Attempt attempt;
    std::vector<common::SecureString> issued;
    const auto updated =
        store_.update(user, durability_of(protocol::Op::recovery_regenerate, request.code),
                      [&](UserRecord& record) {
                        issued.clear();
                        // A TOTP code only: replacing the recovery codes is not a recovery.
                        attempt = prove(record, request.code, std::nullopt, *policy, now);
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
    const auto codes_left = static_cast<std::uint32_t>(issued.size());
    return codes_issued_reply(audit_, std::move(event), updated, attempt, codes_left,
                              std::move(issued));
  });
}

}  // namespace kpanel::daemon
