#define BOOST_TEST_MODULE daemon sql row layer
// The row layer both SQL stores share, over an in-memory session that keeps
// rows as the statements would: a record written is read back through the
// column layout, sealed secrets are bound to their slot and user, and each
// write runs only the statements it needs.

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "daemon/store/secret_box.hpp"
#include "daemon/store/sql_rows.hpp"
#include "daemon/store/store_postgresql.hpp"
#include "daemon/store/store_row.hpp"
#include "daemon/store/store_sqlite.hpp"
#include "support/store_backends.hpp"
#include "support/user_records.hpp"

namespace kpanel::daemon::test {
namespace {

using sql::Query;

using Cell =
    std::variant<std::monostate, std::int64_t, std::string, std::vector<std::uint8_t>, bool>;
using Cells = std::vector<Cell>;

Cell owned(const sql::Value& value) {
  switch (value.kind) {
    case sql::Value::Kind::integer:
      return value.integer;
    case sql::Value::Kind::flag:
      return value.integer != 0;
    case sql::Value::Kind::text:
      return std::string(value.text);
    case sql::Value::Kind::blob:
      return std::vector<std::uint8_t>(value.blob.begin(), value.blob.end());
    case sql::Value::Kind::null:
      break;
  }
  return std::monostate{};
}

class CellRow final : public sql::Row {
 public:
  explicit CellRow(Cells cells) : cells_(std::move(cells)) {}
  [[nodiscard]] bool is_null(int column) const override {
    return std::holds_alternative<std::monostate>(at(column));
  }
  [[nodiscard]] std::optional<std::int64_t> integer(int column) const override {
    return get<std::int64_t>(column);
  }
  [[nodiscard]] std::optional<std::string> text(int column) const override {
    return get<std::string>(column);
  }
  [[nodiscard]] std::optional<std::vector<std::uint8_t>> blob(int column) const override {
    return get<std::vector<std::uint8_t>>(column);
  }
  [[nodiscard]] std::optional<bool> flag(int column) const override { return get<bool>(column); }

 private:
  [[nodiscard]] const Cell& at(int column) const {
    return cells_.at(static_cast<std::size_t>(column));
  }
  template <typename T>
  [[nodiscard]] std::optional<T> get(int column) const {
    const T* value = std::get_if<T>(&at(column));
    if (value == nullptr) return std::nullopt;
    return *value;
  }
  Cells cells_;
};

// Users and codes in maps, each query done as its SQL would; every query run is logged.
class MemorySession final : public sql::Session {
 public:
  explicit MemorySession(sql::Dialect dialect) : dialect_(dialect) {}
  [[nodiscard]] sql::Dialect dialect() const noexcept override { return dialect_; }
  [[nodiscard]] StoreError error(StoreErrorKind kind, std::string_view what) const override {
    return StoreError{kind, "memory: " + std::string(what)};
  }

  std::expected<void, StoreError> run(Query query, std::span<const sql::Value> params,
                                      std::string_view /*doing*/,
                                      const sql::EachRow& each_row) override {
    log.push_back(query);
    const auto name = [&] { return std::string(params[0].text); };
    const auto emit = [&](Cells cells) -> std::expected<void, StoreError> {
      return each_row ? each_row(CellRow(std::move(cells))) : std::expected<void, StoreError>{};
    };
    switch (query) {
      case Query::select_user:
      case Query::select_user_locked:
        if (const auto found = users.find(name()); found != users.end()) return emit(found->second);
        return {};
      case Query::select_codes:
        for (const auto& [hash, used] : codes[name()]) {
          if (auto done = emit({hash, used}); !done) return done;
        }
        return {};
      case Query::select_users:
        for (const auto& [user, cells] : users) {
          Cells row{user};
          row.insert(row.end(), cells.begin(), cells.end());
          if (auto done = emit(row); !done) return done;
        }
        return {};
      case Query::select_all_codes:
        for (const auto& [user, list] : codes) {
          for (const auto& [hash, used] : list) {
            if (auto done = emit({user, hash, used}); !done) return done;
          }
        }
        return {};
      case Query::write_user: {
        BOOST_TEST_REQUIRE(params.size() == 18U);
        Cells cells;
        for (const auto& value : params.subspan(1)) cells.push_back(owned(value));
        users[name()] = std::move(cells);
        return {};
      }
      case Query::delete_user:
        users.erase(name());
        codes.erase(name());  // ON DELETE CASCADE
        return {};
      case Query::delete_codes:
        codes.erase(name());
        return {};
      case Query::insert_code: {
        auto& list = codes[name()];
        BOOST_TEST_REQUIRE(params[1].integer == static_cast<std::int64_t>(list.size()));
        list.emplace_back(std::string(params[2].text), params[3].integer != 0);
        return {};
      }
      case Query::update_code_used:
        codes[name()].at(static_cast<std::size_t>(params[1].integer)).second =
            params[2].integer != 0;
        return {};
      case Query::first_sealed:
        for (const auto& [user, cells] : users) {
          const Cell& active = cells[store_row::kActiveSecret];
          const Cell& pending = cells[store_row::kPendingSecret];
          if (std::holds_alternative<std::monostate>(active) &&
              std::holds_alternative<std::monostate>(pending)) {
            continue;
          }
          return emit({user, active, pending, cells[store_row::kEnrolledAt],
                       cells[store_row::kPendingExpiresAt]});
        }
        return {};
    }
    return {};
  }

  std::map<std::string, Cells> users;  // the kUserColumns of each user's row
  std::map<std::string, std::vector<std::pair<std::string, bool>>> codes;
  std::vector<Query> log;

 private:
  sql::Dialect dialect_;
};

SecretBox test_box() {
  auto box = SecretBox::from_key(test_store_key());
  BOOST_TEST_REQUIRE(box.has_value());
  return std::move(*box);
}

sql::StoredRow read_back(MemorySession& session, const SecretBox& box, const std::string& user) {
  auto row = sql::read_user(session, user, box);
  BOOST_TEST_REQUIRE(row.has_value(), row.error().message);
  BOOST_TEST_REQUIRE(row->has_value());
  return std::move(**row);
}

void write(MemorySession& session, const SecretBox& box, const UserRecord& record,
           const sql::StoredRow* before) {
  auto written = sql::write_user(session, box, record.user, record, before);
  BOOST_TEST_REQUIRE(written.has_value(), written.error().message);
}

BOOST_AUTO_TEST_CASE(a_record_comes_back_as_written_in_both_dialects) {
  const SecretBox box = test_box();
  for (const auto dialect : {sql::Dialect::sqlite, sql::Dialect::postgresql}) {
    MemorySession session(dialect);
    const UserRecord record = full_record("alice");
    write(session, box, record, nullptr);
    check_same(read_back(session, box, "alice").record, record);
    UserRecord bare;
    bare.user = "bob";
    bare.failures = 1;  // not empty, but no secrets, no codes, no replay state
    write(session, box, bare, nullptr);
    check_same(read_back(session, box, "bob").record, bare);
    auto listed = sql::list_users(session, box);
    BOOST_TEST_REQUIRE(listed.has_value());
    BOOST_TEST_REQUIRE(listed->records.size() == 2U);
    BOOST_TEST(listed->unreadable.empty());
    check_same(listed->records[0], record);
    check_same(listed->records[1], bare);
  }
}

BOOST_AUTO_TEST_CASE(secrets_are_sealed_for_their_slot_and_user) {
  const SecretBox box = test_box();
  MemorySession session(sql::Dialect::sqlite);
  write(session, box, full_record("alice"), nullptr);
  Cells& cells = session.users["alice"];
  const auto* sealed = std::get_if<std::vector<std::uint8_t>>(&cells[store_row::kActiveSecret]);
  BOOST_TEST_REQUIRE(sealed != nullptr);
  // Never in clear: the sealed form does not contain the secret.
  const std::string stored(sealed->begin(), sealed->end());
  BOOST_TEST(stored.find("active-secret-alice") == std::string::npos);
  // The active secret moved into the pending slot does not open there.
  cells[store_row::kPendingSecret] = cells[store_row::kActiveSecret];
  auto moved = sql::read_user(session, "alice", box);
  BOOST_TEST_REQUIRE(!moved.has_value());
  BOOST_TEST((moved.error().kind == StoreErrorKind::key));
  BOOST_TEST(moved.error().message ==
             "memory: secrets do not decrypt with key_file: wrong key? (pending secret of user "
             "'alice')");
  // The same row under another user's name does not open either; the fleet's
  // message says every host needs the same key.
  MemorySession fleet(sql::Dialect::postgresql);
  write(fleet, box, full_record("alice"), nullptr);
  fleet.users["mallory"] = fleet.users["alice"];
  auto copied = sql::read_user(fleet, "mallory", box);
  BOOST_TEST_REQUIRE(!copied.has_value());
  BOOST_TEST(copied.error().message ==
             "memory: secrets do not decrypt with key_file: wrong key? (active secret of user "
             "'mallory'; every host of a fleet needs the same key_file)");
  BOOST_TEST(sql::check_key(fleet, box).has_value());  // alice's row comes first, and opens
  fleet.users.erase("alice");
  auto checked = sql::check_key(fleet, box);
  BOOST_TEST_REQUIRE(!checked.has_value());
  BOOST_TEST((checked.error().kind == StoreErrorKind::key));
}

BOOST_AUTO_TEST_CASE(an_unchanged_secret_keeps_its_sealed_form) {
  const SecretBox box = test_box();
  MemorySession session(sql::Dialect::postgresql);
  write(session, box, full_record("alice"), nullptr);
  const sql::StoredRow before = read_back(session, box, "alice");
  UserRecord record = before.record;
  record.failures = 0;
  write(session, box, record, &before);
  const sql::StoredRow after = read_back(session, box, "alice");
  BOOST_TEST((after.active_sealed == before.active_sealed));
  BOOST_TEST((after.pending_sealed == before.pending_sealed));
  // A new secret is sealed anew.
  record.active->secret = bytes_of("another-secret");
  write(session, box, record, &after);
  const sql::StoredRow changed = read_back(session, box, "alice");
  BOOST_TEST((changed.active_sealed != after.active_sealed));
  BOOST_TEST((changed.pending_sealed == after.pending_sealed));
  BOOST_TEST((changed.record.active->secret == bytes_of("another-secret")));
}

BOOST_AUTO_TEST_CASE(recovery_codes_are_rewritten_only_when_they_change) {
  const SecretBox box = test_box();
  MemorySession session(sql::Dialect::sqlite);
  write(session, box, full_record("alice"), nullptr);
  sql::StoredRow before = read_back(session, box, "alice");
  // A code used: one flag flipped in place.
  UserRecord record = before.record;
  record.recovery_codes[0].used = true;
  session.log.clear();
  write(session, box, record, &before);
  BOOST_TEST((session.log == std::vector<Query>{Query::write_user, Query::update_code_used}));
  before = read_back(session, box, "alice");
  check_same(before.record, record);
  // New codes: the old ones go, the new ones come in order.
  record.recovery_codes = {{"hash-x", false}, {"hash-y", false}};
  session.log.clear();
  write(session, box, record, &before);
  BOOST_TEST((session.log == std::vector<Query>{Query::write_user, Query::delete_codes,
                                                Query::insert_code, Query::insert_code}));
  check_same(read_back(session, box, "alice").record, record);
}

BOOST_AUTO_TEST_CASE(an_emptied_record_is_deleted_and_a_new_empty_one_never_written) {
  const SecretBox box = test_box();
  MemorySession session(sql::Dialect::postgresql);
  UserRecord empty;
  empty.user = "nobody";
  write(session, box, empty, nullptr);
  BOOST_TEST(session.log.empty());
  write(session, box, full_record("alice"), nullptr);
  const sql::StoredRow before = read_back(session, box, "alice");
  empty.user = "alice";
  session.log.clear();
  write(session, box, empty, &before);
  BOOST_TEST((session.log == std::vector<Query>{Query::delete_user}));
  BOOST_TEST(session.users.empty());
  BOOST_TEST(session.codes.empty());
}

BOOST_AUTO_TEST_CASE(a_bad_row_is_corrupt_with_what_is_wrong) {
  const SecretBox box = test_box();
  MemorySession session(sql::Dialect::sqlite);
  write(session, box, full_record("alice"), nullptr);
  const auto fails_with = [&](const std::string& message) {
    auto row = sql::read_user(session, "alice", box);
    BOOST_TEST_REQUIRE(!row.has_value());
    BOOST_TEST((row.error().kind == StoreErrorKind::corrupt));
    BOOST_TEST(row.error().message == message);
  };
  Cells& cells = session.users["alice"];
  const Cells good = cells;
  cells[store_row::kFailures] = std::int64_t{-1};
  fails_with("memory: the row of user 'alice' has bad counters");
  cells = good;
  cells[store_row::kActiveDigits] = std::int64_t{9};
  fails_with("memory: the row of user 'alice' has bad TOTP parameters");
  cells = good;
  cells[store_row::kUsedSteps] = std::string("not runs");
  fails_with("memory: the row of user 'alice' has bad used_steps");
  cells = good;
  session.codes["zed"] = {{"orphan", false}};  // a code of no user
  // It fails zed only: alice is listed, zed named unreadable.
  auto listed = sql::list_users(session, box);
  BOOST_TEST_REQUIRE(listed.has_value());
  BOOST_TEST(listed->unreadable == std::vector<std::string>{"zed"});
  BOOST_TEST_REQUIRE(listed->records.size() == 1U);
  BOOST_TEST(listed->records[0].user == "alice");
}

// One row that does not decode, or one code that fails its MAC, fails its
// own user in a list: the others are listed, it is named.
BOOST_AUTO_TEST_CASE(a_list_names_the_users_it_cannot_read) {
  const SecretBox box = test_box();
  MemorySession session(sql::Dialect::sqlite);
  for (const char* name : {"alice", "bob", "carol", "dave"}) {
    write(session, box, full_record(name), nullptr);
  }
  session.users["bob"][store_row::kFailures] = std::int64_t{-1};  // out of range
  session.users["carol"][store_row::kActiveSecret] =
      std::vector<std::uint8_t>(60, 0x5a);  // does not open
  session.codes["dave"].at(1).first = "forged-" + session.codes["dave"].at(1).first;
  const auto listed = sql::list_users(session, box);
  BOOST_TEST_REQUIRE(listed.has_value());
  BOOST_TEST(listed->unreadable == (std::vector<std::string>{"bob", "carol", "dave"}));
  BOOST_TEST_REQUIRE(listed->records.size() == 1U);
  check_same(listed->records[0], full_record("alice"));
}

// erase_user deletes a row it never reads (one that does not decode too).
BOOST_AUTO_TEST_CASE(erase_removes_a_user_without_reading_it) {
  const SecretBox box = test_box();
  MemorySession session(sql::Dialect::postgresql);
  write(session, box, full_record("alice"), nullptr);
  write(session, box, full_record("bob"), nullptr);
  session.users["alice"][store_row::kActiveSecret] = std::vector<std::uint8_t>(60, 0x5a);
  session.log.clear();
  BOOST_TEST_REQUIRE(sql::erase_user(session, "alice").has_value());
  BOOST_TEST((session.log == std::vector<Query>{Query::delete_codes, Query::delete_user}));
  BOOST_TEST(!session.users.contains("alice"));
  BOOST_TEST(!session.codes.contains("alice"));
  check_same(read_back(session, box, "bob").record, full_record("bob"));
}

// Migration steps recorded; each may be told to fail.
class RecordedSteps final : public sql::SchemaSteps {
 public:
  std::optional<std::int64_t> unlocked;
  std::int64_t locked = 0;
  std::string fail_at;
  std::vector<std::string> done;

  std::expected<std::optional<std::int64_t>, StoreError> unlocked_version() override {
    return unlocked;
  }
  std::expected<void, StoreError> lock() override { return step("lock"); }
  std::expected<std::int64_t, StoreError> locked_version() override { return locked; }
  std::expected<void, StoreError> exec(const char* sql) override {
    const std::string text(sql);
    if (text == "SELECT 1" || text.find("EXISTS key_check") != std::string::npos) {
      return step("binding");
    }
    if (text.find("remembered") != std::string::npos) return step("migration 3");
    return step(text.find("used_steps") != std::string::npos ? "migration 2" : "migration 1");
  }
  std::expected<void, StoreError> ready_for_rows() override { return step("rows"); }
  std::expected<void, StoreError> set_version(int version) override {
    return step("version " + std::to_string(version));
  }
  std::expected<void, StoreError> before_commit() override { return step("checks"); }
  std::expected<void, StoreError> commit() override { return step("commit"); }
  void roll_back() noexcept override { done.emplace_back("roll back"); }

 private:
  std::expected<void, StoreError> step(const std::string& name) {
    done.push_back(name);
    if (name == fail_at) return std::unexpected(StoreError{StoreErrorKind::io, name + " failed"});
    return {};
  }
};

BOOST_AUTO_TEST_CASE(migrate_applies_what_is_missing_under_the_lock) {
  using Steps = std::vector<std::string>;
  const SecretBox box = test_box();
  MemorySession sqlite(sql::Dialect::sqlite);
  MemorySession fleet(sql::Dialect::postgresql);
  BOOST_TEST(sql::migrations(sql::Dialect::sqlite).back().version == kSqliteSchemaVersion);
  BOOST_TEST(sql::migrations(sql::Dialect::postgresql).back().version == kPostgresqlSchemaVersion);
  {
    RecordedSteps steps;  // a new database
    BOOST_TEST(sql::migrate(fleet, steps, box).has_value());
    BOOST_TEST((steps.done == Steps{"lock", "migration 1", "migration 2", "migration 3", "binding",
                                    "version 4", "checks", "commit"}));
  }
  {
    RecordedSteps steps;  // rows written before the binding: bound in the same transaction
    steps.locked = 3;
    BOOST_TEST(sql::migrate(fleet, steps, box).has_value());
    BOOST_TEST((steps.done == Steps{"lock", "binding", "rows", "version 4", "checks", "commit"}));
  }
  {
    RecordedSteps steps;  // current, seen without the lock
    steps.unlocked = kSqliteSchemaVersion;
    BOOST_TEST(sql::migrate(sqlite, steps, box).has_value());
    BOOST_TEST(steps.done.empty());
  }
  {
    RecordedSteps steps;  // one behind; another process migrated meanwhile
    steps.unlocked = kSqliteSchemaVersion - 1;
    steps.locked = kSqliteSchemaVersion;
    BOOST_TEST(sql::migrate(sqlite, steps, box).has_value());
    BOOST_TEST((steps.done == Steps{"lock", "checks", "commit"}));
  }
  {
    RecordedSteps steps;
    steps.locked = 1;
    steps.fail_at = "migration 2";
    auto migrated = sql::migrate(fleet, steps, box);
    BOOST_TEST_REQUIRE(!migrated.has_value());
    BOOST_TEST(migrated.error().message == "migration 2 failed");
    BOOST_TEST((steps.done == Steps{"lock", "migration 2", "roll back"}));
  }
  {
    RecordedSteps steps;
    steps.locked = 5;
    auto migrated = sql::migrate(fleet, steps, box);
    BOOST_TEST_REQUIRE(!migrated.has_value());
    BOOST_TEST((migrated.error().kind == StoreErrorKind::corrupt));
    BOOST_TEST(migrated.error().message ==
               "memory: written by a newer kpanel-totpd (schema version 5, this one knows 4): "
               "upgrade kpanel-totp on this host");
    BOOST_TEST((steps.done == Steps{"lock", "roll back"}));
  }
  {
    RecordedSteps steps;
    steps.unlocked = 7;
    auto migrated = sql::migrate(sqlite, steps, box);
    BOOST_TEST_REQUIRE(!migrated.has_value());
    BOOST_TEST(migrated.error().message ==
               "memory: written by a newer kpanel-totpd (schema version 7, this one knows 5): "
               "upgrade kpanel-totp");
    BOOST_TEST(steps.done.empty());
  }
}

}  // namespace
}  // namespace kpanel::daemon::test
