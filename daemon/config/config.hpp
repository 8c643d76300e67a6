#pragma once
// kpanel-totpd.conf (man/kpanel-totpd.conf.5): `key = value` lines, `#` comments, unknown keys
// an error. config_keys.cpp holds the one table of keys; each row names its
// key, how its value is parsed and validated, where it goes and whether a
// reload applies it. The defaults live in the structs below (and Policy),
// nowhere else. The daemon and `kpanel-totp doctor` both read the file
// through this library (daemon_config), so they cannot disagree on it.

#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/rules/policy.hpp"

namespace kpanel::daemon {

inline constexpr std::string_view kDefaultConfigPath = "/etc/kpanel-totp/kpanel-totpd.conf";
// The secret-encryption key in key_file: exactly this many bytes.
inline constexpr std::size_t kKeyFileBytes = 32;

enum class StoreBackend : std::uint8_t { sqlite, postgresql };

struct DaemonConfig {
  std::filesystem::path socket = "/run/kpanel-totp/kpanel-totpd.sock";
  std::filesystem::path state_dir = "/var/lib/kpanel-totp";
  std::filesystem::path key_file = "/etc/kpanel-totp/state.key";
  std::string password_service = "kpanel-totp";
  StoreBackend store = StoreBackend::sqlite;
  std::string postgresql_dsn;  // libpq connection string; may hold a password: never logged
  // Lab use only: a postgresql_dsn that reaches another host without
  // sslmode=verify-full is accepted (see dsn_rules.hpp).
  bool postgresql_allow_unverified = false;
  Policy policy;
};

// Every problem found, each formatted `FILE:LINE: message` (LINE 0 when the
// problem is the file itself, e.g. its permissions). Parsing does not stop at
// the first problem so an admin fixes them all in one go.
using ConfigProblems = std::vector<std::string>;

// One problem: its line (0: the file itself) and what is wrong, without the
// `FILE:LINE: ` prefix.
struct ConfigProblem {
  std::size_t line = 0;
  std::string message;
};

// Text read line by line: the configuration with every value the daemon
// accepts applied (the others keep their defaults), and every problem found,
// in line order. The daemon refuses a file with any problem; the doctor uses
// the values anyway to check the rest of the host.
struct ConfigReading {
  DaemonConfig config;
  std::vector<ConfigProblem> problems;
  std::vector<std::string_view> keys_set;  // keys given a value it accepts, in line order
};
[[nodiscard]] ConfigReading read_config_text(std::string_view text);

// `FILE:LINE: message`, as ConfigProblems holds them.
[[nodiscard]] std::string format_problem(std::string_view file_name, const ConfigProblem& problem);

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

// One key's value as describe_config() shows it (postgresql_dsn's password
// masked; a date as YYYY-MM-DD; empty when unset); empty for an unknown key.
[[nodiscard]] std::string config_value(const DaemonConfig& config, std::string_view key);

// When a change of a key applies: a reload (SIGHUP) applies the policy; the
// socket, the store and what the daemon opens at start need a restart.
enum class TakesEffect : std::uint8_t { on_reload, on_restart };

struct ConfigKey {
  std::string_view name;
  TakesEffect takes_effect;
};
// Every key, in the order of the shipped file.
[[nodiscard]] std::vector<ConfigKey> config_keys();

// The keys whose value differs between the running and the newly loaded
// configuration and that a reload does not apply, in table order.
[[nodiscard]] std::vector<std::string_view> keys_needing_restart(const DaemonConfig& running,
                                                                 const DaemonConfig& loaded);

}  // namespace kpanel::daemon
