#pragma once
// A Store kept in memory, for tests. Its records live in a shared State, so a
// second MemoryStore on the same State behaves like a daemon restarted on the
// same state directory. fail_with() makes every call fail, to test how the
// rules handle a broken store.

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "daemon/store/store.hpp"

namespace kpanel::daemon::test {

class MemoryStore final : public Store {
 public:
  struct State {
    std::mutex mutex;
    std::map<std::string, UserRecord, std::less<>> records;
    std::optional<StoreErrorKind> failure;
    std::vector<Durability> writes;  // the kind of every update that wrote, in order
  };

  explicit MemoryStore(std::shared_ptr<State> state = std::make_shared<State>())
      : state_(std::move(state)) {}

  std::expected<std::optional<UserRecord>, StoreError> load(std::string_view user) override;
  using Store::update;
  std::expected<void, StoreError> update(std::string_view user, Durability durability,
                                         const std::function<bool(UserRecord&)>& change) override;
  std::expected<std::vector<UserRecord>, StoreError> list() override;

  void fail_with(std::optional<StoreErrorKind> failure);
  [[nodiscard]] std::size_t size() const;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace kpanel::daemon::test
