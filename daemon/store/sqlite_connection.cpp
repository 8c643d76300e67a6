#include "daemon/store/sqlite_connection.hpp"

#include <optional>
#include <vector>

#include "daemon/store/sql_rows.hpp"

namespace kpanel::daemon {
namespace {

using sqlite::Statement;

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
  Binder& value(const sql::Value& value) {
    switch (value.kind) {
      case sql::Value::Kind::integer:
      case sql::Value::Kind::flag:
        return integer(value.integer);
      case sql::Value::Kind::text:
        return text(value.text);
      case sql::Value::Kind::blob:
        return blob(value.blob);
      case sql::Value::Kind::null:
        break;
    }
    return null();
  }
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

// The current row of a stepped statement, for the shared row layer.
class StatementRow final : public sql::Row {
 public:
  explicit StatementRow(sqlite3_stmt* statement) noexcept : statement_(statement) {}
  [[nodiscard]] bool is_null(int column) const override {
    return sqlite3_column_type(statement_, column) == SQLITE_NULL;
  }
  [[nodiscard]] std::optional<std::int64_t> integer(int column) const override {
    return optional_integer(statement_, column);
  }
  [[nodiscard]] std::optional<std::string> text(int column) const override {
    return optional_text(statement_, column);
  }
  [[nodiscard]] std::optional<std::vector<std::uint8_t>> blob(int column) const override {
    if (is_null(column)) return std::nullopt;
    return blob_of(statement_, column);
  }
  [[nodiscard]] std::optional<bool> flag(int column) const override {
    const auto value = optional_integer(statement_, column);
    if (!value) return std::nullopt;
    return *value != 0;
  }

 private:
  sqlite3_stmt* statement_;
};

// The schema version is PRAGMA user_version; BEGIN IMMEDIATE's write lock
// serializes migrating processes. Runs before the statements are cached.
class SchemaSteps final : public sql::SchemaSteps {
 public:
  explicit SchemaSteps(SqliteStore::Connection& connection) noexcept : connection_(connection) {}

  std::expected<std::optional<std::int64_t>, StoreError> unlocked_version() override {
    return connection_.single_integer("PRAGMA user_version", "reading the schema version");
  }
  std::expected<void, StoreError> lock() override {
    return connection_.exec("BEGIN IMMEDIATE", "migrating the schema");
  }
  std::expected<std::int64_t, StoreError> locked_version() override {
    auto version = connection_.single_integer("PRAGMA user_version", "reading the schema version");
    if (version && *version < 0) {
      return std::unexpected(connection_.error(StoreErrorKind::corrupt,
                                               "bad schema version " + std::to_string(*version)));
    }
    return version;
  }
  std::expected<void, StoreError> exec(const char* sql) override {
    return connection_.exec(sql, "migrating the schema");
  }
  std::expected<void, StoreError> set_version(int version) override {
    const std::string sql = "PRAGMA user_version = " + std::to_string(version);
    return connection_.exec(sql.c_str(), "migrating the schema");
  }
  // The binding migration reads and writes rows through the prepared queries.
  std::expected<void, StoreError> ready_for_rows() override {
    return connection_.prepare_queries();
  }
  std::expected<void, StoreError> before_commit() override { return {}; }
  std::expected<void, StoreError> commit() override {
    auto done = connection_.exec("COMMIT", "migrating the schema");
    if (!done) roll_back();
    return done;
  }
  void roll_back() noexcept override {
    try {
      (void)connection_.exec("ROLLBACK", "rolling back a migration");
    } catch (...) {  // out of memory building the error: nothing more to do
    }
  }

 private:
  SqliteStore::Connection& connection_;
};

}  // namespace

using Connection = SqliteStore::Connection;

Connection::~Connection() {
  // Statements first: a handle with live statements does not close.
  for (Statement* statement : control_statements()) statement->reset();
  for (Statement& statement : queries_) statement.reset();
  sqlite3_close_v2(db_);
}

std::expected<std::unique_ptr<Connection>, StoreError> Connection::open(
    const std::filesystem::path& path, Role role) {
  std::unique_ptr<Connection> connection(new Connection(path.string()));
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_EXRESCODE,
      nullptr);
  connection->db_ = db;  // set even on failure, so it is closed
  if (rc != SQLITE_OK) return std::unexpected(connection->failure(rc, "opening the database"));
  // Hardening: no writable_schema or other ways to corrupt the file by SQL,
  // no SQL functions run from the schema.
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  sqlite3_busy_timeout(db, sqlite::kBusyTimeoutMs);
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
      return std::unexpected(connection->error(
          StoreErrorKind::io, "cannot use WAL journaling (journal_mode is " + *mode + ")"));
    }
    // Deferred commits by default (a durable batch switches to FULL); no
    // automatic checkpoint, whose fsyncs would land on some login's commit:
    // the store's refresh_high_water() checkpoints from the background.
    if (auto done = connection->exec("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;",
                                     "setting up the writer");
        !done) {
      return std::unexpected(done.error());
    }
  } else if (role == Role::checkpointer) {
    // Checkpoints only; they write the database file, so not query_only.
  } else if (auto done = connection->exec("PRAGMA query_only = ON;", "setting up the reader");
             !done) {
    return std::unexpected(done.error());
  }
  return connection;
}

std::expected<void, StoreError> Connection::migrate(const SecretBox& box) {
  SchemaSteps steps(*this);
  return sql::migrate(*this, steps, box);
}

std::expected<void, StoreError> Connection::prepare_statements() {
  const std::array<std::pair<Statement*, const char*>, 9> control{{
      {&begin_deferred, "BEGIN"},
      {&begin_immediate, "BEGIN IMMEDIATE"},
      {&commit, "COMMIT"},
      {&rollback, "ROLLBACK"},
      {&savepoint, "SAVEPOINT one_update"},
      {&release_savepoint, "RELEASE one_update"},
      {&rollback_to_savepoint, "ROLLBACK TO one_update"},
      {&sync_full, "PRAGMA synchronous = FULL"},
      {&sync_normal, "PRAGMA synchronous = NORMAL"},
  }};
  for (const auto& [statement, text] : control) {
    auto prepared = prepare(text, SQLITE_PREPARE_PERSISTENT);
    if (!prepared) return std::unexpected(prepared.error());
    *statement = std::move(*prepared);
  }
  return prepare_queries();
}

std::expected<void, StoreError> Connection::prepare_queries() {
  for (std::size_t i = 0; i < sql::kQueryCount; ++i) {
    const std::string& text = sql::query_text(sql::Dialect::sqlite, static_cast<sql::Query>(i));
    if (text.empty()) continue;  // not used by this dialect
    auto prepared = prepare(text, SQLITE_PREPARE_PERSISTENT);
    if (!prepared) return std::unexpected(prepared.error());
    queries_.at(i) = std::move(*prepared);
  }
  return {};
}

std::expected<void, StoreError> Connection::run(sql::Query query,
                                                std::span<const sql::Value> params,
                                                std::string_view doing,
                                                const sql::EachRow& each_row) {
  const StatementUse use(queries_.at(static_cast<std::size_t>(query)));
  Binder bind(use.get());
  for (const sql::Value& value : params) bind.value(value);
  if (bind.result() != SQLITE_OK) return std::unexpected(failure(bind.result(), doing));
  const StatementRow row(use.get());
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(use.get())) == SQLITE_ROW) {
    if (!each_row) continue;
    if (auto done = each_row(row); !done) return done;
  }
  if (rc != SQLITE_DONE) return std::unexpected(failure(rc, doing));
  return {};
}

StoreError Connection::error(StoreErrorKind kind, std::string_view what) const {
  return StoreError{kind, "sqlite store " + name_ + ": " + std::string(what)};
}

StoreError Connection::failure(int rc, std::string_view doing) const {
  const char* detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  return StoreError{kind_of(rc),
                    "sqlite store " + name_ + ": " + detail + " (" + std::string(doing) + ")"};
}

std::expected<void, StoreError> Connection::run(const Statement& statement,
                                                std::string_view doing) const {
  const StatementUse use(statement);
  return step_to_end(use.get(), doing);
}

std::expected<void, StoreError> Connection::step_to_end(sqlite3_stmt* statement,
                                                        std::string_view doing) const {
  int rc = SQLITE_ROW;
  while (rc == SQLITE_ROW) rc = sqlite3_step(statement);
  if (rc != SQLITE_DONE) return std::unexpected(failure(rc, doing));
  return {};
}

std::expected<void, StoreError> Connection::exec(const char* sql, std::string_view doing) {
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return std::unexpected(failure(rc, doing));
  return {};
}

std::expected<Statement, StoreError> Connection::prepare(const std::string& sql, unsigned flags) {
  sqlite3_stmt* raw = nullptr;
  const int rc =
      sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()), flags, &raw, nullptr);
  Statement statement(raw);
  if (rc != SQLITE_OK) return std::unexpected(failure(rc, "preparing a statement"));
  return statement;
}

std::expected<std::int64_t, StoreError> Connection::single_integer(const std::string& sql,
                                                                   std::string_view doing) {
  auto statement = prepare(sql);
  if (!statement) return std::unexpected(statement.error());
  const int rc = sqlite3_step(statement->get());
  if (rc != SQLITE_ROW) return std::unexpected(failure(rc, doing));
  return sqlite3_column_int64(statement->get(), 0);
}

std::expected<std::string, StoreError> Connection::single_text(const std::string& sql,
                                                               std::string_view doing) {
  auto statement = prepare(sql);
  if (!statement) return std::unexpected(statement.error());
  const int rc = sqlite3_step(statement->get());
  if (rc != SQLITE_ROW) return std::unexpected(failure(rc, doing));
  return optional_text(statement->get(), 0).value_or("");
}

}  // namespace kpanel::daemon
