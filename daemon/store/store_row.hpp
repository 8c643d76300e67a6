#pragma once
// What the SQL store backends (store_sqlite, store_postgresql) share about a
// user's row: its column layout, how a sealed secret is bound to its place,
// which stored TOTP parameters are valid, and when a record may be deleted.
// One place for each, so the two backends cannot drift apart.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/totp.hpp"
#include "daemon/store/store.hpp"

namespace kpanel::daemon::store_row {

// Column order of every users query; Column indexes it.
inline constexpr std::string_view kUserColumns =
    "active_secret, active_algorithm, active_digits, active_period, enrolled_at, "
    "pending_secret, pending_algorithm, pending_digits, pending_period, pending_expires_at, "
    "last_step, failures, lockout_level, locked_until, last_skew_seconds, used_steps, remembered";

enum Column : int {
  kActiveSecret,
  kActiveAlgorithm,
  kActiveDigits,
  kActivePeriod,
  kEnrolledAt,
  kPendingSecret,
  kPendingAlgorithm,
  kPendingDigits,
  kPendingPeriod,
  kPendingExpiresAt,
  kLastStep,
  kFailures,
  kLockoutLevel,
  kLockedUntil,
  kLastSkewSeconds,
  kUsedSteps,
  kRemembered,
};

// Where a sealed secret belongs ("active"/"pending", the user): part of its
// authentication, so a sealed secret copied to another row or slot fails to open.
std::string sealed_secret_aad(std::string_view slot, std::string_view user);

// A stored counter, or nullopt when it does not fit a uint32_t.
std::optional<std::uint32_t> to_u32(std::optional<std::int64_t> value);

// TOTP parameters from stored columns, or nullopt when any is missing or
// out of range (a corrupt or hand-edited row).
std::optional<common::TotpParams> totp_params(const std::optional<std::string>& algorithm,
                                              std::optional<std::int64_t> digits,
                                              std::optional<std::int64_t> period);

// The replay state from the last_step and used_steps columns. A row whose
// last_step is not in used_steps (NULL: written before the column existed, or
// by an older host of a fleet) knows only last_step for sure: every step up to
// it counts as used. Nullopt for a used_steps value that does not decode.
std::optional<std::vector<StepRun>> used_steps(std::optional<std::int64_t> last_step,
                                               const std::optional<std::string>& stored);

// Deleting such a record loses nothing (every store, and the tests' memory
// store, uses this one test): no enrollment, no codes, no lockout
// state, no replay state.
bool is_empty(const UserRecord& record);

// The same recovery-code hashes in the same order: the stored codes need no rewrite.
bool same_hashes(const std::vector<RecoveryCodeRecord>& a,
                 const std::vector<RecoveryCodeRecord>& b);

}  // namespace kpanel::daemon::store_row
