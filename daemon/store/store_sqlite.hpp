#pragma once
// The Store on this host: SQLite in WAL mode at state_dir/state.db.
// TOTP secrets are sealed with the SecretBox for their slot, user and
// enrollment, recovery codes bound by a MAC (store_row.hpp).
//
// Two kinds of commits (store.hpp's Durability). A deferred update commits
// with synchronous=NORMAL: its frames are written to the WAL (the kernel's
// page cache) and no fsync is waited for, so a killed process loses nothing
// and the commit costs microseconds. A durable update commits with
// synchronous=FULL: the WAL, deferred frames before it included, is fsync'd
// before the update returns. SQLite's automatic checkpoint is off (it would
// fsync on some deferred commit); refresh_high_water(), run every few seconds
// off the login path, syncs the WAL and checkpoints it instead.
//
// Connections: updates go through the writer, loads and lists through a
// reader, which in WAL mode is never blocked by a writer waiting for its
// fsync; checkpoints through a third, so their fsyncs block no one.
//
// Group commit of durable updates: those that arrive while one transaction is
// being made durable queue up; the next one applies them all, each inside its
// own savepoint (a change that fails or throws undoes only itself), with one
// BEGIN IMMEDIATE ... COMMIT and so one fsync. Each caller returns only after
// the COMMIT that holds its change. The batch is bounded by the callers: the
// daemon's worker pool. A deferred update skips the queue: it takes the
// writer at once (waiting only while a durable batch holds it, which the
// irreversible, human-paced operations make rare).
//
// Run state (fence.hpp): which boot the daemon runs under, whether it stopped
// cleanly, the durable high-water time and the fence in force. Until
// start_run() has recorded a run, a deferred update is committed durably: a
// host crash then must not lose what no fence would cover.

#include <atomic>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "daemon/rules/fence.hpp"
#include "daemon/store/secret_box.hpp"
#include "daemon/store/store.hpp"

namespace kpanel::daemon {

// PRAGMA user_version of a database this build writes.
inline constexpr int kSqliteSchemaVersion = 5;

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
  using Store::update;
  std::expected<void, StoreError> update(std::string_view user, Durability durability,
                                         const std::function<bool(UserRecord&)>& change) override;
  std::expected<UserList, StoreError> list() override;
  // One durable transaction of the writer, so serialized with every update.
  std::expected<void, StoreError> erase(std::string_view user) override;

  // What start_run() found and left.
  struct RunStart {
    LastStop last_stop = LastStop::first_start;
    std::optional<std::int64_t> snapshot_taken_at;  // a restored backup's time
    std::optional<Fence> fence;                     // in force from now on
    bool new_fence = false;                         // set by this start
  };
  // At start, before serving: classifies how the last run ended (the
  // `snapshot` table of a restored backup, the run state and `boot_id`),
  // then durably records this run, with a new fence if one is due and
  // without the `snapshot` table, in one transaction.
  std::expected<RunStart, StoreError> start_run(const std::string& boot_id, std::int64_t now,
                                                unsigned window);
  // Every kHighWaterInterval, off the login path: the high-water time moves
  // to `now` (never back), the WAL is fsync'd (which makes every deferred
  // update before it durable) and checkpointed without blocking anyone.
  std::expected<void, StoreError> refresh_high_water(std::int64_t now);
  // At a clean stop, after the last request: high-water time and the clean
  // mark, durably.
  std::expected<void, StoreError> mark_clean_stop(std::int64_t now);
  // The run state on record (tests, diagnostics).
  std::expected<std::optional<RunState>, StoreError> run_state();

  [[nodiscard]] const std::filesystem::path& database_path() const noexcept { return path_; }

  class Connection;     // a sqlite3 handle and its prepared statements (store_sqlite.cpp)
  struct QueuedUpdate;  // one caller's update waiting for a group commit (store_sqlite.cpp)

 private:
  SqliteStore(std::filesystem::path path, SecretBox box, std::unique_ptr<Connection> writer,
              std::unique_ptr<Connection> reader);

  // Applies `batch` in one transaction, committed as `durability` says, and
  // fills in each one's outcome.
  void commit_batch(std::span<QueuedUpdate* const> batch, Durability durability) noexcept;
  // Runs `body` inside one BEGIN IMMEDIATE transaction of the writer,
  // committed as `durability` says (the run state's writes).
  std::expected<void, StoreError> in_writer_transaction(
      Durability durability,
      const std::function<std::expected<void, StoreError>(Connection&)>& body);
  // With writer_mutex_ held: new connections when the old ones were opened
  // read-only and the database is writable now (either may end up null).
  void reopen_if_writable_again();
  // fsync of the WAL through a descriptor of our own, outside writer_mutex_.
  std::expected<void, StoreError> sync_wal();
  std::expected<void, StoreError> checkpoint();

  std::filesystem::path path_;
  SecretBox box_;
  std::mutex queue_mutex_;
  std::vector<QueuedUpdate*> queue_;  // guarded by queue_mutex_
  bool committing_ = false;           // a caller is applying a batch; guarded by queue_mutex_
  std::mutex writer_mutex_;
  std::unique_ptr<Connection> writer_;
  std::mutex reader_mutex_;
  std::unique_ptr<Connection> reader_;
  std::mutex maintenance_mutex_;              // refresh_high_water() against itself
  std::unique_ptr<Connection> checkpointer_;  // guarded by maintenance_mutex_; opened when needed
  std::atomic<bool> run_recorded_{false};     // start_run() succeeded: deferred may be deferred
  common::UniqueFd wal_fd_;                   // guarded by maintenance_mutex_; never closed early:
                                              // see sync_wal()
};

}  // namespace kpanel::daemon
