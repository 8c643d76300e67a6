#include "cli/backup.hpp"

#include <sqlite3.h>

#include <memory>
#include <string_view>

namespace kpanel::cli::backup {
namespace {

constexpr int kBusyTimeoutMs = 5000;
constexpr int kAllPages = -1;
constexpr std::size_t kFormatVersionOffset = 18;

struct DatabaseCloser {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using Database = std::unique_ptr<sqlite3, DatabaseCloser>;

std::string failed(sqlite3* db, std::string_view doing) {
  return std::string(doing) + ": " + (db != nullptr ? sqlite3_errmsg(db) : "out of memory");
}

std::expected<std::int64_t, std::string> single_integer(sqlite3* db, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
  const std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> statement(raw, sqlite3_finalize);
  if (rc == SQLITE_OK) rc = sqlite3_step(statement.get());
  if (rc != SQLITE_ROW) return std::unexpected(failed(db, "reading the copy"));
  return sqlite3_column_int64(statement.get(), 0);
}

std::expected<Database, std::string> open(const char* name, int flags, std::string_view doing) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(name, &raw, flags | SQLITE_OPEN_EXRESCODE, nullptr);
  Database db(raw);
  if (rc != SQLITE_OK) return std::unexpected(failed(db.get(), doing));
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  sqlite3_busy_timeout(db.get(), kBusyTimeoutMs);
  return db;
}

}  // namespace

std::expected<Snapshot, std::string> take_snapshot(const std::filesystem::path& database,
                                                   std::int64_t taken_at) {
  const std::string name = database.string();
  auto source =
      open(name.c_str(), SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW, "cannot open " + name);
  if (!source) return std::unexpected(source.error());
  // A missing file would open as an empty database: say so instead.
  auto tables = single_integer(source->get(),
                               "SELECT count(*) FROM sqlite_master WHERE type = "
                               "'table' AND name = 'users'");
  if (!tables) return std::unexpected("cannot read " + name + ": " + tables.error());
  if (*tables == 0) {
    return std::unexpected(name + " holds no kpanel-totp state (no users table)");
  }
  auto copy = open(":memory:", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "cannot make a copy");
  if (!copy) return std::unexpected(copy.error());
  // One step over every page: one read transaction, so one consistent state.
  sqlite3_backup* backup = sqlite3_backup_init(copy->get(), "main", source->get(), "main");
  if (backup == nullptr) return std::unexpected(failed(copy->get(), "cannot copy " + name));
  const int stepped = sqlite3_backup_step(backup, kAllPages);
  const int finished = sqlite3_backup_finish(backup);
  if (stepped != SQLITE_DONE || finished != SQLITE_OK) {
    return std::unexpected("cannot copy " + name + ": " +
                           sqlite3_errstr(stepped != SQLITE_DONE ? stepped : finished));
  }
  source->reset();
  // A state restored from a snapshot and not yet opened by the daemon still
  // has its mark: this snapshot gets its own.
  const std::string mark = std::string("DROP TABLE IF EXISTS ") + kSnapshotTable +
                           "; CREATE TABLE " + kSnapshotTable +
                           " (taken_at INTEGER NOT NULL) STRICT; INSERT INTO " + kSnapshotTable +
                           " (taken_at) VALUES (" + std::to_string(taken_at) + ");";
  if (sqlite3_exec(copy->get(), mark.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
    return std::unexpected(failed(copy->get(), "cannot mark the copy as a snapshot"));
  }
  auto users = single_integer(copy->get(), "SELECT count(*) FROM users");
  if (!users) return std::unexpected(users.error());
  sqlite3_int64 size = 0;
  unsigned char* raw = sqlite3_serialize(copy->get(), "main", &size, 0);
  const std::unique_ptr<unsigned char, void (*)(void*)> serialized(raw, sqlite3_free);
  if (serialized == nullptr || size <= 0) {
    return std::unexpected(std::string("cannot serialize the copy (out of memory?)"));
  }
  Snapshot snapshot;
  snapshot.bytes.assign(serialized.get(), serialized.get() + size);
  // Header bytes 18 and 19 (file format versions) from 2 (WAL) to 1: the copy
  // then reads anywhere without -wal and -shm files; the daemon turns WAL
  // back on when it opens the restored file.
  if (snapshot.bytes.size() > kFormatVersionOffset + 1) {
    snapshot.bytes[kFormatVersionOffset] = 1;
    snapshot.bytes[kFormatVersionOffset + 1] = 1;
  }
  snapshot.users = *users;
  return snapshot;
}

}  // namespace kpanel::cli::backup
