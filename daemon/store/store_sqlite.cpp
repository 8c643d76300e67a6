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

std::expected<std::unique_ptr<SqliteStore>, StoreError> SqliteStore::open(
    const std::filesystem::path& state_dir, SecretBox box) {
  if (auto ready = prepare_state_dir(state_dir); !ready) return std::unexpected(ready.error());
  std::filesystem::path path = state_dir / kDatabaseFile;
  if (auto ready = prepare_database_file(state_dir, path); !ready) {
    return std::unexpected(ready.error());
  }
  auto writer = Connection::open(path, Connection::Role::writer);
  if (!writer) return std::unexpected(writer.error());
  if (auto migrated = (*writer)->migrate(); !migrated) return std::unexpected(migrated.error());
  auto reader = Connection::open(path, Connection::Role::reader);
  if (!reader) return std::unexpected(reader.error());
  for (auto* connection : {writer->get(), reader->get()}) {
    if (auto prepared = connection->prepare_statements(); !prepared) {
      return std::unexpected(prepared.error());
    }
  }
  if (auto checked = sql::check_key(**reader, box); !checked) {
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
  auto records = sql::list_users(connection, box_);
  if (!records) return std::unexpected(records.error());
  if (auto done = transaction->commit(); !done) return std::unexpected(done.error());
  return records;
}

}  // namespace kpanel::daemon
