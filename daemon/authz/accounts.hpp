#pragma once
// The system's account database as the daemon needs it: who a peer uid is,
// which account a name belongs to, whether a name exists, and group
// membership (for admin_group and exempt_group). An interface so tests give a
// fixed table instead of NSS.

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kpanel::daemon {

class AccountDirectory {
 public:
  AccountDirectory() = default;
  AccountDirectory(const AccountDirectory&) = delete;
  AccountDirectory& operator=(const AccountDirectory&) = delete;
  AccountDirectory(AccountDirectory&&) = delete;
  AccountDirectory& operator=(AccountDirectory&&) = delete;
  virtual ~AccountDirectory() = default;

  // The login name of `uid`; nullopt when it has no passwd entry (or the lookup failed).
  [[nodiscard]] virtual std::optional<std::string> name_for_uid(uid_t uid) const = 0;
  // The account `name` logs in to, by its canonical name: the passwd entry of
  // the uid that `name` resolves to. Aliases sharing a uid (useradd -o) and
  // spellings NSS maps to one account (case-insensitive SSSD names,
  // user@domain) all give the same answer. nullopt when NSS does not know the
  // name (or a lookup failed). Exactly two NSS lookups: by name, then by uid.
  [[nodiscard]] virtual std::optional<std::string> canonical_name(std::string_view name) const = 0;
  [[nodiscard]] virtual bool exists(std::string_view name) const = 0;
  // Member through the primary group or a supplementary one. False for an
  // empty group name, an unknown user or group, or a failed lookup.
  [[nodiscard]] virtual bool is_member(std::string_view name, std::string_view group) const = 0;

  struct LoginAccounts {
    std::vector<std::string> names;  // canonical names, in the order NSS gave them
    bool truncated =
        false;  // a bound below was reached, or NSS failed part way: some may be missing
  };
  // Every account NSS enumerates that can log in (daemon/authz/login_accounts.hpp),
  // one name per uid. NSS enumeration may be partial: SSSD and LDAP list only
  // what they cached unless told to enumerate. A directory that cannot
  // enumerate lists nobody.
  [[nodiscard]] virtual LoginAccounts login_accounts() const { return {}; }
};

// Bounds of one enumeration, so a host with a huge directory costs a bounded
// request (the reply must also fit protocol::kMaxResponseBodySize).
inline constexpr std::size_t kMaxScannedAccounts = 200'000;
inline constexpr std::size_t kMaxLoginAccounts = 10'000;

struct LoginAccountFiles {
  std::filesystem::path login_defs = "/etc/login.defs";
  std::filesystem::path shells = "/etc/shells";
};

// NSS through the reentrant getpw*_r / getgrnam_r / getgrouplist; never throws.
class SystemAccountDirectory final : public AccountDirectory {
 public:
  explicit SystemAccountDirectory(LoginAccountFiles files = {}) : files_(std::move(files)) {}

  [[nodiscard]] std::optional<std::string> name_for_uid(uid_t uid) const noexcept override;
  [[nodiscard]] std::optional<std::string> canonical_name(
      std::string_view name) const noexcept override;
  [[nodiscard]] bool exists(std::string_view name) const noexcept override;
  [[nodiscard]] bool is_member(std::string_view name,
                               std::string_view group) const noexcept override;
  // getpwent_r under a process-wide lock (the enumeration's position is
  // global); the files are read again each time, so edits apply at once.
  [[nodiscard]] LoginAccounts login_accounts() const noexcept override;

 private:
  LoginAccountFiles files_;
};

}  // namespace kpanel::daemon
