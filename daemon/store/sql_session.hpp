#pragma once
// What the shared row layer (sql_rows.hpp) needs from a SQL backend: run one
// of a fixed set of queries with bound values and read the rows it returns,
// and the few schema steps that differ between SQLite and PostgreSQL. Each
// backend (store_sqlite, store_postgresql) implements it over its own
// connections; transactions, locking and durability stay with the backend.

#include <concepts>
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "daemon/store/store.hpp"

namespace kpanel::daemon::sql {

enum class Dialect : std::uint8_t { sqlite, postgresql };

// The statements the row layer runs; sql_rows.cpp has each one's text per dialect.
enum class Query : std::uint8_t {
  select_user,         // $1 user: the kUserColumns of the user's row
  select_user_locked,  // the same, locked until COMMIT (PostgreSQL only)
  select_codes,        // $1 user: hash, used of the user's codes by idx
  select_users,        // user, kUserColumns of every row by user (byte order)
  select_all_codes,    // user, hash, used of every code by user (byte order), idx
  write_user,          // $1 user, then the kUserColumns values
  delete_user,         // $1 user (its codes go by ON DELETE CASCADE)
  delete_codes,        // $1 user
  insert_code,         // $1 user, $2 idx, $3 hash, $4 used
  update_code_used,    // $1 user, $2 idx, $3 used
  first_sealed,        // user, active_secret, pending_secret of a row with a secret
};
inline constexpr std::size_t kQueryCount = static_cast<std::size_t>(Query::first_sealed) + 1;

// One bound parameter. Text and blob point into the caller's buffers, which
// must outlive the run() they are passed to (SQLite binds them without a copy).
struct Value {
  enum class Kind : std::uint8_t { null, integer, text, blob, flag };
  Kind kind = Kind::null;
  std::int64_t integer = 0;  // integer; flag: 0 or 1
  std::string_view text;
  std::span<const std::uint8_t> blob;

  static Value null() { return {}; }
  static Value of(std::int64_t value) { return {Kind::integer, value, {}, {}}; }
  static Value of(std::optional<std::int64_t> value) { return value ? of(*value) : null(); }
  static Value of(std::string_view value) { return {Kind::text, 0, value, {}}; }
  static Value of(std::span<const std::uint8_t> value) { return {Kind::blob, 0, {}, value}; }
  static Value flag(bool value) { return {Kind::flag, value ? 1 : 0, {}, {}}; }
};

// The current row of a query's result. Nullopt: NULL, or (PostgreSQL) a
// value that does not parse as the type asked for.
class Row {
 public:
  virtual ~Row() = default;
  [[nodiscard]] virtual bool is_null(int column) const = 0;
  [[nodiscard]] virtual std::optional<std::int64_t> integer(int column) const = 0;
  [[nodiscard]] virtual std::optional<std::string> text(int column) const = 0;
  [[nodiscard]] virtual std::optional<std::vector<std::uint8_t>> blob(int column) const = 0;
  [[nodiscard]] virtual std::optional<bool> flag(int column) const = 0;

 protected:
  Row() = default;
  Row(const Row&) = default;
  Row& operator=(const Row&) = default;
  Row(Row&&) = default;
  Row& operator=(Row&&) = default;
};

class EachRow;
template <typename F>
concept RowCallback = !std::same_as<std::remove_cvref_t<F>, EachRow> &&
                      std::is_invocable_r_v<std::expected<void, StoreError>, F&, const Row&>;

// Called once per row, in order; an error stops the query and is returned.
// A borrowed callable (no allocation on a login's path): valid for the run()
// it is passed to, like the lambda it refers to.
class EachRow {
 public:
  EachRow() = default;
  template <RowCallback F>
  EachRow(F&& each) noexcept  // NOLINT(bugprone-forwarding-reference-overload): not EachRow
      : callable_(const_cast<void*>(static_cast<const void*>(std::addressof(each)))),
        call_([](void* callable, const Row& row) -> std::expected<void, StoreError> {
          return (*static_cast<std::remove_reference_t<F>*>(callable))(row);
        }) {}
  explicit operator bool() const noexcept { return call_ != nullptr; }
  std::expected<void, StoreError> operator()(const Row& row) const { return call_(callable_, row); }

 private:
  void* callable_ = nullptr;
  std::expected<void, StoreError> (*call_)(void*, const Row&) = nullptr;
};

class Session {
 public:
  virtual ~Session() = default;
  [[nodiscard]] virtual Dialect dialect() const noexcept = 0;
  // Runs `query` with `params` bound as $1, $2, … inside the caller's
  // transaction. A failure says what was being done (`doing`).
  virtual std::expected<void, StoreError> run(Query query, std::span<const Value> params,
                                              std::string_view doing,
                                              const EachRow& each_row = {}) = 0;
  // An error of `kind` about this store: the message with the backend's prefix.
  [[nodiscard]] virtual StoreError error(StoreErrorKind kind, std::string_view what) const = 0;

 protected:
  Session() = default;
  Session(const Session&) = default;
  Session& operator=(const Session&) = default;
  Session(Session&&) = default;
  Session& operator=(Session&&) = default;
};

// The steps of a schema migration that differ between the dialects; the
// order of them, the migrations and the version checks are sql::migrate's.
class SchemaSteps {
 public:
  virtual ~SchemaSteps() = default;
  // The version readable without a lock, or nullopt when the dialect has no
  // such fast path (migrate then always takes the lock).
  virtual std::expected<std::optional<std::int64_t>, StoreError> unlocked_version() = 0;
  // Starts the migration's transaction and takes the lock that serializes
  // migrations. On failure no transaction is left open.
  virtual std::expected<void, StoreError> lock() = 0;
  // The version, read again under the lock.
  virtual std::expected<std::int64_t, StoreError> locked_version() = 0;
  virtual std::expected<void, StoreError> exec(const char* sql) = 0;
  virtual std::expected<void, StoreError> set_version(int version) = 0;
  // The session can run its queries (after the DDL, inside the transaction).
  virtual std::expected<void, StoreError> ready_for_rows() { return {}; }
  // Last checks inside the transaction, with the schema current.
  virtual std::expected<void, StoreError> before_commit() = 0;
  // Commits; on failure, ends the transaction as the dialect needs.
  virtual std::expected<void, StoreError> commit() = 0;
  // Undoes the transaction after a failed step (before commit()).
  virtual void roll_back() noexcept = 0;

 protected:
  SchemaSteps() = default;
  SchemaSteps(const SchemaSteps&) = default;
  SchemaSteps& operator=(const SchemaSteps&) = default;
  SchemaSteps(SchemaSteps&&) = default;
  SchemaSteps& operator=(SchemaSteps&&) = default;
};

}  // namespace kpanel::daemon::sql
