#include "fake_accounts.hpp"

#include <utility>

namespace kpanel::daemon::test {

void MapAccountDirectory::add_user(uid_t uid, const std::string& name,
                                   const std::vector<std::string>& groups) {
  names_[uid] = name;
  uids_[name] = uid;
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

void MapAccountDirectory::set_login_accounts(std::vector<std::string> names, bool truncated) {
  login_accounts_.names = std::move(names);
  login_accounts_.truncated = truncated;
}

void MapAccountDirectory::add_alias(uid_t uid, const std::string& name) { uids_[name] = uid; }

std::optional<std::string> MapAccountDirectory::canonical_name(std::string_view name) const {
  ++canonical_lookups_;
  const auto found = uids_.find(name);
  if (found == uids_.end()) {
    return std::nullopt;
  }
  return name_for_uid(found->second);
}

bool MapAccountDirectory::exists(std::string_view name) const {
  return uids_.find(name) != uids_.end();
}

bool MapAccountDirectory::is_member(std::string_view name, std::string_view group) const {
  if (group.empty()) {
    return false;
  }
  const auto found = groups_.find(name);
  return found != groups_.end() && found->second.contains(group);
}

}  // namespace kpanel::daemon::test
