#pragma once
// The user-record <-> row mapping both SQL stores share, over sql::Session:
// decoding a row (opening its sealed secrets), writing a record back
// (sealing, the recovery-code diff), reading and listing users, the start-up
// key check, the schema (each dialect's SQL text and migrations) and the
// migration procedure. The backends keep their connections, transactions
// and concurrency.

#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/store/secret_box.hpp"
#include "daemon/store/sql_session.hpp"
#include "daemon/store/store.hpp"

namespace kpanel::daemon::sql {

// A user's row as stored: the record (secrets opened) and the sealed secrets,
// so an update that keeps a secret keeps its sealed form.
struct StoredRow {
  UserRecord record;
  std::vector<std::uint8_t> active_sealed;
  std::vector<std::uint8_t> pending_sealed;
};

struct Migration {
  int version;
  const char* sql;
};

// How rows are bound to their key: bound (sealed secrets to their
// enrollment, recovery codes by a MAC; store_row.hpp), or legacy (as schema
// versions before the binding wrote them: read only by the migration that
// binds them).
enum class Binding : std::uint8_t { bound, legacy };

// The first schema version whose rows are bound, per dialect.
int bound_schema_version(Dialect dialect) noexcept;

// The text of `query` in `dialect` (empty: the dialect does not use it).
const std::string& query_text(Dialect dialect, Query query);

// The dialect's migrations, oldest first; the last one's version is the
// schema version this build writes.
std::span<const Migration> migrations(Dialect dialect);

// A row of `user` that does not decode.
StoreError invalid_row(const Session& session, std::string_view user, std::string_view what);

// Decodes the kUserColumns of `row` starting at column `first`.
std::expected<StoredRow, StoreError> decode_user(const Session& session, const Row& row, int first,
                                                 std::string user, const SecretBox& box,
                                                 Binding binding = Binding::bound);

// The user's row and recovery codes, read inside the caller's transaction with
// `select` (Query::select_user, or select_user_locked to lock the row).
std::expected<std::optional<StoredRow>, StoreError> read_user(Session& session,
                                                              std::string_view user,
                                                              const SecretBox& box,
                                                              Query select = Query::select_user);

// Writes `record` (the row as `before` was read, or none) inside the
// caller's transaction: a record left empty is deleted, secrets are sealed
// (or keep their sealed form), recovery codes are rewritten only when they changed.
std::expected<void, StoreError> write_user(Session& session, const SecretBox& box,
                                           std::string_view user, const UserRecord& record,
                                           const StoredRow* before);

// Every user, sorted by name, inside the caller's transaction: the records
// that decode (with their recovery codes), and the names of those that do
// not (a row or one of its codes), which fail only themselves. Legacy rows
// (read by the migration that binds them, which needs every one) fail the
// whole list instead, with the row's own error.
std::expected<UserList, StoreError> list_users(Session& session, const SecretBox& box,
                                               Binding binding = Binding::bound);

// Deletes the user's codes and row inside the caller's transaction, without
// reading them (a row that does not decode is cleared all the same).
std::expected<void, StoreError> erase_user(Session& session, std::string_view user);

// A wrong key_file should stop the daemon at start, not fail every login:
// one stored secret must open with `box`.
std::expected<void, StoreError> check_key(Session& session, const SecretBox& box);

// Brings the schema to the dialect's newest version through `steps`, or
// refuses a schema a newer kpanel-totpd wrote. Crossing
// bound_schema_version, it binds every existing row with `box` (in the same
// transaction: a row written into the database later is never bound by it).
std::expected<void, StoreError> migrate(Session& session, SchemaSteps& steps, const SecretBox& box);

}  // namespace kpanel::daemon::sql
