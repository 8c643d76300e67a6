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
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "common/os_text.hpp"
#include "common/unique_fd.hpp"
#include "daemon/config/private_file.hpp"
#include "daemon/store/sql_rows.hpp"
#include "daemon/store/sqlite_connection.hpp"

namespace kpanel::daemon {
namespace {

using sqlite::Connection;
using sqlite::Transaction;

constexpr const char* kDatabaseFile = "state.db";
// The files SQLite keeps next to the database; each must be ours and 0600.
constexpr std::array<const char*, 3> kCompanionSuffixes{"-wal", "-shm", "-journal"};
constexpr mode_t kPrivateFile = S_IRUSR | S_IWUSR;
constexpr mode_t kPrivateDir = S_IRWXU;

// ---- small helpers ----------------------------------------------------------------

using common::errno_text;
using common::octal_mode;

StoreError io_error(std::string message) {
  return StoreError{StoreErrorKind::io, std::move(message)};
}

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

// ---- the store -------------------------------------------------------------------------

SqliteStore::SqliteStore(std::filesystem::path path, SecretBox box,
                         std::unique_ptr<Connection> writer, std::unique_ptr<Connection> reader)
    : path_(std::move(path)),
      box_(std::move(box)),
      writer_(std::move(writer)),
      reader_(std::move(reader)) {}

SqliteStore::~SqliteStore() = default;

namespace {

// key_file against the key_check row: a known value sealed with the key the
// database was written with. Not against a user's row, which could be the
// one damaged row of the file and would then stop every start with "wrong
// key?"; a damaged row fails its own user (LoggedStore logs it). A database
// without the row (its first start) proves the key the old way, on a user's
// row if there is one, then gets the row.
std::expected<void, StoreError> check_key_row(SqliteStore::Connection& writer,
                                              const SecretBox& box) {
  constexpr std::string_view kCanary = "kpanel-totp key check";
  constexpr std::string_view kAad = "kpanel-totp/v2/key-check";
  constexpr std::string_view kDoing = "checking the key";
  auto select = writer.prepare("SELECT sealed FROM key_check WHERE id = 1");
  if (!select) return std::unexpected(select.error());
  const int rc = sqlite3_step(select->get());
  bool replace = false;
  if (rc == SQLITE_ROW) {
    const auto* blob = static_cast<const std::uint8_t*>(sqlite3_column_blob(select->get(), 0));
    const auto size = static_cast<std::size_t>(sqlite3_column_bytes(select->get(), 0));
    if (blob != nullptr && box.open(std::span(blob, size), kAad)) return {};
    // Another key, but nothing sealed with it left (no user holds a
    // secret): a new key loses nothing, as on a first start.
    bool sealed_rows = false;
    auto looked = writer.run(sql::Query::first_sealed, {}, kDoing,
                             [&](const sql::Row&) -> std::expected<void, StoreError> {
                               sealed_rows = true;
                               return {};
                             });
    if (!looked) return looked;
    if (sealed_rows) {
      return std::unexpected(writer.error(
          StoreErrorKind::key,
          "secrets do not decrypt with key_file: wrong key? (the key check sealed with the key "
          "this database was written with does not open)"));
    }
    replace = true;
  } else if (rc != SQLITE_DONE) {
    return std::unexpected(writer.failure(rc, kDoing));
  } else if (auto old = sql::check_key(writer, box); !old) {
    return old;
  }
  select->reset();
  auto sealed = box.seal(
      std::span(reinterpret_cast<const std::uint8_t*>(kCanary.data()), kCanary.size()), kAad);
  if (!sealed) {
    return std::unexpected(
        writer.error(StoreErrorKind::key, "cannot seal the key check: " + sealed.error()));
  }
  auto insert =
      writer.prepare(replace ? "UPDATE key_check SET sealed = ?1 WHERE id = 1"
                             : "INSERT OR IGNORE INTO key_check (id, sealed) VALUES (1, ?1)");
  if (!insert) return std::unexpected(insert.error());
  if (sqlite3_bind_blob(insert->get(), 1, sealed->data(), static_cast<int>(sealed->size()),
                        SQLITE_TRANSIENT) != SQLITE_OK) {
    return std::unexpected(writer.failure(sqlite3_errcode(writer.handle()), kDoing));
  }
  return writer.step_to_end(insert->get(), kDoing);
}

}  // namespace

std::expected<std::unique_ptr<SqliteStore>, StoreError> SqliteStore::open(
    const std::filesystem::path& state_dir, SecretBox box) {
  if (auto ready = prepare_state_dir(state_dir); !ready) return std::unexpected(ready.error());
  std::filesystem::path path = state_dir / kDatabaseFile;
  if (auto ready = prepare_database_file(state_dir, path); !ready) {
    return std::unexpected(ready.error());
  }
  auto writer = Connection::open(path, Connection::Role::writer);
  if (!writer) return std::unexpected(writer.error());
  if (auto migrated = (*writer)->migrate(box); !migrated) return std::unexpected(migrated.error());
  auto reader = Connection::open(path, Connection::Role::reader);
  if (!reader) return std::unexpected(reader.error());
  for (auto* connection : {writer->get(), reader->get()}) {
    if (auto prepared = connection->prepare_statements(); !prepared) {
      return std::unexpected(prepared.error());
    }
  }
  if (auto checked = check_key_row(**writer, box); !checked) {
    return std::unexpected(checked.error());
  }
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
  (void)sqlite3_busy_timeout(db.get(), sqlite::kBusyTimeoutMs);
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
  auto row = sql::read_user(connection, user, box_);
  if (!row) return std::unexpected(row.error());
  if (auto done = transaction->commit(); !done) return std::unexpected(done.error());
  std::optional<sql::StoredRow>& found = *row;
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
    std::string_view user, Durability durability, const std::function<bool(UserRecord&)>& change) {
  QueuedUpdate mine;
  mine.user = user;
  mine.change = &change;
  if (durability == Durability::deferred && run_recorded_.load(std::memory_order_acquire)) {
    // No queue: nothing to wait for but the writer itself.
    QueuedUpdate* const alone = &mine;
    commit_batch(std::span(&alone, 1), Durability::deferred);
    if (mine.thrown) std::rethrow_exception(mine.thrown);
    return std::move(mine.result);
  }
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
    commit_batch(batch, Durability::durable);
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
  auto loaded = sql::read_user(connection, update.user, box);
  if (!loaded) {
    update.result = std::unexpected(loaded.error());
    return undo();
  }
  const std::optional<sql::StoredRow>& stored = *loaded;
  const sql::StoredRow* before = stored.has_value() ? &stored.value() : nullptr;
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
    if (auto written = sql::write_user(connection, box, update.user, record, before); !written) {
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

namespace {

// A durable transaction commits with synchronous=FULL, then the writer goes
// back to NORMAL (should that fail, it stays FULL: slower, never less safe).
class SyncMode {
 public:
  SyncMode(const Connection& connection, Durability durability) : connection_(connection) {
    if (durability == Durability::durable) {
      auto switched = connection.run(connection.sync_full, "asking for a durable commit");
      switched_ = switched.has_value();
      if (!switched) error_ = std::move(switched.error());
    }
  }
  SyncMode(const SyncMode&) = delete;
  SyncMode& operator=(const SyncMode&) = delete;
  SyncMode(SyncMode&&) = delete;
  SyncMode& operator=(SyncMode&&) = delete;
  ~SyncMode() {
    if (switched_) {
      sqlite3_stmt* normal = connection_.sync_normal.get();
      sqlite3_step(normal);
      sqlite3_reset(normal);
    }
  }
  // Not switched to FULL for a durable transaction: it must not commit.
  [[nodiscard]] const std::optional<StoreError>& error() const noexcept { return error_; }

 private:
  const Connection& connection_;
  bool switched_ = false;
  std::optional<StoreError> error_;
};

}  // namespace

void SqliteStore::commit_batch(std::span<QueuedUpdate* const> batch,
                               Durability durability) noexcept {
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
    // Before the transaction, so restored after it has ended however it ends.
    const SyncMode sync_mode(connection, durability);
    if (const auto& error = sync_mode.error()) {
      fail_all(*error);
      return;
    }
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
    if (!any_written) return;  // rolled back: nothing to commit
    // Durable (synchronous=FULL): the WAL is fsync'd before COMMIT returns.
    // Deferred (NORMAL): written to the WAL, synced by refresh_high_water().
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

std::expected<UserList, StoreError> SqliteStore::list() {
  const std::lock_guard lock(reader_mutex_);
  if (!reader_) return std::unexpected(io_error("sqlite store " + path_.string() + ": not open"));
  Connection& connection = *reader_;
  auto transaction = Transaction::begin(connection, connection.begin_deferred);
  if (!transaction) return std::unexpected(transaction.error());
  auto records = sql::list_users(connection, box_);
  if (!records) return std::unexpected(records.error());
  if (auto done = transaction->commit(); !done) return std::unexpected(done.error());
  return records;
}

std::expected<void, StoreError> SqliteStore::erase(std::string_view user) {
  return in_writer_transaction(Durability::durable, [&](Connection& connection) {
    return sql::erase_user(connection, user);
  });
}

// ---- run state and background sync (fence.hpp) -------------------------------------

std::expected<void, StoreError> SqliteStore::in_writer_transaction(
    Durability durability,
    const std::function<std::expected<void, StoreError>(Connection&)>& body) {
  const std::lock_guard lock(writer_mutex_);
  reopen_if_writable_again();
  if (!writer_) return std::unexpected(io_error("sqlite store " + path_.string() + ": not open"));
  Connection& connection = *writer_;
  const SyncMode sync_mode(connection, durability);
  if (const auto& error = sync_mode.error()) return std::unexpected(*error);
  auto transaction = Transaction::begin(connection, connection.begin_immediate);
  if (!transaction) return std::unexpected(transaction.error());
  if (auto done = body(connection); !done) return done;
  return transaction->commit();
}

namespace {

std::expected<std::optional<RunState>, StoreError> read_run_state(Connection& connection) {
  auto statement = connection.prepare(
      "SELECT boot_id, running, high_water, fence_time, fence_window FROM daemon_run WHERE id = 1");
  if (!statement) return std::unexpected(statement.error());
  sqlite3_stmt* row = statement->get();
  const int rc = sqlite3_step(row);
  if (rc == SQLITE_DONE) return std::optional<RunState>{};
  if (rc != SQLITE_ROW) return std::unexpected(connection.failure(rc, "reading the run state"));
  RunState state;
  const auto* boot_id = reinterpret_cast<const char*>(sqlite3_column_text(row, 0));
  state.boot_id = boot_id != nullptr ? boot_id : "";
  state.running = sqlite3_column_int64(row, 1) != 0;
  state.high_water = sqlite3_column_int64(row, 2);
  if (sqlite3_column_type(row, 3) != SQLITE_NULL) {
    state.fence =
        Fence{sqlite3_column_int64(row, 3), static_cast<unsigned>(sqlite3_column_int64(row, 4))};
  }
  return std::optional<RunState>{std::move(state)};
}

std::expected<void, StoreError> write_run_state(Connection& connection, const RunState& state) {
  auto statement = connection.prepare(
      "INSERT INTO daemon_run (id, boot_id, running, high_water, fence_time, fence_window)"
      " VALUES (1, ?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO UPDATE SET"
      " boot_id = excluded.boot_id, running = excluded.running,"
      " high_water = excluded.high_water, fence_time = excluded.fence_time,"
      " fence_window = excluded.fence_window");
  if (!statement) return std::unexpected(statement.error());
  sqlite3_stmt* row = statement->get();
  int rc = sqlite3_bind_text64(row, 1, state.boot_id.data(), state.boot_id.size(), SQLITE_STATIC,
                               SQLITE_UTF8);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(row, 2, state.running ? 1 : 0);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(row, 3, state.high_water);
  if (rc == SQLITE_OK) {
    rc = state.fence ? sqlite3_bind_int64(row, 4, state.fence->time) : sqlite3_bind_null(row, 4);
  }
  if (rc == SQLITE_OK) {
    rc = state.fence ? sqlite3_bind_int64(row, 5, state.fence->window) : sqlite3_bind_null(row, 5);
  }
  if (rc != SQLITE_OK) return std::unexpected(connection.failure(rc, "writing the run state"));
  return connection.step_to_end(row, "writing the run state");
}

}  // namespace

std::expected<SqliteStore::RunStart, StoreError> SqliteStore::start_run(const std::string& boot_id,
                                                                        std::int64_t now,
                                                                        unsigned window) {
  RunStart start;
  auto done = in_writer_transaction(
      Durability::durable, [&](Connection& connection) -> std::expected<void, StoreError> {
        // A restored backup (`kpanel-totp admin backup` adds this table to its copy).
        auto restored = connection.single_integer(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'snapshot'",
            "looking for a restored snapshot");
        if (!restored) return std::unexpected(restored.error());
        if (*restored != 0) {
          auto statement = connection.prepare("SELECT max(taken_at) FROM snapshot");
          if (!statement) return std::unexpected(statement.error());
          const int rc = sqlite3_step(statement->get());
          if (rc != SQLITE_ROW) {
            return std::unexpected(connection.failure(rc, "reading the snapshot's time"));
          }
          if (sqlite3_column_type(statement->get(), 0) != SQLITE_NULL) {
            start.snapshot_taken_at = sqlite3_column_int64(statement->get(), 0);
          }
        }
        auto stored = read_run_state(connection);
        if (!stored) return std::unexpected(stored.error());
        start.last_stop = classify_last_stop(*stored, boot_id, *restored != 0);
        std::optional<RunState> basis = *stored;
        if (start.snapshot_taken_at) {  // the copy knew at least its own time
          if (!basis) basis.emplace();
          basis->high_water = next_high_water(basis->high_water, *start.snapshot_taken_at);
        }
        const RunState next = start_state(basis, start.last_stop, boot_id, now, window);
        if (auto written = write_run_state(connection, next); !written) return written;
        start.fence = next.fence;
        start.new_fence =
            start.last_stop == LastStop::host_crash || start.last_stop == LastStop::restored;
        // Gone in the transaction that records the fence: it is applied once.
        if (*restored != 0) return connection.exec("DROP TABLE snapshot", "dropping the snapshot");
        return {};
      });
  if (!done) return std::unexpected(done.error());
  run_recorded_.store(true, std::memory_order_release);
  return start;
}

std::expected<void, StoreError> SqliteStore::mark_clean_stop(std::int64_t now) {
  const auto mark = [&](Connection& connection) -> std::expected<void, StoreError> {
    auto stored = read_run_state(connection);
    if (!stored) return std::unexpected(stored.error());
    if (!*stored) return {};  // start_run() never ran: nothing to mark
    RunState state = **stored;
    state.running = false;
    state.high_water = next_high_water(state.high_water, now);
    return write_run_state(connection, state);
  };
  return in_writer_transaction(Durability::durable, mark);
}

std::expected<std::optional<RunState>, StoreError> SqliteStore::run_state() {
  const std::lock_guard lock(reader_mutex_);
  if (!reader_) return std::unexpected(io_error("sqlite store " + path_.string() + ": not open"));
  return read_run_state(*reader_);
}

std::expected<void, StoreError> SqliteStore::refresh_high_water(std::int64_t now) {
  const std::lock_guard lock(maintenance_mutex_);
  // Deferred: the writer is held for microseconds; the fsync comes after.
  auto moved = in_writer_transaction(
      Durability::deferred, [&](Connection& connection) -> std::expected<void, StoreError> {
        auto stored = read_run_state(connection);
        if (!stored) return std::unexpected(stored.error());
        if (!*stored || (*stored)->high_water >= now) return {};
        RunState state = **stored;
        state.high_water = next_high_water(state.high_water, now);
        return write_run_state(connection, state);
      });
  if (!moved) return moved;
  if (auto synced = sync_wal(); !synced) return synced;
  return checkpoint();
}

// The WAL holds every commit not yet checkpointed, each with its checksum;
// once fsync'd, a crash of the host loses none of them (SQLite's FULL does
// the same fsync, only inside COMMIT, holding the write lock). Our own
// descriptor, so the writer is never held for it. SQLite takes no POSIX lock
// on the -wal file (its locks are on the database and the -shm file), so
// closing this descriptor drops none of SQLite's; still it is kept open, and
// only replaced when the file is another one (a WAL removed and made anew).
std::expected<void, StoreError> SqliteStore::sync_wal() {
  const std::string wal = path_.string() + "-wal";
  struct stat on_disk {};
  if (::stat(wal.c_str(), &on_disk) != 0) {
    const int error = errno;
    if (error == ENOENT) return {};  // no WAL: every commit is in the database file
    return std::unexpected(io_error("cannot stat " + wal + ": " + errno_text(error)));
  }
  struct stat held {};
  if (!wal_fd_.valid() || ::fstat(wal_fd_.get(), &held) != 0 || held.st_ino != on_disk.st_ino ||
      held.st_dev != on_disk.st_dev) {
    wal_fd_.reset(::open(wal.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!wal_fd_.valid()) {
      const int error = errno;
      return std::unexpected(io_error("cannot open " + wal + ": " + errno_text(error)));
    }
  }
  if (::fdatasync(wal_fd_.get()) != 0) {
    const int error = errno;
    return std::unexpected(io_error("cannot sync " + wal + ": " + errno_text(error)));
  }
  return {};
}

// PASSIVE: copies what no reader still needs into the database file and
// fsyncs it, waiting for no one and making no one wait (writers go on
// appending meanwhile). On a connection of its own, so its fsyncs hold
// neither the writer nor the reader.
std::expected<void, StoreError> SqliteStore::checkpoint() {
  if (checkpointer_ && sqlite3_db_readonly(checkpointer_->handle(), "main") == 1) {
    checkpointer_.reset();  // opened before the file was writable
  }
  if (!checkpointer_) {
    auto opened = Connection::open(path_, Connection::Role::checkpointer);
    if (!opened) return std::unexpected(opened.error());
    // A first read opens the WAL, which a checkpoint on a connection that
    // has read nothing yet might not.
    if (auto read = (*opened)->single_integer("PRAGMA user_version", "opening the WAL"); !read) {
      return std::unexpected(read.error());
    }
    checkpointer_ = std::move(*opened);
  }
  const int rc = sqlite3_wal_checkpoint_v2(checkpointer_->handle(), "main",
                                           SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY) {
    return std::unexpected(checkpointer_->failure(rc, "checkpointing the WAL"));
  }
  return {};
}

}  // namespace kpanel::daemon
