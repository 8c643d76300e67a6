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
#include "daemon/store/secret_box.hpp"
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

// Where a sealed secret belongs: the slot ("active"/"pending"), the user and
// the enrollment (the slot's time: enrolled_at, or the pending secret's
// expires_at), all part of its authentication. A sealed secret copied to
// another row or slot, or an old one written back after a reset or a new
// enrollment, fails to open.
std::string sealed_secret_aad(std::string_view slot, std::string_view user, std::int64_t at);
// The binding of schema versions before it (slot and user only): read once,
// by the migration that binds every row to its enrollment.
std::string legacy_sealed_secret_aad(std::string_view slot, std::string_view user);

// The enrollment a user's recovery codes belong to: its enrolled_at, or -1
// without an active enrollment.
std::int64_t code_enrollment(const UserRecord& record);

// A recovery code's hash as stored: the hash, then "$mac=" and the hex
// HMAC (SecretBox::mac) of the user, the enrollment, the code's position
// and the hash. The database holds the hash in clear (it is a slow hash,
// not the code) but cannot make, move or copy one without key_file. Empty
// when the MAC cannot be computed.
std::string bind_code_hash(const SecretBox& box, std::string_view user, std::int64_t enrollment,
                           std::size_t index, std::string_view hash);
// The hash of a stored value bind_code_hash made for exactly this user,
// enrollment and position; nullopt for anything else.
std::optional<std::string> unbind_code_hash(const SecretBox& box, std::string_view user,
                                            std::int64_t enrollment, std::size_t index,
                                            std::string_view stored);

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
