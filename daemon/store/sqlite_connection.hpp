#pragma once
// One connection of the SqliteStore: a sqlite3 handle set up for WAL (the
// writer commits with synchronous=NORMAL unless a durable batch switches it
// to FULL) and hardened, its cached statements, and the
// sql::Session the shared row layer (sql_rows.hpp) runs its queries through.

#include <sqlite3.h>

#include <array>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "daemon/store/secret_box.hpp"
#include "daemon/store/sql_session.hpp"
#include "daemon/store/store_sqlite.hpp"

namespace kpanel::daemon {
namespace sqlite {

inline constexpr int kBusyTimeoutMs = 5000;

struct StatementDeleter {
  void operator()(sqlite3_stmt* statement) const noexcept { sqlite3_finalize(statement); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

}  // namespace sqlite

class SqliteStore::Connection final : public sql::Session {
 public:
  // checkpointer: only runs checkpoints (store_sqlite.hpp), no statements.
  enum class Role : std::uint8_t { writer, reader, checkpointer };
  using Statement = sqlite::Statement;

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  Connection(Connection&&) = delete;
  Connection& operator=(Connection&&) = delete;
  ~Connection() override;

  static std::expected<std::unique_ptr<Connection>, StoreError> open(
      const std::filesystem::path& path, Role role);

  // Brings the schema to kSqliteSchemaVersion (the writer, before
  // prepare_statements()).
  std::expected<void, StoreError> migrate(const SecretBox& box);

  // Caches the statements; after migrations, since they name the tables.
  std::expected<void, StoreError> prepare_statements();
  // The row layer's queries alone (a migration's transaction may not
  // prepare the PRAGMA synchronous statements).
  std::expected<void, StoreError> prepare_queries();

  [[nodiscard]] sql::Dialect dialect() const noexcept override { return sql::Dialect::sqlite; }
  std::expected<void, StoreError> run(sql::Query query, std::span<const sql::Value> params,
                                      std::string_view doing,
                                      const sql::EachRow& each_row) override;
  [[nodiscard]] StoreError error(StoreErrorKind kind, std::string_view what) const override;

  [[nodiscard]] StoreError failure(int rc, std::string_view doing) const;
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] sqlite3* handle() const noexcept { return db_; }

  // Runs a cached statement that returns no rows.
  std::expected<void, StoreError> run(const Statement& statement, std::string_view doing) const;
  std::expected<void, StoreError> step_to_end(sqlite3_stmt* statement,
                                              std::string_view doing) const;
  std::expected<void, StoreError> exec(const char* sql, std::string_view doing);
  std::expected<Statement, StoreError> prepare(const std::string& sql, unsigned flags = 0);
  // The one value of a one-row query run once (PRAGMAs).
  std::expected<std::int64_t, StoreError> single_integer(const std::string& sql,
                                                         std::string_view doing);
  std::expected<std::string, StoreError> single_text(const std::string& sql,
                                                     std::string_view doing);

  Statement begin_deferred;
  Statement begin_immediate;
  Statement commit;
  Statement rollback;
  Statement savepoint;
  Statement release_savepoint;
  Statement rollback_to_savepoint;
  Statement sync_full;    // PRAGMA synchronous = FULL, for a durable batch
  Statement sync_normal;  // back to NORMAL, the writer's default

 private:
  explicit Connection(std::string name) : name_(std::move(name)) {}

  std::array<Statement*, 9> control_statements() noexcept {
    return {&begin_deferred,    &begin_immediate,       &commit,    &rollback,   &savepoint,
            &release_savepoint, &rollback_to_savepoint, &sync_full, &sync_normal};
  }

  std::array<Statement, sql::kQueryCount> queries_;  // indexed by sql::Query
  std::string name_;
  sqlite3* db_ = nullptr;
};

namespace sqlite {

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

}  // namespace sqlite
}  // namespace kpanel::daemon
