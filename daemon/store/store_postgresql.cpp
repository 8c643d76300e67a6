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
#include "daemon/store/store_row.hpp"
#include "daemon/system/audit.hpp"

namespace kpanel::daemon {
namespace {

// ---- schema ---------------------------------------------------------------------

struct Migration {
  int version;
  const char* sql;
};

// Append-only, like the SQLite list: a released migration is never edited.
// Table names carry a prefix so the store can share a database (or a schema
// picked with search_path in the DSN) with other applications.
constexpr std::array kMigrations{
    Migration{1, R"sql(
CREATE TABLE kpanel_totp_users (
  name text PRIMARY KEY,
  active_secret bytea,
  active_algorithm text CHECK (active_algorithm IN ('SHA1', 'SHA256', 'SHA512')),
  active_digits integer CHECK (active_digits BETWEEN 6 AND 8),
  active_period bigint CHECK (active_period BETWEEN 1 AND 4294967295),
  enrolled_at bigint,
  pending_secret bytea,
  pending_algorithm text CHECK (pending_algorithm IN ('SHA1', 'SHA256', 'SHA512')),
  pending_digits integer CHECK (pending_digits BETWEEN 6 AND 8),
  pending_period bigint CHECK (pending_period BETWEEN 1 AND 4294967295),
  pending_expires_at bigint,
  last_step bigint,
  failures bigint NOT NULL DEFAULT 0 CHECK (failures BETWEEN 0 AND 4294967295),
  lockout_level bigint NOT NULL DEFAULT 0 CHECK (lockout_level BETWEEN 0 AND 4294967295),
  locked_until bigint,
  last_skew_seconds bigint,
  CHECK ((active_secret IS NULL) = (active_algorithm IS NULL)
     AND (active_secret IS NULL) = (active_digits IS NULL)
     AND (active_secret IS NULL) = (active_period IS NULL)
     AND (active_secret IS NULL) = (enrolled_at IS NULL)),
  CHECK ((pending_secret IS NULL) = (pending_algorithm IS NULL)
     AND (pending_secret IS NULL) = (pending_digits IS NULL)
     AND (pending_secret IS NULL) = (pending_period IS NULL)
     AND (pending_secret IS NULL) = (pending_expires_at IS NULL))
);
CREATE TABLE kpanel_totp_recovery_codes (
  name text NOT NULL REFERENCES kpanel_totp_users (name) ON DELETE CASCADE,
  idx integer NOT NULL CHECK (idx >= 0),
  hash text NOT NULL,
  used boolean NOT NULL,
  PRIMARY KEY (name, idx)
);
CREATE TABLE kpanel_totp_key_check (
  sealed bytea NOT NULL
);
)sql"},
    // The steps the active secret has accepted (replay_steps.hpp), so a clock
    // moved back reopens no used step; NULL in a row written before: every
    // step up to last_step counts as used.
    Migration{2, R"sql(
ALTER TABLE kpanel_totp_users ADD COLUMN used_steps text;
)sql"},
};
static_assert(kMigrations.size() == static_cast<std::size_t>(kPostgresqlSchemaVersion));

// Serializes schema migrations of every daemon on the database ("kpanel").
constexpr const char* kMigrationLock = "SELECT pg_advisory_xact_lock(118074854811756)";

constexpr const char* kUpdateUser = R"sql(
UPDATE kpanel_totp_users SET
  active_secret = $2, active_algorithm = $3, active_digits = $4, active_period = $5,
  enrolled_at = $6, pending_secret = $7, pending_algorithm = $8, pending_digits = $9,
  pending_period = $10, pending_expires_at = $11, last_step = $12, failures = $13,
  lockout_level = $14, locked_until = $15, last_skew_seconds = $16, used_steps = $17
WHERE name = $1
)sql";

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
  Params& bytes(const std::vector<std::uint8_t>& value) {
    return add(std::string(value.begin(), value.end()), 1);
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

std::optional<common::TotpParams> params_at(const PGresult* result, int row, int first) {
  return store_row::totp_params(optional_text(result, row, first),
                                optional_integer(result, row, first + 1),
                                optional_integer(result, row, first + 2));
}

// A user's row as stored: the record (secrets opened) and the sealed secrets,
// so an update that keeps a secret keeps its sealed form.
struct StoredRow {
  UserRecord record;
  std::vector<std::uint8_t> active_sealed;
  std::vector<std::uint8_t> pending_sealed;
};

StoreError invalid_row(std::string_view user, std::string_view what) {
  return store_error(StoreErrorKind::corrupt,
                     "the row of user '" + std::string(user) + "' has " + std::string(what));
}

StoreError key_error(std::string_view slot, std::string_view user) {
  return store_error(StoreErrorKind::key, "secrets do not decrypt with key_file: wrong key? (" +
                                              std::string(slot) + " secret of user '" +
                                              std::string(user) +
                                              "'; every host of a fleet needs the same key_file)");
}

std::expected<StoredRow, StoreError> decode_user(const PGresult* result, int row, int first,
                                                 std::string user, const SecretBox& box) {
  StoredRow out;
  const auto column = [first](store_row::Column c) { return first + static_cast<int>(c); };
  if (auto sealed = bytes_of(result, row, column(store_row::kActiveSecret))) {
    out.active_sealed = std::move(*sealed);
    const auto params = params_at(result, row, column(store_row::kActiveAlgorithm));
    const auto enrolled_at = optional_integer(result, row, column(store_row::kEnrolledAt));
    if (!params || !enrolled_at) return std::unexpected(invalid_row(user, "bad TOTP parameters"));
    auto secret = box.open(out.active_sealed, store_row::sealed_secret_aad("active", user));
    if (!secret) return std::unexpected(key_error("active", user));
    out.record.active = Enrollment{std::move(*secret), *params, common::from_unix(*enrolled_at)};
  }
  if (auto sealed = bytes_of(result, row, column(store_row::kPendingSecret))) {
    out.pending_sealed = std::move(*sealed);
    const auto params = params_at(result, row, column(store_row::kPendingAlgorithm));
    const auto expires_at = optional_integer(result, row, column(store_row::kPendingExpiresAt));
    if (!params || !expires_at) return std::unexpected(invalid_row(user, "bad TOTP parameters"));
    auto secret = box.open(out.pending_sealed, store_row::sealed_secret_aad("pending", user));
    if (!secret) return std::unexpected(key_error("pending", user));
    out.record.pending =
        PendingEnrollment{std::move(*secret), *params, common::from_unix(*expires_at)};
  }
  const auto failures =
      store_row::to_u32(optional_integer(result, row, column(store_row::kFailures)));
  const auto lockout_level =
      store_row::to_u32(optional_integer(result, row, column(store_row::kLockoutLevel)));
  if (!failures || !lockout_level) return std::unexpected(invalid_row(user, "bad counters"));
  out.record.last_step = optional_integer(result, row, column(store_row::kLastStep));
  auto used_steps = store_row::used_steps(
      out.record.last_step, optional_text(result, row, column(store_row::kUsedSteps)));
  if (!used_steps) return std::unexpected(invalid_row(user, "bad used_steps"));
  out.record.used_steps = std::move(*used_steps);
  out.record.failures = *failures;
  out.record.lockout_level = *lockout_level;
  if (const auto until = optional_integer(result, row, column(store_row::kLockedUntil))) {
    out.record.locked_until = common::from_unix(*until);
  }
  out.record.last_skew_seconds = optional_integer(result, row, column(store_row::kLastSkewSeconds));
  out.record.user = std::move(user);
  return out;
}

std::optional<RecoveryCodeRecord> decode_code(const PGresult* result, int row, int first) {
  auto hash = optional_text(result, row, first);
  const auto used = optional_text(result, row, first + 1);
  if (!hash || !used) return std::nullopt;
  return RecoveryCodeRecord{std::move(*hash), *used == "t"};
}

}  // namespace

// ---- one connection -----------------------------------------------------------------

class PostgresqlStore::Connection {
 public:
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  Connection(Connection&&) = delete;
  Connection& operator=(Connection&&) = delete;
  ~Connection() { pq().finish(conn_); }

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

constexpr const char* kSelectUser =
    "SELECT active_secret, active_algorithm, active_digits, active_period, enrolled_at, "
    "pending_secret, pending_algorithm, pending_digits, pending_period, pending_expires_at, "
    "last_step, failures, lockout_level, locked_until, last_skew_seconds, used_steps "
    "FROM kpanel_totp_users WHERE name = $1";
constexpr const char* kSelectUserForUpdate =
    "SELECT active_secret, active_algorithm, active_digits, active_period, enrolled_at, "
    "pending_secret, pending_algorithm, pending_digits, pending_period, pending_expires_at, "
    "last_step, failures, lockout_level, locked_until, last_skew_seconds, used_steps "
    "FROM kpanel_totp_users WHERE name = $1 FOR UPDATE";
constexpr const char* kSelectCodes =
    "SELECT hash, used FROM kpanel_totp_recovery_codes WHERE name = $1 ORDER BY idx";

// The user's row and recovery codes, inside the caller's transaction.
std::expected<std::optional<StoredRow>, StoreError> read_user(Connection& connection,
                                                              std::string_view user,
                                                              const SecretBox& box,
                                                              bool for_update) {
  Params key;
  key.text(user);
  auto rows =
      connection.exec(for_update ? kSelectUserForUpdate : kSelectUser, key, "reading a user");
  if (!rows) return std::unexpected(rows.error());
  if (pq().ntuples(rows->get()) == 0) return std::optional<StoredRow>{};
  auto decoded = decode_user(rows->get(), 0, 0, std::string(user), box);
  if (!decoded) return std::unexpected(decoded.error());
  auto codes = connection.exec(kSelectCodes, key, "reading recovery codes");
  if (!codes) return std::unexpected(codes.error());
  for (int i = 0; i < pq().ntuples(codes->get()); ++i) {
    auto code = decode_code(codes->get(), i, 0);
    if (!code) return std::unexpected(invalid_row(user, "a bad recovery code"));
    decoded->record.recovery_codes.push_back(std::move(*code));
  }
  return std::optional<StoredRow>{std::move(*decoded)};
}

// Seals `secret` for `slot`, or reuses the sealed form it was loaded from.
std::expected<std::vector<std::uint8_t>, StoreError> seal_for(
    const SecretBox& box, std::string_view slot, std::string_view user,
    const common::SecureBytes& secret, const common::SecureBytes* loaded_secret,
    const std::vector<std::uint8_t>* loaded_sealed) {
  if (loaded_secret != nullptr && loaded_sealed != nullptr && !loaded_sealed->empty() &&
      *loaded_secret == secret) {
    return *loaded_sealed;
  }
  auto sealed = box.seal(secret.view(), store_row::sealed_secret_aad(slot, user));
  if (!sealed) {
    return std::unexpected(
        store_error(StoreErrorKind::key, "cannot seal a secret: " + sealed.error()));
  }
  return std::move(*sealed);
}

std::expected<void, StoreError> write_codes(Connection& connection, std::string_view user,
                                            const std::vector<RecoveryCodeRecord>& codes,
                                            const std::vector<RecoveryCodeRecord>& before) {
  if (store_row::same_hashes(codes, before)) {
    for (std::size_t i = 0; i < codes.size(); ++i) {
      if (codes[i].used == before[i].used) continue;
      Params params;
      params.text(user).integer(static_cast<std::int64_t>(i)).boolean(codes[i].used);
      if (auto done = connection.exec(
              "UPDATE kpanel_totp_recovery_codes SET used = $3 WHERE name = $1 AND idx = $2",
              params, "writing recovery codes");
          !done) {
        return std::unexpected(done.error());
      }
    }
    return {};
  }
  Params key;
  key.text(user);
  if (auto done = connection.exec("DELETE FROM kpanel_totp_recovery_codes WHERE name = $1", key,
                                  "writing recovery codes");
      !done) {
    return std::unexpected(done.error());
  }
  for (std::size_t i = 0; i < codes.size(); ++i) {
    Params params;
    params.text(user)
        .integer(static_cast<std::int64_t>(i))
        .text(codes[i].hash)
        .boolean(codes[i].used);
    if (auto done = connection.exec(
            "INSERT INTO kpanel_totp_recovery_codes (name, idx, hash, used) VALUES ($1, $2, $3, "
            "$4)",
            params, "writing recovery codes");
        !done) {
      return std::unexpected(done.error());
    }
  }
  return {};
}

// Writes `record` over the locked row (which exists: update() made sure).
std::expected<void, StoreError> write_user(Connection& connection, const SecretBox& box,
                                           std::string_view user, const UserRecord& record,
                                           const StoredRow& before) {
  Params key;
  key.text(user);
  if (store_row::is_empty(record)) {
    // Recovery codes go by ON DELETE CASCADE.
    auto done =
        connection.exec("DELETE FROM kpanel_totp_users WHERE name = $1", key, "deleting a user");
    if (!done) return std::unexpected(done.error());
    return {};
  }
  const UserRecord& old = before.record;
  Params params;
  params.text(user);
  if (record.active) {
    auto sealed = seal_for(box, "active", user, record.active->secret,
                           old.active ? &old.active->secret : nullptr, &before.active_sealed);
    if (!sealed) return std::unexpected(sealed.error());
    const auto& active = *record.active;
    params.bytes(*sealed)
        .text(common::to_string(active.params.algorithm))
        .integer(active.params.digits)
        .integer(active.params.period)
        .integer(common::to_unix(active.enrolled_at));
  } else {
    params.null().null().null().null().null();
  }
  if (record.pending) {
    auto sealed = seal_for(box, "pending", user, record.pending->secret,
                           old.pending ? &old.pending->secret : nullptr, &before.pending_sealed);
    if (!sealed) return std::unexpected(sealed.error());
    const auto& pending = *record.pending;
    params.bytes(*sealed)
        .text(common::to_string(pending.params.algorithm))
        .integer(pending.params.digits)
        .integer(pending.params.period)
        .integer(common::to_unix(pending.expires_at));
  } else {
    params.null().null().null().null().null();
  }
  params.optional_integer(record.last_step)
      .integer(record.failures)
      .integer(record.lockout_level)
      .optional_integer(record.locked_until ? std::optional(common::to_unix(*record.locked_until))
                                            : std::nullopt)
      .optional_integer(record.last_skew_seconds);
  if (record.used_steps.empty()) {
    params.null();
  } else {
    params.text(encode_step_runs(record.used_steps));
  }
  if (auto done = connection.exec(kUpdateUser, params, "writing a user"); !done) {
    return std::unexpected(done.error());
  }
  return write_codes(connection, user, record.recovery_codes, old.recovery_codes);
}

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

std::expected<void, StoreError> migrate(Connection& connection, const SecretBox& box) {
  if (auto begun = connection.exec("BEGIN", "migrating the schema"); !begun) {
    return std::unexpected(begun.error());
  }
  Transaction transaction(connection);
  // Hosts starting together: one migrates, the others wait and find it done.
  if (auto locked = connection.exec(kMigrationLock, "migrating the schema"); !locked) {
    return std::unexpected(locked.error());
  }
  // CREATE … IF NOT EXISTS would need the CREATE privilege even when the
  // table exists: a role with only SELECT/INSERT/UPDATE/DELETE on tables an
  // owner made (README: roles) must get past this.
  auto exists = connection.exec("SELECT to_regclass('kpanel_totp_schema') IS NOT NULL",
                                "migrating the schema");
  if (!exists) return std::unexpected(exists.error());
  if (optional_text(exists->get(), 0, 0).value_or("f") != "t") {
    if (auto done = connection.exec("CREATE TABLE kpanel_totp_schema (version integer NOT NULL)",
                                    "migrating the schema");
        !done) {
      return std::unexpected(done.error());
    }
  }
  auto rows =
      connection.exec("SELECT max(version) FROM kpanel_totp_schema", "migrating the schema");
  if (!rows) return std::unexpected(rows.error());
  const std::int64_t version = optional_integer(rows->get(), 0, 0).value_or(0);
  if (version > kPostgresqlSchemaVersion) {
    return std::unexpected(
        store_error(StoreErrorKind::corrupt, "written by a newer kpanel-totpd (schema version " +
                                                 std::to_string(version) + ", this one knows " +
                                                 std::to_string(kPostgresqlSchemaVersion) +
                                                 "): upgrade kpanel-totp on this host"));
  }
  if (version == kPostgresqlSchemaVersion) {
    if (auto checked = check_fleet_key(connection, box); !checked) return checked;
    return transaction.commit();
  }
  for (const Migration& migration : kMigrations) {
    if (migration.version <= version) continue;
    if (auto done = connection.exec(migration.sql, "migrating the schema"); !done) {
      return std::unexpected(done.error());
    }
  }
  Params params;
  params.integer(kPostgresqlSchemaVersion);
  if (auto done = connection.exec("DELETE FROM kpanel_totp_schema", "migrating the schema");
      !done) {
    return std::unexpected(done.error());
  }
  if (auto done = connection.exec("INSERT INTO kpanel_totp_schema (version) VALUES ($1)", params,
                                  "migrating the schema");
      !done) {
    return std::unexpected(done.error());
  }
  if (auto checked = check_fleet_key(connection, box); !checked) return checked;
  return transaction.commit();
}

// A wrong key_file should stop the daemon at start, not fail every login.
std::expected<void, StoreError> check_key(Connection& connection, const SecretBox& box) {
  auto rows = connection.exec(
      "SELECT name, active_secret, pending_secret FROM kpanel_totp_users"
      " WHERE active_secret IS NOT NULL OR pending_secret IS NOT NULL LIMIT 1",
      "checking the key");
  if (!rows) return std::unexpected(rows.error());
  if (pq().ntuples(rows->get()) == 0) return {};
  const std::string user = optional_text(rows->get(), 0, 0).value_or("");
  const bool active = !is_null(rows->get(), 0, 1);
  const std::string_view slot = active ? "active" : "pending";
  const auto sealed = bytes_of(rows->get(), 0, active ? 1 : 2);
  if (!sealed || !box.open(*sealed, store_row::sealed_secret_aad(slot, user))) {
    return std::unexpected(key_error(slot, user));
  }
  return {};
}

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
  if (auto migrated = migrate(connection, box_); !migrated)
    return std::unexpected(migrated.error());
  if (auto checked = check_key(connection, box_); !checked) return std::unexpected(checked.error());
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

std::expected<std::optional<UserRecord>, StoreError> PostgresqlStore::load(std::string_view user) {
  return with_connection<std::optional<UserRecord>>(
      [&](Connection& connection,
          bool& started) -> std::expected<std::optional<UserRecord>, StoreError> {
        // One snapshot for the row and its codes.
        if (auto begun = connection.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                                         "starting a read");
            !begun) {
          return std::unexpected(begun.error());
        }
        started = true;
        Transaction transaction(connection);
        auto row = read_user(connection, user, box_, false);
        if (!row) return std::unexpected(row.error());
        if (auto done = transaction.commit(); !done) return std::unexpected(done.error());
        if (!*row) return std::optional<UserRecord>{};
        return std::optional<UserRecord>{std::move((*row)->record)};
      });
}

std::expected<void, StoreError> PostgresqlStore::update(
    std::string_view user, const std::function<bool(UserRecord&)>& change) {
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
      auto stored = read_user(connection, user, box_, true);
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
        stored = read_user(connection, user, box_, true);
        if (!stored) return std::unexpected(stored.error());
      }
      if (!*stored) {
        // Deleted by another host after our insert saw it: look again.
        if (attempt < kRowAttempts) continue;
        return std::unexpected(store_error(
            StoreErrorKind::busy, "the row of user '" + std::string(user) + "' keeps vanishing"));
      }
      const StoredRow& before = **stored;
      UserRecord record = before.record;
      if (!change(record)) return {};  // rolled back, the placeholder insert too
      if (auto written = write_user(connection, box_, user, record, before); !written) {
        return std::unexpected(written.error());
      }
      // With synchronous_commit on (the default), COMMIT returns once the
      // change is durable on the primary (and its synchronous standbys).
      return transaction.commit();
    }
  });
}

std::expected<std::vector<UserRecord>, StoreError> PostgresqlStore::list() {
  return with_connection<std::vector<UserRecord>>(
      [&](Connection& connection,
          bool& started) -> std::expected<std::vector<UserRecord>, StoreError> {
        if (auto begun = connection.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                                         "starting a read");
            !begun) {
          return std::unexpected(begun.error());
        }
        started = true;
        Transaction transaction(connection);
        // COLLATE "C": byte order, std::string's, whatever the database's locale.
        const std::string users = "SELECT name, " + std::string(store_row::kUserColumns) +
                                  " FROM kpanel_totp_users ORDER BY name COLLATE \"C\"";
        auto rows = connection.exec(users.c_str(), "listing users");
        if (!rows) return std::unexpected(rows.error());
        std::vector<UserRecord> records;
        for (int i = 0; i < pq().ntuples(rows->get()); ++i) {
          auto name = optional_text(rows->get(), i, 0);
          if (!name) return std::unexpected(invalid_row("", "no name"));
          auto row = decode_user(rows->get(), i, 1, std::move(*name), box_);
          if (!row) return std::unexpected(row.error());
          // Placeholders of updates in flight are not committed, so not seen here.
          records.push_back(std::move(row->record));
        }
        auto codes = connection.exec(
            "SELECT name, hash, used FROM kpanel_totp_recovery_codes ORDER BY name COLLATE \"C\", "
            "idx",
            "listing users");
        if (!codes) return std::unexpected(codes.error());
        std::size_t next = 0;
        for (int i = 0; i < pq().ntuples(codes->get()); ++i) {
          const auto name = optional_text(codes->get(), i, 0).value_or("");
          while (next < records.size() && records[next].user < name) ++next;
          auto code = decode_code(codes->get(), i, 1);
          if (next == records.size() || records[next].user != name || !code) {
            return std::unexpected(invalid_row(name, "a bad recovery code"));
          }
          records[next].recovery_codes.push_back(std::move(*code));
        }
        if (auto done = transaction.commit(); !done) return std::unexpected(done.error());
        return records;
      });
}

}  // namespace kpanel::daemon
