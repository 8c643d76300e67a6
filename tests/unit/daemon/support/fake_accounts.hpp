#pragma once
// An AccountDirectory from a fixed table (uid, name, groups), for tests.
// Filled before use; read-only afterwards (but for a lookup counter), so safe
// from several threads.

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "daemon/authz/accounts.hpp"

namespace kpanel::daemon::test {

class MapAccountDirectory final : public AccountDirectory {
 public:
  // `groups`: every group the user is in, primary or supplementary.
  void add_user(uid_t uid, const std::string& name, const std::vector<std::string>& groups = {});
  // Another name for `uid`'s account: a second passwd entry with the same uid
  // (useradd -o), or a spelling NSS maps to it (SSSD's case-insensitive names).
  void add_alias(uid_t uid, const std::string& name);

  [[nodiscard]] std::optional<std::string> name_for_uid(uid_t uid) const override;
  [[nodiscard]] std::optional<std::string> canonical_name(std::string_view name) const override;
  [[nodiscard]] bool exists(std::string_view name) const override;
  [[nodiscard]] bool is_member(std::string_view name, std::string_view group) const override;
  // What login_accounts() answers: the accounts that "can log in", as given.
  void set_login_accounts(std::vector<std::string> names, bool truncated = false);
  [[nodiscard]] LoginAccounts login_accounts() const override { return login_accounts_; }

  // How many times canonical_name was asked.
  [[nodiscard]] int canonical_lookups() const { return canonical_lookups_.load(); }

 private:
  std::map<uid_t, std::string> names_;
  std::map<std::string, uid_t, std::less<>> uids_;  // every name, aliases included
  mutable std::atomic<int> canonical_lookups_{0};
  std::map<std::string, std::set<std::string, std::less<>>, std::less<>> groups_;
  LoginAccounts login_accounts_;
};

}  // namespace kpanel::daemon::test
