#include "fake_accounts.hpp"

namespace kpanel::daemon::test {

void MapAccountDirectory::add_user(uid_t uid, const std::string& name,
                                   const std::vector<std::string>& groups) {
  names_[uid] = name;
  auto& set = groups_[name];
  set.insert(groups.begin(), groups.end());
}

std::optional<std::string> MapAccountDirectory::name_for_uid(uid_t uid) const {
  const auto found = names_.find(uid);
  if (found == names_.end()) {
    return std::nullopt;
  }
  return found->second;
}

bool MapAccountDirectory::exists(std::string_view name) const {
  return groups_.find(name) != groups_.end();
}

bool MapAccountDirectory::is_member(std::string_view name, std::string_view group) const {
  if (group.empty()) {
    return false;
  }
  const auto found = groups_.find(name);
  return found != groups_.end() && found->second.contains(group);
}

}  // namespace kpanel::daemon::test
