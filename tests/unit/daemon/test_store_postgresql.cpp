#define BOOST_TEST_MODULE daemon store postgresql
// What the rules suite (test_rules, every backend) cannot show: two daemons
// ("hosts") on one database, a connection lost under the store, a database
// that is not there, and copying a host's state into the shared store.
// Needs a PostgreSQL server (the CTest fixture); without one: SKIPPED.
#include <libpq-fe.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/recovery_code.hpp"
#include "daemon/store/fleet_migration.hpp"
#include "daemon/store/secret_box.hpp"
#include "daemon/store/store_postgresql.hpp"
#include "support/memory_store.hpp"
#include "support/store_backends.hpp"

namespace kpanel::daemon::test {
namespace {

using namespace std::chrono_literals;

bool skipped() {
  if (backend_available<PostgresqlBackend>()) return false;
  BOOST_WARN_MESSAGE(false,
                     "SKIPPED: no PostgreSQL server (set KPANEL_TEST_POSTGRESQL_DSN or "
                     "run through ctest)");
  return true;
}

SecretBox test_box() {
  auto box = SecretBox::from_key(test_store_key());
  BOOST_REQUIRE(box.has_value());
  return std::move(*box);
}

UserRecord enrolled_record(const std::string& user, std::uint8_t secret_byte) {
  UserRecord record;
  record.user = user;
  common::SecureBytes secret(20);
  for (auto& b : secret.mutable_view()) b = secret_byte;
  record.active =
      Enrollment{std::move(secret), common::TotpParams{}, common::from_unix(1'800'000'000)};
  record.last_step = 60'000'000;
  record.recovery_codes = {{"hash-a", false}, {"hash-b", true}};
  return record;
}

void put(Store& store, const UserRecord& record) {
  const auto done = store.update(record.user, [&](UserRecord& r) {
    r = record;
    return true;
  });
  BOOST_REQUIRE(done.has_value());
}

// Runs SQL as the test role on the backend's schema (test setup only).
void run_sql(const std::string& dsn, const std::string& sql) {
  PGconn* conn = PQconnectdb(dsn.c_str());
  const std::unique_ptr<PGconn, decltype(&PQfinish)> owned(conn, &PQfinish);
  BOOST_REQUIRE_EQUAL(PQstatus(conn), CONNECTION_OK);
  const std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(conn, sql.c_str()), &PQclear);
  const auto status = PQresultStatus(result.get());
  BOOST_REQUIRE_MESSAGE(status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK,
                        PQresultErrorMessage(result.get()));
}

// The first value `sql` returns, as text (test checks only).
std::string sql_value(const std::string& dsn, const std::string& sql) {
  PGconn* conn = PQconnectdb(dsn.c_str());
  const std::unique_ptr<PGconn, decltype(&PQfinish)> owned(conn, &PQfinish);
  BOOST_REQUIRE_EQUAL(PQstatus(conn), CONNECTION_OK);
  const std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(conn, sql.c_str()), &PQclear);
  BOOST_REQUIRE_MESSAGE(PQresultStatus(result.get()) == PGRES_TUPLES_OK,
                        PQresultErrorMessage(result.get()));
  BOOST_REQUIRE(PQntuples(result.get()) == 1);
  return PQgetvalue(result.get(), 0, 0);
}

BOOST_AUTO_TEST_CASE(two_hosts_updating_one_user_at_once_are_serialized) {
  if (skipped()) return;
  PostgresqlBackend backend;
  const auto host_a = backend.open();
  const auto host_b = backend.open();
  put(*host_a, enrolled_record("alice", 7));
  // Each host claims the next step the way verify does; only one may win.
  constexpr int kRounds = 20;
  for (int round = 0; round < kRounds; ++round) {
    const std::int64_t step = 60'000'001 + round;
    std::latch start(2);
    std::array<bool, 2> accepted{};
    const auto claim = [&](Store& store, bool& won) {
      start.arrive_and_wait();
      const auto done = store.update("alice", [&](UserRecord& r) {
        if (r.last_step && *r.last_step >= step) return false;
        r.last_step = step;
        won = true;
        return true;
      });
      BOOST_TEST(done.has_value());
    };
    std::thread a([&] { claim(*host_a, accepted[0]); });
    std::thread b([&] { claim(*host_b, accepted[1]); });
    a.join();
    b.join();
    BOOST_TEST((accepted[0] != accepted[1]),
               "round " << round << ": accepted " << accepted[0] << " and " << accepted[1]);
  }
  const auto loaded = host_b->load("alice");
  BOOST_REQUIRE(loaded.has_value() && loaded->has_value());
  BOOST_TEST(*(*loaded)->last_step == 60'000'000 + kRounds);
}

BOOST_AUTO_TEST_CASE(a_connection_killed_under_the_store_is_replaced_without_an_error) {
  if (skipped()) return;
  PostgresqlBackend backend;
  const auto store = backend.open();
  put(*store, enrolled_record("alice", 7));
  // As after a database restart: every pooled session is gone. The store
  // reconnects on its own; the next calls work.
  run_sql(backend.dsn(),
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
          "pid <> pg_backend_pid() AND application_name = '" +
              backend.schema() + "'");
  std::this_thread::sleep_for(100ms);
  const auto loaded = store->load("alice");
  BOOST_TEST(loaded.has_value());
  const auto updated = store->update("alice", [](UserRecord& r) {
    r.failures = 1;
    return true;
  });
  BOOST_TEST(updated.has_value());
}

BOOST_AUTO_TEST_CASE(an_unreachable_database_is_unavailable_and_refused_fast) {
  // Port 1 on localhost: nothing listens, so connecting fails at once.
  const auto started = std::chrono::steady_clock::now();
  auto store =
      PostgresqlStore::open("host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2", test_box());
  BOOST_REQUIRE(!store.has_value());
  BOOST_TEST((store.error().kind == StoreErrorKind::unavailable));
  BOOST_TEST(store.error().message.find("cannot connect") != std::string::npos);
  BOOST_TEST((std::chrono::steady_clock::now() - started < 3s));
}

BOOST_AUTO_TEST_CASE(the_daemon_starts_without_its_database_and_refuses_until_it_is_there) {
  auto store = PostgresqlStore::open("host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2",
                                     test_box(), PostgresqlOptions{.start_without_database = true});
  BOOST_REQUIRE(store.has_value());
  // Within the backoff the refusal does not even try the network.
  const auto loaded = (*store)->load("alice");
  BOOST_REQUIRE(!loaded.has_value());
  BOOST_TEST((loaded.error().kind == StoreErrorKind::unavailable));
  const auto updated = (*store)->update("alice", [](UserRecord&) {
    BOOST_FAIL("a change ran without a database");
    return true;
  });
  BOOST_TEST((!updated.has_value() && updated.error().kind == StoreErrorKind::unavailable));
}

BOOST_AUTO_TEST_CASE(a_dsn_password_is_never_in_an_error) {
  auto store = PostgresqlStore::open(
      "host=127.0.0.1 port=1 dbname=x user=x password=hunter2-secret connect_timeout=2",
      test_box());
  BOOST_REQUIRE(!store.has_value());
  BOOST_TEST(store.error().message.find("hunter2") == std::string::npos);
}

// The server names a database that does not exist in its error, and a
// nested dbname='… password=…' is such a name: the password is masked.
BOOST_AUTO_TEST_CASE(a_password_nested_in_dbname_is_masked_in_libpq_errors) {
  if (skipped()) return;
  const auto dsn = postgresql_test_dsn();
  auto store = PostgresqlStore::open(*dsn + " dbname='nope password=hunter2-nested'", test_box());
  BOOST_REQUIRE(!store.has_value());
  BOOST_TEST(store.error().message.find("does not exist") != std::string::npos,
             store.error().message);
  BOOST_TEST(store.error().message.find("hunter2-nested") == std::string::npos,
             store.error().message);
}

BOOST_AUTO_TEST_CASE(a_malformed_dsn_is_refused_without_quoting_it) {
  // libpq's parse errors quote the string (a URI whole, password included),
  // and a refusal at open ends up in the daemon's log.
  for (const char* dsn : {"postgresql://k:hunter2-secret@[::1/totp",
                          "postgresql://k:hunter2-secret@db/totp?sslmode=%zz",
                          "host=db password='hunter2-secret", "password hunter2-secret"}) {
    auto store =
        PostgresqlStore::open(dsn, test_box(), PostgresqlOptions{.start_without_database = true});
    BOOST_REQUIRE_MESSAGE(!store.has_value(), dsn);
    BOOST_TEST((store.error().kind != StoreErrorKind::unavailable), dsn);
    BOOST_TEST(store.error().message.find("hunter2") == std::string::npos, store.error().message);
    BOOST_TEST(
        store.error().message.find("not a valid libpq connection string") != std::string::npos,
        store.error().message);
  }
}

BOOST_AUTO_TEST_CASE(a_wrong_key_is_refused_at_open) {
  if (skipped()) return;
  PostgresqlBackend backend;
  put(*backend.open(), enrolled_record("alice", 7));
  common::SecureBytes other(SecretBox::kKeyBytes);
  auto box = SecretBox::from_key(std::move(other));
  BOOST_REQUIRE(box.has_value());
  auto store = PostgresqlStore::open(backend.dsn(), std::move(*box));
  BOOST_REQUIRE(!store.has_value());
  BOOST_TEST((store.error().kind == StoreErrorKind::key));
}

BOOST_AUTO_TEST_CASE(a_host_with_another_key_is_refused_even_before_anyone_enrolled) {
  if (skipped()) return;
  PostgresqlBackend backend;
  (void)backend.open();  // the first host: its key is the fleet's
  common::SecureBytes other(SecretBox::kKeyBytes);
  auto box = SecretBox::from_key(std::move(other));
  BOOST_REQUIRE(box.has_value());
  auto store = PostgresqlStore::open(backend.dsn(), std::move(*box));
  BOOST_REQUIRE(!store.has_value());
  BOOST_TEST((store.error().kind == StoreErrorKind::key));
  BOOST_TEST(store.error().message.find("same key_file") != std::string::npos);
  BOOST_TEST(backend.open() != nullptr);  // the right key still opens
}

BOOST_AUTO_TEST_CASE(the_database_tells_whether_a_new_key_may_be_made) {
  if (skipped()) return;
  PostgresqlBackend backend;
  auto holds = PostgresqlStore::holds_sealed_secrets(backend.dsn());
  BOOST_REQUIRE_MESSAGE(holds.has_value(), holds.error().message);
  BOOST_TEST(!*holds);  // no schema yet: a first start
  // The first host sealed the fleet's key check: another key is no use now.
  const auto store = backend.open();
  holds = PostgresqlStore::holds_sealed_secrets(backend.dsn());
  BOOST_REQUIRE_MESSAGE(holds.has_value(), holds.error().message);
  BOOST_TEST(*holds);
  const auto down = PostgresqlStore::holds_sealed_secrets(
      "host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2");
  BOOST_TEST(!down.has_value());
}

BOOST_AUTO_TEST_CASE(a_schema_from_a_newer_daemon_is_refused) {
  if (skipped()) return;
  PostgresqlBackend backend;
  (void)backend.open();
  run_sql(backend.dsn(), "UPDATE kpanel_totp_schema SET version = 99");
  auto store = PostgresqlStore::open(backend.dsn(), test_box());
  BOOST_REQUIRE(!store.has_value());
  BOOST_TEST(store.error().message.find("newer kpanel-totpd") != std::string::npos);
}

// Rows as schema 2 wrote them (secret sealed for slot and user only, code
// hashes without a MAC) are bound to key_file by the migration and keep
// working; that old form written after it is refused.
BOOST_AUTO_TEST_CASE(rows_from_before_the_binding_are_bound_at_upgrade_and_keep_working) {
  if (skipped()) return;
  PostgresqlBackend backend;
  const UserRecord alice = enrolled_record("alice", 0x42);
  put(*backend.open(), alice);
  const SecretBox box = test_box();
  auto sealed = box.seal(alice.active->secret.view(), "kpanel-totp/v1/active/alice");
  BOOST_REQUIRE(sealed.has_value());
  std::string hex;
  for (const std::uint8_t byte : *sealed) {
    static constexpr std::string_view kHex = "0123456789abcdef";
    hex.push_back(kHex[byte >> 4U]);
    hex.push_back(kHex[byte & 0x0FU]);
  }
  const std::string legacy_secret =
      "UPDATE kpanel_totp_users SET active_secret = decode('" + hex + "', 'hex')";
  run_sql(backend.dsn(), legacy_secret +
                             "; UPDATE kpanel_totp_recovery_codes SET hash = split_part(hash, "
                             "'$mac=', 1); UPDATE kpanel_totp_schema SET version = 3");
  {
    auto store = backend.open();  // migrates: binds alice's row
    const auto loaded = store->load("alice");
    BOOST_REQUIRE(loaded.has_value() && loaded->has_value());
    BOOST_TEST(((*loaded)->active->secret == alice.active->secret));
    BOOST_REQUIRE_EQUAL((*loaded)->recovery_codes.size(), 2U);
    BOOST_TEST((*loaded)->recovery_codes[0].hash == "hash-a");
    BOOST_TEST((*loaded)->recovery_codes[1].used);
    run_sql(backend.dsn(),
            "UPDATE kpanel_totp_recovery_codes SET hash = split_part(hash, "
            "'$mac=', 1)");
    BOOST_TEST(!store->load("alice").has_value());
  }
  // A secret in the old form written back fails its user, not the start
  // (the key is checked against the fleet's key-check row).
  run_sql(backend.dsn(), legacy_secret);
  auto store = PostgresqlStore::open(backend.dsn(), test_box());
  BOOST_REQUIRE(store.has_value());
  const auto loaded = (*store)->load("alice");
  BOOST_REQUIRE(!loaded.has_value());
  BOOST_TEST((loaded.error().kind == StoreErrorKind::key));
}

// Another host, upgraded, migrates the schema past what this one knows
// while it runs: this one notices and refuses to write (reads go on).
BOOST_AUTO_TEST_CASE(a_schema_migrated_by_a_newer_daemon_while_running_stops_writes) {
  if (skipped()) return;
  PostgresqlBackend backend;
  (void)backend.open();
  auto store =
      PostgresqlStore::open(backend.dsn(), test_box(),
                            PostgresqlOptions{.max_connections = 2, .schema_check_interval = 0ms});
  BOOST_REQUIRE(store.has_value());
  put(**store, enrolled_record("alice", 1));
  run_sql(backend.dsn(), "UPDATE kpanel_totp_schema SET version = 99");
  const auto refused = (*store)->update("alice", [](UserRecord& r) {
    r.failures = 1;
    return true;
  });
  BOOST_REQUIRE(!refused.has_value());
  BOOST_TEST(refused.error().message.find("migrated to version 99 by a newer kpanel-totpd") !=
             std::string::npos);
  BOOST_TEST((*store)->load("alice").has_value());
  run_sql(backend.dsn(),
          "UPDATE kpanel_totp_schema SET version = " + std::to_string(kPostgresqlSchemaVersion));
  BOOST_TEST(!(*store)->update("alice", [](UserRecord&) { return true; }).has_value());  // sticky
}

BOOST_AUTO_TEST_CASE(migration_copies_merges_and_refuses_conflicts_idempotently) {
  if (skipped()) return;
  PostgresqlBackend backend;
  const auto shared = backend.open();
  MemoryStore host;
  put(host, enrolled_record("alice", 1));  // only here: copied
  put(host, enrolled_record("bob", 2));    // the same enrollment there: merged
  put(host, enrolled_record("carol", 3));  // another secret there: conflict
  UserRecord pending_only;
  pending_only.user = "dave";
  pending_only.failures = 2;
  put(host, pending_only);  // nothing enrolled: skipped

  UserRecord bob_there = enrolled_record("bob", 2);
  bob_there.last_step = 59'999'999;
  bob_there.recovery_codes = {{"hash-a", true}, {"hash-b", false}};
  put(*shared, bob_there);
  put(*shared, enrolled_record("carol", 9));

  const auto first = migrate_store(host, *shared);
  BOOST_REQUIRE(first.has_value());
  BOOST_TEST(first->copied == 1U);
  BOOST_TEST(first->present == 1U);
  BOOST_TEST(first->skipped == 1U);
  BOOST_TEST(first->conflicts == std::vector<std::string>{"carol"});

  const auto alice = shared->load("alice");
  BOOST_REQUIRE(alice.has_value() && alice->has_value());
  BOOST_TEST(((*alice)->active->secret == enrolled_record("alice", 1).active->secret));
  BOOST_TEST((*alice)->recovery_codes.size() == 2U);
  const auto bob = shared->load("bob");
  BOOST_REQUIRE(bob.has_value() && bob->has_value());
  BOOST_TEST(*(*bob)->last_step == 60'000'000);  // the later of both
  BOOST_TEST((*bob)->recovery_codes[0].used);    // used there stays used
  BOOST_TEST((*bob)->recovery_codes[1].used);    // used here is used there too
  const auto carol = shared->load("carol");
  BOOST_REQUIRE(carol.has_value() && carol->has_value());
  BOOST_TEST(((*carol)->active->secret == enrolled_record("carol", 9).active->secret));

  const auto again = migrate_store(host, *shared);
  BOOST_REQUIRE(again.has_value());
  BOOST_TEST(again->copied == 0U);
  BOOST_TEST(again->present == 2U);
  BOOST_TEST(again->conflicts.size() == 1U);
}

BOOST_AUTO_TEST_CASE(list_is_sorted_bytewise_with_codes_matched) {
  if (skipped()) return;
  PostgresqlBackend backend;
  const auto store = backend.open();
  for (const char* name : {"b", "B", "a_", "a", "Z"}) put(*store, enrolled_record(name, 4));
  const auto listed = store->list();
  BOOST_REQUIRE(listed.has_value());
  std::vector<std::string> names;
  BOOST_TEST(listed->unreadable.empty());
  for (const auto& r : listed->records) {
    names.push_back(r.user);
    BOOST_TEST(r.recovery_codes.size() == 2U);
  }
  BOOST_TEST(names == (std::vector<std::string>{"B", "Z", "a", "a_", "b"}));
}

// One row whose secret does not open, one whose enrollment time was changed
// (its binding fails), one with a code that fails its MAC: each fails its own
// user; the list names them and holds everyone else.
BOOST_AUTO_TEST_CASE(list_names_rows_that_do_not_decode_and_lists_the_rest) {
  if (skipped()) return;
  PostgresqlBackend backend;
  const auto store = backend.open();
  for (const char* name : {"alice", "bob", "carol", "dave", "erin"}) {
    put(*store, enrolled_record(name, 5));
  }
  run_sql(backend.dsn(),
          "UPDATE kpanel_totp_users SET active_secret = decode(repeat('5a', 60), 'hex')"
          " WHERE name = 'bob'");
  run_sql(backend.dsn(),
          "UPDATE kpanel_totp_users SET enrolled_at = enrolled_at + 1 WHERE name = 'carol'");
  run_sql(
      backend.dsn(),
      "UPDATE kpanel_totp_recovery_codes SET hash = 'x' || hash WHERE name = 'dave' AND idx = 1");
  const auto listed = store->list();
  BOOST_REQUIRE_MESSAGE(listed.has_value(), listed.error().message);
  BOOST_TEST(listed->unreadable == (std::vector<std::string>{"bob", "carol", "dave"}));
  std::vector<std::string> names;
  for (const auto& r : listed->records) names.push_back(r.user);
  BOOST_TEST(names == (std::vector<std::string>{"alice", "erin"}));
  for (const char* name : {"bob", "carol", "dave"}) {
    const auto loaded = store->load(name);
    BOOST_REQUIRE(!loaded.has_value());
    BOOST_TEST((loaded.error().kind == StoreErrorKind::key ||
                loaded.error().kind == StoreErrorKind::corrupt));
  }
}

// erase() clears a row that does not decode, codes and all, for good (a
// fresh store sees nothing), touching no one else; the user can start over.
BOOST_AUTO_TEST_CASE(erase_removes_a_row_that_does_not_decode) {
  if (skipped()) return;
  PostgresqlBackend backend;
  const auto store = backend.open();
  put(*store, enrolled_record("alice", 1));
  put(*store, enrolled_record("bob", 2));
  run_sql(backend.dsn(),
          "UPDATE kpanel_totp_users SET active_secret = decode(repeat('5a', 60), 'hex')"
          " WHERE name = 'bob'");
  BOOST_REQUIRE(!store->update("bob", [](UserRecord&) { return true; }).has_value());
  const auto erased = store->erase("bob");
  BOOST_REQUIRE_MESSAGE(erased.has_value(), erased.error().message);
  BOOST_TEST(
      sql_value(backend.dsn(), "SELECT count(*) FROM kpanel_totp_users WHERE name = 'bob'") == "0");
  BOOST_TEST(sql_value(backend.dsn(),
                       "SELECT count(*) FROM kpanel_totp_recovery_codes WHERE name = 'bob'") ==
             "0");
  const auto other_host = backend.open();
  const auto bob = other_host->load("bob");
  BOOST_REQUIRE(bob.has_value());
  BOOST_TEST(!bob->has_value());
  const auto alice = other_host->load("alice");
  BOOST_REQUIRE(alice.has_value());
  BOOST_TEST(alice->has_value());
  BOOST_TEST(store->erase("nobody").has_value());  // nothing stored: nothing to do
  put(*store, enrolled_record("bob", 3));
  const auto again = other_host->load("bob");
  BOOST_REQUIRE(again.has_value());
  BOOST_REQUIRE(again->has_value());
  BOOST_TEST((**again).recovery_codes.size() == 2U);
}

// Copying a host's state into the fleet store copies all or nothing: an
// unreadable record there stops it, naming the user and what clears it.
BOOST_AUTO_TEST_CASE(migration_refuses_a_host_with_an_unreadable_record) {
  if (skipped()) return;
  PostgresqlBackend backend;
  const auto shared = backend.open();
  const auto state = std::make_shared<MemoryStore::State>();
  MemoryStore host(state);
  put(host, enrolled_record("alice", 1));
  put(host, enrolled_record("bob", 2));
  state->broken["bob"] = StoreErrorKind::key;
  const auto report = migrate_store(host, *shared);
  BOOST_REQUIRE(!report.has_value());
  BOOST_TEST(report.error().message.find("user 'bob'") != std::string::npos);
  BOOST_TEST(report.error().message.find("admin reset") != std::string::npos);
  const auto alice = shared->load("alice");
  BOOST_REQUIRE(alice.has_value());
  BOOST_TEST(!alice->has_value());
}

}  // namespace
}  // namespace kpanel::daemon::test
