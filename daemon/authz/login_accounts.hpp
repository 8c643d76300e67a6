#pragma once
// Which accounts can log in, for `admin list --all` (the rollout at a
// glance): uid at least UID_MIN of /etc/login.defs and a login shell (listed
// in /etc/shells, and not nologin or false). Parsing is separate from the
// files so the rules are tested without touching /etc.

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kpanel::daemon {

// useradd's own default when login.defs does not say.
inline constexpr uid_t kDefaultUidMin = 1000;
// Both files are a few KiB; anything past this is not read.
inline constexpr std::size_t kMaxSystemFileBytes = std::size_t{256} * 1024;

// UID_MIN from login.defs text: the last `UID_MIN value` line wins, as for
// shadow's own tools; the value in decimal, 0x hex or 0 octal. A missing,
// malformed or out-of-range value gives kDefaultUidMin.
[[nodiscard]] uid_t uid_min_from(std::string_view login_defs) noexcept;

// The shells /etc/shells lists: one absolute path a line, '#' comments.
[[nodiscard]] std::vector<std::string> shells_from(std::string_view text);

// Whether `shell` (a passwd entry's) lets its account log in. Empty means
// /bin/sh, as login(1) does. nologin and false never do (whatever the list
// says: some systems list them). `shells` nullopt: /etc/shells could not be
// read, so every other shell counts: listing an account too many is the safe
// side of "may I turn nullok off yet?".
[[nodiscard]] bool is_login_shell(std::string_view shell,
                                  const std::optional<std::vector<std::string>>& shells);

// A small system file's text, or nullopt when it cannot be read (missing,
// not a regular file, unreadable). At most kMaxSystemFileBytes.
[[nodiscard]] std::optional<std::string> read_system_file(const std::filesystem::path& path);

struct LoginAccountRules {
  uid_t uid_min = kDefaultUidMin;
  std::optional<std::vector<std::string>> shells;
};
// The rules as this host's files give them now.
[[nodiscard]] LoginAccountRules read_login_account_rules(const std::filesystem::path& login_defs,
                                                         const std::filesystem::path& shells);

[[nodiscard]] bool can_log_in(const LoginAccountRules& rules, uid_t uid, std::string_view shell);

}  // namespace kpanel::daemon
