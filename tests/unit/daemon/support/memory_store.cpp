#include "memory_store.hpp"

#include <utility>

#include "daemon/store/store_row.hpp"

namespace kpanel::daemon::test {
namespace {

StoreError error_of(StoreErrorKind kind) { return StoreError{kind, "injected test failure"}; }

}  // namespace

std::expected<std::optional<UserRecord>, StoreError> MemoryStore::load(std::string_view user) {
  const std::lock_guard lock(state_->mutex);
  if (const auto failure = state_->failure) {
    return std::unexpected(error_of(*failure));
  }
  const auto found = state_->records.find(user);
  if (found == state_->records.end()) {
    return std::optional<UserRecord>{};
  }
  return std::optional<UserRecord>{found->second};
}

std::expected<void, StoreError> MemoryStore::update(
    std::string_view user, Durability durability, const std::function<bool(UserRecord&)>& change) {
  const std::lock_guard lock(state_->mutex);
  if (const auto failure = state_->failure) {
    return std::unexpected(error_of(*failure));
  }
  UserRecord record;
  record.user = std::string(user);
  if (const auto found = state_->records.find(user); found != state_->records.end()) {
    record = found->second;
  }
  if (!change(record)) {
    return {};
  }
  state_->writes.push_back(durability);
  if (store_row::is_empty(record)) {
    if (const auto found = state_->records.find(user); found != state_->records.end()) {
      state_->records.erase(found);
    }
  } else {
    state_->records.insert_or_assign(std::string(user), std::move(record));
  }
  return {};
}

std::expected<std::vector<UserRecord>, StoreError> MemoryStore::list() {
  const std::lock_guard lock(state_->mutex);
  if (const auto failure = state_->failure) {
    return std::unexpected(error_of(*failure));
  }
  std::vector<UserRecord> records;
  for (const auto& [name, record] : state_->records) {
    records.push_back(record);
  }
  return records;
}

void MemoryStore::fail_with(std::optional<StoreErrorKind> failure) {
  const std::lock_guard lock(state_->mutex);
  state_->failure = failure;
}

std::size_t MemoryStore::size() const {
  const std::lock_guard lock(state_->mutex);
  return state_->records.size();
}

}  // namespace kpanel::daemon::test
