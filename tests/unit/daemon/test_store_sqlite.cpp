#define BOOST_TEST_MODULE daemon sqlite store
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/base32.hpp"
#include "common/random.hpp"
#include "daemon/store/secret_box.hpp"
#include "daemon/store/store_sqlite.hpp"
#include "support/store_backends.hpp"
#include "support/user_records.hpp"

namespace kpanel::daemon::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const common::TimePoint kEnrolled = common::from_unix(1'800'000'000);

SecretBox box_with(common::SecureBytes key) {
  auto box = SecretBox::from_key(std::move(key));
  BOOST_TEST_REQUIRE(box.has_value());
  return std::move(*box);
}

std::expected<std::unique_ptr<SqliteStore>, StoreError> try_open(
    const fs::path& dir, common::SecureBytes key = test_store_key()) {
  return SqliteStore::open(dir, box_with(std::move(key)));
}

std::unique_ptr<SqliteStore> open_store(const fs::path& dir) {
  auto store = try_open(dir);
  BOOST_TEST_REQUIRE(store.has_value(), store.error().message);
  return std::move(*store);
}

void put(Store& store, const UserRecord& record) {
  const auto updated = store.update(record.user, [&](UserRecord& current) {
    current = record;
    return true;
  });
  BOOST_TEST_REQUIRE(updated.has_value(), updated.error().message);
}

UserRecord get(Store& store, const std::string& user) {
  const auto loaded = store.load(user);
  BOOST_TEST_REQUIRE(loaded.has_value(), loaded.error().message);
  BOOST_TEST_REQUIRE(loaded->has_value());
  return **loaded;
}

mode_t mode_of(const fs::path& path) {
  struct stat info {};
  BOOST_TEST_REQUIRE(::lstat(path.c_str(), &info) == 0);
  return info.st_mode & 07777U;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A second, plain SQLite connection to look at or tamper with the file.
class RawDatabase {
 public:
  explicit RawDatabase(const fs::path& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      throw std::runtime_error("cannot open " + path.string());
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  RawDatabase(const RawDatabase&) = delete;
  RawDatabase& operator=(const RawDatabase&) = delete;
  RawDatabase(RawDatabase&&) = delete;
  RawDatabase& operator=(RawDatabase&&) = delete;
  ~RawDatabase() { sqlite3_close_v2(db_); }

  void exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      const std::string message = error != nullptr ? error : "?";
      sqlite3_free(error);
      throw std::runtime_error(sql + ": " + message);
    }
  }
  std::string text(const std::string& sql) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) {
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    }
    std::string value;
    if (sqlite3_step(statement) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(statement, 0);
      value = text != nullptr ? reinterpret_cast<const char*>(text) : "NULL";
    }
    sqlite3_finalize(statement);
    return value;
  }

 private:
  sqlite3* db_ = nullptr;
};

// ---- records --------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(every_field_survives_a_close_and_reopen) {
  const TempDir dir;
  const UserRecord alice = full_record("alice");
  UserRecord bare;  // only a lockout: every optional column NULL
  bare.user = "bob";
  bare.failures = 1;
  {
    auto store = open_store(dir.path());
    put(*store, alice);
    put(*store, bare);
    check_same(get(*store, "alice"), alice);
  }
  auto store = open_store(dir.path());
  check_same(get(*store, "alice"), alice);
  check_same(get(*store, "bob"), bare);
  const auto all = store->list();
  BOOST_TEST_REQUIRE(all.has_value());
  BOOST_TEST(all->unreadable.empty());
  BOOST_TEST_REQUIRE(all->records.size() == 2U);
  check_same(all->records[0], alice);
  check_same(all->records[1], bare);
}

BOOST_AUTO_TEST_CASE(extreme_values_roundtrip) {
  const TempDir dir;
  UserRecord record = full_record("x");
  record.failures = UINT32_MAX;
  record.lockout_level = UINT32_MAX;
  record.last_step = INT64_MIN;
  record.used_steps = {{INT64_MIN, INT64_MIN + 1}, {INT64_MAX - 1, INT64_MAX}};
  record.last_skew_seconds = INT64_MAX;
  record.locked_until = common::from_unix(-1);
  record.active =
      Enrollment{bytes_of("k"), {common::TotpAlgorithm::sha1, 6, UINT32_MAX}, kEnrolled};
  record.recovery_codes.clear();
  {
    auto store = open_store(dir.path());
    put(*store, record);
  }
  check_same(get(*open_store(dir.path()), "x"), record);
}

BOOST_AUTO_TEST_CASE(an_unknown_user_loads_as_nullopt) {
  const TempDir dir;
  auto store = open_store(dir.path());
  const auto loaded = store->load("nobody");
  BOOST_TEST_REQUIRE(loaded.has_value());
  BOOST_TEST(!loaded->has_value());
}

BOOST_AUTO_TEST_CASE(update_sees_a_fresh_record_with_only_the_name_set) {
  const TempDir dir;
  auto store = open_store(dir.path());
  bool fresh = false;
  BOOST_TEST_REQUIRE(store
                         ->update("carol",
                                  [&](UserRecord& record) {
                                    fresh = record.user == "carol" && !record.active &&
                                            record.failures == 0 && record.recovery_codes.empty();
                                    return false;
                                  })
                         .has_value());
  BOOST_TEST(fresh);
}

BOOST_AUTO_TEST_CASE(an_update_that_returns_false_writes_nothing) {
  const TempDir dir;
  auto store = open_store(dir.path());
  const UserRecord alice = full_record("alice");
  put(*store, alice);
  const auto refused = store->update("alice", [](UserRecord& record) {
    record.active.reset();
    record.failures = 99;
    record.recovery_codes.clear();
    return false;
  });
  BOOST_TEST_REQUIRE(refused.has_value());
  check_same(get(*store, "alice"), alice);
  const auto new_user = store->update("dave", [](UserRecord& record) {
    record.failures = 4;
    return false;
  });
  BOOST_TEST_REQUIRE(new_user.has_value());
  BOOST_TEST(!store->load("dave")->has_value());
  store.reset();
  check_same(get(*open_store(dir.path()), "alice"), alice);
}

BOOST_AUTO_TEST_CASE(a_change_that_throws_rolls_back_and_the_store_goes_on) {
  const TempDir dir;
  auto store = open_store(dir.path());
  const UserRecord alice = full_record("alice");
  put(*store, alice);
  BOOST_CHECK_THROW((void)store->update("alice",
                                        [](UserRecord& record) -> bool {
                                          record.failures = 42;
                                          throw std::runtime_error("boom");
                                        }),
                    std::runtime_error);
  check_same(get(*store, "alice"), alice);
  UserRecord changed = alice;
  changed.failures = 0;
  put(*store, changed);
  check_same(get(*store, "alice"), changed);
}

BOOST_AUTO_TEST_CASE(recovery_codes_are_updated_replaced_and_removed) {
  const TempDir dir;
  auto store = open_store(dir.path());
  UserRecord alice = full_record("alice");
  put(*store, alice);
  alice.recovery_codes[0].used = true;  // in place
  alice.recovery_codes[1].used = false;
  put(*store, alice);
  check_same(get(*store, "alice"), alice);
  alice.recovery_codes = {{"$scrypt$new-1", false}, {"$scrypt$new-2", false}};  // regenerated
  put(*store, alice);
  check_same(get(*store, "alice"), alice);
  alice.recovery_codes.clear();
  put(*store, alice);
  check_same(get(*store, "alice"), alice);
  RawDatabase raw(dir.path() / "state.db");
  BOOST_TEST(raw.text("SELECT count(*) FROM recovery_codes") == "0");
}

BOOST_AUTO_TEST_CASE(a_record_left_empty_is_deleted_with_its_codes) {
  const TempDir dir;
  auto store = open_store(dir.path());
  put(*store, full_record("alice"));
  BOOST_TEST_REQUIRE(store
                         ->update("alice",
                                  [](UserRecord& record) {
                                    const std::string name = record.user;
                                    record = UserRecord{};
                                    record.user = name;
                                    return true;
                                  })
                         .has_value());
  BOOST_TEST(!store->load("alice")->has_value());
  BOOST_TEST(store->list()->records.empty());
  RawDatabase raw(dir.path() / "state.db");
  BOOST_TEST(raw.text("SELECT count(*) FROM users") == "0");
  BOOST_TEST(raw.text("SELECT count(*) FROM recovery_codes") == "0");
}

BOOST_AUTO_TEST_CASE(a_record_with_only_replay_state_is_kept) {
  const TempDir dir;
  auto store = open_store(dir.path());
  UserRecord record;
  record.user = "alice";
  record.last_step = 7;
  record.used_steps = {{7, 7}};
  put(*store, record);
  check_same(get(*store, "alice"), record);
}

BOOST_AUTO_TEST_CASE(list_is_sorted_by_name_and_matches_codes_to_users) {
  const TempDir dir;
  auto store = open_store(dir.path());
  const std::vector<std::string> names{"zed", "alice", "Bob", "bob", "al", "\xc3\xa9mile", "a-b"};
  for (const auto& name : names) {
    UserRecord record = full_record(name);
    record.recovery_codes = {{"hash-of-" + name, false}, {"2nd-of-" + name, true}};
    put(*store, record);
  }
  auto sorted = names;
  std::sort(sorted.begin(), sorted.end());
  const auto all = store->list();
  BOOST_TEST_REQUIRE(all.has_value());
  BOOST_TEST_REQUIRE(all->records.size() == sorted.size());
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const UserRecord& record = all->records[i];
    BOOST_TEST(record.user == sorted[i]);
    BOOST_TEST_REQUIRE(record.recovery_codes.size() == 2U);
    BOOST_TEST(record.recovery_codes[0].hash == "hash-of-" + sorted[i]);
    BOOST_TEST(record.recovery_codes[1].used);
    BOOST_TEST((record.active->secret == bytes_of("active-secret-" + sorted[i])));
  }
}

// ---- schema --------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(the_schema_version_is_recorded) {
  const TempDir dir;
  open_store(dir.path()).reset();
  RawDatabase raw(dir.path() / "state.db");
  BOOST_TEST(raw.text("PRAGMA user_version") == std::to_string(kSqliteSchemaVersion));
  BOOST_TEST(raw.text("PRAGMA journal_mode") == "wal");
  // Reopening an up-to-date database migrates nothing and changes nothing.
  open_store(dir.path()).reset();
  BOOST_TEST(raw.text("PRAGMA user_version") == std::to_string(kSqliteSchemaVersion));
}

// A database of schema 1 (before used_steps): its rows keep working, every
// step up to last_step counting as used, and the schema is brought up to date.
BOOST_AUTO_TEST_CASE(a_database_of_schema_1_is_migrated_and_its_rows_keep_working) {
  const TempDir dir;
  open_store(dir.path()).reset();
  {
    RawDatabase raw(dir.path() / "state.db");
    raw.exec("ALTER TABLE users DROP COLUMN remembered");  // schema 4
    raw.exec("DROP TABLE daemon_run");                     // schema 3
    raw.exec("ALTER TABLE users DROP COLUMN used_steps");
    raw.exec("INSERT INTO users (user, last_step, failures) VALUES ('alice', 1000, 2)");
    raw.exec("PRAGMA user_version = 1");
  }
  auto store = open_store(dir.path());
  RawDatabase raw(dir.path() / "state.db");
  BOOST_TEST(raw.text("PRAGMA user_version") == std::to_string(kSqliteSchemaVersion));
  UserRecord alice = get(*store, "alice");
  BOOST_TEST(alice.last_step.value() == 1000);
  BOOST_TEST(alice.failures == 2U);
  BOOST_TEST((alice.used_steps == std::vector<StepRun>{{INT64_MIN, 1000}}));
  alice.last_step = 1002;
  alice.used_steps.push_back({1002, 1002});
  put(*store, alice);
  check_same(get(*open_store(dir.path()), "alice"), alice);
}

std::string hex_of(std::span<const std::uint8_t> bytes) {
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string out;
  for (const std::uint8_t byte : bytes) {
    out.push_back(kHex[byte >> 4U]);
    out.push_back(kHex[byte & 0x0FU]);
  }
  return out;
}

// Rows as schema 4 wrote them (secrets sealed for slot and user only, code
// hashes without a MAC) are bound to key_file by the migration, once, and
// keep working; a row written that old way after the migration is refused.
BOOST_AUTO_TEST_CASE(rows_from_before_the_binding_are_bound_at_upgrade_and_keep_working) {
  const TempDir dir;
  const UserRecord alice = full_record("alice");
  put(*open_store(dir.path()), alice);
  const SecretBox box = box_with(test_store_key());
  const auto legacy_sealed = [&](std::string_view slot, const common::SecureBytes& secret) {
    auto sealed = box.seal(secret.view(), "kpanel-totp/v1/" + std::string(slot) + "/alice");
    BOOST_TEST_REQUIRE(sealed.has_value());
    return hex_of(*sealed);
  };
  {
    RawDatabase raw(dir.path() / "state.db");
    raw.exec("UPDATE users SET active_secret = X'" + legacy_sealed("active", alice.active->secret) +
             "', pending_secret = X'" + legacy_sealed("pending", alice.pending->secret) + "'");
    for (std::size_t i = 0; i < alice.recovery_codes.size(); ++i) {
      raw.exec("UPDATE recovery_codes SET hash = '" + alice.recovery_codes[i].hash +
               "' WHERE idx = " + std::to_string(i));
    }
    raw.exec("PRAGMA user_version = 4");
  }
  auto store = open_store(dir.path());
  check_same(get(*store, "alice"), alice);
  RawDatabase raw(dir.path() / "state.db");
  BOOST_TEST(raw.text("PRAGMA user_version") == std::to_string(kSqliteSchemaVersion));
  BOOST_TEST(raw.text("SELECT hash FROM recovery_codes WHERE idx = 0").find("$mac=") !=
             std::string::npos);
  // After the upgrade, the old forms are refused: an old sealed secret
  // written back, or a code hash without its MAC.
  raw.exec("UPDATE users SET active_secret = X'" + legacy_sealed("active", alice.active->secret) +
           "'");
  BOOST_TEST((store->load("alice").error().kind == StoreErrorKind::key));
  store.reset();
  // It fails that user, not the start: the key checks out on its own row.
  BOOST_TEST((open_store(dir.path())->load("alice").error().kind == StoreErrorKind::key));
}

// Recovery-code rows are bound to their user, enrollment and position by a
// MAC under key_file: a row copied to another user, kept across a new
// enrollment, or written without the key is refused, and so is an old
// sealed secret written back after a new enrollment.
BOOST_AUTO_TEST_CASE(moved_forged_or_stale_rows_are_refused) {
  const TempDir dir;
  auto store = open_store(dir.path());
  put(*store, full_record("alice"));
  UserRecord bob = full_record("bob");
  bob.recovery_codes.clear();
  put(*store, bob);
  RawDatabase raw(dir.path() / "state.db");
  const auto refused = [&](const std::string& user) {
    const auto loaded = store->load(user);
    BOOST_TEST_REQUIRE(!loaded.has_value());
    return loaded.error();
  };
  // Alice's codes copied to bob.
  raw.exec(
      "INSERT INTO recovery_codes (user, idx, hash, used)"
      " SELECT 'bob', idx, hash, used FROM recovery_codes WHERE user = 'alice'");
  BOOST_TEST(refused("bob").message.find("not bound to it by key_file") != std::string::npos);
  raw.exec("DELETE FROM recovery_codes WHERE user = 'bob'");
  BOOST_TEST(!get(*store, "bob").active->secret.empty());
  // A hash of the stored format made without the key (a made-up MAC).
  raw.exec("INSERT INTO recovery_codes (user, idx, hash, used) VALUES ('bob', 0, '$scrypt$x$mac=" +
           std::string(64, '0') + "', 0)");
  BOOST_TEST((refused("bob").kind == StoreErrorKind::corrupt));
  raw.exec("DELETE FROM recovery_codes WHERE user = 'bob'");
  // Alice's codes moved to another position.
  raw.exec("UPDATE recovery_codes SET idx = 99 WHERE user = 'alice' AND idx = 0");
  raw.exec("UPDATE recovery_codes SET idx = 0 WHERE user = 'alice' AND idx = 2");
  raw.exec("UPDATE recovery_codes SET idx = 2 WHERE user = 'alice' AND idx = 99");
  BOOST_TEST((refused("alice").kind == StoreErrorKind::corrupt));
  // Bob's sealed secret of an enrollment he reset and redid, written back.
  const std::string old_secret = raw.text("SELECT hex(active_secret) FROM users WHERE user='bob'");
  UserRecord again = bob;
  again.active->enrolled_at += std::chrono::seconds{90};
  again.active->secret = common::SecureBytes(
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>("another phone"), 13));
  put(*store, again);
  raw.exec("UPDATE users SET active_secret = X'" + old_secret + "' WHERE user = 'bob'");
  BOOST_TEST((refused("bob").kind == StoreErrorKind::key));
}

// A host of a fleet that does not know used_steps yet moves last_step on and
// leaves used_steps as it was: every step up to the new last_step counts as used.
BOOST_AUTO_TEST_CASE(a_last_step_missing_from_used_steps_makes_every_step_up_to_it_used) {
  const TempDir dir;
  auto store = open_store(dir.path());
  UserRecord record;
  record.user = "alice";
  record.last_step = 50;
  record.used_steps = {{50, 50}, {90, 90}};
  put(*store, record);
  {
    RawDatabase raw(dir.path() / "state.db");
    raw.exec("UPDATE users SET last_step = 70 WHERE user = 'alice'");
  }
  BOOST_TEST((get(*store, "alice").used_steps == std::vector<StepRun>{{INT64_MIN, 70}, {90, 90}}));
}

BOOST_AUTO_TEST_CASE(a_bad_remembered_value_is_refused_as_corrupt) {
  const TempDir dir;
  auto store = open_store(dir.path());
  UserRecord record;
  record.user = "alice";
  record.failures = 1;
  record.remembered = {{"h", "192.0.2.7", 10, 70}};
  put(*store, record);
  BOOST_TEST((get(*store, "alice").remembered == record.remembered));
  for (const char* bad : {"'10 70 h'", "'70 10 h s\n'", "'x 70 h s\n'", "'10 70 h s'"}) {
    {
      RawDatabase raw(dir.path() / "state.db");
      raw.exec(std::string("UPDATE users SET remembered = ") + bad + " WHERE user = 'alice'");
    }
    const auto loaded = store->load("alice");
    BOOST_TEST_REQUIRE(!loaded.has_value(), bad);
    BOOST_TEST((loaded.error().kind == StoreErrorKind::corrupt), bad);
    BOOST_TEST(loaded.error().message.find("bad remembered") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(a_bad_used_steps_value_is_refused_as_corrupt) {
  const TempDir dir;
  auto store = open_store(dir.path());
  UserRecord record;
  record.user = "alice";
  record.last_step = 5;
  record.used_steps = {{5, 5}};
  put(*store, record);
  for (const char* bad : {"'5,4'", "'x'", "'5..5'", "'1,2'", "'5,'"}) {
    {
      RawDatabase raw(dir.path() / "state.db");
      raw.exec(std::string("UPDATE users SET used_steps = ") + bad + " WHERE user = 'alice'");
    }
    const auto loaded = store->load("alice");
    BOOST_TEST_REQUIRE(!loaded.has_value(), bad);
    BOOST_TEST((loaded.error().kind == StoreErrorKind::corrupt), bad);
  }
}

BOOST_AUTO_TEST_CASE(a_database_from_a_newer_daemon_is_refused) {
  const TempDir dir;
  open_store(dir.path()).reset();
  {
    RawDatabase raw(dir.path() / "state.db");
    raw.exec("PRAGMA user_version = " + std::to_string(kSqliteSchemaVersion + 1));
  }
  const auto store = try_open(dir.path());
  BOOST_TEST_REQUIRE(!store.has_value());
  BOOST_TEST((store.error().kind == StoreErrorKind::corrupt));
  BOOST_TEST(store.error().message.find("written by a newer kpanel-totpd") != std::string::npos,
             store.error().message);
}

BOOST_AUTO_TEST_CASE(a_file_that_is_not_a_database_is_refused_as_corrupt) {
  const TempDir dir;
  const fs::path state = dir.path() / "state";
  fs::create_directory(state);
  fs::permissions(state, fs::perms::owner_all, fs::perm_options::replace);
  {
    std::ofstream out(state / "state.db", std::ios::binary);
    out << std::string(8192, 'x');
  }
  fs::permissions(state / "state.db", fs::perms::owner_read | fs::perms::owner_write,
                  fs::perm_options::replace);
  const auto store = try_open(state);
  BOOST_TEST_REQUIRE(!store.has_value());
  BOOST_TEST((store.error().kind == StoreErrorKind::corrupt), store.error().message);
  BOOST_TEST(store.error().message.find("sqlite store " + (state / "state.db").string()) == 0U,
             store.error().message);
}

BOOST_AUTO_TEST_CASE(integrity_check_passes_after_use) {
  const TempDir dir;
  {
    auto store = open_store(dir.path());
    for (int i = 0; i < 50; ++i) {
      put(*store, full_record("user" + std::to_string(i)));
    }
    for (int i = 0; i < 50; i += 2) {
      BOOST_TEST_REQUIRE(store
                             ->update("user" + std::to_string(i),
                                      [](UserRecord& record) {
                                        const std::string name = record.user;
                                        record = UserRecord{};
                                        record.user = name;
                                        return true;
                                      })
                             .has_value());
    }
    RawDatabase raw(dir.path() / "state.db");
    BOOST_TEST(raw.text("PRAGMA integrity_check") == "ok");
    BOOST_TEST(raw.text("PRAGMA foreign_key_check").empty());
  }
  RawDatabase raw(dir.path() / "state.db");
  BOOST_TEST(raw.text("PRAGMA integrity_check") == "ok");
  BOOST_TEST(raw.text("SELECT count(*) FROM users") == "25");
}

// ---- files and permissions -------------------------------------------------------------

BOOST_AUTO_TEST_CASE(the_state_dir_is_created_0700_and_the_files_0600) {
  const TempDir dir;
  const fs::path state = dir.path() / "state";
  const mode_t old = ::umask(0);  // the store must not rely on the umask
  auto store = try_open(state);
  ::umask(old);
  BOOST_TEST_REQUIRE(store.has_value(), store.error().message);
  put(**store, full_record("alice"));
  BOOST_TEST(mode_of(state) == 0700U);
  BOOST_TEST(mode_of(state / "state.db") == 0600U);
  BOOST_TEST_REQUIRE(fs::exists(state / "state.db-wal"));
  BOOST_TEST(mode_of(state / "state.db-wal") == 0600U);
  BOOST_TEST_REQUIRE(fs::exists(state / "state.db-shm"));
  BOOST_TEST(mode_of(state / "state.db-shm") == 0600U);
  BOOST_TEST(((*store)->database_path() == state / "state.db"));
}

BOOST_AUTO_TEST_CASE(a_state_dir_open_to_group_or_others_is_refused_with_the_fix) {
  const TempDir dir;
  const fs::path state = dir.path() / "state";
  fs::create_directory(state);
  for (const auto mode : {0755U, 0750U, 0701U, 0770U}) {
    BOOST_TEST_REQUIRE(::chmod(state.c_str(), mode) == 0);
    const auto store = try_open(state);
    BOOST_TEST_REQUIRE(!store.has_value());
    BOOST_TEST(store.error().message.find("chmod 700 " + state.string()) != std::string::npos,
               store.error().message);
  }
  BOOST_TEST(!fs::exists(state / "state.db"));
  BOOST_TEST_REQUIRE(::chmod(state.c_str(), 0700) == 0);
  BOOST_TEST(try_open(state).has_value());
}

BOOST_AUTO_TEST_CASE(a_symlinked_state_dir_is_refused) {
  const TempDir dir;
  const fs::path real = dir.path() / "real";
  fs::create_directory(real);
  fs::permissions(real, fs::perms::owner_all, fs::perm_options::replace);
  const fs::path link = dir.path() / "state";
  fs::create_directory_symlink(real, link);
  const auto store = try_open(link);
  BOOST_TEST_REQUIRE(!store.has_value());
  BOOST_TEST(store.error().message.find("symbolic link") != std::string::npos,
             store.error().message);
}

BOOST_AUTO_TEST_CASE(a_state_dir_owned_by_another_user_is_refused) {
  if (::geteuid() != 0) {
    BOOST_TEST_MESSAGE("skipped: needs root to give a directory away");
    return;
  }
  const TempDir dir;
  const fs::path state = dir.path() / "state";
  fs::create_directory(state);
  fs::permissions(state, fs::perms::owner_all, fs::perm_options::replace);
  BOOST_TEST_REQUIRE(::chown(state.c_str(), 65534, 65534) == 0);
  const auto store = try_open(state);
  BOOST_TEST_REQUIRE(!store.has_value());
  BOOST_TEST(store.error().message.find("chown") != std::string::npos, store.error().message);
}

BOOST_AUTO_TEST_CASE(a_symlinked_database_file_is_refused) {
  const TempDir dir;
  const fs::path state = dir.path() / "state";
  open_store(state).reset();
  fs::rename(state / "state.db", dir.path() / "elsewhere.db");
  fs::create_symlink(dir.path() / "elsewhere.db", state / "state.db");
  BOOST_TEST(!try_open(state).has_value());
}

BOOST_AUTO_TEST_CASE(a_database_file_open_to_others_is_narrowed_to_0600) {
  const TempDir dir;
  const fs::path state = dir.path() / "state";
  open_store(state).reset();
  fs::permissions(state / "state.db", fs::perms::others_read | fs::perms::group_read,
                  fs::perm_options::add);
  open_store(state).reset();
  BOOST_TEST(mode_of(state / "state.db") == 0600U);
}

// ---- secrets at rest ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(no_secret_appears_in_clear_in_the_database_or_its_wal) {
  const TempDir dir;
  const fs::path state = dir.path() / "state";
  const auto secret = common::generate_totp_secret();
  const auto pending = common::generate_totp_secret();
  BOOST_TEST_REQUIRE((secret.has_value() && pending.has_value()));
  const std::string raw_secret(secret->view().begin(), secret->view().end());
  const std::string raw_pending(pending->view().begin(), pending->view().end());
  const std::string base32(common::base32_encode(secret->view()).view());
  const std::string base32_pending(common::base32_encode(pending->view()).view());
  UserRecord record = full_record("alice");
  record.active = Enrollment{*secret, {}, kEnrolled};
  record.pending = PendingEnrollment{*pending, {}, kEnrolled};
  const auto check_files = [&] {
    std::string all;
    for (const char* name : {"state.db", "state.db-wal", "state.db-shm"}) {
      if (fs::exists(state / name)) all += read_file(state / name);
    }
    BOOST_TEST_REQUIRE(all.size() > 0U);
    BOOST_TEST(all.find(raw_secret) == std::string::npos);
    BOOST_TEST(all.find(raw_pending) == std::string::npos);
    BOOST_TEST(all.find(base32) == std::string::npos);
    BOOST_TEST(all.find(base32_pending) == std::string::npos);
    BOOST_TEST(all.find("alice") != std::string::npos);  // the files were really read
  };
  {
    auto store = open_store(state);
    put(*store, record);
    BOOST_TEST_REQUIRE(fs::file_size(state / "state.db-wal") > 0U);
    check_files();  // the data is in the WAL now
  }
  check_files();  // and in state.db after the last connection's checkpoint
  check_same(get(*open_store(state), "alice"), record);
}

BOOST_AUTO_TEST_CASE(a_wrong_key_is_reported_as_a_key_error) {
  const TempDir dir;
  {
    auto store = open_store(dir.path());
    put(*store, full_record("alice"));
  }
  auto other = common::random_bytes(SecretBox::kKeyBytes);
  BOOST_TEST_REQUIRE(other.has_value());
  const auto store = try_open(dir.path(), std::move(*other));
  BOOST_TEST_REQUIRE(!store.has_value());
  BOOST_TEST((store.error().kind == StoreErrorKind::key));
  BOOST_TEST(store.error().message.find("wrong key?") != std::string::npos, store.error().message);
}

// The key is checked against the key-check row, not a user's: one damaged
// row fails its own user, never the start (a "wrong key?" for every login).
BOOST_AUTO_TEST_CASE(a_damaged_row_fails_its_user_not_the_start) {
  const TempDir dir;
  {
    auto store = open_store(dir.path());
    put(*store, full_record("aaron"));  // first in every order
    put(*store, full_record("bob"));
  }
  {
    RawDatabase raw(dir.path() / "state.db");
    raw.exec("UPDATE users SET active_secret = zeroblob(60) WHERE user = 'aaron'");
    raw.exec("UPDATE users SET pending_secret = zeroblob(60) WHERE user = 'aaron'");
  }
  auto store = open_store(dir.path());
  BOOST_TEST((store->load("aaron").error().kind == StoreErrorKind::key));
  check_same(get(*store, "bob"), full_record("bob"));
}

// A row whose secret does not open, one whose enrollment time changed (its
// binding fails), one with a value out of range, one with a forged code:
// each fails its own user; the list names them and holds everyone else.
BOOST_AUTO_TEST_CASE(list_names_rows_that_do_not_decode_and_lists_the_rest) {
  const TempDir dir;
  auto store = open_store(dir.path());
  for (const char* name : {"alice", "bob", "carol", "dave", "erin", "fred"}) {
    put(*store, full_record(name));
  }
  {
    RawDatabase raw(dir.path() / "state.db");
    raw.exec("UPDATE users SET active_secret = randomblob(60) WHERE user = 'bob'");
    raw.exec("UPDATE users SET enrolled_at = enrolled_at + 1 WHERE user = 'carol'");
    raw.exec("UPDATE users SET used_steps = 'not runs' WHERE user = 'dave'");
    raw.exec("UPDATE recovery_codes SET hash = 'x' || hash WHERE user = 'erin' AND idx = 1");
  }
  const auto listed = store->list();
  BOOST_TEST_REQUIRE(listed.has_value(), listed.error().message);
  BOOST_TEST(listed->unreadable == (std::vector<std::string>{"bob", "carol", "dave", "erin"}));
  BOOST_TEST_REQUIRE(listed->records.size() == 2U);
  check_same(listed->records[0], full_record("alice"));
  check_same(listed->records[1], full_record("fred"));
}

// erase() clears a row that does not decode, its codes too, durably (a
// reopened store sees nothing), touching no one else; the user starts over.
BOOST_AUTO_TEST_CASE(erase_removes_a_row_that_does_not_decode) {
  const TempDir dir;
  {
    auto store = open_store(dir.path());
    put(*store, full_record("alice"));
    put(*store, full_record("bob"));
    RawDatabase raw(dir.path() / "state.db");
    raw.exec("UPDATE users SET active_secret = randomblob(60) WHERE user = 'bob'");
    BOOST_TEST(!store->update("bob", [](UserRecord&) { return true; }).has_value());
    const auto erased = store->erase("bob");
    BOOST_TEST_REQUIRE(erased.has_value(), erased.error().message);
    BOOST_TEST(raw.text("SELECT count(*) FROM users WHERE user = 'bob'") == "0");
    BOOST_TEST(raw.text("SELECT count(*) FROM recovery_codes WHERE user = 'bob'") == "0");
    BOOST_TEST(store->erase("nobody").has_value());  // nothing stored: nothing to do
  }
  auto store = open_store(dir.path());
  const auto bob = store->load("bob");
  BOOST_TEST_REQUIRE(bob.has_value());
  BOOST_TEST(!bob->has_value());
  check_same(get(*store, "alice"), full_record("alice"));
  put(*store, full_record("bob"));
  check_same(get(*store, "bob"), full_record("bob"));
}

BOOST_AUTO_TEST_CASE(a_secret_moved_to_another_row_or_slot_does_not_open) {
  const TempDir dir;
  {
    auto store = open_store(dir.path());
    put(*store, full_record("alice"));
    UserRecord bob = full_record("bob");
    bob.pending.reset();
    put(*store, bob);
  }
  {
    RawDatabase raw(dir.path() / "state.db");
    raw.exec(
        "UPDATE users SET active_secret = (SELECT active_secret FROM users WHERE user = 'alice')"
        " WHERE user = 'bob'");
  }
  auto store = open_store(dir.path());  // alice's row is checked at open, and is fine
  const auto bob = store->load("bob");
  BOOST_TEST_REQUIRE(!bob.has_value());
  BOOST_TEST((bob.error().kind == StoreErrorKind::key));
  const auto listed = store->list();  // bob's row fails bob only
  BOOST_TEST_REQUIRE(listed.has_value());
  BOOST_TEST(listed->unreadable == std::vector<std::string>{"bob"});
  BOOST_TEST_REQUIRE(listed->records.size() == 1U);
  BOOST_TEST(listed->records[0].user == "alice");
  BOOST_TEST(!store->update("bob", [](UserRecord&) { return true; }).has_value());
  store.reset();
  {
    RawDatabase raw(dir.path() / "state.db");
    raw.exec("UPDATE users SET pending_secret = active_secret WHERE user = 'alice'");
  }
  store = open_store(dir.path());
  const auto alice = store->load("alice");
  BOOST_TEST_REQUIRE(!alice.has_value());
  BOOST_TEST((alice.error().kind == StoreErrorKind::key));
}

BOOST_AUTO_TEST_CASE(error_messages_carry_no_secret) {
  const TempDir dir;
  {
    auto store = open_store(dir.path());
    put(*store, full_record("alice"));
  }
  auto other = common::random_bytes(SecretBox::kKeyBytes);
  BOOST_TEST_REQUIRE(other.has_value());
  const auto store = try_open(dir.path(), std::move(*other));
  BOOST_TEST_REQUIRE(!store.has_value());
  BOOST_TEST(store.error().message.find("active-secret") == std::string::npos);
}

// ---- concurrency -------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(concurrent_increments_of_one_counter_are_never_lost) {
  const TempDir dir;
  auto store = open_store(dir.path());
  put(*store, full_record("alice"));
  const std::uint32_t start = get(*store, "alice").failures;
  constexpr int kThreads = 8;
  constexpr int kEach = 25;
  std::latch ready(kThreads);
  std::vector<int> errors(kThreads, 0);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ready.arrive_and_wait();
      for (int i = 0; i < kEach; ++i) {
        const auto updated = store->update("alice", [](UserRecord& record) {
          ++record.failures;
          return true;
        });
        // Readers run alongside and always see a whole record.
        const auto loaded = store->load("alice");
        const bool ok = updated.has_value() && loaded.has_value() && loaded->has_value() &&
                        (*loaded)->recovery_codes.size() == 3U && (*loaded)->active.has_value();
        errors[static_cast<std::size_t>(t)] += ok ? 0 : 1;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const int e : errors) BOOST_TEST(e == 0);
  BOOST_TEST(get(*store, "alice").failures == start + kThreads * kEach);
  store.reset();
  BOOST_TEST(get(*open_store(dir.path()), "alice").failures == start + kThreads * kEach);
}

// Group commit: updates that queue up while another commits go into one
// transaction; each must still fail, throw or commit on its own.
BOOST_AUTO_TEST_CASE(updates_committed_together_fail_or_succeed_each_on_their_own) {
  const TempDir dir;
  auto store = open_store(dir.path());
  const std::vector<std::string> names{"alice", "bob", "carol", "dave", "erin"};
  for (const auto& name : names) put(*store, full_record(name));
  const std::uint32_t start = get(*store, "carol").failures;

  // alice's change holds the writer until the others have queued behind it.
  std::latch release(1);
  std::thread holder([&] {
    BOOST_TEST(store
                   ->update("alice",
                            [&](UserRecord& record) {
                              release.wait();
                              ++record.failures;
                              return true;
                            })
                   .has_value());
  });
  std::this_thread::sleep_for(50ms);
  bool bob_threw = false;
  std::expected<void, StoreError> carol;
  std::expected<void, StoreError> dave;
  std::expected<void, StoreError> erin;
  std::vector<std::thread> queued;
  queued.emplace_back([&] {
    try {
      (void)store->update("bob", [](UserRecord& record) -> bool {
        record.failures = 42;
        throw std::runtime_error("boom");
      });
    } catch (const std::runtime_error&) {
      bob_threw = true;
    }
  });
  queued.emplace_back([&] {
    carol = store->update("carol", [](UserRecord& record) {
      ++record.failures;
      return true;
    });
  });
  queued.emplace_back([&] {
    dave = store->update("dave", [](UserRecord& record) {
      record.failures = 7;
      record.active->params.digits = 9;  // refused by the table's CHECK
      return true;
    });
  });
  queued.emplace_back([&] {
    erin = store->update("erin", [](UserRecord& record) {
      record.failures = 99;
      return false;
    });
  });
  std::this_thread::sleep_for(100ms);
  release.count_down();
  holder.join();
  for (auto& thread : queued) thread.join();

  BOOST_TEST(bob_threw);
  BOOST_TEST(carol.has_value());
  BOOST_TEST_REQUIRE(!dave.has_value());
  BOOST_TEST((dave.error().kind == StoreErrorKind::corrupt), dave.error().message);
  BOOST_TEST(erin.has_value());
  store.reset();
  const auto reopened = open_store(dir.path());
  BOOST_TEST(get(*reopened, "alice").failures == full_record("alice").failures + 1);
  BOOST_TEST(get(*reopened, "carol").failures == start + 1);
  check_same(get(*reopened, "bob"), full_record("bob"));
  check_same(get(*reopened, "dave"), full_record("dave"));
  check_same(get(*reopened, "erin"), full_record("erin"));
}

BOOST_AUTO_TEST_CASE(a_write_lock_held_elsewhere_gives_busy_not_a_hang) {
  const TempDir dir;
  auto store = open_store(dir.path());
  put(*store, full_record("alice"));
  RawDatabase other(dir.path() / "state.db");
  other.exec("BEGIN IMMEDIATE");
  const auto started = std::chrono::steady_clock::now();
  const auto updated = store->update("alice", [](UserRecord& record) {
    ++record.failures;
    return true;
  });
  const auto waited = std::chrono::steady_clock::now() - started;
  BOOST_TEST_REQUIRE(!updated.has_value());
  BOOST_TEST((updated.error().kind == StoreErrorKind::busy), updated.error().message);
  BOOST_TEST(waited >= 1s);  // the busy timeout waited before giving up
  // Reads go on meanwhile (WAL): a reader is not blocked by a writer.
  BOOST_TEST(store->load("alice").has_value());
  other.exec("ROLLBACK");
  BOOST_TEST(store->update("alice", [](UserRecord&) { return true; }).has_value());
}

}  // namespace
}  // namespace kpanel::daemon::test
