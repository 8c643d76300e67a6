#pragma once
// An AccountDirectory from a fixed table (uid, name, groups), for tests.
// Filled before use; read-only afterwards, so safe from several threads.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "daemon/accounts.hpp"

namespace kpanel::daemon::test {

class MapAccountDirectory final : public AccountDirectory {
 public:
  // `groups`: every group the user is in, primary or supplementary.
  void add_user(uid_t uid, const std::string& name, const std::vector<std::string>& groups = {});

  [[nodiscard]] std::optional<std::string> name_for_uid(uid_t uid) const override;
  [[nodiscard]] bool exists(std::string_view name) const override;
  [[nodiscard]] bool is_member(std::string_view name, std::string_view group) const override;

 private:
  std::map<uid_t, std::string> names_;
  std::map<std::string, std::set<std::string, std::less<>>, std::less<>> groups_;
};

}  // namespace kpanel::daemon::test
