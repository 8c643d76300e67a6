#pragma once
// A Store kept in memory, for tests. Its records live in a shared State, so a
// second MemoryStore on the same State behaves like a daemon restarted on the
// same state directory. fail_with() makes every call fail, to test how the
// rules handle a broken store; State::broken makes one user's record fail
// (corrupt, key: a row that does not decode, which list() names unreadable).

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
    // Users whose load and update fail with this kind; erase() clears them.
    std::map<std::string, StoreErrorKind, std::less<>> broken;
    std::size_t erases = 0;  // erase() calls that got past fail_with
  };

  explicit MemoryStore(std::shared_ptr<State> state = std::make_shared<State>())
      : state_(std::move(state)) {}

  std::expected<std::optional<UserRecord>, StoreError> load(std::string_view user) override;
  using Store::update;
  std::expected<void, StoreError> update(std::string_view user, Durability durability,
                                         const std::function<bool(UserRecord&)>& change) override;
  std::expected<UserList, StoreError> list() override;
  std::expected<void, StoreError> erase(std::string_view user) override;

  void fail_with(std::optional<StoreErrorKind> failure);
  [[nodiscard]] std::size_t size() const;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace kpanel::daemon::test
