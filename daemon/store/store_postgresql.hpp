#pragma once
// The Store shared by a fleet: PostgreSQL through libpq (`store = postgresql`,
// `postgresql_dsn`). Every host's daemon uses the same tables, so replay
// state, lockouts and recovery codes hold fleet-wide.
//
// update() is one transaction per call: INSERT … ON CONFLICT DO NOTHING makes
// sure the user's row exists, SELECT … FOR UPDATE locks it, the change is
// applied and written back, COMMIT. Two hosts updating one user are thus
// serialized by the row lock: of two verifications of one code, the second
// sees the first's last_step and refuses. COMMIT returns once the primary has
// the change on disk (synchronous_commit; replicas: see README).
//
// Connections: a small pool, one libpq connection per caller at a time (libpq
// connections are not thread-safe). The daemon's worker threads block in it,
// never the io thread, and never longer than request_timeout: every wait
// (pool, connect, statement, COMMIT) has that deadline (pg_async.hpp). A lost database makes every
// call fail fast with StoreErrorKind::unavailable (so logins are refused, never let through) while
// reconnect attempts back off; the first call after the database is back reconnects.
//
// TOTP secrets are sealed with the SecretBox and recovery codes bound by a
// MAC under it, as in SQLite (store_row.hpp), so every host needs the same key_file.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/store/secret_box.hpp"
#include "daemon/store/store.hpp"

namespace kpanel::daemon {

// The schema version this build writes (table kpanel_totp_schema).
inline constexpr int kPostgresqlSchemaVersion = 4;

struct PostgresqlOptions {
  std::size_t max_connections = 8;
  // Connecting at start, and the schema and key checks after it.
  std::chrono::seconds connect_timeout{5};
  // One call (load, update, list) from its start to its answer: the wait for
  // a pooled connection, a new connection, every statement, the COMMIT. Past
  // it the statement is cancelled and the call refused (unavailable), well
  // within the PAM module's timeout (10 s by default).
  std::chrono::milliseconds request_timeout{1500};
  // How long a cancelled statement may take to answer the cancel before its
  // connection is closed; also the budget of a ROLLBACK after a failure.
  std::chrono::milliseconds cancel_grace{300};
  // Server side: a statement (a lock wait included) that takes longer fails.
  std::chrono::milliseconds statement_timeout{1000};
  // How often an update looks at the schema version (in its transaction): a
  // host upgraded meanwhile may have migrated it to what this one does not
  // know, and this one then refuses to write (it would write rows the new
  // version refuses, or miss what the new schema holds).
  std::chrono::milliseconds schema_check_interval{5000};
  // Reconnect attempts after a failure wait this long, doubling up to the max.
  std::chrono::milliseconds retry_initial{250};
  std::chrono::milliseconds retry_max{4000};
  // The daemon: a database unreachable at start is an outage like any other
  // (open() succeeds, calls are refused until it is back; the schema and the
  // key are checked on the first connection). Otherwise open() fails.
  bool start_without_database = false;
};

class PostgresqlStore final : public Store {
 public:
  // Connects, creates or migrates the schema to kPostgresqlSchemaVersion
  // (serialized between hosts by an advisory lock) and checks that stored
  // secrets open with `box`. Refuses a schema written by a newer kpanel-totpd.
  // An unreachable database fails it unless options.start_without_database.
  static std::expected<std::unique_ptr<PostgresqlStore>, StoreError> open(
      std::string dsn, SecretBox box, PostgresqlOptions options = {});

  // Whether libpq (loaded here) can parse `dsn`; its reason is not passed
  // on (it quotes the string, password included).
  static std::expected<void, StoreError> check_dsn(const std::string& dsn);

  // Whether the database holds anything sealed with a key (a user's secret,
  // or the fleet's key check), read without a key and without changing
  // anything (no schema yet: false): may a new key be made?
  static std::expected<bool, StoreError> holds_sealed_secrets(const std::string& dsn,
                                                              PostgresqlOptions options = {});

  PostgresqlStore(const PostgresqlStore&) = delete;
  PostgresqlStore& operator=(const PostgresqlStore&) = delete;
  PostgresqlStore(PostgresqlStore&&) = delete;
  PostgresqlStore& operator=(PostgresqlStore&&) = delete;
  ~PostgresqlStore() override;

  std::expected<std::optional<UserRecord>, StoreError> load(std::string_view user) override;
  using Store::update;
  // Every commit is synchronous here, deferred or not: the fence that makes a
  // deferred write safe is for one host's SQLite file, and a fleet's replay
  // state must not depend on which host crashed (README, security section).
  std::expected<void, StoreError> update(std::string_view user, Durability durability,
                                         const std::function<bool(UserRecord&)>& change) override;
  std::expected<UserList, StoreError> list() override;
  // Deleting the row waits for its lock, so an update in flight on another
  // host finishes first; committed like update().
  std::expected<void, StoreError> erase(std::string_view user) override;

  class Connection;  // a PGconn (store_postgresql.cpp)

 private:
  PostgresqlStore(std::string dsn, SecretBox box, PostgresqlOptions options);

  // A connected connection by `deadline`, or unavailable (fast, while backing off).
  std::expected<std::unique_ptr<Connection>, StoreError> acquire(
      std::chrono::steady_clock::time_point deadline);
  // Back to the pool when still healthy; a broken one is dropped.
  void release(std::unique_ptr<Connection> connection) noexcept;
  // Records a lost database (a connection failed in use): logs once, starts
  // backing off, closes the idle connections (as dead as that one).
  void mark_down(const std::string& why) noexcept;
  // With mutex_ held: the store goes down now, the first reconnect after the
  // initial backoff. False when it already was (the outage was logged then).
  bool begin_outage_locked() noexcept;
  // Records a failed connect: logs once, backs off; the open connections stay.
  void connect_failed(const std::string& why, std::size_t still_open) noexcept;
  // An idle connection once one is released, until `deadline`.
  std::expected<std::unique_ptr<Connection>, StoreError> wait_for_open(
      std::unique_lock<std::mutex>& lock, std::chrono::steady_clock::time_point deadline);
  // Migrates the schema and checks the key on `connection`; once per store.
  std::expected<void, StoreError> prepare(Connection& connection);
  // Closes the pooled connections (found dead: the server restarted).
  void drop_idle() noexcept;
  // Inside an update's transaction: refuses once the schema is newer than
  // this build (looked at every schema_check_interval).
  std::expected<void, StoreError> check_schema(Connection& connection);
  // Runs `attempt(connection, started)` on a pooled connection (store_postgresql.cpp).
  template <typename T, typename Attempt>
  std::expected<T, StoreError> with_connection(Attempt&& attempt);

  std::string dsn_;  // may hold a password: never logged
  SecretBox box_;
  PostgresqlOptions options_;
  std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<std::unique_ptr<Connection>> idle_;  // guarded by mutex_
  std::size_t open_ = 0;                           // connections out or idle; guarded by mutex_
  bool down_ = false;                              // guarded by mutex_
  bool prepared_ = false;                          // schema and key checked; guarded by mutex_
  // The schema a newer kpanel-totpd migrated to since start (0: none seen),
  // and when an update looks again (steady clock, ms).
  std::atomic<std::int64_t> newer_schema_{0};
  std::atomic<std::int64_t> next_schema_check_{0};
  std::chrono::milliseconds backoff_{0};                  // guarded by mutex_
  std::chrono::steady_clock::time_point next_attempt_{};  // guarded by mutex_
};

}  // namespace kpanel::daemon
