#pragma once
// A Store that logs the state store's health when it changes, not once per
// request: a full or read-only disk under a stream of logins is one line
// saying what is wrong, then one line when it works again, each in the
// operational log and in authpriv (AuditLog::store_health). Every refused
// request still has its own audit event (Rules records store_error there).
// Wraps whichever backend the daemon runs.

#include <atomic>
#include <cstdint>
#include <string_view>

#include "daemon/store/store.hpp"
#include "daemon/system/audit.hpp"

namespace kpanel::daemon {

class LoggedStore final : public Store {
 public:
  LoggedStore(Store& inner, AuditLog& log) : inner_(inner), log_(log) {}

  std::expected<std::optional<UserRecord>, StoreError> load(std::string_view user) override;
  using Store::update;
  std::expected<void, StoreError> update(std::string_view user, Durability durability,
                                         const std::function<bool(UserRecord&)>& change) override;
  std::expected<UserList, StoreError> list() override;
  std::expected<void, StoreError> erase(std::string_view user) override;

 private:
  // Reads and writes fail apart (a full disk still reads), so each has its state.
  struct Health {
    std::atomic<bool> failing{false};
    std::atomic<std::uint64_t> failures{0};  // since it started failing
  };
  void failed(Health& health, std::string_view what, const StoreError& error) noexcept;
  void worked(Health& health, std::string_view what) noexcept;
  // A read (load, list) or a write that always writes (erase), judged by its result.
  template <typename Result>
  Result judged(Result result, bool reading) {
    if (result) {
      worked(reading ? reads_ : writes_, reading ? "reads" : "writes");
    } else {
      failed(reading ? reads_ : writes_, reading ? "reading" : "writing", result.error());
    }
    return result;
  }

  Store& inner_;
  AuditLog& log_;
  Health reads_;
  Health writes_;
};

}  // namespace kpanel::daemon
