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

#include "daemon/store/libpq.hpp"
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
std::string one_line(const char* text) {
  std::string out = text != nullptr ? text : "";
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c == '\n' || c == '\t'; }, ' ');
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
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

// libpq's functions. Every path here starts at PostgresqlStore::open(), which
// refuses to open a store when libpq could not be loaded, so value() never
// throws here in practice; if it did, the request handler's catch answers.
const libpq::Functions& pq() { return *libpq::load().value(); }

struct ResultDeleter {
  void operator()(PGresult* result) const noexcept { pq().clear(result); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// Parameters $1, $2, … for PQexecParams: text, except bytea sent as binary.
// Values are copied, so the list owns everything libpq reads.
class Params {
 public:
  Params& text(std::string_view value) { return add(std::string(value), 0); }
  Params& integer(std::int64_t value) { return add(std::to_string(value), 0); }
  Params& optional_integer(const std::optional<std::int64_t>& value) {
    return value ? integer(*value) : null();
  }
  Params& boolean(bool value) { return add(value ? "t" : "f", 0); }
  Params& bytes(std::span<const std::uint8_t> value) {
    return add(std::string(value.begin(), value.end()), 1);
  }
  Params& value(const sql::Value& value) {
    switch (value.kind) {
      case sql::Value::Kind::integer:
        return integer(value.integer);
      case sql::Value::Kind::flag:
        return boolean(value.integer != 0);
      case sql::Value::Kind::text:
        return text(value.text);
      case sql::Value::Kind::blob:
        return bytes(value.blob);
      case sql::Value::Kind::null:
        break;
    }
    return null();
  }
  Params& null() {
    values_.push_back(nullptr);
    lengths_.push_back(0);
    formats_.push_back(0);
    return *this;
  }
  [[nodiscard]] int count() const noexcept { return static_cast<int>(values_.size()); }
  [[nodiscard]] const char* const* values() const noexcept { return values_.data(); }
  [[nodiscard]] const int* lengths() const noexcept { return lengths_.data(); }
  [[nodiscard]] const int* formats() const noexcept { return formats_.data(); }

 private:
  Params& add(std::string value, int format) {
    // A deque never moves its elements, so the pointers stay valid.
    const std::string& stored = storage_.emplace_back(std::move(value));
    values_.push_back(stored.data());
    lengths_.push_back(static_cast<int>(stored.size()));
    formats_.push_back(format);
    return *this;
  }
  std::deque<std::string> storage_;
  std::vector<const char*> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

// ---- reading result values --------------------------------------------------------

bool is_null(const PGresult* result, int row, int column) {
  return pq().getisnull(result, row, column) != 0;
}

std::optional<std::int64_t> optional_integer(const PGresult* result, int row, int column) {
  if (is_null(result, row, column)) return std::nullopt;
  const char* text = pq().getvalue(result, row, column);
  const std::string_view view(text, static_cast<std::size_t>(pq().getlength(result, row, column)));
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(view.data(), view.data() + view.size(), value);
  if (error != std::errc{} || end != view.data() + view.size()) return std::nullopt;
  return value;
}

std::optional<std::string> optional_text(const PGresult* result, int row, int column) {
  if (is_null(result, row, column)) return std::nullopt;
  return std::string(pq().getvalue(result, row, column),
                     static_cast<std::size_t>(pq().getlength(result, row, column)));
}

// A bytea column (text result format: PostgreSQL's hex escape).
std::optional<std::vector<std::uint8_t>> bytes_of(const PGresult* result, int row, int column) {
  if (is_null(result, row, column)) return std::nullopt;
  std::size_t length = 0;
  unsigned char* raw = pq().unescape_bytea(
      reinterpret_cast<const unsigned char*>(pq().getvalue(result, row, column)), &length);
  if (raw == nullptr) return std::nullopt;
  std::vector<std::uint8_t> bytes(raw, raw + length);
  pq().freemem(raw);
  return bytes;
}

// Row `row` of a query's result, for the shared row layer.
class ResultRow final : public sql::Row {
 public:
  ResultRow(const PGresult* result, int row) noexcept : result_(result), row_(row) {}
  [[nodiscard]] bool is_null(int column) const override {
    return daemon::is_null(result_, row_, column);
  }
  [[nodiscard]] std::optional<std::int64_t> integer(int column) const override {
    return optional_integer(result_, row_, column);
  }
  [[nodiscard]] std::optional<std::string> text(int column) const override {
    return optional_text(result_, row_, column);
  }
  [[nodiscard]] std::optional<std::vector<std::uint8_t>> blob(int column) const override {
    return bytes_of(result_, row_, column);
  }
  [[nodiscard]] std::optional<bool> flag(int column) const override {
    const auto value = optional_text(result_, row_, column);
    if (!value) return std::nullopt;
    return *value == "t";
  }

 private:
  const PGresult* result_;
  int row_;
};

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

  static std::expected<std::unique_ptr<Connection>, StoreError> connect(
      const std::string& dsn, const PostgresqlOptions& options) {
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
    std::unique_ptr<Connection> connection(
        new Connection(pq().connectdb_params(keywords.data(), values.data(), 1)));
    if (connection->conn_ == nullptr) {
      return std::unexpected(store_error(StoreErrorKind::unavailable, "out of memory"));
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
    if (auto done = connection->exec(setup.c_str(), "setting up the connection"); !done) {
      return std::unexpected(done.error());
    }
    return connection;
  }

  [[nodiscard]] bool broken() const noexcept { return pq().status(conn_) != CONNECTION_OK; }

  // A statement without parameters (constant SQL only: BEGIN, migrations).
  std::expected<Result, StoreError> exec(const char* sql, std::string_view doing) {
    return check(Result(pq().exec(conn_, sql)), doing);
  }

  // A parameterized statement; results in text format.
  std::expected<Result, StoreError> exec(const char* sql, const Params& params,
                                         std::string_view doing) {
    return check(Result(pq().exec_params(conn_, sql, params.count(), nullptr, params.values(),
                                         params.lengths(), params.formats(), 0)),
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
  explicit Connection(PGconn* conn) noexcept : conn_(conn) {}

  std::expected<Result, StoreError> check(Result result, std::string_view doing) {
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
    if (connection_ != nullptr && !connection_->broken()) {
      try {
        (void)connection_->exec("ROLLBACK", "rolling back");
      } catch (...) {  // out of memory building the error: nothing more to do
      }
    }
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
  auto connection = Connection::connect(store->dsn_, store->options_);
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

std::expected<bool, StoreError> PostgresqlStore::holds_sealed_secrets(const std::string& dsn,
                                                                      PostgresqlOptions options) {
  if (auto loaded = libpq::load(); !loaded) {
    return std::unexpected(store_error(StoreErrorKind::io, loaded.error()));
  }
  if (auto valid = Connection::check_syntax(dsn); !valid) return std::unexpected(valid.error());
  auto connection = Connection::connect(dsn, options);
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
  SchemaSteps steps(connection, box_);
  if (auto migrated = sql::migrate(connection, steps); !migrated) {
    return std::unexpected(migrated.error());
  }
  if (auto checked = sql::check_key(connection, box_); !checked) {
    return std::unexpected(checked.error());
  }
  const std::lock_guard lock(mutex_);
  prepared_ = true;
  return {};
}

std::expected<std::unique_ptr<Connection>, StoreError> PostgresqlStore::acquire() {
  std::unique_lock lock(mutex_);
  freed_.wait(lock, [&] { return !idle_.empty() || open_ < options_.max_connections; });
  if (!idle_.empty()) {
    std::unique_ptr<Connection> connection = std::move(idle_.back());
    idle_.pop_back();
    return connection;
  }
  const auto now = std::chrono::steady_clock::now();
  if (down_) {
    // One caller probes per backoff period; the others are refused at once,
    // so a dead database costs a login a refusal, not a wait.
    if (now < next_attempt_) {
      return std::unexpected(store_error(StoreErrorKind::unavailable,
                                         "database unreachable; reconnecting with backoff"));
    }
    backoff_ = std::min(std::max(backoff_ * 2, options_.retry_initial), options_.retry_max);
    next_attempt_ = now + backoff_;
  }
  ++open_;
  lock.unlock();
  auto connection = Connection::connect(dsn_, options_);
  lock.lock();
  if (!connection) {
    --open_;
    freed_.notify_one();
    lock.unlock();
    mark_down(connection.error().message);
    return std::unexpected(connection.error());
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

void PostgresqlStore::mark_down(const std::string& why) noexcept {
  std::vector<std::unique_ptr<Connection>> stale;
  bool first = false;
  {
    const std::lock_guard lock(mutex_);
    first = !down_;
    if (first) {
      down_ = true;
      backoff_ = std::max(backoff_, options_.retry_initial);
      next_attempt_ = std::chrono::steady_clock::now() + backoff_;
    }
    // Pooled connections to a lost server are as dead as this one.
    stale.swap(idle_);
    open_ -= stale.size();
    freed_.notify_all();
  }
  if (first) {
    log_error(why + "; refusing logins until the database is back (reconnecting with backoff)");
  }
}

// Runs `attempt` on a pooled connection. A connection that turns out dead on
// its first statement (the server restarted since it was pooled) is dropped
// and the attempt made once more on a fresh one; `attempt` reports through
// `started` whether it got past that point, after which it is never repeated.
template <typename T, typename Attempt>
std::expected<T, StoreError> PostgresqlStore::with_connection(Attempt&& attempt) {
  for (int round = 0;; ++round) {
    auto connection = acquire();
    if (!connection) return std::unexpected(connection.error());
    bool started = false;
    std::expected<T, StoreError> result;
    try {
      result = attempt(**connection, started);
    } catch (...) {
      release(std::move(*connection));
      throw;
    }
    const bool lost = !result && (*connection)->broken();
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

std::expected<std::vector<UserRecord>, StoreError> PostgresqlStore::list() {
  using Records = std::vector<UserRecord>;
  return with_connection<Records>([&](Connection& connection, bool& started) {
    // Placeholders of updates in flight are not committed, so not seen here.
    return in_snapshot<Records>(connection, started,
                                [&](Connection& reader) { return sql::list_users(reader, box_); });
  });
}

}  // namespace kpanel::daemon
