#include "daemon/store/store_health.hpp"

#include <string>

namespace kpanel::daemon {

void LoggedStore::failed(Health& health, std::string_view what, const StoreError& error) noexcept {
  health.failures.fetch_add(1);
  if (health.failing.exchange(true)) return;  // said already
  try {
    log_.store_health("state store failed (" + std::string(what) + "): " + error.message +
                      "; refusing what needs it until it works again (logged once)");
  } catch (...) {
    log_.store_health("state store failed");
  }
}

void LoggedStore::worked(Health& health, std::string_view what) noexcept {
  if (!health.failing.load() || !health.failing.exchange(false)) return;
  const std::uint64_t failures = health.failures.exchange(0);
  try {
    log_.store_health("state store recovered (" + std::string(what) + " work again after " +
                      std::to_string(failures) + " failed)");
  } catch (...) {
    log_.store_health("state store recovered");
  }
}

std::expected<std::optional<UserRecord>, StoreError> LoggedStore::load(std::string_view user) {
  return judged(inner_.load(user), true);
}

std::expected<void, StoreError> LoggedStore::update(
    std::string_view user, Durability durability, const std::function<bool(UserRecord&)>& change) {
  // Only a write that happened shows the disk takes writes again; an update
  // whose change wrote nothing (a locked account refused) does not.
  bool wrote = false;
  auto updated = inner_.update(user, durability, [&](UserRecord& record) {
    wrote = change(record);
    return wrote;
  });
  if (updated) {
    if (wrote) worked(writes_, "writes");
  } else {
    failed(writes_, "writing", updated.error());
  }
  return updated;
}

std::expected<UserList, StoreError> LoggedStore::list() { return judged(inner_.list(), true); }

std::expected<void, StoreError> LoggedStore::erase(std::string_view user) {
  return judged(inner_.erase(user), false);
}

}  // namespace kpanel::daemon
