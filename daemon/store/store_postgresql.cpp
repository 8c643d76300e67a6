#include "daemon/store/store_postgresql.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <deque>
#include <limits>
#include <span>
#include <string_view>
#include <utility>

#include "daemon/config/dsn_rules.hpp"
#include "daemon/store/libpq.hpp"
#include "daemon/store/pg_async.hpp"
#include "daemon/store/pg_values.hpp"
#include "daemon/store/sql_rows.hpp"
#include "daemon/system/audit.hpp"

namespace kpanel::daemon {
namespace {

// Serializes schema migrations of every daemon on the database ("kpanel").
constexpr const char* kMigrationLock = "SELECT pg_advisory_xact_lock(118074854811756)";

// A row that vanished between our INSERT and SELECT … FOR UPDATE (another
// host deleted an emptied record) is looked for again, this often at most.
constexpr int kRowAttempts = 5;

// libpq's messages end in a newline and may span lines; the log wants one.
// They may quote the connection string (a nested dbname='… password=…' the
// server reports as a database name): passwords are masked.
std::string one_line(const char* text) {
  std::string out = text != nullptr ? text : "";
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c == '\n' || c == '\t'; }, ' ');
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return dsn::mask_passwords(out);
}

StoreError store_error(StoreErrorKind kind, std::string_view what) {
  return StoreError{kind, "postgresql store: " + std::string(what)};
}

// SQLSTATE classes (PostgreSQL appendix A) to what the daemon does about them.
StoreErrorKind kind_of(std::string_view sqlstate) noexcept {
  if (sqlstate.starts_with("08") || sqlstate == "57P01" || sqlstate == "57P02" ||
      sqlstate == "57P03" || sqlstate.empty()) {
    return StoreErrorKind::unavailable;  // connection lost, server shutting down or starting
  }
  if (sqlstate == "40001" || sqlstate == "40P01" || sqlstate == "55P03" || sqlstate == "57014") {
    return StoreErrorKind::busy;  // serialization, deadlock, lock or statement timeout
  }
  if (sqlstate.starts_with("22") || sqlstate.starts_with("23")) return StoreErrorKind::corrupt;
  return StoreErrorKind::io;
}

using pg::bytes_of;
using pg::optional_integer;
using pg::optional_text;
using pg::Params;
using pg::pq;
using pg::Result;
using pg::ResultRow;

}  // namespace

// ---- one connection -----------------------------------------------------------------

class PostgresqlStore::Connection final : public sql::Session {
 public:
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  Connection(Connection&&) = delete;
  Connection& operator=(Connection&&) = delete;
  ~Connection() override { pq().finish(conn_); }

  // Whether libpq can parse `dsn` (keywords or a URI). Its reasons are not
  // passed on: they quote the string, a URI's password included, and this
  // error goes to the log.
  static std::expected<void, StoreError> check_syntax(const std::string& dsn) {
    char* reason = nullptr;
    PQconninfoOption* parsed = pq().conninfo_parse(dsn.c_str(), &reason);
    if (reason != nullptr) pq().freemem(reason);
    if (parsed == nullptr) {
      return std::unexpected(store_error(
          StoreErrorKind::io,
          "postgresql_dsn is not a valid libpq connection string (libpq's reason is not "
          "logged, as it quotes the string; try the string with psql)"));
    }
    pq().conninfo_free(parsed);
    return {};
  }

  // Connects by `deadline` (libpq's own connect_timeout counts whole seconds
  // from 2 up, too coarse for a login's budget).
  static std::expected<std::unique_ptr<Connection>, StoreError> connect(
      const std::string& dsn, const PostgresqlOptions& options, pg::Clock::time_point deadline) {
    // Our defaults come first: the DSN (expanded from dbname) overrides them.
    // Keepalives and tcp_user_timeout bound a call to a host that vanished.
    const std::string connect_timeout = std::to_string(options.connect_timeout.count());
    const std::array<const char*, 8> keywords{"connect_timeout",
                                              "keepalives_idle",
                                              "keepalives_interval",
                                              "keepalives_count",
                                              "tcp_user_timeout",
                                              "application_name",
                                              "dbname",
                                              nullptr};
    const std::array<const char*, 8> values{
        connect_timeout.c_str(), "10", "5", "3", "15000", "kpanel-totpd", dsn.c_str(), nullptr};
    bool timed_out = false;
    std::unique_ptr<Connection> connection(
        new Connection(pg::connect(keywords.data(), values.data(), deadline, timed_out), options));
    if (connection->conn_ == nullptr) {
      return std::unexpected(store_error(StoreErrorKind::unavailable, "out of memory"));
    }
    if (timed_out) {
      return std::unexpected(store_error(
          StoreErrorKind::unavailable,
          "cannot connect: the server did not complete the connection in time (a server or "
          "network that does not answer)"));
    }
    if (pq().status(connection->conn_) != CONNECTION_OK) {
      return std::unexpected(
          store_error(StoreErrorKind::unavailable,
                      "cannot connect: " + one_line(pq().error_message(connection->conn_))));
    }
    // A hung database must not hold a worker for long; a session left idle
    // inside a transaction (a daemon stopped mid-update) must not hold row locks.
    const std::string setup =
        "SET statement_timeout = " + std::to_string(options.statement_timeout.count()) +
        "; SET idle_in_transaction_session_timeout = 60000; SET client_min_messages = warning";
    connection->set_deadline(deadline);
    if (auto done = connection->exec(setup.c_str(), "setting up the connection"); !done) {
      return std::unexpected(done.error());
    }
    return connection;
  }

  // Every statement from now on must have its answer by `deadline`.
  void set_deadline(pg::Clock::time_point deadline) noexcept { deadline_ = deadline; }

  // A ROLLBACK after a failure gets a short budget of its own: the call's
  // deadline may be what failed.
  void roll_back() noexcept {
    if (broken()) return;
    const pg::Clock::time_point call_deadline = deadline_;
    try {
      deadline_ = pg::Clock::now() + options_.cancel_grace;
      (void)exec("ROLLBACK", "rolling back");
    } catch (...) {  // out of memory building the error: nothing more to do
    }
    deadline_ = call_deadline;  // an update that tries again keeps its own
  }

  [[nodiscard]] bool timed_out() const noexcept { return timed_out_; }

  // Lost, or abandoned after a statement that did not answer its cancel.
  [[nodiscard]] bool broken() const noexcept {
    return abandoned_ || pq().status(conn_) != CONNECTION_OK;
  }

  // A statement without parameters (constant SQL only: BEGIN, migrations).
  std::expected<Result, StoreError> exec(const char* sql, std::string_view doing) {
    return check(pg::run(
                     conn_, [&] { return pq().send_query(conn_, sql) != 0; }, deadline_,
                     options_.cancel_grace),
                 doing);
  }

  // A parameterized statement; results in text format.
  std::expected<Result, StoreError> exec(const char* sql, const Params& params,
                                         std::string_view doing) {
    return check(pg::run(
                     conn_,
                     [&] {
                       return pq().send_query_params(conn_, sql, params.count(), nullptr,
                                                     params.values(), params.lengths(),
                                                     params.formats(), 0) != 0;
                     },
                     deadline_, options_.cancel_grace),
                 doing);
  }

  [[nodiscard]] sql::Dialect dialect() const noexcept override { return sql::Dialect::postgresql; }

  std::expected<void, StoreError> run(sql::Query query, std::span<const sql::Value> values,
                                      std::string_view doing,
                                      const sql::EachRow& each_row) override {
    Params params;
    for (const sql::Value& value : values) params.value(value);
    auto rows = exec(sql::query_text(sql::Dialect::postgresql, query).c_str(), params, doing);
    if (!rows) return std::unexpected(rows.error());
    if (!each_row) return {};
    for (int i = 0; i < pq().ntuples(rows->get()); ++i) {
      if (auto done = each_row(ResultRow(rows->get(), i)); !done) return done;
    }
    return {};
  }

  [[nodiscard]] StoreError error(StoreErrorKind kind, std::string_view what) const override {
    return store_error(kind, what);
  }

 private:
  Connection(PGconn* conn, const PostgresqlOptions& options) noexcept
      : conn_(conn), options_(options) {}

  std::expected<Result, StoreError> check(pg::Answer answer, std::string_view doing) {
    Result result(answer.result);
    timed_out_ = answer.timed_out;
    if (answer.timed_out) {
      abandoned_ = answer.abandoned;
      // Says what was waited on: the one line an operator gets (store_health).
      return std::unexpected(store_error(
          StoreErrorKind::unavailable,
          "no answer within " + std::to_string(options_.request_timeout.count()) + " ms (" +
              std::string(doing) +
              (doing == "committing"
                   ? "; a COMMIT waits here while a synchronous standby does not acknowledge"
                   : "") +
              "); cancelled" + (answer.abandoned ? " and the connection closed" : "")));
    }
    const ExecStatusType status =
        result != nullptr ? pq().result_status(result.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
    const char* state =
        result != nullptr ? pq().result_error_field(result.get(), PG_DIAG_SQLSTATE) : nullptr;
    StoreErrorKind kind = kind_of(state != nullptr ? state : "");
    if (broken()) kind = StoreErrorKind::unavailable;
    const char* detail =
        result != nullptr ? pq().result_error_message(result.get()) : pq().error_message(conn_);
    return std::unexpected(store_error(kind, one_line(detail) + " (" + std::string(doing) + ")"));
  }

  PGconn* conn_;
  const PostgresqlOptions& options_;  // the store's, which outlives its connections
  pg::Clock::time_point deadline_ = pg::Clock::now() + std::chrono::seconds{5};
  bool abandoned_ = false;
  bool timed_out_ = false;  // the last statement ran into its deadline
};

namespace {

using Connection = PostgresqlStore::Connection;

// An open transaction, rolled back unless committed (an error, a change()
// that returns false or throws). On a broken connection the ROLLBACK fails
// harmlessly: the server has already discarded the transaction.
class Transaction {
 public:
  explicit Transaction(Connection& connection) noexcept : connection_(&connection) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Transaction(Transaction&&) = delete;
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction() {
    if (connection_ != nullptr) connection_->roll_back();
  }
  std::expected<void, StoreError> commit() {
    Connection* connection = std::exchange(connection_, nullptr);
    auto done = connection->exec("COMMIT", "committing");
    if (!done) return std::unexpected(done.error());
    return {};
  }

 private:
  Connection* connection_;
};

// Every host must seal with the fleet's key. The first daemon seals a known
// value under its key; every later one must open it, so a host with another
// key is refused at start even before any user enrolled (secrets sealed with
// a stray key would open on that host only). Runs in migrate()'s transaction,
// under its lock, so two first hosts cannot both seal one.
std::expected<void, StoreError> check_fleet_key(Connection& connection, const SecretBox& box) {
  constexpr std::string_view kCanary = "kpanel-totp fleet key check";
  const std::string aad = "kpanel-totp/v1/key-check";
  auto rows = connection.exec("SELECT sealed FROM kpanel_totp_key_check", "checking the key");
  if (!rows) return std::unexpected(rows.error());
  if (pq().ntuples(rows->get()) == 0) {
    const std::span canary(reinterpret_cast<const std::uint8_t*>(kCanary.data()), kCanary.size());
    auto sealed = box.seal(canary, aad);
    if (!sealed) {
      return std::unexpected(
          store_error(StoreErrorKind::key, "cannot seal the key check: " + sealed.error()));
    }
    Params params;
    params.bytes(*sealed);
    if (auto done = connection.exec("INSERT INTO kpanel_totp_key_check (sealed) VALUES ($1)",
                                    params, "checking the key");
        !done) {
      return std::unexpected(done.error());
    }
    return {};
  }
  const auto sealed = bytes_of(rows->get(), 0, 0);
  if (!sealed || !box.open(*sealed, aad)) {
    return std::unexpected(store_error(
        StoreErrorKind::key,
        "key_file is not the key this database was set up with: every host of a fleet needs "
        "the same key_file (README: Running a fleet on PostgreSQL)"));
  }
  return {};
}

// The schema version is a row of kpanel_totp_schema; an advisory lock taken
// in the migration's transaction serializes the hosts.
class SchemaSteps final : public sql::SchemaSteps {
 public:
  SchemaSteps(Connection& connection, const SecretBox& box) noexcept
      : connection_(connection), box_(box) {}

  // No fast path: the version table may not exist before the lock is held.
  std::expected<std::optional<std::int64_t>, StoreError> unlocked_version() override {
    return std::optional<std::int64_t>{};
  }
  std::expected<void, StoreError> lock() override {
    if (auto begun = connection_.exec("BEGIN", "migrating the schema"); !begun) {
      return std::unexpected(begun.error());
    }
    // Waiting for another host's migration is no login's wait: the budget
    // of prepare(), not a login's statement_timeout.
    if (auto longer = connection_.exec("SET LOCAL statement_timeout = 0", "migrating the schema");
        !longer) {
      roll_back();
      return std::unexpected(longer.error());
    }
    // Hosts starting together: one migrates, the others wait and find it done.
    if (auto locked = connection_.exec(kMigrationLock, "migrating the schema"); !locked) {
      roll_back();
      return std::unexpected(locked.error());
    }
    return {};
  }
  std::expected<std::int64_t, StoreError> locked_version() override {
    // CREATE … IF NOT EXISTS would need the CREATE privilege even when the
    // table exists: a role with only SELECT/INSERT/UPDATE/DELETE on tables an
    // owner made (README: roles) must get past this.
    auto exists = connection_.exec("SELECT to_regclass('kpanel_totp_schema') IS NOT NULL",
                                   "migrating the schema");
    if (!exists) return std::unexpected(exists.error());
    if (optional_text(exists->get(), 0, 0).value_or("f") != "t") {
      if (auto done = connection_.exec("CREATE TABLE kpanel_totp_schema (version integer NOT NULL)",
                                       "migrating the schema");
          !done) {
        return std::unexpected(done.error());
      }
    }
    auto rows =
        connection_.exec("SELECT max(version) FROM kpanel_totp_schema", "migrating the schema");
    if (!rows) return std::unexpected(rows.error());
    return optional_integer(rows->get(), 0, 0).value_or(0);
  }
  std::expected<void, StoreError> exec(const char* sql) override {
    return discard(connection_.exec(sql, "migrating the schema"));
  }
  std::expected<void, StoreError> set_version(int version) override {
    if (auto done = connection_.exec("DELETE FROM kpanel_totp_schema", "migrating the schema");
        !done) {
      return std::unexpected(done.error());
    }
    Params params;
    params.integer(version);
    return discard(connection_.exec("INSERT INTO kpanel_totp_schema (version) VALUES ($1)", params,
                                    "migrating the schema"));
  }
  std::expected<void, StoreError> before_commit() override {
    return check_fleet_key(connection_, box_);
  }
  std::expected<void, StoreError> commit() override {
    return discard(connection_.exec("COMMIT", "committing"));
  }
  // On a broken connection the ROLLBACK fails harmlessly: the server has
  // already discarded the transaction.
  void roll_back() noexcept override {
    if (connection_.broken()) return;
    try {
      (void)connection_.exec("ROLLBACK", "rolling back");
    } catch (...) {  // out of memory building the error: nothing more to do
    }
  }

 private:
  static std::expected<void, StoreError> discard(std::expected<Result, StoreError> result) {
    if (!result) return std::unexpected(result.error());
    return {};
  }
  Connection& connection_;
  const SecretBox& box_;
};

}  // namespace

// ---- the store -------------------------------------------------------------------------

PostgresqlStore::PostgresqlStore(std::string dsn, SecretBox box, PostgresqlOptions options)
    : dsn_(std::move(dsn)), box_(std::move(box)), options_(options) {}

PostgresqlStore::~PostgresqlStore() = default;

std::expected<std::unique_ptr<PostgresqlStore>, StoreError> PostgresqlStore::open(
    std::string dsn, SecretBox box, PostgresqlOptions options) {
  options.max_connections = std::max<std::size_t>(options.max_connections, 1);
  // Not `unavailable`: a missing libpq is no outage to wait out.
  if (auto loaded = libpq::load(); !loaded) {
    return std::unexpected(store_error(StoreErrorKind::io, loaded.error()));
  }
  // A malformed DSN is a config error to refuse at start, not an outage.
  if (auto valid = Connection::check_syntax(dsn); !valid) return std::unexpected(valid.error());
  std::unique_ptr<PostgresqlStore> store(
      new PostgresqlStore(std::move(dsn), std::move(box), options));
  auto connection = Connection::connect(store->dsn_, store->options_,
                                        pg::Clock::now() + store->options_.connect_timeout);
  if (!connection) {
    if (!options.start_without_database || connection.error().kind != StoreErrorKind::unavailable) {
      return std::unexpected(connection.error());
    }
    // A host booting while the database is down still comes up (refusing),
    // rather than exhausting systemd's restart limit and staying down.
    store->mark_down(connection.error().message);
    return store;
  }
  if (auto ready = store->prepare(**connection); !ready) return std::unexpected(ready.error());
  const std::lock_guard lock(store->mutex_);
  store->idle_.push_back(std::move(*connection));
  store->open_ = 1;
  return store;
}

std::expected<void, StoreError> PostgresqlStore::check_dsn(const std::string& dsn) {
  if (auto loaded = libpq::load(); !loaded) {
    return std::unexpected(store_error(StoreErrorKind::io, loaded.error()));
  }
  return Connection::check_syntax(dsn);
}

std::expected<bool, StoreError> PostgresqlStore::holds_sealed_secrets(const std::string& dsn,
                                                                      PostgresqlOptions options) {
  if (auto loaded = libpq::load(); !loaded) {
    return std::unexpected(store_error(StoreErrorKind::io, loaded.error()));
  }
  if (auto valid = Connection::check_syntax(dsn); !valid) return std::unexpected(valid.error());
  auto connection = Connection::connect(dsn, options, pg::Clock::now() + options.connect_timeout);
  if (!connection) return std::unexpected(connection.error());
  // A table a first start has not made yet cannot be named in a query.
  auto tables = (*connection)
                    ->exec(
                        "SELECT to_regclass('kpanel_totp_key_check') IS NOT NULL,"
                        " to_regclass('kpanel_totp_users') IS NOT NULL",
                        "looking for sealed secrets");
  if (!tables) return std::unexpected(tables.error());
  const bool key_check = optional_text(tables->get(), 0, 0).value_or("f") == "t";
  const bool users = optional_text(tables->get(), 0, 1).value_or("f") == "t";
  for (const auto& [exists, sql] :
       {std::pair{key_check, "SELECT 1 FROM kpanel_totp_key_check LIMIT 1"},
        std::pair{users,
                  "SELECT 1 FROM kpanel_totp_users"
                  " WHERE active_secret IS NOT NULL OR pending_secret IS NOT NULL LIMIT 1"}}) {
    if (!exists) continue;
    auto rows = (*connection)->exec(sql, "looking for sealed secrets");
    if (!rows) return std::unexpected(rows.error());
    if (pq().ntuples(rows->get()) > 0) return true;
  }
  return false;
}

std::expected<void, StoreError> PostgresqlStore::prepare(Connection& connection) {
  // Once per store, and other hosts may be migrating: a budget of its own.
  connection.set_deadline(pg::Clock::now() + options_.connect_timeout);
  SchemaSteps steps(connection, box_);
  if (auto migrated = sql::migrate(connection, steps, box_); !migrated) {
    return std::unexpected(migrated.error());
  }
  // The key was checked against the fleet's key-check row, in migrate()'s
  // transaction (check_fleet_key): not against a user's row, which could be
  // a damaged one and would then stop every host's start.
  const std::lock_guard lock(mutex_);
  prepared_ = true;
  return {};
}

// A pooled connection if one is idle; else a new one, unless connecting is
// backing off after a failure. A failed connect (the server's
// max_connections filled by another application, a network blip) does not
// touch the connections already open: while any is open, the caller waits
// for one of them (until its deadline) instead of being refused.
std::expected<std::unique_ptr<Connection>, StoreError> PostgresqlStore::acquire(
    std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (!idle_.empty()) {
      std::unique_ptr<Connection> connection = std::move(idle_.back());
      idle_.pop_back();
      return connection;
    }
    const auto now = std::chrono::steady_clock::now();
    const bool backing_off = down_ && now < next_attempt_;
    if (open_ < options_.max_connections && !backing_off) break;
    if (open_ == 0) {
      // Nothing open to wait for: a dead database costs a login a refusal, not a wait.
      return std::unexpected(store_error(StoreErrorKind::unavailable,
                                         "database unreachable; reconnecting with backoff"));
    }
    const auto until = backing_off && open_ < options_.max_connections
                           ? std::min(deadline, next_attempt_)
                           : deadline;
    if (freed_.wait_until(lock, until) == std::cv_status::timeout &&
        std::chrono::steady_clock::now() >= deadline) {
      return std::unexpected(store_error(
          StoreErrorKind::unavailable,
          "no free connection within " + std::to_string(options_.request_timeout.count()) +
              " ms (" + std::to_string(open_) + " open, all waiting on the database" +
              (down_ ? "; new connections are failing" : "") + ")"));
    }
  }
  if (down_) {  // one caller probes per backoff period
    backoff_ = std::min(std::max(backoff_ * 2, options_.retry_initial), options_.retry_max);
    next_attempt_ = std::chrono::steady_clock::now() + backoff_;
  }
  ++open_;
  lock.unlock();
  auto connection = Connection::connect(dsn_, options_, deadline);
  lock.lock();
  if (!connection) {
    --open_;
    freed_.notify_one();
    const std::size_t still_open = open_;
    lock.unlock();
    connect_failed(connection.error().message, still_open);
    if (still_open == 0) return std::unexpected(connection.error());
    lock.lock();
    return wait_for_open(lock, deadline);
  }
  const bool prepared = prepared_;
  lock.unlock();
  if (!prepared) {
    // Started without the database: schema and key are checked now, once.
    if (auto ready = prepare(**connection); !ready) {
      connection->reset();
      lock.lock();
      --open_;
      freed_.notify_one();
      lock.unlock();
      log_error(ready.error().message);
      return std::unexpected(ready.error());
    }
  }
  lock.lock();
  if (down_) {
    down_ = false;
    backoff_ = std::chrono::milliseconds{0};
    log_notice("postgresql store: connected again; serving logins");
  }
  return std::move(*connection);
}

void PostgresqlStore::release(std::unique_ptr<Connection> connection) noexcept {
  const std::lock_guard lock(mutex_);
  if (connection && !connection->broken()) {
    try {
      idle_.push_back(std::move(connection));
    } catch (...) {  // out of memory: close this one instead of keeping it
      connection.reset();
      --open_;
    }
  } else {
    connection.reset();
    --open_;
  }
  freed_.notify_one();
}

void PostgresqlStore::drop_idle() noexcept {
  std::vector<std::unique_ptr<Connection>> stale;
  const std::lock_guard lock(mutex_);
  stale.swap(idle_);
  open_ -= stale.size();
  freed_.notify_all();
}

bool PostgresqlStore::begin_outage_locked() noexcept {
  if (down_) {
    return false;
  }
  down_ = true;
  backoff_ = std::max(backoff_, options_.retry_initial);
  next_attempt_ = std::chrono::steady_clock::now() + backoff_;
  return true;
}

void PostgresqlStore::mark_down(const std::string& why) noexcept {
  std::vector<std::unique_ptr<Connection>> stale;
  bool first = false;
  {
    const std::lock_guard lock(mutex_);
    first = begin_outage_locked();
    // Pooled connections to a lost server are as dead as this one.
    stale.swap(idle_);
    open_ -= stale.size();
    freed_.notify_all();
  }
  if (first) {
    log_error(why + "; refusing logins until the database is back (reconnecting with backoff)");
  }
}

void PostgresqlStore::connect_failed(const std::string& why, std::size_t still_open) noexcept {
  bool first = false;
  {
    const std::lock_guard lock(mutex_);
    first = begin_outage_locked();
  }
  if (!first) return;
  if (still_open == 0) {
    log_error(why + "; refusing logins until the database is back (reconnecting with backoff)");
  } else {
    log_error(why + "; serving with the " + std::to_string(still_open) +
              " connection(s) already open, opening more with backoff");
  }
}

std::expected<std::unique_ptr<Connection>, StoreError> PostgresqlStore::wait_for_open(
    std::unique_lock<std::mutex>& lock, std::chrono::steady_clock::time_point deadline) {
  if (!freed_.wait_until(lock, deadline, [&] { return !idle_.empty() || open_ == 0; }) ||
      idle_.empty()) {
    return std::unexpected(store_error(
        StoreErrorKind::unavailable,
        "no free connection within " + std::to_string(options_.request_timeout.count()) +
            " ms (new connections are failing; the open ones are busy)"));
  }
  std::unique_ptr<Connection> connection = std::move(idle_.back());
  idle_.pop_back();
  return connection;
}

// Runs `attempt` on a pooled connection. A connection that turns out dead on
// its first statement (the server restarted since it was pooled) is dropped
// and the attempt made once more on a fresh one; `attempt` reports through
// `started` whether it got past that point, after which it is never repeated.
// The whole call, pool wait included, has options_.request_timeout: a
// refusal well before the PAM module gives up on the daemon. A statement that
// ran into it says nothing about the other connections (a COMMIT waiting for
// a synchronous standby): answered, it is not taken for a lost database.
template <typename T, typename Attempt>
std::expected<T, StoreError> PostgresqlStore::with_connection(Attempt&& attempt) {
  const auto deadline = std::chrono::steady_clock::now() + options_.request_timeout;
  for (int round = 0;; ++round) {
    auto connection = acquire(deadline);
    if (!connection) return std::unexpected(connection.error());
    (*connection)->set_deadline(deadline);
    bool started = false;
    std::expected<T, StoreError> result;
    try {
      result = attempt(**connection, started);
    } catch (...) {
      release(std::move(*connection));
      throw;
    }
    const bool timed_out = !result && (*connection)->timed_out();
    const bool lost = !result && !timed_out && (*connection)->broken();
    release(std::move(*connection));
    if (!lost) return result;
    if (started || round > 0) {
      mark_down(result.error().message);
      return result;
    }
    drop_idle();
  }
}

namespace {

// Runs `read(connection)` in one read-only snapshot, so the rows it reads
// (a user's row and its codes, or every row) agree with each other.
template <typename T, typename Read>
std::expected<T, StoreError> in_snapshot(Connection& connection, bool& started, Read&& read) {
  if (auto begun =
          connection.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "starting a read");
      !begun) {
    return std::unexpected(begun.error());
  }
  started = true;
  Transaction transaction(connection);
  std::expected<T, StoreError> result = read(connection);
  if (!result) return result;
  if (auto done = transaction.commit(); !done) return std::unexpected(done.error());
  return result;
}

}  // namespace

std::expected<std::optional<UserRecord>, StoreError> PostgresqlStore::load(std::string_view user) {
  using Found = std::optional<UserRecord>;
  return with_connection<Found>([&](Connection& connection, bool& started) {
    return in_snapshot<Found>(connection, started,
                              [&](Connection& reader) -> std::expected<Found, StoreError> {
                                auto row = sql::read_user(reader, user, box_);
                                if (!row) return std::unexpected(row.error());
                                // One result built in place: g++ 12 with ASan
                                // wrongly warns on an empty Found{} temporary.
                                std::expected<Found, StoreError> found{std::in_place};
                                if (*row) found->emplace(std::move((*row)->record));
                                return found;
                              });
  });
}

std::expected<void, StoreError> PostgresqlStore::update(
    std::string_view user, Durability /*durability*/,
    const std::function<bool(UserRecord&)>& change) {
  return with_connection<void>([&](Connection& connection,
                                   bool& started) -> std::expected<void, StoreError> {
    Params key;
    key.text(user);
    for (int attempt = 1;; ++attempt) {
      if (auto begun = connection.exec("BEGIN", "starting an update"); !begun) {
        return std::unexpected(begun.error());
      }
      started = true;
      Transaction transaction(connection);
      if (auto current = check_schema(connection); !current) {
        return std::unexpected(current.error());
      }
      // Locked until COMMIT: every other host's update of this user waits here.
      auto stored = sql::read_user(connection, user, box_, sql::Query::select_user_locked);
      if (!stored) return std::unexpected(stored.error());
      if (!*stored) {
        // No row to lock yet: make one (an insert racing ours waits for it)
        // and read it locked. Only a user's first update pays this.
        if (auto inserted = connection.exec(
                "INSERT INTO kpanel_totp_users (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                key, "starting an update");
            !inserted) {
          return std::unexpected(inserted.error());
        }
        stored = sql::read_user(connection, user, box_, sql::Query::select_user_locked);
        if (!stored) return std::unexpected(stored.error());
      }
      if (!*stored) {
        // Deleted by another host after our insert saw it: look again.
        if (attempt < kRowAttempts) continue;
        return std::unexpected(store_error(
            StoreErrorKind::busy, "the row of user '" + std::string(user) + "' keeps vanishing"));
      }
      const sql::StoredRow& before = **stored;
      UserRecord record = before.record;
      if (!change(record)) return {};  // rolled back, the placeholder insert too
      // The row exists and is locked: write_user updates it (or deletes it).
      if (auto written = sql::write_user(connection, box_, user, record, &before); !written) {
        return std::unexpected(written.error());
      }
      // With synchronous_commit on (the default), COMMIT returns once the
      // change is durable on the primary (and its synchronous standbys).
      return transaction.commit();
    }
  });
}

std::expected<void, StoreError> PostgresqlStore::check_schema(Connection& connection) {
  const auto newer = [](std::int64_t version) {
    return store_error(StoreErrorKind::corrupt,
                       "the schema was migrated to version " + std::to_string(version) +
                           " by a newer kpanel-totpd (this one knows " +
                           std::to_string(kPostgresqlSchemaVersion) +
                           "): refusing to write; upgrade kpanel-totp on this host");
  };
  if (const std::int64_t seen = newer_schema_.load(); seen != 0) {
    return std::unexpected(newer(seen));
  }
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  std::int64_t due = next_schema_check_.load();
  if (now < due || !next_schema_check_.compare_exchange_strong(
                       due, now + options_.schema_check_interval.count())) {
    return {};  // looked at recently, or another update is looking now
  }
  auto rows = connection.exec("SELECT max(version) FROM kpanel_totp_schema", "checking the schema");
  if (!rows) return std::unexpected(rows.error());
  const std::int64_t version = optional_integer(rows->get(), 0, 0).value_or(0);
  if (version <= kPostgresqlSchemaVersion) return {};
  newer_schema_.store(version);
  return std::unexpected(newer(version));
}

std::expected<UserList, StoreError> PostgresqlStore::list() {
  return with_connection<UserList>([&](Connection& connection, bool& started) {
    // Placeholders of updates in flight are not committed, so not seen here.
    return in_snapshot<UserList>(connection, started,
                                 [&](Connection& reader) { return sql::list_users(reader, box_); });
  });
}

std::expected<void, StoreError> PostgresqlStore::erase(std::string_view user) {
  return with_connection<void>(
      [&](Connection& connection, bool& started) -> std::expected<void, StoreError> {
        auto begun = connection.exec("BEGIN", "starting an erase");
        if (!begun) return std::unexpected(begun.error());
        started = true;
        Transaction transaction(connection);
        if (auto current = check_schema(connection); !current) return current;
        if (auto erased = sql::erase_user(connection, user); !erased) return erased;
        return transaction.commit();
      });
}

}  // namespace kpanel::daemon
