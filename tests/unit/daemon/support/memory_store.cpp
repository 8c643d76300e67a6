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
  if (const auto broken = state_->broken.find(user); broken != state_->broken.end()) {
    return std::unexpected(error_of(broken->second));
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
  if (const auto broken = state_->broken.find(user); broken != state_->broken.end()) {
    return std::unexpected(error_of(broken->second));
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

std::expected<UserList, StoreError> MemoryStore::list() {
  const std::lock_guard lock(state_->mutex);
  if (const auto failure = state_->failure) {
    return std::unexpected(error_of(*failure));
  }
  UserList list;
  for (const auto& [name, kind] : state_->broken) {
    if (kind != StoreErrorKind::corrupt && kind != StoreErrorKind::key) {
      return std::unexpected(error_of(kind));
    }
    list.unreadable.push_back(name);
  }
  for (const auto& [name, record] : state_->records) {
    if (!state_->broken.contains(name)) {
      list.records.push_back(record);
    }
  }
  return list;
}

std::expected<void, StoreError> MemoryStore::erase(std::string_view user) {
  const std::lock_guard lock(state_->mutex);
  if (const auto failure = state_->failure) {
    return std::unexpected(error_of(*failure));
  }
  ++state_->erases;
  if (const auto found = state_->records.find(user); found != state_->records.end()) {
    state_->records.erase(found);
  }
  if (const auto found = state_->broken.find(user); found != state_->broken.end()) {
    state_->broken.erase(found);
  }
  return {};
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
