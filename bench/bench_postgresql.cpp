// The PostgreSQL runs (bench_postgresql.hpp). libpq: the suite makes (and
// drops) a schema of its own.
#include "bench/bench_postgresql.hpp"

#include <libpq-fe.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "bench/bench_table.hpp"
#include "common/random.hpp"

namespace kpanel::bench {
namespace {

// Runs one statement on `dsn`: its first value ("" if none), or nullopt with
// the server's message on stderr.
std::optional<std::string> postgresql_exec(const std::string& dsn, const std::string& sql) {
  const std::unique_ptr<PGconn, decltype(&PQfinish)> connection(PQconnectdb(dsn.c_str()),
                                                                &PQfinish);
  if (PQstatus(connection.get()) != CONNECTION_OK) {
    (void)std::fprintf(stderr, "kpanel_bench: postgresql: %s", PQerrorMessage(connection.get()));
    return std::nullopt;
  }
  // NOTICEs ("drop cascades to table …") are not the table's business.
  PQsetNoticeProcessor(
      connection.get(), [](void*, const char*) {}, nullptr);
  const std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(connection.get(), sql.c_str()),
                                                             &PQclear);
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    (void)std::fprintf(stderr, "kpanel_bench: postgresql: %s: %s", sql.c_str(),
                       PQresultErrorMessage(result.get()));
    return std::nullopt;
  }
  if (status == PGRES_TUPLES_OK && PQntuples(result.get()) > 0 && PQnfields(result.get()) > 0) {
    return std::string(PQgetvalue(result.get(), 0, 0));
  }
  return std::string{};
}

// `dsn` with search_path set to `schema`, in either form libpq takes.
std::string with_search_path(const std::string& dsn, const std::string& schema) {
  if (dsn.starts_with("postgresql://") || dsn.starts_with("postgres://")) {
    return dsn + (dsn.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" +
           schema;
  }
  return dsn + " options='-csearch_path=" + schema + "'";
}

// A schema of the suite's own, dropped (with everything the daemon made in
// it) when the suite is done with it.
class ScratchSchema {
 public:
  explicit ScratchSchema(std::string dsn) : dsn_(std::move(dsn)) {
    auto suffix = common::random_bytes(6);
    if (!suffix) return;
    const std::string name = "kpanel_bench_" + hex(suffix->view());
    if (postgresql_exec(dsn_, "CREATE SCHEMA " + name)) name_ = name;
  }
  ScratchSchema(const ScratchSchema&) = delete;
  ScratchSchema& operator=(const ScratchSchema&) = delete;
  ScratchSchema(ScratchSchema&&) = delete;
  ScratchSchema& operator=(ScratchSchema&&) = delete;
  ~ScratchSchema() {
    if (!name_.empty()) (void)postgresql_exec(dsn_, "DROP SCHEMA " + name_ + " CASCADE");
  }
  [[nodiscard]] bool made() const { return !name_.empty(); }
  [[nodiscard]] std::string dsn() const { return with_search_path(dsn_, name_); }

 private:
  std::string dsn_;
  std::string name_;
};

}  // namespace

std::optional<PostgresqlRuns> postgresql_runs(const std::string& base_dsn,
                                              const fs::path& daemon_binary, const fs::path& dir,
                                              std::size_t user_count, std::size_t samples,
                                              double seconds, std::size_t warm_up_writes) {
  const ScratchSchema schema(base_dsn);
  if (!schema.made()) return std::nullopt;
  const std::string dsn = schema.dsn();
  PostgresqlRuns out;
  const auto setting = [&](const char* name) {
    return postgresql_exec(dsn, std::string("SHOW ") + name).value_or("?");
  };
  out.server = "PostgreSQL " + setting("server_version") + ", fsync " + setting("fsync") +
               ", synchronous_commit " + setting("synchronous_commit");
  std::vector<BenchUser> users;
  ReplayState replay(user_count);
  Daemon daemon(daemon_binary, dir / "postgresql", dsn);
  fs::create_directories(daemon.state_dir());
  fs::permissions(dir / "postgresql", fs::perms::owner_all);
  fs::permissions(daemon.state_dir(), fs::perms::owner_all);
  progress(fmt("PostgreSQL: seeding %zu users", user_count));
  const auto seed_start = Clock::now();
  if (!seed(daemon.state_dir(), daemon.key_file(), dsn, users, 0, user_count)) return std::nullopt;
  out.seed_seconds = std::chrono::duration<double>(Clock::now() - seed_start).count();
  if (!daemon.start()) return std::nullopt;
  warm_up(daemon, users, 0, user_count, warm_up_writes);
  progress("PostgreSQL: (a) round trips");
  out.round_trips = round_trips(daemon, RightCodes(users, replay, 0, user_count), samples);
  for (const int clients : {1, 8, 64}) {
    progress(fmt("PostgreSQL: (b) %d clients", clients));
    out.throughput.emplace_back(clients,
                                throughput(daemon, users, replay, 0, user_count, clients, seconds));
  }
  daemon.stop();
  return out;
}

}  // namespace kpanel::bench
