#include "store_backends.hpp"

#include <libpq-fe.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>  // mkdtemp
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "daemon/store/secret_box.hpp"
#include "daemon/store/store_postgresql.hpp"
#include "daemon/store/store_sqlite.hpp"

namespace kpanel::daemon::test {

std::unique_ptr<Store> MemoryBackend::open() { return std::make_unique<MemoryStore>(state_); }

common::SecureBytes test_store_key() {
  common::SecureBytes key(SecretBox::kKeyBytes);
  for (std::size_t i = 0; i < key.size(); ++i) {
    key.mutable_view()[i] = static_cast<std::uint8_t>(i);
  }
  return key;
}

std::unique_ptr<Store> SqliteBackend::open() {
  auto box = SecretBox::from_key(test_store_key());
  if (!box) {
    throw std::runtime_error(box.error());
  }
  auto store = SqliteStore::open(state_dir(), std::move(*box));
  if (!store) {
    throw std::runtime_error(store.error().message);
  }
  return std::move(*store);
}

std::optional<std::string> postgresql_test_dsn() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): test setup
  if (const char* file = std::getenv("KPANEL_TEST_POSTGRESQL_DSN_FILE");
      file != nullptr && *file != '\0') {
    std::ifstream in(file);
    std::string dsn;
    if (!in || !std::getline(in, dsn) || dsn.empty()) {
      throw std::runtime_error(std::string("cannot read the PostgreSQL test DSN from ") + file +
                               " (did the postgresql_setup fixture fail?)");
    }
    return dsn;
  }
  // NOLINTNEXTLINE(concurrency-mt-unsafe): test setup
  if (const char* dsn = std::getenv("KPANEL_TEST_POSTGRESQL_DSN"); dsn != nullptr && *dsn != '\0') {
    return std::string(dsn);
  }
  return std::nullopt;
}

namespace {

// Runs one statement as the test role; throws with the server's message.
void run_sql(const std::string& dsn, const std::string& sql) {
  PGconn* conn = PQconnectdb(dsn.c_str());
  const std::unique_ptr<PGconn, decltype(&PQfinish)> owned(conn, &PQfinish);
  if (PQstatus(conn) != CONNECTION_OK) {
    throw std::runtime_error(std::string("cannot connect to the test PostgreSQL: ") +
                             PQerrorMessage(conn));
  }
  const std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(conn, sql.c_str()), &PQclear);
  if (PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
    throw std::runtime_error(sql + ": " + PQresultErrorMessage(result.get()));
  }
}

std::string random_schema_name() {
  std::random_device device;
  std::array<char, 40> name{};
  std::snprintf(name.data(), name.size(), "kpt_test_%08x%08x", device(), device());
  return name.data();
}

}  // namespace

PostgresqlBackend::PostgresqlBackend() {
  const auto base = postgresql_test_dsn();
  if (!base) return;
  base_dsn_ = *base;
  schema_ = random_schema_name();  // [a-z0-9_]: needs no quoting
  run_sql(base_dsn_, "CREATE SCHEMA " + schema_);
  // Its own application_name too, so a test can find its sessions.
  dsn_ = base_dsn_ + " options='-csearch_path=" + schema_ + "' application_name=" + schema_;
}

PostgresqlBackend::~PostgresqlBackend() {
  if (schema_.empty()) return;
  try {
    run_sql(base_dsn_, "SET client_min_messages = warning; DROP SCHEMA " + schema_ + " CASCADE");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: %s\n", e.what());
  }
}

std::unique_ptr<Store> PostgresqlBackend::open() {
  if (dsn_.empty()) throw std::runtime_error("no PostgreSQL test server (see postgresql_test_dsn)");
  auto box = SecretBox::from_key(test_store_key());
  if (!box) {
    throw std::runtime_error(box.error());
  }
  auto store =
      PostgresqlStore::open(dsn_, std::move(*box), PostgresqlOptions{.max_connections = 4});
  if (!store) {
    throw std::runtime_error(store.error().message);
  }
  return std::move(*store);
}

}  // namespace kpanel::daemon::test
