#include "daemon/store/store_sqlite.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <functional>
#include <limits>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "common/os_text.hpp"
#include "common/unique_fd.hpp"
#include "daemon/config/private_file.hpp"
#include "daemon/store/store_row.hpp"

namespace kpanel::daemon {
namespace {

constexpr const char* kDatabaseFile = "state.db";
// The files SQLite keeps next to the database; each must be ours and 0600.
constexpr std::array<const char*, 3> kCompanionSuffixes{"-wal", "-shm", "-journal"};
constexpr int kBusyTimeoutMs = 5000;
constexpr mode_t kPrivateFile = S_IRUSR | S_IWUSR;
constexpr mode_t kPrivateDir = S_IRWXU;

// ---- schema ---------------------------------------------------------------------

struct Migration {
  int version;
  const char* sql;
};

// Append-only: a released migration is never edited, a change is a new entry.
// STRICT tables so a value of the wrong type is an error, not a silent cast.
constexpr std::array kMigrations{
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
  CHECK ((active_secret IS NULL) = (active_algorithm IS NULL)
     AND (active_secret IS NULL) = (active_digits IS NULL)
     AND (active_secret IS NULL) = (active_period IS NULL)
     AND (active_secret IS NULL) = (enrolled_at IS NULL)),
  CHECK ((pending_secret IS NULL) = (pending_algorithm IS NULL)
     AND (pending_secret IS NULL) = (pending_digits IS NULL)
     AND (pending_secret IS NULL) = (pending_period IS NULL)
     AND (pending_secret IS NULL) = (pending_expires_at IS NULL))
) STRICT;
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
};
static_assert(kMigrations.size() == static_cast<std::size_t>(kSqliteSchemaVersion));

// Parameters in write_user's bind order: user, then store_row::kUserColumns' order.
constexpr const char* kUpsertUser = R"sql(
INSERT INTO users (user, active_secret, active_algorithm, active_digits, active_period,
                   enrolled_at, pending_secret, pending_algorithm, pending_digits,
                   pending_period, pending_expires_at, last_step, failures, lockout_level,
                   locked_until, last_skew_seconds, used_steps)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
ON CONFLICT (user) DO UPDATE SET
  active_secret = excluded.active_secret, active_algorithm = excluded.active_algorithm,
  active_digits = excluded.active_digits, active_period = excluded.active_period,
  enrolled_at = excluded.enrolled_at, pending_secret = excluded.pending_secret,
  pending_algorithm = excluded.pending_algorithm, pending_digits = excluded.pending_digits,
  pending_period = excluded.pending_period, pending_expires_at = excluded.pending_expires_at,
  last_step = excluded.last_step, failures = excluded.failures,
  lockout_level = excluded.lockout_level, locked_until = excluded.locked_until,
  last_skew_seconds = excluded.last_skew_seconds, used_steps = excluded.used_steps
)sql";

// ---- small helpers ----------------------------------------------------------------

using common::errno_text;
using common::octal_mode;

StoreError io_error(std::string message) {
  return StoreError{StoreErrorKind::io, std::move(message)};
}

struct StatementDeleter {
  void operator()(sqlite3_stmt* statement) const noexcept { sqlite3_finalize(statement); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

// One use of a cached statement: reset when the use ends, however it ends, so
// it holds no read snapshot and no pointer into a caller's buffer.
class StatementUse {
 public:
  explicit StatementUse(const Statement& statement) noexcept : statement_(statement.get()) {}
  StatementUse(const StatementUse&) = delete;
  StatementUse& operator=(const StatementUse&) = delete;
  StatementUse(StatementUse&&) = delete;
  StatementUse& operator=(StatementUse&&) = delete;
  ~StatementUse() {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
  }
  [[nodiscard]] sqlite3_stmt* get() const noexcept { return statement_; }

 private:
  sqlite3_stmt* statement_;
};

// Binds parameters ?1, ?2, … in order and keeps the first failure. Bound
// buffers must outlive the statement's use (SQLITE_STATIC: no copy of a secret).
class Binder {
 public:
  explicit Binder(sqlite3_stmt* statement) noexcept : statement_(statement) {}
  Binder& text(std::string_view value) {
    // A null pointer would bind SQL NULL; an empty name is still text.
    const char* data = value.data() != nullptr ? value.data() : "";
    return record(
        sqlite3_bind_text64(statement_, next_, data, value.size(), SQLITE_STATIC, SQLITE_UTF8));
  }
  Binder& blob(std::span<const std::uint8_t> value) {
    return record(
        sqlite3_bind_blob64(statement_, next_, value.data(), value.size(), SQLITE_STATIC));
  }
  Binder& integer(std::int64_t value) {
    return record(sqlite3_bind_int64(statement_, next_, value));
  }
  Binder& optional_integer(const std::optional<std::int64_t>& value) {
    return value ? integer(*value) : null();
  }
  Binder& null() { return record(sqlite3_bind_null(statement_, next_)); }
  [[nodiscard]] int result() const noexcept { return result_; }

 private:
  Binder& record(int rc) {
    if (result_ == SQLITE_OK) result_ = rc;
    ++next_;
    return *this;
  }
  sqlite3_stmt* statement_;
  int next_ = 1;
  int result_ = SQLITE_OK;
};

StoreErrorKind kind_of(int rc) noexcept {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return StoreErrorKind::busy;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_FORMAT:
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
      return StoreErrorKind::corrupt;
    default:  // SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_NOMEM, …
      return StoreErrorKind::io;
  }
}

std::optional<std::int64_t> optional_integer(sqlite3_stmt* statement, int column) {
  if (sqlite3_column_type(statement, column) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_int64(statement, column);
}

std::optional<common::TimePoint> optional_time(sqlite3_stmt* statement, int column) {
  const auto seconds = optional_integer(statement, column);
  if (!seconds) return std::nullopt;
  return common::from_unix(*seconds);
}

std::optional<std::string> optional_text(sqlite3_stmt* statement, int column) {
  const unsigned char* text = sqlite3_column_text(statement, column);
  if (text == nullptr) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<std::size_t>(sqlite3_column_bytes(statement, column)));
}

std::vector<std::uint8_t> blob_of(sqlite3_stmt* statement, int column) {
  const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(statement, column));
  const auto size = static_cast<std::size_t>(sqlite3_column_bytes(statement, column));
  if (data == nullptr) return {};
  return {data, data + size};
}

// TOTP parameters from the algorithm, digits and period columns at `first`.
std::optional<common::TotpParams> params_at(sqlite3_stmt* statement, int first) {
  return store_row::totp_params(optional_text(statement, first),
                                optional_integer(statement, first + 1),
                                optional_integer(statement, first + 2));
}

// A user's row as stored: the record (secrets opened) and the sealed secrets,
// so an update that keeps a secret can keep its sealed form.
struct StoredRow {
  UserRecord record;
  std::vector<std::uint8_t> active_sealed;
  std::vector<std::uint8_t> pending_sealed;
};

// ---- the state directory and its files --------------------------------------------

std::expected<void, StoreError> check_private_dir(const std::filesystem::path& dir, bool created) {
  const std::string name = dir.string();
  auto opened = open_no_follow(dir, FileKind::directory);
  if (!opened) {
    const FileIssue& issue = opened.error();
    if (issue.problem == FileProblem::symlink || issue.error == ELOOP) {
      return std::unexpected(io_error("state_dir " + name +
                                      " is a symbolic link, which is refused: set state_dir to "
                                      "the real directory"));
    }
    if (issue.problem == FileProblem::not_directory) {
      return std::unexpected(io_error("state_dir " + name + " is not a directory"));
    }
    if (issue.problem == FileProblem::cannot_stat) {
      return std::unexpected(
          io_error("cannot stat state_dir " + name + ": " + errno_text(issue.error)));
    }
    return std::unexpected(
        io_error("cannot open state_dir " + name + ": " + errno_text(issue.error)));
  }
  const common::UniqueFd fd = std::move(opened->fd);
  const struct stat& info = opened->info;
  const uid_t euid = ::geteuid();
  const auto issues = owner_and_mode_issues(info, dir, OwnerAndMode{euid});
  if (!issues.empty() && issues.front().problem == FileProblem::wrong_owner) {
    return std::unexpected(io_error("state_dir " + name + " is owned by uid " +
                                    std::to_string(info.st_uid) + ", not by the daemon's uid " +
                                    std::to_string(euid) + ": chown -R " + std::to_string(euid) +
                                    " " + name));
  }
  // A directory we just made gets exactly 0700 whatever the umask did.
  if (created && (info.st_mode & 07777U) != kPrivateDir && ::fchmod(fd.get(), kPrivateDir) != 0) {
    const int error = errno;
    return std::unexpected(io_error("cannot chmod state_dir " + name + ": " + errno_text(error)));
  }
  if (!created && !issues.empty()) {  // too_open: group or others have access
    return std::unexpected(io_error("state_dir " + name + " has mode " + octal_mode(info.st_mode) +
                                    " (group or others have access): chmod 700 " + name));
  }
  return {};
}

bool fsync_path(const std::filesystem::path& path, int flags) noexcept {
  const common::UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  return fd.valid() && ::fsync(fd.get()) == 0;
}

std::expected<void, StoreError> prepare_state_dir(const std::filesystem::path& dir) {
  bool created = false;
  if (::mkdir(dir.c_str(), kPrivateDir) == 0) {
    created = true;
    // The new directory entry must survive a crash, like what goes in it.
    const std::filesystem::path parent =
        dir.has_parent_path() ? dir.parent_path() : std::filesystem::path(".");
    if (!fsync_path(parent, O_RDONLY | O_DIRECTORY)) {
      const int error = errno;
      return std::unexpected(io_error("cannot sync " + parent.string() + " after creating " +
                                      "state_dir " + dir.string() + ": " + errno_text(error)));
    }
  } else if (errno != EEXIST) {
    const int error = errno;
    return std::unexpected(
        io_error("cannot create state_dir " + dir.string() + ": " + errno_text(error) +
                 (error == ENOENT ? " (its parent directory does not exist)" : "")));
  }
  return check_private_dir(dir, created);
}

// A file SQLite keeps in state_dir: a regular file of ours, narrowed to 0600 if
// wider. Checked by name, never opened: closing a descriptor of a database file
// would drop the POSIX locks any SQLite connection of this process holds on it.
std::expected<bool, StoreError> check_private_file(const std::filesystem::path& path) {
  const auto checked = lstat_no_follow(path, FileKind::regular);
  if (!checked) {
    const FileIssue& issue = checked.error();
    if (issue.problem == FileProblem::missing) return false;
    if (issue.problem == FileProblem::cannot_stat) {
      return std::unexpected(
          io_error("cannot stat " + path.string() + ": " + errno_text(issue.error)));
    }
    return std::unexpected(  // symlink or not_regular
        io_error(path.string() + " is not a regular file (a symbolic link?): remove it"));
  }
  const struct stat& info = *checked;
  const uid_t euid = ::geteuid();
  const auto issues = owner_and_mode_issues(info, path, OwnerAndMode{euid});
  if (!issues.empty() && issues.front().problem == FileProblem::wrong_owner) {
    return std::unexpected(io_error(path.string() + " is owned by uid " +
                                    std::to_string(info.st_uid) + ", not by the daemon's uid " +
                                    std::to_string(euid) + ": chown " + std::to_string(euid) + " " +
                                    path.string()));
  }
  if (!issues.empty() && ::chmod(path.c_str(), kPrivateFile) != 0) {  // too_open: narrow it
    const int error = errno;
    return std::unexpected(
        io_error("cannot chmod 600 " + path.string() + ": " + errno_text(error)));
  }
  return true;
}

// Makes an empty state.db with mode 0600 when there is none, so SQLite (which
// creates files 0644 minus the umask, and its -wal/-shm files with the
// database's mode) never makes a wider one.
std::expected<void, StoreError> prepare_database_file(const std::filesystem::path& dir,
                                                      const std::filesystem::path& db) {
  const auto exists = check_private_file(db);
  if (!exists) return std::unexpected(exists.error());
  if (!*exists) {
    const common::UniqueFd fd(
        ::open(db.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, kPrivateFile));
    if (!fd.valid() && errno != EEXIST) {
      const int error = errno;
      return std::unexpected(io_error("cannot create " + db.string() + ": " + errno_text(error)));
    }
    if (fd.valid() && (::fchmod(fd.get(), kPrivateFile) != 0 || ::fsync(fd.get()) != 0 ||
                       !fsync_path(dir, O_RDONLY | O_DIRECTORY))) {
      const int error = errno;
      return std::unexpected(io_error("cannot create " + db.string() + ": " + errno_text(error)));
    }
  }
  for (const char* suffix : kCompanionSuffixes) {
    if (const auto checked = check_private_file(db.string() + suffix); !checked) {
      return std::unexpected(checked.error());
    }
  }
  return {};
}

}  // namespace

// ---- one connection ----------------------------------------------------------------

class SqliteStore::Connection {
 public:
  enum class Role : std::uint8_t { writer, reader };

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  Connection(Connection&&) = delete;
  Connection& operator=(Connection&&) = delete;
  ~Connection() {
    // Statements first: a handle with live statements does not close.
    for (Statement* statement : all_statements()) statement->reset();
    sqlite3_close_v2(db_);
  }

  static std::expected<std::unique_ptr<Connection>, StoreError> open(
      const std::filesystem::path& path, Role role) {
    std::unique_ptr<Connection> connection(new Connection(path.string()));
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &db,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW |
                                       SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_EXRESCODE,
                                   nullptr);
    connection->db_ = db;  // set even on failure, so it is closed
    if (rc != SQLITE_OK) return std::unexpected(connection->failure(rc, "opening the database"));
    // Hardening: no writable_schema or other ways to corrupt the file by SQL,
    // no SQL functions run from the schema.
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
    sqlite3_busy_timeout(db, kBusyTimeoutMs);
    // Keep the -wal file when the last connection closes (its frames are
    // checkpointed into the database either way): appending to a fresh file
    // makes every commit's fsync also write the file's new size, about 3x
    // slower on ext4 than overwriting the blocks of an existing one.
    int persist_wal = 1;
    sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist_wal);
    // cache_size: 512 KiB per connection keeps the B-tree's inner pages; a
    // leaf beyond it is one pread from the kernel's page cache. SQLite's 2 MiB
    // default would add ~3 MiB to the daemon's RSS at 100,000 users.
    if (auto done = connection->exec(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA cache_size = -512;",
            "setting up the connection");
        !done) {
      return std::unexpected(done.error());
    }
    if (role == Role::writer) {
      // WAL is a property of the file; the writer sets it before the reader opens.
      auto mode = connection->single_text("PRAGMA journal_mode = WAL", "enabling WAL");
      if (!mode) return std::unexpected(mode.error());
      if (*mode != "wal") {
        return std::unexpected(io_error("sqlite store " + connection->name_ +
                                        ": cannot use WAL journaling (journal_mode is " + *mode +
                                        ")"));
      }
    } else if (auto done = connection->exec("PRAGMA query_only = ON;", "setting up the reader");
               !done) {
      return std::unexpected(done.error());
    }
    return connection;
  }

  // Caches the statements; after migrations, since they name the tables.
  std::expected<void, StoreError> prepare_statements() {
    const std::string users = "SELECT " + std::string(store_row::kUserColumns) + " FROM users";
    const std::array<std::pair<Statement*, std::string>, 17> sql{{
        {&begin_deferred, "BEGIN"},
        {&begin_immediate, "BEGIN IMMEDIATE"},
        {&commit, "COMMIT"},
        {&rollback, "ROLLBACK"},
        {&savepoint, "SAVEPOINT one_update"},
        {&release_savepoint, "RELEASE one_update"},
        {&rollback_to_savepoint, "ROLLBACK TO one_update"},
        {&select_user, users + " WHERE user = ?1"},
        {&select_codes, "SELECT hash, used FROM recovery_codes WHERE user = ?1 ORDER BY idx"},
        {&select_users,
         "SELECT user, " + std::string(store_row::kUserColumns) + " FROM users ORDER BY user"},
        {&select_all_codes, "SELECT user, hash, used FROM recovery_codes ORDER BY user, idx"},
        {&upsert_user, kUpsertUser},
        {&delete_user, "DELETE FROM users WHERE user = ?1"},
        {&delete_codes, "DELETE FROM recovery_codes WHERE user = ?1"},
        {&insert_code,
         "INSERT INTO recovery_codes (user, idx, hash, used) VALUES (?1, ?2, ?3, ?4)"},
        {&update_code_used, "UPDATE recovery_codes SET used = ?3 WHERE user = ?1 AND idx = ?2"},
        {&first_sealed,
         "SELECT user, active_secret, pending_secret FROM users"
         " WHERE active_secret IS NOT NULL OR pending_secret IS NOT NULL LIMIT 1"},
    }};
    for (const auto& [statement, text] : sql) {
      auto prepared = prepare(text, SQLITE_PREPARE_PERSISTENT);
      if (!prepared) return std::unexpected(prepared.error());
      *statement = std::move(*prepared);
    }
    return {};
  }

  [[nodiscard]] StoreError failure(int rc, std::string_view doing) const {
    const char* detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    return StoreError{kind_of(rc),
                      "sqlite store " + name_ + ": " + detail + " (" + std::string(doing) + ")"};
  }

  [[nodiscard]] StoreError invalid_row(std::string_view user, std::string_view what) const {
    return StoreError{StoreErrorKind::corrupt, "sqlite store " + name_ + ": the row of user '" +
                                                   std::string(user) + "' has " +
                                                   std::string(what)};
  }

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] sqlite3* handle() const noexcept { return db_; }

  // Runs a cached statement that returns no rows.
  std::expected<void, StoreError> run(const Statement& statement, std::string_view doing) const {
    const StatementUse use(statement);
    return step_to_end(use.get(), doing);
  }

  std::expected<void, StoreError> step_to_end(sqlite3_stmt* statement,
                                              std::string_view doing) const {
    int rc = SQLITE_ROW;
    while (rc == SQLITE_ROW) rc = sqlite3_step(statement);
    if (rc != SQLITE_DONE) return std::unexpected(failure(rc, doing));
    return {};
  }

  std::expected<void, StoreError> exec(const char* sql, std::string_view doing) {
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return std::unexpected(failure(rc, doing));
    return {};
  }

  std::expected<Statement, StoreError> prepare(const std::string& sql, unsigned flags = 0) {
    sqlite3_stmt* raw = nullptr;
    const int rc =
        sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()), flags, &raw, nullptr);
    Statement statement(raw);
    if (rc != SQLITE_OK) return std::unexpected(failure(rc, "preparing a statement"));
    return statement;
  }

  // The one value of a one-row query run once (PRAGMAs).
  std::expected<std::int64_t, StoreError> single_integer(const std::string& sql,
                                                         std::string_view doing) {
    auto statement = prepare(sql);
    if (!statement) return std::unexpected(statement.error());
    const int rc = sqlite3_step(statement->get());
    if (rc != SQLITE_ROW) return std::unexpected(failure(rc, doing));
    return sqlite3_column_int64(statement->get(), 0);
  }

  std::expected<std::string, StoreError> single_text(const std::string& sql,
                                                     std::string_view doing) {
    auto statement = prepare(sql);
    if (!statement) return std::unexpected(statement.error());
    const int rc = sqlite3_step(statement->get());
    if (rc != SQLITE_ROW) return std::unexpected(failure(rc, doing));
    return optional_text(statement->get(), 0).value_or("");
  }

  Statement begin_deferred;
  Statement begin_immediate;
  Statement commit;
  Statement rollback;
  Statement savepoint;
  Statement release_savepoint;
  Statement rollback_to_savepoint;
  Statement select_user;
  Statement select_codes;
  Statement select_users;
  Statement select_all_codes;
  Statement upsert_user;
  Statement delete_user;
  Statement delete_codes;
  Statement insert_code;
  Statement update_code_used;
  Statement first_sealed;

 private:
  explicit Connection(std::string name) : name_(std::move(name)) {}

  std::array<Statement*, 17> all_statements() noexcept {
    return {&begin_deferred,    &begin_immediate,       &commit,      &rollback,     &savepoint,
            &release_savepoint, &rollback_to_savepoint, &select_user, &select_codes, &select_users,
            &select_all_codes,  &upsert_user,           &delete_user, &delete_codes, &insert_code,
            &update_code_used,  &first_sealed};
  }

  std::string name_;
  sqlite3* db_ = nullptr;
};

namespace {

using Connection = SqliteStore::Connection;

// An open transaction, rolled back unless committed (a failed step, a change()
// that returns false or throws).
class Transaction {
 public:
  static std::expected<Transaction, StoreError> begin(Connection& connection,
                                                      const Statement& begin_statement) {
    // A rollback that failed earlier must not leave every later BEGIN failing.
    if (sqlite3_get_autocommit(connection.handle()) == 0) roll_back(connection);
    if (auto begun = connection.run(begin_statement, "starting a transaction"); !begun) {
      return std::unexpected(begun.error());
    }
    return Transaction(connection);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Transaction(Transaction&& other) noexcept
      : connection_(std::exchange(other.connection_, nullptr)) {}
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction() {
    // SQLite has already rolled back after some errors (SQLITE_FULL, …).
    if (connection_ != nullptr && sqlite3_get_autocommit(connection_->handle()) == 0) {
      roll_back(*connection_);
    }
  }
  std::expected<void, StoreError> commit() {
    auto committed = connection_->run(connection_->commit, "committing");
    if (committed) connection_ = nullptr;
    return committed;
  }

 private:
  explicit Transaction(Connection& connection) : connection_(&connection) {}
  // No error object built here: this runs in a destructor.
  static void roll_back(const Connection& connection) noexcept {
    sqlite3_stmt* rollback = connection.rollback.get();
    sqlite3_step(rollback);
    sqlite3_reset(rollback);
  }
  Connection* connection_;
};

StoreError key_error(const Connection& connection, std::string_view slot, std::string_view user) {
  return StoreError{StoreErrorKind::key,
                    "sqlite store " + connection.name() +
                        ": secrets do not decrypt with key_file: wrong key? (" + std::string(slot) +
                        " secret of user '" + std::string(user) + "')"};
}

// Decodes the users columns starting at `first` of the current row.
std::expected<StoredRow, StoreError> decode_user(const Connection& connection,
                                                 sqlite3_stmt* statement, int first,
                                                 std::string user, const SecretBox& box) {
  StoredRow row;
  const auto column = [first](store_row::Column c) { return first + static_cast<int>(c); };
  if (sqlite3_column_type(statement, column(store_row::kActiveSecret)) != SQLITE_NULL) {
    row.active_sealed = blob_of(statement, column(store_row::kActiveSecret));
    const auto params = params_at(statement, column(store_row::kActiveAlgorithm));
    const auto enrolled_at = optional_time(statement, column(store_row::kEnrolledAt));
    if (!params || !enrolled_at) {
      return std::unexpected(connection.invalid_row(user, "bad TOTP parameters"));
    }
    auto secret = box.open(row.active_sealed, store_row::sealed_secret_aad("active", user));
    if (!secret) return std::unexpected(key_error(connection, "active", user));
    row.record.active = Enrollment{std::move(*secret), *params, *enrolled_at};
  }
  if (sqlite3_column_type(statement, column(store_row::kPendingSecret)) != SQLITE_NULL) {
    row.pending_sealed = blob_of(statement, column(store_row::kPendingSecret));
    const auto params = params_at(statement, column(store_row::kPendingAlgorithm));
    const auto expires_at = optional_time(statement, column(store_row::kPendingExpiresAt));
    if (!params || !expires_at) {
      return std::unexpected(connection.invalid_row(user, "bad TOTP parameters"));
    }
    auto secret = box.open(row.pending_sealed, store_row::sealed_secret_aad("pending", user));
    if (!secret) return std::unexpected(key_error(connection, "pending", user));
    row.record.pending = PendingEnrollment{std::move(*secret), *params, *expires_at};
  }
  const auto failures =
      store_row::to_u32(optional_integer(statement, column(store_row::kFailures)));
  const auto lockout_level =
      store_row::to_u32(optional_integer(statement, column(store_row::kLockoutLevel)));
  if (!failures || !lockout_level) {
    return std::unexpected(connection.invalid_row(user, "bad counters"));
  }
  row.record.last_step = optional_integer(statement, column(store_row::kLastStep));
  auto used_steps = store_row::used_steps(row.record.last_step,
                                          optional_text(statement, column(store_row::kUsedSteps)));
  if (!used_steps) {
    return std::unexpected(connection.invalid_row(user, "bad used_steps"));
  }
  row.record.used_steps = std::move(*used_steps);
  row.record.failures = *failures;
  row.record.lockout_level = *lockout_level;
  row.record.locked_until = optional_time(statement, column(store_row::kLockedUntil));
  row.record.last_skew_seconds = optional_integer(statement, column(store_row::kLastSkewSeconds));
  row.record.user = std::move(user);
  return row;
}

// The recovery code of the current row of a codes query, columns hash, used at `first`.
std::optional<RecoveryCodeRecord> decode_code(sqlite3_stmt* statement, int first) {
  auto hash = optional_text(statement, first);
  const auto used = optional_integer(statement, first + 1);
  if (!hash || !used) return std::nullopt;
  return RecoveryCodeRecord{std::move(*hash), *used != 0};
}

// The user's row and recovery codes, read inside the caller's transaction.
std::expected<std::optional<StoredRow>, StoreError> read_user(Connection& connection,
                                                              std::string_view user,
                                                              const SecretBox& box) {
  std::optional<StoredRow> row;
  {
    const StatementUse use(connection.select_user);
    if (const int rc = Binder(use.get()).text(user).result(); rc != SQLITE_OK) {
      return std::unexpected(connection.failure(rc, "reading a user"));
    }
    const int rc = sqlite3_step(use.get());
    if (rc == SQLITE_DONE) return std::optional<StoredRow>{};
    if (rc != SQLITE_ROW) return std::unexpected(connection.failure(rc, "reading a user"));
    auto decoded = decode_user(connection, use.get(), 0, std::string(user), box);
    if (!decoded) return std::unexpected(decoded.error());
    row = std::move(*decoded);
  }
  const StatementUse use(connection.select_codes);
  if (const int rc = Binder(use.get()).text(user).result(); rc != SQLITE_OK) {
    return std::unexpected(connection.failure(rc, "reading recovery codes"));
  }
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(use.get())) == SQLITE_ROW) {
    auto code = decode_code(use.get(), 0);
    if (!code) return std::unexpected(connection.invalid_row(user, "a bad recovery code"));
    row->record.recovery_codes.push_back(std::move(*code));
  }
  if (rc != SQLITE_DONE) return std::unexpected(connection.failure(rc, "reading recovery codes"));
  return row;
}

// Seals `secret` for `slot`, or reuses the sealed form it was loaded from when
// it did not change (fewer nonces drawn under one key, less work).
std::expected<std::vector<std::uint8_t>, StoreError> seal_for(
    const Connection& connection, const SecretBox& box, std::string_view slot,
    std::string_view user, const common::SecureBytes& secret,
    const common::SecureBytes* loaded_secret, const std::vector<std::uint8_t>* loaded_sealed) {
  if (loaded_secret != nullptr && loaded_sealed != nullptr && !loaded_sealed->empty() &&
      *loaded_secret == secret) {
    return *loaded_sealed;
  }
  auto sealed = box.seal(secret.view(), store_row::sealed_secret_aad(slot, user));
  if (!sealed) {
    return std::unexpected(StoreError{
        StoreErrorKind::key,
        "sqlite store " + connection.name() + ": cannot seal a secret: " + sealed.error()});
  }
  return std::move(*sealed);
}

std::expected<void, StoreError> write_codes(Connection& connection, std::string_view user,
                                            const std::vector<RecoveryCodeRecord>& codes,
                                            const std::vector<RecoveryCodeRecord>& before) {
  if (store_row::same_hashes(codes, before)) {
    // The common case (a code used, or nothing changed): flip flags in place.
    for (std::size_t i = 0; i < codes.size(); ++i) {
      if (codes[i].used == before[i].used) continue;
      const StatementUse use(connection.update_code_used);
      const int rc = Binder(use.get())
                         .text(user)
                         .integer(static_cast<std::int64_t>(i))
                         .integer(codes[i].used ? 1 : 0)
                         .result();
      if (rc != SQLITE_OK) return std::unexpected(connection.failure(rc, "writing recovery codes"));
      if (auto done = connection.step_to_end(use.get(), "writing recovery codes"); !done) {
        return done;
      }
    }
    return {};
  }
  {
    const StatementUse use(connection.delete_codes);
    if (const int rc = Binder(use.get()).text(user).result(); rc != SQLITE_OK) {
      return std::unexpected(connection.failure(rc, "writing recovery codes"));
    }
    if (auto done = connection.step_to_end(use.get(), "writing recovery codes"); !done) return done;
  }
  for (std::size_t i = 0; i < codes.size(); ++i) {
    const StatementUse use(connection.insert_code);
    const int rc = Binder(use.get())
                       .text(user)
                       .integer(static_cast<std::int64_t>(i))
                       .text(codes[i].hash)
                       .integer(codes[i].used ? 1 : 0)
                       .result();
    if (rc != SQLITE_OK) return std::unexpected(connection.failure(rc, "writing recovery codes"));
    if (auto done = connection.step_to_end(use.get(), "writing recovery codes"); !done) return done;
  }
  return {};
}

std::expected<void, StoreError> write_user(Connection& connection, const SecretBox& box,
                                           std::string_view user, const UserRecord& record,
                                           const StoredRow* before) {
  if (store_row::is_empty(record)) {
    if (before == nullptr) return {};
    const StatementUse use(connection.delete_user);  // recovery codes go by ON DELETE CASCADE
    if (const int rc = Binder(use.get()).text(user).result(); rc != SQLITE_OK) {
      return std::unexpected(connection.failure(rc, "deleting a user"));
    }
    return connection.step_to_end(use.get(), "deleting a user");
  }
  const UserRecord* old = before != nullptr ? &before->record : nullptr;
  std::vector<std::uint8_t> active_sealed;
  if (record.active) {
    const bool had = old != nullptr && old->active;
    auto sealed =
        seal_for(connection, box, "active", user, record.active->secret,
                 had ? &old->active->secret : nullptr, had ? &before->active_sealed : nullptr);
    if (!sealed) return std::unexpected(sealed.error());
    active_sealed = std::move(*sealed);
  }
  std::vector<std::uint8_t> pending_sealed;
  if (record.pending) {
    const bool had = old != nullptr && old->pending;
    auto sealed =
        seal_for(connection, box, "pending", user, record.pending->secret,
                 had ? &old->pending->secret : nullptr, had ? &before->pending_sealed : nullptr);
    if (!sealed) return std::unexpected(sealed.error());
    pending_sealed = std::move(*sealed);
  }
  // Bound SQLITE_STATIC: must outlive the statement's use.
  const std::string used_steps = encode_step_runs(record.used_steps);
  {
    const StatementUse use(connection.upsert_user);
    Binder bind(use.get());
    bind.text(user);
    if (record.active) {
      const auto& active = *record.active;
      bind.blob(active_sealed)
          .text(common::to_string(active.params.algorithm))
          .integer(active.params.digits)
          .integer(active.params.period)
          .integer(common::to_unix(active.enrolled_at));
    } else {
      bind.null().null().null().null().null();
    }
    if (record.pending) {
      const auto& pending = *record.pending;
      bind.blob(pending_sealed)
          .text(common::to_string(pending.params.algorithm))
          .integer(pending.params.digits)
          .integer(pending.params.period)
          .integer(common::to_unix(pending.expires_at));
    } else {
      bind.null().null().null().null().null();
    }
    bind.optional_integer(record.last_step)
        .integer(record.failures)
        .integer(record.lockout_level)
        .optional_integer(record.locked_until ? std::optional(common::to_unix(*record.locked_until))
                                              : std::nullopt)
        .optional_integer(record.last_skew_seconds);
    if (record.used_steps.empty()) {
      bind.null();
    } else {
      bind.text(used_steps);
    }
    if (bind.result() != SQLITE_OK) {
      return std::unexpected(connection.failure(bind.result(), "writing a user"));
    }
    if (auto done = connection.step_to_end(use.get(), "writing a user"); !done) return done;
  }
  static const std::vector<RecoveryCodeRecord> kNone;
  return write_codes(connection, user, record.recovery_codes,
                     old != nullptr ? old->recovery_codes : kNone);
}

std::expected<void, StoreError> migrate(Connection& connection) {
  const auto newer = [&](std::int64_t version) {
    return StoreError{StoreErrorKind::corrupt,
                      "sqlite store " + connection.name() +
                          ": written by a newer kpanel-totpd (schema version " +
                          std::to_string(version) + ", this one knows " +
                          std::to_string(kSqliteSchemaVersion) + "): upgrade kpanel-totp"};
  };
  auto version = connection.single_integer("PRAGMA user_version", "reading the schema version");
  if (!version) return std::unexpected(version.error());
  if (*version > kSqliteSchemaVersion) return std::unexpected(newer(*version));
  if (*version == kSqliteSchemaVersion) return {};
  if (auto begun = connection.exec("BEGIN IMMEDIATE", "migrating the schema"); !begun) return begun;
  const auto rollback = [&](StoreError error) -> std::expected<void, StoreError> {
    (void)connection.exec("ROLLBACK", "rolling back a migration");
    return std::unexpected(std::move(error));
  };
  // Again under the write lock: another process may have migrated meanwhile.
  version = connection.single_integer("PRAGMA user_version", "reading the schema version");
  if (!version) return rollback(version.error());
  if (*version < 0) {
    return rollback(StoreError{
        StoreErrorKind::corrupt,
        "sqlite store " + connection.name() + ": bad schema version " + std::to_string(*version)});
  }
  if (*version > kSqliteSchemaVersion) return rollback(newer(*version));
  for (const Migration& migration : kMigrations) {
    if (migration.version <= *version) continue;
    if (auto done = connection.exec(migration.sql, "migrating the schema"); !done) {
      return rollback(done.error());
    }
  }
  const std::string set_version = "PRAGMA user_version = " + std::to_string(kSqliteSchemaVersion);
  if (auto done = connection.exec(set_version.c_str(), "migrating the schema"); !done) {
    return rollback(done.error());
  }
  if (auto done = connection.exec("COMMIT", "migrating the schema"); !done) {
    return rollback(done.error());
  }
  return {};
}

// A wrong key_file should stop the daemon at start, not fail every login.
std::expected<void, StoreError> check_key(Connection& connection, const SecretBox& box) {
  const StatementUse use(connection.first_sealed);
  const int rc = sqlite3_step(use.get());
  if (rc == SQLITE_DONE) return {};
  if (rc != SQLITE_ROW) return std::unexpected(connection.failure(rc, "checking the key"));
  const std::string user = optional_text(use.get(), 0).value_or("");
  const bool active = sqlite3_column_type(use.get(), 1) != SQLITE_NULL;
  const auto sealed = blob_of(use.get(), active ? 1 : 2);
  const std::string_view slot = active ? "active" : "pending";
  if (!box.open(sealed, store_row::sealed_secret_aad(slot, user))) {
    return std::unexpected(key_error(connection, slot, user));
  }
  return {};
}

}  // namespace

// ---- the store -------------------------------------------------------------------------

SqliteStore::SqliteStore(std::filesystem::path path, SecretBox box,
                         std::unique_ptr<Connection> writer, std::unique_ptr<Connection> reader)
    : path_(std::move(path)),
      box_(std::move(box)),
      writer_(std::move(writer)),
      reader_(std::move(reader)) {}

SqliteStore::~SqliteStore() = default;

std::expected<std::unique_ptr<SqliteStore>, StoreError> SqliteStore::open(
    const std::filesystem::path& state_dir, SecretBox box) {
  if (auto ready = prepare_state_dir(state_dir); !ready) return std::unexpected(ready.error());
  std::filesystem::path path = state_dir / kDatabaseFile;
  if (auto ready = prepare_database_file(state_dir, path); !ready) {
    return std::unexpected(ready.error());
  }
  auto writer = Connection::open(path, Connection::Role::writer);
  if (!writer) return std::unexpected(writer.error());
  if (auto migrated = migrate(**writer); !migrated) return std::unexpected(migrated.error());
  auto reader = Connection::open(path, Connection::Role::reader);
  if (!reader) return std::unexpected(reader.error());
  for (auto* connection : {writer->get(), reader->get()}) {
    if (auto prepared = connection->prepare_statements(); !prepared) {
      return std::unexpected(prepared.error());
    }
  }
  if (auto checked = check_key(**reader, box); !checked) return std::unexpected(checked.error());
  // SQLite made -wal and -shm with the database's mode; make sure.
  if (auto ready = prepare_database_file(state_dir, path); !ready) {
    return std::unexpected(ready.error());
  }
  return std::unique_ptr<SqliteStore>(
      new SqliteStore(std::move(path), std::move(box), std::move(*writer), std::move(*reader)));
}

std::expected<bool, StoreError> SqliteStore::holds_sealed_secrets(
    const std::filesystem::path& state_dir) {
  const std::filesystem::path path = state_dir / kDatabaseFile;
  const std::string name = path.string();
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    const int error = errno;
    if (error == ENOENT) return false;
    return std::unexpected(io_error("cannot stat " + name + ": " + errno_text(error)));
  }
  sqlite3* raw = nullptr;
  const int opened =
      sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW, nullptr);
  const std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, sqlite3_close_v2);
  if (opened != SQLITE_OK) {
    return std::unexpected(io_error("cannot open " + name + ": " + sqlite3_errstr(opened)));
  }
  (void)sqlite3_busy_timeout(db.get(), kBusyTimeoutMs);
  // The users table may not exist yet (a database made but never migrated).
  for (const char* sql :
       {"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'users'",
        "SELECT count(*) FROM (SELECT 1 FROM users"
        " WHERE active_secret IS NOT NULL OR pending_secret IS NOT NULL LIMIT 1)"}) {
    sqlite3_stmt* raw_statement = nullptr;
    int rc = sqlite3_prepare_v2(db.get(), sql, -1, &raw_statement, nullptr);
    const std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> statement(raw_statement,
                                                                          sqlite3_finalize);
    if (rc == SQLITE_OK) rc = sqlite3_step(statement.get());
    if (rc != SQLITE_ROW) {
      return std::unexpected(io_error("cannot read " + name + ": " + sqlite3_errstr(rc)));
    }
    if (sqlite3_column_int(statement.get(), 0) == 0) return false;
  }
  return true;
}

std::expected<std::optional<UserRecord>, StoreError> SqliteStore::load(std::string_view user) {
  const std::lock_guard lock(reader_mutex_);
  if (!reader_) return std::unexpected(io_error("sqlite store " + path_.string() + ": not open"));
  Connection& connection = *reader_;
  // One read transaction, so the row and its codes come from one snapshot.
  auto transaction = Transaction::begin(connection, connection.begin_deferred);
  if (!transaction) return std::unexpected(transaction.error());
  auto row = read_user(connection, user, box_);
  if (!row) return std::unexpected(row.error());
  if (auto done = transaction->commit(); !done) return std::unexpected(done.error());
  std::optional<StoredRow>& found = *row;
  if (!found) return std::optional<UserRecord>{};
  return std::optional<UserRecord>{std::move(found->record)};
}

struct SqliteStore::QueuedUpdate {
  std::string_view user;
  const std::function<bool(UserRecord&)>* change = nullptr;
  std::expected<void, StoreError> result;
  std::exception_ptr thrown;  // from change(), rethrown in the caller's thread
  bool done = false;          // guarded by queue_mutex_
  // Set once, with `wake` notified, under queue_mutex_: the update is
  // committed (done), or this caller is to commit the next batch. One wake
  // per caller, not one per batch for all. A condition variable, not a
  // semaphore: libstdc++'s semaphore spins on sched_yield before it sleeps,
  // and a batch's waiters spinning together cost 5% of the daemon's CPU.
  bool woken = false;  // guarded by queue_mutex_
  std::condition_variable wake;
};

std::expected<void, StoreError> SqliteStore::update(
    std::string_view user, const std::function<bool(UserRecord&)>& change) {
  QueuedUpdate mine;
  mine.user = user;
  mine.change = &change;
  std::unique_lock lock(queue_mutex_);
  queue_.push_back(&mine);
  bool lead = !std::exchange(committing_, true);
  if (!lead) {
    mine.wake.wait(lock, [&] { return mine.woken; });
    lead = !mine.done;  // not done: handed the next batch, ours included
  }
  if (lead) {
    std::vector<QueuedUpdate*> batch;
    batch.swap(queue_);
    lock.unlock();
    commit_batch(batch);
    lock.lock();
    const auto wake = [](QueuedUpdate* update) {
      update->woken = true;
      // Under the lock: a woken caller returns, and its QueuedUpdate is gone,
      // only after the lock is released.
      update->wake.notify_one();
    };
    for (QueuedUpdate* update : batch) {
      update->done = true;
      if (update != &mine) wake(update);
    }
    // Updates that queued meanwhile go next; the first of them commits them.
    if (!queue_.empty()) {
      wake(queue_.front());
    } else {
      committing_ = false;
    }
  }
  lock.unlock();
  if (mine.thrown) std::rethrow_exception(mine.thrown);
  return std::move(mine.result);
}

namespace {

// One queued update inside the batch's transaction, under a savepoint so that
// a failure undoes this update alone. False: the whole transaction is gone
// (SQLite rolls back by itself after some errors, e.g. SQLITE_FULL).
bool apply_update(Connection& connection, const SecretBox& box, SqliteStore::QueuedUpdate& update,
                  bool& wrote) {
  wrote = false;
  if (auto begun = connection.run(connection.savepoint, "starting an update"); !begun) {
    update.result = std::unexpected(begun.error());
    return sqlite3_get_autocommit(connection.handle()) == 0;
  }
  const auto undo = [&] {
    if (sqlite3_get_autocommit(connection.handle()) != 0) return false;
    return connection.run(connection.rollback_to_savepoint, "undoing an update").has_value() &&
           connection.run(connection.release_savepoint, "undoing an update").has_value();
  };
  auto loaded = read_user(connection, update.user, box);
  if (!loaded) {
    update.result = std::unexpected(loaded.error());
    return undo();
  }
  const std::optional<StoredRow>& stored = *loaded;
  const StoredRow* before = stored.has_value() ? &stored.value() : nullptr;
  UserRecord record;
  if (before != nullptr) {
    record = before->record;
  } else {
    record.user = std::string(update.user);
  }
  bool changed = false;
  try {
    changed = (*update.change)(record);
  } catch (...) {
    update.thrown = std::current_exception();
    return undo();
  }
  if (changed) {
    if (auto written = write_user(connection, box, update.user, record, before); !written) {
      update.result = std::unexpected(written.error());
      return undo();
    }
  }
  if (auto released = connection.run(connection.release_savepoint, "finishing an update");
      !released) {
    update.result = std::unexpected(released.error());
    return undo();
  }
  update.result = {};
  wrote = changed;
  return true;
}

}  // namespace

void SqliteStore::commit_batch(const std::vector<QueuedUpdate*>& batch) noexcept {
  const auto fail_all = [&](const StoreError& error) noexcept {
    for (QueuedUpdate* update : batch) {
      if (!update->thrown) update->result = std::unexpected(error);
    }
  };
  try {
    const std::lock_guard lock(writer_mutex_);
    reopen_if_writable_again();
    if (!writer_) {
      fail_all(io_error("sqlite store " + path_.string() + ": cannot reopen the database"));
      return;
    }
    Connection& connection = *writer_;
    // IMMEDIATE takes the write lock now: another process cannot slip a write
    // in between our reads and our writes.
    auto transaction = Transaction::begin(connection, connection.begin_immediate);
    if (!transaction) {
      fail_all(transaction.error());
      return;
    }
    bool any_written = false;
    for (QueuedUpdate* update : batch) {
      bool wrote = false;
      if (!apply_update(connection, box_, *update, wrote)) {
        // The transaction, and every change made in it, is gone.
        fail_all(update->result ? connection.failure(SQLITE_ABORT, "applying a batch of updates")
                                : update->result.error());
        return;
      }
      any_written = any_written || wrote;
    }
    if (!any_written) return;  // rolled back: nothing to make durable
    // synchronous=FULL: the WAL is fsync'd before COMMIT returns.
    // A failed COMMIT fails the whole batch, the updates that wrote nothing
    // too: their change() may have decided on what an earlier one wrote.
    if (auto committed = transaction->commit(); !committed) fail_all(committed.error());
  } catch (const std::exception& e) {
    fail_all(io_error("sqlite store " + path_.string() + ": " + e.what()));
  } catch (...) {
    fail_all(io_error("sqlite store " + path_.string() + ": unexpected error"));
  }
}

// SQLite opens a database it cannot write (a state_dir read-only when the
// daemon started: a mount not yet writable, a wrong mode) read-only for good,
// and its connections in one process share the read-only shared-memory file.
// Once both the file and state_dir are writable, new connections are the way
// back, so the store recovers by itself as it does from a full disk.
void SqliteStore::reopen_if_writable_again() {
  if (writer_ && sqlite3_db_readonly(writer_->handle(), "main") != 1) return;
  const std::filesystem::path dir = path_.parent_path();
  if (::faccessat(AT_FDCWD, path_.c_str(), R_OK | W_OK, AT_EACCESS) != 0 ||
      ::faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0) {
    return;
  }
  const std::lock_guard reader_lock(reader_mutex_);
  writer_.reset();
  reader_.reset();
  const auto open_prepared = [&](Connection::Role role) -> std::unique_ptr<Connection> {
    auto connection = Connection::open(path_, role);
    if (!connection || !(*connection)->prepare_statements()) return nullptr;
    return std::move(*connection);
  };
  writer_ = open_prepared(Connection::Role::writer);
  reader_ = open_prepared(Connection::Role::reader);
}

std::expected<std::vector<UserRecord>, StoreError> SqliteStore::list() {
  const std::lock_guard lock(reader_mutex_);
  if (!reader_) return std::unexpected(io_error("sqlite store " + path_.string() + ": not open"));
  Connection& connection = *reader_;
  auto transaction = Transaction::begin(connection, connection.begin_deferred);
  if (!transaction) return std::unexpected(transaction.error());
  std::vector<UserRecord> records;
  {
    const StatementUse use(connection.select_users);
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(use.get())) == SQLITE_ROW) {
      auto user = optional_text(use.get(), 0);
      if (!user) return std::unexpected(connection.invalid_row("", "no name"));
      auto row = decode_user(connection, use.get(), 1, std::move(*user), box_);
      if (!row) return std::unexpected(row.error());
      records.push_back(std::move(row->record));
    }
    if (rc != SQLITE_DONE) return std::unexpected(connection.failure(rc, "listing users"));
  }
  {
    // Both queries are ordered by user (BINARY collation, std::string's order):
    // one pass matches codes to records.
    const StatementUse use(connection.select_all_codes);
    std::size_t next = 0;
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(use.get())) == SQLITE_ROW) {
      const auto user = optional_text(use.get(), 0).value_or("");
      while (next < records.size() && records[next].user < user) ++next;
      auto code = decode_code(use.get(), 1);
      if (next == records.size() || records[next].user != user || !code) {
        return std::unexpected(connection.invalid_row(user, "a bad recovery code"));
      }
      records[next].recovery_codes.push_back(std::move(*code));
    }
    if (rc != SQLITE_DONE) return std::unexpected(connection.failure(rc, "listing users"));
  }
  if (auto done = transaction->commit(); !done) return std::unexpected(done.error());
  return records;
}

}  // namespace kpanel::daemon
