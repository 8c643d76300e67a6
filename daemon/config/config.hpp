#pragma once
// kpanel-totpd.conf (man/kpanel-totpd.conf.5): `key = value` lines, `#` comments, unknown keys
// an error. config.cpp holds the one table of keys; each row names its key,
// how its value is parsed and validated, and where it goes. The defaults live
// in the structs below (and Policy), nowhere else.

#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/rules/policy.hpp"

namespace kpanel::daemon {

inline constexpr std::string_view kDefaultConfigPath = "/etc/kpanel-totp/kpanel-totpd.conf";

enum class StoreBackend : std::uint8_t { sqlite, postgresql };

struct DaemonConfig {
  std::filesystem::path socket = "/run/kpanel-totp/kpanel-totpd.sock";
  std::filesystem::path state_dir = "/var/lib/kpanel-totp";
  std::filesystem::path key_file = "/etc/kpanel-totp/state.key";
  std::string password_service = "kpanel-totp";
  StoreBackend store = StoreBackend::sqlite;
  std::string postgresql_dsn;  // libpq connection string; may hold a password: never logged
  Policy policy;
};

// Every problem found, each formatted `FILE:LINE: message` (LINE 0 when the
// problem is the file itself, e.g. its permissions). Parsing does not stop at
// the first problem so an admin fixes them all in one go.
using ConfigProblems = std::vector<std::string>;

// Parses config text; `file_name` only labels the problems.
[[nodiscard]] std::expected<DaemonConfig, ConfigProblems> parse_config(std::string_view text,
                                                                       std::string_view file_name);

struct ConfigLoadOptions {
  // The file must not be a symlink, must be owned by root or by the daemon's
  // effective uid, and writable by nobody else. Off only in unit tests.
  bool check_permissions = true;
  // A missing file is fine (every default applies) when the path is the
  // default one and the admin did not name it with --config.
  bool missing_is_default = false;
};

[[nodiscard]] std::expected<DaemonConfig, ConfigProblems> load_config(
    const std::filesystem::path& path, const ConfigLoadOptions& options);

// The effective configuration as `key = value` lines (postgresql_dsn's
// password masked), for --check-config and the log at start and reload.
[[nodiscard]] std::string describe_config(const DaemonConfig& config);

}  // namespace kpanel::daemon
