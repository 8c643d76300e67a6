#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/base32.hpp"
#include "common/recovery_code.hpp"
#include "daemon/rules/checks.hpp"
#include "daemon/rules/rules.hpp"

// admin_import: a google-authenticator-libpam secret becomes a user's
// enrollment without the user re-enrolling. The shared pieces are checks.cpp.
namespace kpanel::daemon {

using namespace rules_detail;  // NOLINT(google-build-using-namespace): this file's vocabulary

namespace {

// google-authenticator's codes: six digits of HMAC-SHA1.
constexpr unsigned kImportedDigits = 6;
// The periods the daemon's own `period` key allows; google-authenticator's
// STEP_SIZE goes down to 1 s, which no authenticator app shows reliably.
constexpr unsigned kMinImportedPeriod = 15;
constexpr unsigned kMaxImportedPeriod = 300;
constexpr std::uint32_t kMaxWindowSize = 100;  // google-authenticator's own bound

// What the request asks for that this daemon cannot honour, or nullopt.
// google-authenticator accepts the steps now+TIME_SKEW-(W-1)/2 up to
// now+TIME_SKEW+W/2 for a WINDOW_SIZE of W; we accept now-window..now+window.
// The file's steps must lie inside ours, or the user's phone, which worked
// under google-authenticator, might not work here.
std::optional<std::string> unhonourable(const protocol::AdminImportRequest& request,
                                        const Policy& policy) {
  if (request.period < kMinImportedPeriod || request.period > kMaxImportedPeriod) {
    return "STEP_SIZE " + std::to_string(request.period) + " is not supported (" +
           std::to_string(kMinImportedPeriod) + " to " + std::to_string(kMaxImportedPeriod) +
           " seconds)";
  }
  if (request.window_size < 1 || request.window_size > kMaxWindowSize) {
    return "WINDOW_SIZE " + std::to_string(request.window_size) + " is not valid (1 to 100)";
  }
  if (request.time_skew < -protocol::kMaxImportedTimeSkew ||
      request.time_skew > protocol::kMaxImportedTimeSkew) {
    return "TIME_SKEW " + std::to_string(request.time_skew) + " is not valid (-1500 to 1500)";
  }
  const auto window_size = static_cast<std::int64_t>(request.window_size);
  const std::int64_t earliest = request.time_skew - (window_size - 1) / 2;
  const std::int64_t latest = request.time_skew + window_size / 2;
  const auto ours = static_cast<std::int64_t>(policy.window);
  if (earliest < -ours || latest > ours) {
    std::string reason = "WINDOW_SIZE " + std::to_string(request.window_size);
    if (request.time_skew != 0) {
      reason += " with TIME_SKEW " + std::to_string(request.time_skew);
    }
    return reason + " accepts codes " + std::to_string(std::max(-earliest, latest)) +
           " steps from now; this daemon's window is " + std::to_string(policy.window) +
           " (raise window, or have the user enroll)";
  }
  if (request.scratch_codes.size() > protocol::kMaxImportedScratchCodes) {
    return "more than " + std::to_string(protocol::kMaxImportedScratchCodes) + " scratch codes";
  }
  if (request.used_steps.size() > protocol::kMaxImportedUsedSteps) {
    return "more than " + std::to_string(protocol::kMaxImportedUsedSteps) +
           " steps in DISALLOW_REUSE";
  }
  if (std::ranges::any_of(request.used_steps, [](std::int64_t step) {
        return step < 0 || step > protocol::kMaxImportedStep;
      })) {
    return "DISALLOW_REUSE lists a step that is no time of this era";
  }
  return std::nullopt;
}

Response skipped(AuditLog& log, AuditEvent event, Status outcome, std::string reason) {
  event.outcome = outcome;
  event.cause = reason;
  log.record(event);
  return reply_ok(protocol::AdminImportResult{false, std::move(reason)});
}

// The used steps as replay state: each one marked, the latest the last step.
void import_replay_state(UserRecord& record, const std::vector<std::int64_t>& steps) {
  for (const std::int64_t step : steps) {
    mark_step_used(record.used_steps, step);
    record.last_step = std::max(record.last_step.value_or(step), step);
  }
}

// Imported before: the unused recovery codes that are not among the file's
// scratch codes any more were used under google-authenticator since. Only
// when the stored codes are the imported ones (some of the file's match): a
// user who made new codes here (`recovery-codes --regenerate`) keeps them.
bool retire_unlisted(UserRecord& record, const std::vector<std::string>& still_listed) {
  const auto listed = [&](const RecoveryCodeRecord& code) {
    return std::ranges::find(still_listed, code.hash) != still_listed.end();
  };
  if (!std::ranges::any_of(record.recovery_codes, listed)) {
    return false;
  }
  bool changed = false;
  for (RecoveryCodeRecord& code : record.recovery_codes) {
    if (!code.used && !listed(code)) {
      code.used = true;
      changed = true;
    }
  }
  return changed;
}

}  // namespace

// Long: the checks of what can be honoured, the hashing outside the update
// and the update's three cases (already imported, enrolled, pending) read
// best in one piece.
Response Rules::admin_import(const Caller& caller, const std::string& user,
                             const protocol::AdminImportRequest& request) noexcept {
  return guarded(audit_, protocol::Op::admin_import, [&] {
    const auto policy = this->policy();
    const TimePoint now = clock_.now();
    const AuditEvent event = make_event(AuditEventKind::import, caller, user);
    if (!accounts_.exists(user)) {
      return refuse(audit_, event, Status::no_such_user);
    }
    auto secret = common::base32_decode(request.secret_base32.view());
    if (!secret || secret->size() < protocol::kMinImportedSecretBytes ||
        secret->size() > protocol::kMaxImportedSecretBytes) {
      return skipped(audit_, event, Status::bad_request,
                     "the secret is not base32 of 80 to 512 bits");
    }
    if (auto reason = unhonourable(request, *policy)) {
      return skipped(audit_, event, Status::bad_request, std::move(*reason));
    }
    const common::TotpParams params{common::TotpAlgorithm::sha1, kImportedDigits, request.period};
    const auto same_secret = [&](const UserRecord& record) {
      return record.active && record.active->params == params &&
             common::constant_time_equal(record.active->secret.view(), secret->view());
    };
    const auto loaded = store_.load(user);
    if (!loaded) {
      return store_failed(audit_, event, loaded.error());
    }
    const bool before = loaded->has_value() && same_secret(**loaded);

    std::vector<common::SecureString> scratch;  // normalized, each once
    for (const common::SecureString& typed : request.scratch_codes) {
      auto normalized = common::normalize_scratch_code(typed.view());
      if (!normalized) {
        return skipped(audit_, event, Status::bad_request,
                       "a scratch code is not 8 digits (the first not 0)");
      }
      if (std::ranges::find(scratch, *normalized) == scratch.end()) {
        scratch.push_back(std::move(*normalized));
      }
    }
    // scrypt, so before the update. A first import hashes the scratch codes
    // into recovery codes like ours. Imported before: the file's codes
    // still unused here are found, so that those google-authenticator has
    // consumed since (gone from the file) stop working here too.
    std::vector<RecoveryCodeRecord> codes;
    std::vector<std::string> still_listed;
    for (const common::SecureString& code : scratch) {
      if (before) {
        if (auto hash = find_recovery_hash(**loaded, protocol::Code(code))) {
          still_listed.push_back(std::move(*hash));
        }
        continue;
      }
      auto record = recovery_code_record(code.view());
      if (!record) {
        return internal_failure(audit_, event, "hashing a scratch code failed");
      }
      codes.push_back(std::move(*record));
    }

    enum class Outcome : std::uint8_t { imported, again, enrolled, pending, raced };
    Outcome outcome = Outcome::imported;
    const auto updated =
        store_.update(user, durability_of(protocol::Op::admin_import), [&](UserRecord& record) {
          if (before != same_secret(record)) {
            outcome = record.active ? Outcome::enrolled : Outcome::raced;
            return false;
          }
          if (before) {
            // The same secret imported before (a second run, e.g. with
            // --remove): nothing to replace; what google-authenticator used
            // since is used here too.
            outcome = Outcome::again;
            const auto steps = record.used_steps;
            const auto last = record.last_step;
            import_replay_state(record, request.used_steps);
            return retire_unlisted(record, still_listed) || steps != record.used_steps ||
                   last != record.last_step;
          }
          if (record.active) {
            outcome = Outcome::enrolled;
            return false;
          }
          if (record.pending && now < record.pending->expires_at) {
            outcome = Outcome::pending;
            return false;
          }
          outcome = Outcome::imported;
          record.pending.reset();
          record.active = Enrollment{*secret, params, now};
          record.last_step.reset();
          record.used_steps.clear();
          import_replay_state(record, request.used_steps);
          record.last_skew_seconds.reset();
          record.recovery_codes = codes;
          return true;
        });
    if (!updated) {
      return store_failed(audit_, event, updated.error());
    }
    switch (outcome) {
      case Outcome::enrolled:
        return skipped(audit_, event, Status::already_enrolled, "already enrolled");
      case Outcome::pending:
        return skipped(audit_, event, Status::already_enrolled,
                       "enrollment in progress (begun, not confirmed yet)");
      case Outcome::raced:
        return skipped(audit_, event, Status::bad_request,
                       "the enrollment changed during the import; run it again");
      case Outcome::again:
      case Outcome::imported:
        break;
    }
    AuditEvent done = event;
    done.outcome = Status::ok;
    if (outcome == Outcome::again) {
      done.cause = "imported before";
    } else {
      done.recovery_codes_left = static_cast<std::uint32_t>(codes.size());
    }
    audit_.record(done);
    return reply_ok(protocol::AdminImportResult{true, {}});
  });
}

}  // namespace kpanel::daemon
