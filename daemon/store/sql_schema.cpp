// Each dialect's schema (migrations) and the text of the row layer's queries.
// A migration is append-only: a released one is never edited, a change is a
// new entry. The two dialects keep the same columns in the same order.

#include <array>
#include <string>

#include "daemon/store/sql_rows.hpp"
#include "daemon/store/store_postgresql.hpp"
#include "daemon/store/store_row.hpp"
#include "daemon/store/store_sqlite.hpp"

namespace kpanel::daemon::sql {
namespace {

// An enrollment's columns are all set or all NULL (both dialects' users table).
#define KPANEL_SLOT_CHECKS                                            \
  "  CHECK ((active_secret IS NULL) = (active_algorithm IS NULL)\n"   \
  "     AND (active_secret IS NULL) = (active_digits IS NULL)\n"      \
  "     AND (active_secret IS NULL) = (active_period IS NULL)\n"      \
  "     AND (active_secret IS NULL) = (enrolled_at IS NULL)),\n"      \
  "  CHECK ((pending_secret IS NULL) = (pending_algorithm IS NULL)\n" \
  "     AND (pending_secret IS NULL) = (pending_digits IS NULL)\n"    \
  "     AND (pending_secret IS NULL) = (pending_period IS NULL)\n"    \
  "     AND (pending_secret IS NULL) = (pending_expires_at IS NULL))\n"

// STRICT tables so a value of the wrong type is an error, not a silent cast.
constexpr std::array kSqliteMigrations{
    Migration{1, R"sql(
CREATE TABLE users (
  user TEXT PRIMARY KEY NOT NULL,
  active_secret BLOB,
  active_algorithm TEXT CHECK (active_algorithm IN ('SHA1', 'SHA256', 'SHA512')),
  active_digits INTEGER CHECK (active_digits BETWEEN 6 AND 8),
  active_period INTEGER CHECK (active_period BETWEEN 1 AND 4294967295),
  enrolled_at INTEGER,
  pending_secret BLOB,
  pending_algorithm TEXT CHECK (pending_algorithm IN ('SHA1', 'SHA256', 'SHA512')),
  pending_digits INTEGER CHECK (pending_digits BETWEEN 6 AND 8),
  pending_period INTEGER CHECK (pending_period BETWEEN 1 AND 4294967295),
  pending_expires_at INTEGER,
  last_step INTEGER,
  failures INTEGER NOT NULL DEFAULT 0 CHECK (failures BETWEEN 0 AND 4294967295),
  lockout_level INTEGER NOT NULL DEFAULT 0 CHECK (lockout_level BETWEEN 0 AND 4294967295),
  locked_until INTEGER,
  last_skew_seconds INTEGER,
)sql" KPANEL_SLOT_CHECKS R"sql() STRICT;
CREATE TABLE recovery_codes (
  user TEXT NOT NULL REFERENCES users (user) ON DELETE CASCADE,
  idx INTEGER NOT NULL CHECK (idx >= 0),
  hash TEXT NOT NULL,
  used INTEGER NOT NULL CHECK (used IN (0, 1)),
  PRIMARY KEY (user, idx)
) STRICT, WITHOUT ROWID;
)sql"},
    // The steps the active secret has accepted (replay_steps.hpp), so a clock
    // moved back reopens no used step; NULL in a row written before: every
    // step up to last_step counts as used.
    Migration{2, R"sql(
ALTER TABLE users ADD COLUMN used_steps TEXT;
)sql"},
    // The daemon's runs, for the crash fence (daemon/rules/fence.hpp): one row.
    // This host's SQLite only: a fleet's store commits every change durably.
    Migration{3, R"sql(
CREATE TABLE daemon_run (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  boot_id TEXT NOT NULL,
  running INTEGER NOT NULL CHECK (running IN (0, 1)),
  high_water INTEGER NOT NULL,
  fence_time INTEGER,
  fence_window INTEGER CHECK (fence_window BETWEEN 0 AND 4294967295),
  CHECK ((fence_time IS NULL) = (fence_window IS NULL))
) STRICT;
)sql"},
    // Remembered-login windows (daemon/rules/remember.hpp), in the user's row.
    Migration{4, R"sql(
ALTER TABLE users ADD COLUMN remembered TEXT;
)sql"},
    // Rows bound to key_file (store_row.hpp): sealed secrets to their
    // enrollment, recovery codes by a MAC; migrate() binds the rows written
    // before, in this migration's transaction. And a value sealed with the
    // key, which start-up opens to check key_file (store_sqlite.cpp), so a
    // damaged user row fails that user only.
    Migration{5, R"sql(
CREATE TABLE IF NOT EXISTS key_check (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  sealed BLOB NOT NULL
) STRICT;
)sql"},
};
static_assert(kSqliteMigrations.size() == static_cast<std::size_t>(kSqliteSchemaVersion));

// Table names carry a prefix so the store can share a database (or a schema
// picked with search_path in the DSN) with other applications.
constexpr std::array kPostgresqlMigrations{
    Migration{1, R"sql(
CREATE TABLE kpanel_totp_users (
  name text PRIMARY KEY,
  active_secret bytea,
  active_algorithm text CHECK (active_algorithm IN ('SHA1', 'SHA256', 'SHA512')),
  active_digits integer CHECK (active_digits BETWEEN 6 AND 8),
  active_period bigint CHECK (active_period BETWEEN 1 AND 4294967295),
  enrolled_at bigint,
  pending_secret bytea,
  pending_algorithm text CHECK (pending_algorithm IN ('SHA1', 'SHA256', 'SHA512')),
  pending_digits integer CHECK (pending_digits BETWEEN 6 AND 8),
  pending_period bigint CHECK (pending_period BETWEEN 1 AND 4294967295),
  pending_expires_at bigint,
  last_step bigint,
  failures bigint NOT NULL DEFAULT 0 CHECK (failures BETWEEN 0 AND 4294967295),
  lockout_level bigint NOT NULL DEFAULT 0 CHECK (lockout_level BETWEEN 0 AND 4294967295),
  locked_until bigint,
  last_skew_seconds bigint,
)sql" KPANEL_SLOT_CHECKS R"sql();
CREATE TABLE kpanel_totp_recovery_codes (
  name text NOT NULL REFERENCES kpanel_totp_users (name) ON DELETE CASCADE,
  idx integer NOT NULL CHECK (idx >= 0),
  hash text NOT NULL,
  used boolean NOT NULL,
  PRIMARY KEY (name, idx)
);
CREATE TABLE kpanel_totp_key_check (
  sealed bytea NOT NULL
);
)sql"},
    Migration{2, R"sql(
ALTER TABLE kpanel_totp_users ADD COLUMN used_steps text;
)sql"},
    // Remembered-login windows, each tagged with the host that opened it:
    // every host of the fleet honours only its own.
    Migration{3, R"sql(
ALTER TABLE kpanel_totp_users ADD COLUMN remembered text;
)sql"},
    // Rows bound to key_file, as SQLite's version 5.
    Migration{4, "SELECT 1"},
};
static_assert(kPostgresqlMigrations.size() == static_cast<std::size_t>(kPostgresqlSchemaVersion));

#undef KPANEL_SLOT_CHECKS

// Parameters in write_user's bind order: user, then store_row::kUserColumns' order.
constexpr const char* kSqliteUpsertUser = R"sql(
INSERT INTO users (user, active_secret, active_algorithm, active_digits, active_period,
                   enrolled_at, pending_secret, pending_algorithm, pending_digits,
                   pending_period, pending_expires_at, last_step, failures, lockout_level,
                   locked_until, last_skew_seconds, used_steps, remembered)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
ON CONFLICT (user) DO UPDATE SET
  active_secret = excluded.active_secret, active_algorithm = excluded.active_algorithm,
  active_digits = excluded.active_digits, active_period = excluded.active_period,
  enrolled_at = excluded.enrolled_at, pending_secret = excluded.pending_secret,
  pending_algorithm = excluded.pending_algorithm, pending_digits = excluded.pending_digits,
  pending_period = excluded.pending_period, pending_expires_at = excluded.pending_expires_at,
  last_step = excluded.last_step, failures = excluded.failures,
  lockout_level = excluded.lockout_level, locked_until = excluded.locked_until,
  last_skew_seconds = excluded.last_skew_seconds, used_steps = excluded.used_steps,
  remembered = excluded.remembered
)sql";

// The row exists when this runs: PostgresqlStore::update() made sure, and locked it.
constexpr const char* kPostgresqlUpdateUser = R"sql(
UPDATE kpanel_totp_users SET
  active_secret = $2, active_algorithm = $3, active_digits = $4, active_period = $5,
  enrolled_at = $6, pending_secret = $7, pending_algorithm = $8, pending_digits = $9,
  pending_period = $10, pending_expires_at = $11, last_step = $12, failures = $13,
  lockout_level = $14, locked_until = $15, last_skew_seconds = $16, used_steps = $17,
  remembered = $18
WHERE name = $1
)sql";

using Texts = std::array<std::string, kQueryCount>;

Texts sqlite_texts() {
  const std::string columns(store_row::kUserColumns);
  Texts texts;
  const auto set = [&](Query query, std::string text) {
    texts.at(static_cast<std::size_t>(query)) = std::move(text);
  };
  set(Query::select_user, "SELECT " + columns + " FROM users WHERE user = ?1");
  set(Query::select_codes, "SELECT hash, used FROM recovery_codes WHERE user = ?1 ORDER BY idx");
  // BINARY collation: byte order, std::string's.
  set(Query::select_users, "SELECT user, " + columns + " FROM users ORDER BY user");
  set(Query::select_all_codes, "SELECT user, hash, used FROM recovery_codes ORDER BY user, idx");
  set(Query::write_user, kSqliteUpsertUser);
  set(Query::delete_user, "DELETE FROM users WHERE user = ?1");
  set(Query::delete_codes, "DELETE FROM recovery_codes WHERE user = ?1");
  set(Query::insert_code,
      "INSERT INTO recovery_codes (user, idx, hash, used) VALUES (?1, ?2, ?3, ?4)");
  set(Query::update_code_used, "UPDATE recovery_codes SET used = ?3 WHERE user = ?1 AND idx = ?2");
  set(Query::first_sealed,
      "SELECT user, active_secret, pending_secret, enrolled_at, pending_expires_at FROM users"
      " WHERE active_secret IS NOT NULL OR pending_secret IS NOT NULL LIMIT 1");
  return texts;
}

Texts postgresql_texts() {
  const std::string columns(store_row::kUserColumns);
  Texts texts;
  const auto set = [&](Query query, std::string text) {
    texts.at(static_cast<std::size_t>(query)) = std::move(text);
  };
  set(Query::select_user, "SELECT " + columns + " FROM kpanel_totp_users WHERE name = $1");
  set(Query::select_user_locked,
      "SELECT " + columns + " FROM kpanel_totp_users WHERE name = $1 FOR UPDATE");
  set(Query::select_codes,
      "SELECT hash, used FROM kpanel_totp_recovery_codes WHERE name = $1 ORDER BY idx");
  // COLLATE "C": byte order, std::string's, whatever the database's locale.
  set(Query::select_users,
      "SELECT name, " + columns + " FROM kpanel_totp_users ORDER BY name COLLATE \"C\"");
  set(Query::select_all_codes,
      "SELECT name, hash, used FROM kpanel_totp_recovery_codes ORDER BY name COLLATE \"C\", idx");
  set(Query::write_user, kPostgresqlUpdateUser);
  set(Query::delete_user, "DELETE FROM kpanel_totp_users WHERE name = $1");
  set(Query::delete_codes, "DELETE FROM kpanel_totp_recovery_codes WHERE name = $1");
  set(Query::insert_code,
      "INSERT INTO kpanel_totp_recovery_codes (name, idx, hash, used) VALUES ($1, $2, $3, $4)");
  set(Query::update_code_used,
      "UPDATE kpanel_totp_recovery_codes SET used = $3 WHERE name = $1 AND idx = $2");
  set(Query::first_sealed,
      "SELECT name, active_secret, pending_secret, enrolled_at, pending_expires_at"
      " FROM kpanel_totp_users"
      " WHERE active_secret IS NOT NULL OR pending_secret IS NOT NULL LIMIT 1");
  return texts;
}

}  // namespace

const std::string& query_text(Dialect dialect, Query query) {
  static const Texts sqlite = sqlite_texts();
  static const Texts postgresql = postgresql_texts();
  return (dialect == Dialect::sqlite ? sqlite : postgresql).at(static_cast<std::size_t>(query));
}

int bound_schema_version(Dialect dialect) noexcept { return dialect == Dialect::sqlite ? 5 : 4; }

std::span<const Migration> migrations(Dialect dialect) {
  if (dialect == Dialect::sqlite) return kSqliteMigrations;
  return kPostgresqlMigrations;
}

}  // namespace kpanel::daemon::sql
