#pragma once
// The Store backends the rules tests run against, behind one interface so a
// new backend (PostgreSQL) is one more class in the StoreBackends list.

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

#include "common/secure_buffer.hpp"
#include "daemon/store/store.hpp"
#include "memory_store.hpp"
#include "shared/temp_dir.hpp"

namespace kpanel::daemon::test {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
using TempDir = ::kpanel::test::TempDir;

class StoreBackend {
 public:
  StoreBackend() = default;
  StoreBackend(const StoreBackend&) = delete;
  StoreBackend& operator=(const StoreBackend&) = delete;
  StoreBackend(StoreBackend&&) = delete;
  StoreBackend& operator=(StoreBackend&&) = delete;
  virtual ~StoreBackend() = default;
  [[nodiscard]] virtual std::string_view name() const = 0;
  // A store over this backend's data. Each call is a daemon restart: a new
  // store object on the same state, sharing nothing else with the last one.
  [[nodiscard]] virtual std::unique_ptr<Store> open() = 0;
};

class MemoryBackend final : public StoreBackend {
 public:
  [[nodiscard]] std::string_view name() const override { return "memory"; }
  [[nodiscard]] std::unique_ptr<Store> open() override;
  // The records, and the kind of every update that wrote one.
  [[nodiscard]] const std::shared_ptr<MemoryStore::State>& state() const { return state_; }

 private:
  std::shared_ptr<MemoryStore::State> state_ = std::make_shared<MemoryStore::State>();
};

// The fixed key the SQLite backend seals with (32 bytes 0x00, 0x01, …, 0x1f).
[[nodiscard]] common::SecureBytes test_store_key();

// SqliteStore on a temporary state_dir (made by the store, as on a first start).
class SqliteBackend final : public StoreBackend {
 public:
  [[nodiscard]] std::string_view name() const override { return "sqlite"; }
  // Throws std::runtime_error with the store's message when it does not open.
  [[nodiscard]] std::unique_ptr<Store> open() override;
  [[nodiscard]] std::filesystem::path state_dir() const { return dir_.path() / "state"; }

 private:
  TempDir dir_;
};

// The PostgreSQL server the PostgreSQL backend uses: the DSN in the file named
// by $KPANEL_TEST_POSTGRESQL_DSN_FILE (the CTest fixture's cluster) or in
// $KPANEL_TEST_POSTGRESQL_DSN; nullopt when neither is set. Throws when the
// file is named but unreadable (the fixture failed).
[[nodiscard]] std::optional<std::string> postgresql_test_dsn();

// PostgresqlStore on a schema of its own (search_path in the DSN), made by
// the constructor and dropped with everything in it by the destructor, so
// each test starts from an empty store. Without a server (no DSN) the backend
// is unavailable and the tests that use it say SKIPPED.
class PostgresqlBackend final : public StoreBackend {
 public:
  PostgresqlBackend();
  PostgresqlBackend(const PostgresqlBackend&) = delete;
  PostgresqlBackend& operator=(const PostgresqlBackend&) = delete;
  PostgresqlBackend(PostgresqlBackend&&) = delete;
  PostgresqlBackend& operator=(PostgresqlBackend&&) = delete;
  ~PostgresqlBackend() override;
  [[nodiscard]] static bool available() { return postgresql_test_dsn().has_value(); }
  [[nodiscard]] std::string_view name() const override { return "postgresql"; }
  // Throws std::runtime_error with the store's message when it does not open.
  [[nodiscard]] std::unique_ptr<Store> open() override;
  // The DSN of this backend's schema (another "host" opens a store on it).
  [[nodiscard]] const std::string& dsn() const noexcept { return dsn_; }
  // The schema's name, also the application_name of the store's sessions.
  [[nodiscard]] const std::string& schema() const noexcept { return schema_; }

 private:
  std::string base_dsn_;
  std::string schema_;
  std::string dsn_;
};

// False (and a loud SKIPPED warning) for a backend with no server to run on.
template <typename Backend>
[[nodiscard]] bool backend_available() {
  if constexpr (requires { Backend::available(); }) {
    static const bool available = [] {
      const bool found = Backend::available();
      if (!found) {
        std::fputs(
            "\n*** PostgreSQL store tests SKIPPED: no server (set "
            "KPANEL_TEST_POSTGRESQL_DSN, or run through ctest, whose fixture starts one)\n",
            stderr);
      }
      return found;
    }();
    return available;
  } else {
    return true;
  }
}

using StoreBackends = std::tuple<MemoryBackend, SqliteBackend, PostgresqlBackend>;

}  // namespace kpanel::daemon::test
