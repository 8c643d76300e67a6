#pragma once
// The Store backends the rules tests run against, behind one interface so a
// new backend (PostgreSQL) is one more class in the StoreBackends list.

#include <filesystem>
#include <memory>
#include <string_view>
#include <tuple>

#include "common/secure_buffer.hpp"
#include "daemon/store.hpp"
#include "memory_store.hpp"

namespace kpanel::daemon::test {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
class TempDir {
 public:
  TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&&) = delete;
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir();
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

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

using StoreBackends = std::tuple<MemoryBackend, SqliteBackend>;

}  // namespace kpanel::daemon::test
