#pragma once
// The state store interface. The rules (daemon/rules/rules.hpp) decide; a store only
// keeps records durably and serializes updates. Backends: store_sqlite (this
// host) and store_postgresql (a fleet), both over one row layer (sql_rows).
// A store seals TOTP secrets with the SecretBox it was built with, so no
// backend ever writes one in clear.

#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "common/secure_buffer.hpp"
#include "common/totp.hpp"
#include "daemon/rules/remember.hpp"
#include "daemon/rules/replay_steps.hpp"

namespace kpanel::daemon {

struct Enrollment {
  common::SecureBytes secret;  // raw key bytes, in clear only in memory
  common::TotpParams params;
  common::TimePoint enrolled_at;
};

struct PendingEnrollment {
  common::SecureBytes secret;
  common::TotpParams params;
  common::TimePoint expires_at;
};

struct RecoveryCodeRecord {
  std::string hash;  // common::hash_recovery_code output (salted, slow); never the code
  bool used = false;
};

struct UserRecord {
  std::string user;
  std::optional<Enrollment> active;
  std::optional<PendingEnrollment> pending;
  // Replay state of the active secret (a pending secret has none yet: it has
  // accepted nothing). last_step: the step of the code accepted most recently;
  // a later code must be for a later step, unless last_step lies ahead of the
  // clock (the clock moved back). used_steps: every step that may have been
  // accepted, so that a code never works twice whatever the clock does.
  std::optional<std::int64_t> last_step;
  std::vector<StepRun> used_steps;
  std::uint32_t failures = 0;       // consecutive failures since the last lockout/success
  std::uint32_t lockout_level = 0;  // lockouts so far; the next lasts lockout_seconds << level
  std::optional<common::TimePoint> locked_until;
  std::optional<std::int64_t> last_skew_seconds;  // probable phone clock skew, for admins
  std::vector<RecoveryCodeRecord> recovery_codes;
  // Remembered-login windows (remember.hpp), every host's: each host honours
  // only its own. Not state worth a record of its own (store_row::is_empty).
  std::vector<RememberedLogin> remembered;
};

// What list() found.
struct UserList {
  std::vector<UserRecord> records;      // sorted by name
  std::vector<std::string> unreadable;  // users whose record does not decode, sorted
};

// How soon an update must be on disk. The rules say which kind each update
// is (rules_detail::durability_of); a store never guesses.
enum class Durability : std::uint8_t {
  // Committed and visible before update() returns, and no crash of the
  // daemon alone (kill -9) loses it; it reaches the disk within the store's
  // sync interval (or with the next durable update). A host crash may lose it:
  // accepted TOTP steps and failure counts, covered by the fence after an
  // unclean host stop (fence.hpp).
  deferred,
  // On disk (fsync'd) before update() returns: changes that can never be undone.
  durable,
};

enum class StoreErrorKind : std::uint8_t { io, corrupt, busy, key, unavailable };

struct StoreError {
  StoreErrorKind kind = StoreErrorKind::io;
  std::string message;  // for the daemon's log; never contains secrets
};

class Store {
 public:
  virtual ~Store() = default;

  // The user's record, or nullopt when the store has none.
  virtual std::expected<std::optional<UserRecord>, StoreError> load(std::string_view user) = 0;

  // Atomic read-modify-write of one user's record. Loads the record (or a fresh
  // one with only `user` set), calls `change`; when it returns true, writes the
  // record back, committed as `durability` says before returning. Serialized
  // against every other update of the same user. A record left with no active
  // enrollment, no pending one, no lockout state and no recovery codes may be
  // deleted by the store.
  virtual std::expected<void, StoreError> update(
      std::string_view user, Durability durability,
      const std::function<bool(UserRecord&)>& change) = 0;

  // A durable update (tools and tests; the rules always name the kind).
  std::expected<void, StoreError> update(std::string_view user,
                                         const std::function<bool(UserRecord&)>& change) {
    return update(user, Durability::durable, change);
  }

  // Every user the store knows, sorted by name: the records that read, and
  // the names of those that do not (a row that does not decode with this
  // key_file, fails its binding or holds a value out of range), so one bad
  // row fails only its own user. A failure to read at all is the error.
  virtual std::expected<UserList, StoreError> list() = 0;

  // Removes everything the store holds for `user` (its record, recovery
  // codes, replay state, remembered logins) without reading it, so that a
  // record that no longer decodes can still be cleared. Durable before it
  // returns; serialized against every update of the same user. Nothing
  // stored: success.
  virtual std::expected<void, StoreError> erase(std::string_view user) = 0;
};

}  // namespace kpanel::daemon
