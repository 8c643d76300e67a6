#pragma once
// Values in and out of libpq for the PostgreSQL store: statement parameters
// and result columns, and a result row for the shared row layer (sql_rows.hpp).

#include <libpq-fe.h>

#include <charconv>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/store/libpq.hpp"
#include "daemon/store/sql_session.hpp"

namespace kpanel::daemon::pg {

// libpq's functions. Every path here starts at PostgresqlStore::open(), which
// refuses to open a store when libpq could not be loaded, so value() never
// throws here in practice; if it did, the request handler's catch answers.
inline const libpq::Functions& pq() { return *libpq::load().value(); }

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

inline bool is_null(const PGresult* result, int row, int column) {
  return pq().getisnull(result, row, column) != 0;
}

inline std::optional<std::int64_t> optional_integer(const PGresult* result, int row, int column) {
  if (is_null(result, row, column)) return std::nullopt;
  const char* text = pq().getvalue(result, row, column);
  const std::string_view view(text, static_cast<std::size_t>(pq().getlength(result, row, column)));
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(view.data(), view.data() + view.size(), value);
  if (error != std::errc{} || end != view.data() + view.size()) return std::nullopt;
  return value;
}

inline std::optional<std::string> optional_text(const PGresult* result, int row, int column) {
  if (is_null(result, row, column)) return std::nullopt;
  return std::string(pq().getvalue(result, row, column),
                     static_cast<std::size_t>(pq().getlength(result, row, column)));
}

// A bytea column (text result format: PostgreSQL's hex escape).
inline std::optional<std::vector<std::uint8_t>> bytes_of(const PGresult* result, int row,
                                                         int column) {
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
    return pg::is_null(result_, row_, column);
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

}  // namespace kpanel::daemon::pg
