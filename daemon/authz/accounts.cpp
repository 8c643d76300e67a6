#include "daemon/authz/accounts.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <mutex>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "daemon/authz/login_accounts.hpp"

namespace kpanel::daemon {
namespace {

constexpr std::size_t kMaxLookupBuffer = std::size_t{1} << 20;  // 1 MiB: huge groups exist
constexpr int kMaxGroups = 65536;                               // NGROUPS_MAX on Linux

std::size_t initial_buffer_size(int sysconf_name) noexcept {
  const long hint = sysconf(sysconf_name);
  return hint > 0 ? static_cast<std::size_t>(hint) : std::size_t{1024};
}

// Calls a getXXnam_r/getXXuid_r `lookup(key, &entry, buffer, size, &result)`
// with a growing buffer (its first size from sysconf(`size_hint`)). True when
// an entry was found; `buffer` then backs the pointers in `entry`.
template <typename Key, typename Entry>
bool lookup_entry(int (*lookup)(Key, Entry*, char*, std::size_t, Entry**),
                  std::type_identity_t<Key> key, Entry& entry, std::vector<char>& buffer,
                  int size_hint) {
  for (std::size_t size = initial_buffer_size(size_hint);; size *= 2) {
    buffer.resize(size);
    Entry* result = nullptr;
    const int rc = lookup(key, &entry, buffer.data(), buffer.size(), &result);
    if (rc == 0) {
      return result != nullptr;
    }
    if (rc != ERANGE || size >= kMaxLookupBuffer) {
      return false;
    }
  }
}

struct UserEntry {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

std::optional<UserEntry> user_by_name(std::string_view name) {
  if (name.empty() || name.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  const std::string key(name);
  passwd entry{};
  std::vector<char> buffer;
  if (!lookup_entry(&getpwnam_r, key.c_str(), entry, buffer, _SC_GETPW_R_SIZE_MAX)) {
    return std::nullopt;
  }
  return UserEntry{entry.pw_name, entry.pw_uid, entry.pw_gid};
}

std::optional<gid_t> group_by_name(std::string_view name) {
  if (name.empty() || name.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  const std::string key(name);
  struct group entry {};
  std::vector<char> buffer;
  if (!lookup_entry(&getgrnam_r, key.c_str(), entry, buffer, _SC_GETGR_R_SIZE_MAX)) {
    return std::nullopt;
  }
  return entry.gr_gid;
}

// Primary plus supplementary groups, as initgroups() would set them.
std::vector<gid_t> groups_of(const UserEntry& user) {
  int count = 32;
  std::vector<gid_t> groups;
  while (count <= kMaxGroups) {
    groups.resize(static_cast<std::size_t>(count));
    int n = count;
    if (getgrouplist(user.name.c_str(), user.gid, groups.data(), &n) >= 0) {
      groups.resize(static_cast<std::size_t>(std::max(n, 0)));
      return groups;
    }
    // glibc reports the size it needs in n; grow at least twofold regardless.
    count = std::max(n, count * 2);
  }
  return {user.gid};
}

}  // namespace

std::optional<std::string> SystemAccountDirectory::name_for_uid(uid_t uid) const noexcept {
  try {
    passwd entry{};
    std::vector<char> buffer;
    if (!lookup_entry(&getpwuid_r, uid, entry, buffer, _SC_GETPW_R_SIZE_MAX) ||
        entry.pw_name == nullptr) {
      return std::nullopt;
    }
    return std::string(entry.pw_name);
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<std::string> SystemAccountDirectory::canonical_name(
    std::string_view name) const noexcept {
  try {
    const auto user = user_by_name(name);
    if (!user) {
      return std::nullopt;
    }
    // By uid, not the entry's own pw_name: an alias's entry names the alias.
    return name_for_uid(user->uid);
  } catch (...) {
    return std::nullopt;
  }
}

bool SystemAccountDirectory::exists(std::string_view name) const noexcept {
  try {
    return user_by_name(name).has_value();
  } catch (...) {
    return false;
  }
}

bool SystemAccountDirectory::is_member(std::string_view name,
                                       std::string_view group) const noexcept {
  try {
    const auto gid = group_by_name(group);
    if (!gid) {
      return false;
    }
    const auto user = user_by_name(name);
    if (!user) {
      return false;
    }
    if (user->gid == *gid) {
      return true;
    }
    const auto groups = groups_of(*user);
    return std::find(groups.begin(), groups.end(), *gid) != groups.end();
  } catch (...) {
    return false;
  }
}

AccountDirectory::LoginAccounts SystemAccountDirectory::login_accounts() const noexcept {
  LoginAccounts found;
  try {
    const LoginAccountRules rules = read_login_account_rules(files_.login_defs, files_.shells);
    static std::mutex enumeration;  // setpwent/getpwent_r/endpwent share one position
    const std::lock_guard lock(enumeration);
    std::unordered_set<uid_t> seen;  // aliases (useradd -o): the first entry is the canonical one
    std::vector<char> buffer(initial_buffer_size(_SC_GETPW_R_SIZE_MAX));
    setpwent();
    struct EndWhenDone {
      EndWhenDone() = default;
      EndWhenDone(const EndWhenDone&) = delete;
      EndWhenDone& operator=(const EndWhenDone&) = delete;
      EndWhenDone(EndWhenDone&&) = delete;
      EndWhenDone& operator=(EndWhenDone&&) = delete;
      ~EndWhenDone() { endpwent(); }  // before the lock is released
    } const end_when_done;
    for (std::size_t scanned = 0;;) {
      passwd entry{};
      passwd* result = nullptr;
      const int rc = getpwent_r(&entry, buffer.data(), buffer.size(), &result);
      if (rc == ERANGE && buffer.size() < kMaxLookupBuffer) {
        buffer.resize(buffer.size() * 2);  // the same entry again, with room
        continue;
      }
      if (rc != 0 || result == nullptr) {
        // ENOENT is the end; anything else (a directory server gone) leaves
        // what was read so far, said to be incomplete.
        found.truncated = rc != 0 && rc != ENOENT;
        break;
      }
      if (++scanned > kMaxScannedAccounts || found.names.size() >= kMaxLoginAccounts) {
        found.truncated = true;
        break;
      }
      if (entry.pw_name == nullptr || !seen.insert(entry.pw_uid).second) {
        continue;
      }
      if (can_log_in(rules, entry.pw_uid, entry.pw_shell != nullptr ? entry.pw_shell : "")) {
        found.names.emplace_back(entry.pw_name);
      }
    }
  } catch (...) {
    found.truncated = true;
  }
  return found;
}

}  // namespace kpanel::daemon
