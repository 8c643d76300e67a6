#include "daemon/store/sql_rows.hpp"

#include <algorithm>
#include <array>
#include <string>
#include <utility>

#include "daemon/store/store_row.hpp"

namespace kpanel::daemon::sql {
namespace {

using store_row::Column;

// What a message adds to the dialect's own wording.
struct Wording {
  const char* key_hint;  // after "(<slot> secret of user '<user>'"
  const char* upgrade;   // after "written by a newer kpanel-totpd (…): "
};

Wording wording(Dialect dialect) {
  if (dialect == Dialect::sqlite) return {"", "upgrade kpanel-totp"};
  return {"; every host of a fleet needs the same key_file", "upgrade kpanel-totp on this host"};
}

StoreError key_error(const Session& session, std::string_view slot, std::string_view user) {
  return session.error(StoreErrorKind::key, "secrets do not decrypt with key_file: wrong key? (" +
                                                std::string(slot) + " secret of user '" +
                                                std::string(user) + "'" +
                                                wording(session.dialect()).key_hint + ")");
}

// A sealed secret, its TOTP parameters and its time (enrolled_at, expires_at).
struct Slot {
  common::SecureBytes secret;
  common::TotpParams params;
  common::TimePoint at;
};

// The slot whose five columns start at `first` (sealed secret, algorithm,
// digits, period, time), nullopt when its secret is NULL; `sealed` gets the
// sealed form.
std::expected<std::optional<Slot>, StoreError> decode_slot(const Session& session, const Row& row,
                                                           int first, std::string_view slot,
                                                           const std::string& user,
                                                           const SecretBox& box, Binding binding,
                                                           std::vector<std::uint8_t>& sealed) {
  auto stored = row.blob(first);
  if (!stored) return std::optional<Slot>{};
  sealed = std::move(*stored);
  const auto params =
      store_row::totp_params(row.text(first + 1), row.integer(first + 2), row.integer(first + 3));
  const auto at = row.integer(first + 4);
  if (!params || !at) return std::unexpected(invalid_row(session, user, "bad TOTP parameters"));
  auto secret =
      box.open(sealed, binding == Binding::bound ? store_row::sealed_secret_aad(slot, user, *at)
                                                 : store_row::legacy_sealed_secret_aad(slot, user));
  if (!secret) return std::unexpected(key_error(session, slot, user));
  return Slot{std::move(*secret), *params, common::from_unix(*at)};
}

// The recovery code of a codes query's row, columns hash, used at `first`:
// the `index`th code of `record` (its user and enrollment). A bound hash
// must carry the MAC for exactly these; nullopt otherwise.
std::optional<RecoveryCodeRecord> decode_code(const Row& row, int first, const SecretBox& box,
                                              Binding binding, const UserRecord& record,
                                              std::size_t index) {
  auto stored = row.text(first);
  const auto used = row.flag(first + 1);
  if (!stored || !used) return std::nullopt;
  if (binding == Binding::legacy) return RecoveryCodeRecord{std::move(*stored), *used};
  auto hash = store_row::unbind_code_hash(box, record.user, store_row::code_enrollment(record),
                                          index, *stored);
  if (!hash) return std::nullopt;
  return RecoveryCodeRecord{std::move(*hash), *used};
}

constexpr std::string_view kForeignCode =
    "a recovery code not bound to it by key_file (written by someone without the key, or "
    "copied from another user or enrollment); refusing the user's logins";

common::TimePoint slot_time(const Enrollment& active) { return active.enrolled_at; }
common::TimePoint slot_time(const PendingEnrollment& pending) { return pending.expires_at; }

// The sealed form of the secret in `now` for `slot`: the form it was loaded
// from when it did not change (fewer nonces drawn under one key, less work),
// else a new one; empty without a secret.
template <typename Enrolled>
std::expected<std::vector<std::uint8_t>, StoreError> seal_slot(
    const Session& session, const SecretBox& box, std::string_view slot, std::string_view user,
    const std::optional<Enrolled>& now, const std::optional<Enrolled>* loaded,
    const std::vector<std::uint8_t>* loaded_sealed) {
  if (!now) return std::vector<std::uint8_t>{};
  if (loaded != nullptr && *loaded && loaded_sealed != nullptr && !loaded_sealed->empty() &&
      (*loaded)->secret == now->secret && slot_time(**loaded) == slot_time(*now)) {
    return *loaded_sealed;
  }
  auto sealed = box.seal(now->secret.view(), store_row::sealed_secret_aad(
                                                 slot, user, common::to_unix(slot_time(*now))));
  if (!sealed) {
    return std::unexpected(
        session.error(StoreErrorKind::key, "cannot seal a secret: " + sealed.error()));
  }
  return std::move(*sealed);
}

// A slot's five columns (sealed secret, algorithm, digits, period, time).
template <typename Enrolled>
void bind_slot(std::vector<Value>& params, const std::optional<Enrolled>& slot,
               const std::vector<std::uint8_t>& sealed) {
  if (!slot) {
    params.insert(params.end(), 5, Value::null());
    return;
  }
  params.push_back(Value::of(std::span<const std::uint8_t>(sealed)));
  params.push_back(Value::of(common::to_string(slot->params.algorithm)));
  params.push_back(Value::of(std::int64_t{slot->params.digits}));
  params.push_back(Value::of(std::int64_t{slot->params.period}));
  params.push_back(Value::of(common::to_unix(slot_time(*slot))));
}

// The codes of `record`, as `before` held them (empty: none), each bound
// to the user, its enrollment and its position.
std::expected<void, StoreError> write_codes(Session& session, const SecretBox& box,
                                            std::string_view user, const UserRecord& record,
                                            const UserRecord* before) {
  constexpr std::string_view kDoing = "writing recovery codes";
  static const std::vector<RecoveryCodeRecord> kNone;
  const std::vector<RecoveryCodeRecord>& codes = record.recovery_codes;
  const std::vector<RecoveryCodeRecord>& old = before != nullptr ? before->recovery_codes : kNone;
  const std::int64_t enrollment = store_row::code_enrollment(record);
  if (store_row::same_hashes(codes, old) && before != nullptr &&
      store_row::code_enrollment(*before) == enrollment) {
    // The common case (a code used, or nothing changed): flip flags in place.
    for (std::size_t i = 0; i < codes.size(); ++i) {
      if (codes[i].used == old[i].used) continue;
      const std::array params{Value::of(user), Value::of(static_cast<std::int64_t>(i)),
                              Value::flag(codes[i].used)};
      if (auto done = session.run(Query::update_code_used, params, kDoing); !done) return done;
    }
    return {};
  }
  const std::array key{Value::of(user)};
  if (auto done = session.run(Query::delete_codes, key, kDoing); !done) return done;
  for (std::size_t i = 0; i < codes.size(); ++i) {
    // Bound without a copy (SQLite): must outlive the run.
    const std::string bound = store_row::bind_code_hash(box, user, enrollment, i, codes[i].hash);
    if (bound.empty()) {
      return std::unexpected(session.error(StoreErrorKind::key, "cannot bind a recovery code"));
    }
    const std::array params{Value::of(user), Value::of(static_cast<std::int64_t>(i)),
                            Value::of(std::string_view(bound)), Value::flag(codes[i].used)};
    if (auto done = session.run(Query::insert_code, params, kDoing); !done) return done;
  }
  return {};
}

// Undoes a migration's transaction unless released (a failed step, or an
// exception on the way).
class Undo {
 public:
  explicit Undo(SchemaSteps& steps) noexcept : steps_(&steps) {}
  Undo(const Undo&) = delete;
  Undo& operator=(const Undo&) = delete;
  Undo(Undo&&) = delete;
  Undo& operator=(Undo&&) = delete;
  ~Undo() {
    if (steps_ != nullptr) steps_->roll_back();
  }
  void release() noexcept { steps_ = nullptr; }

 private:
  SchemaSteps* steps_;
};

}  // namespace

StoreError invalid_row(const Session& session, std::string_view user, std::string_view what) {
  return session.error(StoreErrorKind::corrupt,
                       "the row of user '" + std::string(user) + "' has " + std::string(what));
}

std::expected<StoredRow, StoreError> decode_user(const Session& session, const Row& row, int first,
                                                 std::string user, const SecretBox& box,
                                                 Binding binding) {
  StoredRow out;
  const auto column = [first](Column c) { return first + static_cast<int>(c); };
  auto active = decode_slot(session, row, column(store_row::kActiveSecret), "active", user, box,
                            binding, out.active_sealed);
  if (!active) return std::unexpected(active.error());
  if (std::optional<Slot>& slot = *active; slot.has_value()) {
    out.record.active = Enrollment{std::move(slot->secret), slot->params, slot->at};
  }
  auto pending = decode_slot(session, row, column(store_row::kPendingSecret), "pending", user, box,
                             binding, out.pending_sealed);
  if (!pending) return std::unexpected(pending.error());
  if (std::optional<Slot>& slot = *pending; slot.has_value()) {
    out.record.pending = PendingEnrollment{std::move(slot->secret), slot->params, slot->at};
  }
  const auto failures = store_row::to_u32(row.integer(column(store_row::kFailures)));
  const auto lockout_level = store_row::to_u32(row.integer(column(store_row::kLockoutLevel)));
  if (!failures || !lockout_level)
    return std::unexpected(invalid_row(session, user, "bad counters"));
  out.record.last_step = row.integer(column(store_row::kLastStep));
  auto used_steps =
      store_row::used_steps(out.record.last_step, row.text(column(store_row::kUsedSteps)));
  if (!used_steps) return std::unexpected(invalid_row(session, user, "bad used_steps"));
  out.record.used_steps = std::move(*used_steps);
  out.record.failures = *failures;
  out.record.lockout_level = *lockout_level;
  if (const auto until = row.integer(column(store_row::kLockedUntil))) {
    out.record.locked_until = common::from_unix(*until);
  }
  out.record.last_skew_seconds = row.integer(column(store_row::kLastSkewSeconds));
  if (const auto stored = row.text(column(store_row::kRemembered))) {
    auto windows = decode_windows(*stored);
    if (!windows) return std::unexpected(invalid_row(session, user, "bad remembered"));
    out.record.remembered = std::move(*windows);
  }
  out.record.user = std::move(user);
  return out;
}

std::expected<std::optional<StoredRow>, StoreError> read_user(Session& session,
                                                              std::string_view user,
                                                              const SecretBox& box, Query select) {
  std::optional<StoredRow> found;
  const std::array key{Value::of(user)};
  auto read = session.run(select, key, "reading a user",
                          [&](const Row& row) -> std::expected<void, StoreError> {
                            auto decoded = decode_user(session, row, 0, std::string(user), box);
                            if (!decoded) return std::unexpected(decoded.error());
                            found = std::move(*decoded);
                            return {};
                          });
  if (!read) return std::unexpected(read.error());
  if (!found) return found;
  read = session.run(Query::select_codes, key, "reading recovery codes",
                     [&](const Row& row) -> std::expected<void, StoreError> {
                       std::vector<RecoveryCodeRecord>& codes = found->record.recovery_codes;
                       auto code =
                           decode_code(row, 0, box, Binding::bound, found->record, codes.size());
                       if (!code) return std::unexpected(invalid_row(session, user, kForeignCode));
                       codes.push_back(std::move(*code));
                       return {};
                     });
  if (!read) return std::unexpected(read.error());
  return found;
}

std::expected<void, StoreError> write_user(Session& session, const SecretBox& box,
                                           std::string_view user, const UserRecord& record,
                                           const StoredRow* before) {
  if (store_row::is_empty(record)) {
    if (before == nullptr) return {};
    const std::array key{Value::of(user)};  // recovery codes go by ON DELETE CASCADE
    return session.run(Query::delete_user, key, "deleting a user");
  }
  const UserRecord* old = before != nullptr ? &before->record : nullptr;
  auto active_sealed = seal_slot(session, box, "active", user, record.active,
                                 old != nullptr ? &old->active : nullptr,
                                 before != nullptr ? &before->active_sealed : nullptr);
  if (!active_sealed) return std::unexpected(active_sealed.error());
  auto pending_sealed = seal_slot(session, box, "pending", user, record.pending,
                                  old != nullptr ? &old->pending : nullptr,
                                  before != nullptr ? &before->pending_sealed : nullptr);
  if (!pending_sealed) return std::unexpected(pending_sealed.error());
  // Bound without a copy (SQLite): must outlive the run.
  const std::string used_steps =
      record.used_steps.empty() ? std::string() : encode_step_runs(record.used_steps);
  const std::string remembered =
      record.remembered.empty() ? std::string() : encode_windows(record.remembered);
  std::vector<Value> params;
  params.reserve(18);
  params.push_back(Value::of(user));
  bind_slot(params, record.active, *active_sealed);
  bind_slot(params, record.pending, *pending_sealed);
  params.push_back(Value::of(record.last_step));
  params.push_back(Value::of(std::int64_t{record.failures}));
  params.push_back(Value::of(std::int64_t{record.lockout_level}));
  params.push_back(Value::of(
      record.locked_until ? std::optional(common::to_unix(*record.locked_until)) : std::nullopt));
  params.push_back(Value::of(record.last_skew_seconds));
  params.push_back(record.used_steps.empty() ? Value::null()
                                             : Value::of(std::string_view(used_steps)));
  params.push_back(record.remembered.empty() ? Value::null()
                                             : Value::of(std::string_view(remembered)));
  if (auto done = session.run(Query::write_user, params, "writing a user"); !done) return done;
  return write_codes(session, box, user, record, old);
}

std::expected<UserList, StoreError> list_users(Session& session, const SecretBox& box,
                                               Binding binding) {
  UserList list;
  std::vector<UserRecord>& records = list.records;
  auto listed = session.run(Query::select_users, {}, "listing users",
                            [&](const Row& row) -> std::expected<void, StoreError> {
                              auto user = row.text(0);
                              if (!user)
                                return std::unexpected(invalid_row(session, "", "no name"));
                              // Decoding reads nothing more: whatever fails is this row's own. The
                              // migration that binds legacy rows must read every one (its error
                              // says why: a wrong key is told as such).
                              auto decoded = decode_user(session, row, 1, *user, box, binding);
                              if (!decoded && binding == Binding::legacy)
                                return std::unexpected(decoded.error());
                              if (!decoded) {
                                list.unreadable.push_back(std::move(*user));
                              } else {
                                records.push_back(std::move(decoded->record));
                              }
                              return {};
                            });
  if (!listed) return std::unexpected(listed.error());
  // Both queries are ordered by user in byte order: one pass matches codes to
  // records. A code that does not decode fails its record; one without a
  // readable record (its row did not decode) is that user's too.
  std::vector<bool> failed(records.size(), false);
  std::size_t next = 0;
  listed = session.run(
      Query::select_all_codes, {}, "listing users",
      [&](const Row& row) -> std::expected<void, StoreError> {
        auto user = row.text(0).value_or("");
        while (next < records.size() && records[next].user < user) ++next;
        if (next == records.size() || records[next].user != user) {
          if (binding == Binding::legacy) {
            return std::unexpected(invalid_row(session, user, "a bad recovery code"));
          }
          if (list.unreadable.empty() || list.unreadable.back() != user) {
            list.unreadable.push_back(std::move(user));
          }
          return {};
        }
        if (failed[next]) return {};
        UserRecord& record = records[next];
        auto code = decode_code(row, 1, box, binding, record, record.recovery_codes.size());
        if (!code && binding == Binding::legacy) {
          return std::unexpected(invalid_row(session, user, kForeignCode));
        }
        if (!code) {
          failed[next] = true;
        } else {
          record.recovery_codes.push_back(std::move(*code));
        }
        return {};
      });
  if (!listed) return std::unexpected(listed.error());
  std::vector<UserRecord> readable;
  readable.reserve(records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (failed[i]) {
      list.unreadable.push_back(std::move(records[i].user));
    } else {
      readable.push_back(std::move(records[i]));
    }
  }
  records = std::move(readable);
  std::ranges::sort(list.unreadable);
  const auto [first, last] = std::ranges::unique(list.unreadable);
  list.unreadable.erase(first, last);
  return list;
}

std::expected<void, StoreError> erase_user(Session& session, std::string_view user) {
  const std::array key{Value::of(user)};
  if (auto done = session.run(Query::delete_codes, key, "erasing a user"); !done) return done;
  return session.run(Query::delete_user, key, "erasing a user");
}

std::expected<void, StoreError> check_key(Session& session, const SecretBox& box) {
  return session.run(
      Query::first_sealed, {}, "checking the key",
      [&](const Row& row) -> std::expected<void, StoreError> {
        const std::string user = row.text(0).value_or("");
        const bool active = !row.is_null(1);
        const std::string_view slot = active ? "active" : "pending";
        const auto sealed = row.blob(active ? 1 : 2);
        const auto at = row.integer(active ? 3 : 4);
        if (!sealed || !at || !box.open(*sealed, store_row::sealed_secret_aad(slot, user, *at))) {
          return std::unexpected(key_error(session, slot, user));
        }
        return {};
      });
}

// Binds every row written before bound_schema_version (read the legacy way,
// written back the bound way), inside the migration's transaction.
std::expected<void, StoreError> bind_rows(Session& session, const SecretBox& box) {
  auto records = list_users(session, box, Binding::legacy);
  if (!records) return std::unexpected(records.error());
  for (const UserRecord& record : records->records) {
    if (auto done = write_user(session, box, record.user, record, nullptr); !done) return done;
  }
  return {};
}

std::expected<void, StoreError> migrate(Session& session, SchemaSteps& steps,
                                        const SecretBox& box) {
  const std::span<const Migration> all = migrations(session.dialect());
  const int newest = all.back().version;
  const auto newer = [&](std::int64_t version) {
    return session.error(StoreErrorKind::corrupt,
                         "written by a newer kpanel-totpd (schema version " +
                             std::to_string(version) + ", this one knows " +
                             std::to_string(newest) + "): " + wording(session.dialect()).upgrade);
  };
  const auto unlocked = steps.unlocked_version();
  if (!unlocked) return std::unexpected(unlocked.error());
  if (const std::optional<std::int64_t>& seen = *unlocked; seen.has_value()) {
    if (*seen > newest) return std::unexpected(newer(*seen));
    if (*seen == newest) return {};
  }
  if (auto locked = steps.lock(); !locked) return locked;
  Undo undo(steps);
  // Again under the lock: another host or process may have migrated meanwhile.
  const auto version = steps.locked_version();
  if (!version) return std::unexpected(version.error());
  if (*version > newest) return std::unexpected(newer(*version));
  if (*version < newest) {
    for (const Migration& migration : all) {
      if (migration.version <= *version) continue;
      if (auto done = steps.exec(migration.sql); !done) return done;
    }
    // Version 0 is an empty database: nothing to bind.
    if (*version > 0 && *version < bound_schema_version(session.dialect())) {
      if (auto ready = steps.ready_for_rows(); !ready) return ready;
      if (auto bound = bind_rows(session, box); !bound) return bound;
    }
    if (auto done = steps.set_version(newest); !done) return done;
  }
  if (auto checked = steps.before_commit(); !checked) return checked;
  undo.release();
  return steps.commit();
}

}  // namespace kpanel::daemon::sql
