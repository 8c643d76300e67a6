#define BOOST_TEST_MODULE daemon sqlite store runs
// The SQLite store's run state (store_sqlite.hpp, fence.hpp): how a start
// after a clean stop, a daemon crash, a host crash or a restored snapshot is
// told apart and recorded, and the high-water time.
#include <sqlite3.h>

#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "daemon/store/secret_box.hpp"
#include "daemon/store/store_sqlite.hpp"
#include "support/store_backends.hpp"

namespace kpanel::daemon::test {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kSlack = kHighWaterInterval.count() + kFenceMargin.count();

std::unique_ptr<SqliteStore> open_store(const fs::path& dir) {
  auto box = SecretBox::from_key(test_store_key());
  BOOST_TEST_REQUIRE(box.has_value());
  auto store = SqliteStore::open(dir, std::move(*box));
  BOOST_TEST_REQUIRE(store.has_value(), store.error().message);
  return std::move(*store);
}

SqliteStore::RunStart start(SqliteStore& store, const std::string& boot_id, std::int64_t now,
                            unsigned window = 1) {
  auto started = store.start_run(boot_id, now, window);
  BOOST_TEST_REQUIRE(started.has_value(), started.error().message);
  return *started;
}

RunState recorded(SqliteStore& store) {
  auto state = store.run_state();
  BOOST_TEST_REQUIRE(state.has_value(), state.error().message);
  BOOST_TEST_REQUIRE(state->has_value());
  return **state;
}

// What `kpanel-totp admin backup` adds to its copy of the database.
void add_snapshot_table(const fs::path& db, std::int64_t taken_at) {
  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close_v2(raw);
    throw std::runtime_error("cannot open " + db.string());
  }
  const std::string sql =
      "CREATE TABLE snapshot(taken_at INTEGER NOT NULL); INSERT INTO snapshot "
      "VALUES (" +
      std::to_string(taken_at) + ")";
  const int rc = sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr);
  sqlite3_close_v2(raw);
  if (rc != SQLITE_OK) throw std::runtime_error("cannot add the snapshot table");
}

BOOST_AUTO_TEST_CASE(a_first_start_and_a_clean_stop_fence_nothing) {
  const TempDir dir;
  {
    auto store = open_store(dir.path());
    const auto first = start(*store, "boot-a", 1'000);
    BOOST_TEST((first.last_stop == LastStop::first_start));
    BOOST_TEST(!first.fence.has_value());
    BOOST_TEST((recorded(*store) == RunState{"boot-a", true, 1'000, std::nullopt}));
    BOOST_TEST_REQUIRE(store->mark_clean_stop(1'010).has_value());
    BOOST_TEST((recorded(*store) == RunState{"boot-a", false, 1'010, std::nullopt}));
  }
  // After a clean stop, even under another boot (the host rebooted cleanly).
  auto store = open_store(dir.path());
  const auto next = start(*store, "boot-b", 2'000);
  BOOST_TEST((next.last_stop == LastStop::clean));
  BOOST_TEST(!next.fence.has_value());
  BOOST_TEST(!next.new_fence);
}

BOOST_AUTO_TEST_CASE(a_daemon_crash_under_the_same_boot_fences_nothing) {
  const TempDir dir;
  (void)start(*open_store(dir.path()), "boot-a", 1'000);  // no clean stop: killed
  auto store = open_store(dir.path());
  const auto next = start(*store, "boot-a", 1'030);
  BOOST_TEST((next.last_stop == LastStop::daemon_crash));
  BOOST_TEST(!next.fence.has_value());
}

BOOST_AUTO_TEST_CASE(a_host_crash_is_fenced_from_the_high_water_time_and_the_fence_is_kept) {
  const TempDir dir;
  {
    auto store = open_store(dir.path());
    (void)start(*store, "boot-a", 1'000);
    BOOST_TEST_REQUIRE(store->refresh_high_water(1'050).has_value());
  }
  Fence expected{1'050 + kSlack, 2};
  {
    // Under another boot, with a clock behind the last high-water time.
    auto store = open_store(dir.path());
    const auto next = start(*store, "boot-b", 900, 2);
    BOOST_TEST((next.last_stop == LastStop::host_crash));
    BOOST_TEST(next.new_fence);
    BOOST_TEST((next.fence == expected));
    BOOST_TEST((recorded(*store).fence == expected));
  }
  // The daemon killed during the fence: the fence stays, not announced again.
  auto store = open_store(dir.path());
  const auto again = start(*store, "boot-b", 950, 1);
  BOOST_TEST((again.last_stop == LastStop::daemon_crash));
  BOOST_TEST(!again.new_fence);
  BOOST_TEST((again.fence == expected));
}

BOOST_AUTO_TEST_CASE(a_restored_snapshot_is_fenced_once_and_its_table_dropped) {
  const TempDir dir;
  {
    auto store = open_store(dir.path());
    (void)start(*store, "boot-a", 1'000);
    BOOST_TEST_REQUIRE(store->mark_clean_stop(1'010).has_value());
  }
  add_snapshot_table(dir.path() / "state.db", 5'000);
  {
    auto store = open_store(dir.path());
    const auto next = start(*store, "boot-a", 4'000);
    BOOST_TEST((next.last_stop == LastStop::restored));
    BOOST_TEST(next.snapshot_taken_at.value() == 5'000);
    BOOST_TEST((next.fence == Fence{5'000 + kSlack, 1}));
  }
  auto store = open_store(dir.path());
  const auto again = start(*store, "boot-a", 4'100);
  BOOST_TEST((again.last_stop == LastStop::daemon_crash));  // the table is gone
  BOOST_TEST(!again.new_fence);
  BOOST_TEST((again.fence == Fence{5'000 + kSlack, 1}));
}

BOOST_AUTO_TEST_CASE(the_high_water_time_only_moves_forward) {
  const TempDir dir;
  auto store = open_store(dir.path());
  (void)start(*store, "boot-a", 1'000);
  BOOST_TEST_REQUIRE(store->refresh_high_water(2'000).has_value());
  BOOST_TEST(recorded(*store).high_water == 2'000);
  BOOST_TEST_REQUIRE(store->refresh_high_water(1'500).has_value());  // the clock went back
  BOOST_TEST(recorded(*store).high_water == 2'000);
  BOOST_TEST_REQUIRE(store->mark_clean_stop(1'600).has_value());
  BOOST_TEST(recorded(*store).high_water == 2'000);
}

// Deferred updates are visible at once and to a store opened after this one
// was dropped without a clean stop (what a killed daemon leaves).
BOOST_AUTO_TEST_CASE(a_deferred_update_survives_the_store_being_dropped) {
  const TempDir dir;
  {
    auto store = open_store(dir.path());
    (void)start(*store, "boot-a", 1'000);
    const auto updated = store->update("alice", Durability::deferred, [](UserRecord& record) {
      record.failures = 3;
      return true;
    });
    BOOST_TEST_REQUIRE(updated.has_value(), updated.error().message);
    const auto loaded = store->load("alice");
    BOOST_TEST_REQUIRE((loaded.has_value() && loaded->has_value()));
    BOOST_TEST((*loaded)->failures == 3U);
  }
  auto store = open_store(dir.path());
  const auto loaded = store->load("alice");
  BOOST_TEST_REQUIRE((loaded.has_value() && loaded->has_value()));
  BOOST_TEST((*loaded)->failures == 3U);
}

}  // namespace
}  // namespace kpanel::daemon::test
