#pragma once
// The Store on this host: SQLite in WAL mode at state_dir/state.db, with
// synchronous=FULL so a committed update survives a crash or power loss.
// TOTP secrets are sealed with the SecretBox (AAD "kpanel-totp/v1/<slot>/<user>").
//
// Two connections: updates go through the writer, loads and lists through a
// reader, which in WAL mode is never blocked by a writer waiting for its fsync.
//
// Group commit: updates that arrive while one transaction is being made
// durable queue up; the next one applies them all, each inside its own
// savepoint (a change that fails or throws undoes only itself), with one
// BEGIN IMMEDIATE ... COMMIT and so one fsync. Each caller returns only after
// the COMMIT that holds its change, so every update is still durable before
// its reply. The batch is bounded by the callers: the daemon's worker pool.

#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/store/secret_box.hpp"
#include "daemon/store/store.hpp"

namespace kpanel::daemon {

// PRAGMA user_version of a database this build writes.
inline constexpr int kSqliteSchemaVersion = 2;

class SqliteStore final : public Store {
 public:
  // Opens (creating when missing) state_dir, 0700, and state_dir/state.db,
  // 0600, migrating its schema to kSqliteSchemaVersion. Refuses a state_dir
  // that is a symlink, is not owned by the effective uid or grants group or
  // other access, and a database written by a newer kpanel-totpd. Checks that
  // the stored secrets open with `box` (StoreErrorKind::key if not).
  static std::expected<std::unique_ptr<SqliteStore>, StoreError> open(
      const std::filesystem::path& state_dir, SecretBox box);

  // Whether state_dir/state.db holds a sealed secret, read without a key and
  // without creating anything (no database: false): may a new key be made?
  static std::expected<bool, StoreError> holds_sealed_secrets(
      const std::filesystem::path& state_dir);

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;
  SqliteStore(SqliteStore&&) = delete;
  SqliteStore& operator=(SqliteStore&&) = delete;
  ~SqliteStore() override;

  std::expected<std::optional<UserRecord>, StoreError> load(std::string_view user) override;
  std::expected<void, StoreError> update(std::string_view user,
                                         const std::function<bool(UserRecord&)>& change) override;
  std::expected<std::vector<UserRecord>, StoreError> list() override;

  [[nodiscard]] const std::filesystem::path& database_path() const noexcept { return path_; }

  class Connection;     // a sqlite3 handle and its prepared statements (store_sqlite.cpp)
  struct QueuedUpdate;  // one caller's update waiting for a group commit (store_sqlite.cpp)

 private:
  SqliteStore(std::filesystem::path path, SecretBox box, std::unique_ptr<Connection> writer,
              std::unique_ptr<Connection> reader);

  // Applies `batch` in one transaction and fills in each one's outcome.
  void commit_batch(const std::vector<QueuedUpdate*>& batch) noexcept;
  // With writer_mutex_ held: new connections when the old ones were opened
  // read-only and the database is writable now (either may end up null).
  void reopen_if_writable_again();

  std::filesystem::path path_;
  SecretBox box_;
  std::mutex queue_mutex_;
  std::vector<QueuedUpdate*> queue_;  // guarded by queue_mutex_
  bool committing_ = false;           // a caller is applying a batch; guarded by queue_mutex_
  std::mutex writer_mutex_;
  std::unique_ptr<Connection> writer_;
  std::mutex reader_mutex_;
  std::unique_ptr<Connection> reader_;
};

}  // namespace kpanel::daemon
