#define BOOST_TEST_MODULE daemon restore
#include <sqlite3.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "daemon/restore.hpp"
#include "daemon/store/store_sqlite.hpp"
#include "shared/temp_dir.hpp"
#include "support/store_backends.hpp"
#include "support/user_records.hpp"

namespace kpanel::daemon::test {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kTakenAt = 1'796'434'110;

SecretBox box_with(common::SecureBytes key) {
  auto box = SecretBox::from_key(std::move(key));
  BOOST_TEST_REQUIRE(box.has_value());
  return std::move(*box);
}

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void exec(const fs::path& path, const std::string& sql) {
  sqlite3* db = nullptr;
  BOOST_TEST_REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  sqlite3_close(db);
  BOOST_TEST_REQUIRE(rc == SQLITE_OK, sql);
}

// A state with two enrolled users, closed (its WAL checkpointed), copied to
// snapshot.db and changed there by `sql`: the bytes of that file.
std::vector<std::uint8_t> state_file(const kpanel::test::TempDir& dir, const std::string& sql) {
  const fs::path state = dir.path() / "state";
  {
    auto store = SqliteStore::open(state, box_with(test_store_key()));
    BOOST_TEST_REQUIRE(store.has_value(), store.error().message);
    for (const char* user : {"alice", "bob"}) {
      const UserRecord record = full_record(user);
      BOOST_TEST_REQUIRE((*store)
                             ->update(user,
                                      [&](UserRecord& current) {
                                        current = record;
                                        return true;
                                      })
                             .has_value());
    }
  }
  const fs::path copy = dir.path() / "snapshot.db";
  fs::copy_file(state / "state.db", copy, fs::copy_options::overwrite_existing);
  exec(copy, "PRAGMA journal_mode = DELETE; " + sql);
  return read_bytes(copy);
}

const std::string kMark =
    "CREATE TABLE snapshot (taken_at INTEGER NOT NULL) STRICT; "
    "INSERT INTO snapshot VALUES (" +
    std::to_string(kTakenAt) + ");";

BOOST_AUTO_TEST_CASE(a_snapshot_is_accepted) {
  const kpanel::test::TempDir dir;
  const auto bytes = state_file(dir, kMark);
  const auto info = check_snapshot(bytes, box_with(test_store_key()));
  BOOST_TEST_REQUIRE(info.has_value(), info.error());
  BOOST_TEST(info->taken_at == kTakenAt);
  BOOST_TEST(info->users == 2);
  BOOST_TEST(info->schema_version == kSqliteSchemaVersion);
}

BOOST_AUTO_TEST_CASE(a_state_without_the_mark_is_not_a_snapshot) {
  const kpanel::test::TempDir dir;
  const auto checked = check_snapshot(state_file(dir, ""), box_with(test_store_key()));
  BOOST_TEST_REQUIRE(!checked.has_value());
  BOOST_TEST(checked.error().find("not a kpanel-totp snapshot") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(another_key_is_refused) {
  const kpanel::test::TempDir dir;
  const auto bytes = state_file(dir, kMark);
  const auto checked = check_snapshot(bytes, box_with(bytes_of(std::string(32, 'k'))));
  BOOST_TEST_REQUIRE(!checked.has_value());
  BOOST_TEST(checked.error().find("do not open with key_file") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_newer_schema_is_refused) {
  const kpanel::test::TempDir dir;
  const auto bytes =
      state_file(dir, kMark + " PRAGMA user_version = " + std::to_string(kSqliteSchemaVersion + 1));
  const auto checked = check_snapshot(bytes, box_with(test_store_key()));
  BOOST_TEST_REQUIRE(!checked.has_value());
  BOOST_TEST(checked.error().find("newer kpanel-totpd") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(damaged_files_are_refused) {
  const kpanel::test::TempDir dir;
  auto bytes = state_file(dir, kMark);
  const SecretBox box = box_with(test_store_key());
  // Not SQLite at all, empty, truncated to half, one page scribbled over.
  const std::string text = "key = value\n";
  BOOST_TEST(!check_snapshot(std::vector<std::uint8_t>(text.begin(), text.end()), box));
  BOOST_TEST(!check_snapshot({}, box));
  BOOST_TEST(!check_snapshot(std::span(bytes).first(bytes.size() / 2), box));
  BOOST_TEST_REQUIRE(bytes.size() > 8192U);
  std::fill(bytes.begin() + 4096, bytes.begin() + 8192, std::uint8_t{0x5a});
  BOOST_TEST(!check_snapshot(bytes, box));
}

}  // namespace
}  // namespace kpanel::daemon::test
