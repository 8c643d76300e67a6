#include "daemon/config/config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "common/os_text.hpp"
#include "common/text.hpp"
#include "common/unique_fd.hpp"
#include "daemon/config/config_keys.hpp"
#include "daemon/config/dsn_rules.hpp"
#include "daemon/config/private_file.hpp"

// Syntax (documented for admins in config/kpanel-totpd.conf):
// - one `key = value` per line; whitespace around key and value is trimmed;
// - a line whose first non-blank character is `#` is a comment. `#` anywhere
//   else is part of the value (so `issuer = Kapsule #1` works); there are no
//   trailing comments;
// - values are taken literally: no quoting, no escapes;
// - an empty value is allowed only for keys whose default is empty.

namespace kpanel::daemon {
namespace {

using config_table::find_key;
using config_table::Key;
using config_table::keys;
using config_table::kKeyCount;
using config_table::quoted;
using config_table::trim;

constexpr std::size_t kMaxLineBytes = 4096;
constexpr std::size_t kMaxFileBytes = std::size_t{1} << 20U;  // 1 MiB
constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

std::size_t index_of(std::string_view name) { return find_key(name).value_or(0); }

// Optimal string alignment distance: Levenshtein plus adjacent transpositions,
// so "digtis" is one edit from "digits".
std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t n = a.size();
  const std::size_t m = b.size();
  std::vector<std::size_t> d((n + 1) * (m + 1));
  const auto at = [&](std::size_t i, std::size_t j) -> std::size_t& { return d[i * (m + 1) + j]; };
  for (std::size_t i = 0; i <= n; ++i) {
    at(i, 0) = i;
  }
  for (std::size_t j = 0; j <= m; ++j) {
    at(0, j) = j;
  }
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      at(i, j) = std::min({at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        at(i, j) = std::min(at(i, j), at(i - 2, j - 2) + 1);
      }
    }
  }
  return at(n, m);
}

std::optional<std::string_view> nearest_key(std::string_view name) {
  constexpr std::size_t kMaxSuggestDistance = 2;
  if (name.size() > 64) {
    return std::nullopt;  // nothing that long is a typo of a key
  }
  std::optional<std::string_view> best;
  std::size_t best_distance = kMaxSuggestDistance + 1;
  for (const Key& key : keys()) {
    // The distance is at least the difference in length: skip the table.
    const std::size_t longer = std::max(name.size(), key.name.size());
    const std::size_t shorter = std::min(name.size(), key.name.size());
    if (longer - shorter > kMaxSuggestDistance) {
      continue;
    }
    const std::size_t distance = edit_distance(name, key.name);
    if (distance < best_distance) {
      best = key.name;
      best_distance = distance;
    }
  }
  return best;
}

class Parser {
 public:
  ConfigReading run(std::string_view text) {
    if (text.size() > kMaxFileBytes) {
      add(0, "larger than 1 MiB; this is not a kpanel-totpd config file");
      return finish();
    }
    if (text.starts_with(kUtf8Bom)) {
      text.remove_prefix(kUtf8Bom.size());  // some editors add one
    }
    std::size_t line_number = 0;
    while (!text.empty()) {
      const std::size_t newline = text.find('\n');
      const std::string_view line = text.substr(0, newline);
      text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
      read_line(++line_number, line);
    }
    check_across_keys();
    return finish();
  }

 private:
  void add(std::size_t line, std::string message) {
    problems_.push_back({line, std::move(message)});
  }

  // "key: " when the line starts with a known key, so even a line rejected as
  // a whole names its key.
  static std::string key_prefix(std::string_view line) {
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return {};
    }
    const std::string_view key = trim(line.substr(0, eq));
    return find_key(key) ? std::string{key} + ": " : std::string{};
  }

  void read_line(std::size_t number, std::string_view raw) {
    if (raw.size() > kMaxLineBytes) {
      add(number, key_prefix(raw.substr(0, kMaxLineBytes)) + "line is longer than " +
                      std::to_string(kMaxLineBytes) + " bytes");
      return;
    }
    if (raw.find('\0') != std::string_view::npos) {
      add(number, key_prefix(raw.substr(0, raw.find('\0'))) + "line contains a NUL byte");
      return;
    }
    if (!common::valid_utf8(raw)) {
      add(number, key_prefix(raw) + "line is not valid UTF-8");
      return;
    }
    const std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') {
      return;
    }
    if (const std::size_t control = common::find_control(line, common::Controls::c0_except_tab);
        control != std::string_view::npos) {
      add(number, key_prefix(line) + "line contains a control character (" +
                      quoted(line.substr(control, 1)) + ")");
      return;
    }
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      add(number, "missing \"=\" in " + quoted(line) + " (lines are \"key = value\")");
      return;
    }
    const std::string_view name = trim(line.substr(0, eq));
    const std::string_view value = trim(line.substr(eq + 1));
    if (name.empty()) {
      add(number, "missing key before \"=\"");
      return;
    }
    const auto index = find_key(name);
    if (!index) {
      std::string message = "unknown key " + quoted(name);
      if (const auto suggestion = nearest_key(name)) {
        message += " (did you mean \"" + std::string{*suggestion} + "\"?)";
      }
      add(number, std::move(message));
      return;
    }
    const Key& key = keys()[*index];
    const std::string prefix = std::string{key.name} + ": ";
    if (seen_[*index] != 0) {
      add(number, "duplicate key \"" + std::string{key.name} + "\" (already set on line " +
                      std::to_string(seen_[*index]) + ")");
      return;
    }
    seen_[*index] = number;
    if (value.empty() && !key.may_be_empty) {
      add(number, prefix + "needs a value (to use the default, " + key.show(DaemonConfig{}) +
                      ", comment the line out)");
      bad_[*index] = true;
      return;
    }
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      add(number, prefix + "values are not quoted; write " + std::string{key.name} + " = " +
                      std::string{value.substr(1, value.size() - 2)});
      bad_[*index] = true;
      return;
    }
    if (auto parsed = key.parse(value, config_); !parsed) {
      std::string message = prefix + parsed.error();
      if (value.find('#') != std::string_view::npos) {
        message += " (\"#\" starts a comment only at the start of a line)";
      }
      add(number, std::move(message));
      bad_[*index] = true;
    } else {
      keys_set_.push_back(key.name);
    }
  }

  // Rules between keys, reported on the line of the key to change.
  void check_across_keys() {
    const std::size_t lockout = index_of("lockout_seconds");
    const std::size_t lockout_max = index_of("lockout_max_seconds");
    if (!bad_[lockout] && !bad_[lockout_max] &&
        config_.policy.lockout_max < config_.policy.lockout) {
      const std::string first = std::to_string(config_.policy.lockout.count());
      const std::string cap = std::to_string(config_.policy.lockout_max.count());
      if (seen_[lockout_max] != 0) {
        add(seen_[lockout_max],
            "lockout_max_seconds: " + cap + " is less than lockout_seconds (" + first + ")");
      } else {
        add(seen_[lockout], "lockout_seconds: " + first +
                                " is more than lockout_max_seconds (default " + cap + ")");
      }
    }
    const std::size_t store = index_of("store");
    const std::size_t dsn = index_of("postgresql_dsn");
    if (!bad_[store] && !bad_[dsn]) {
      if (config_.store == StoreBackend::postgresql && config_.postgresql_dsn.empty()) {
        add(seen_[store], "store: postgresql needs postgresql_dsn (a libpq connection string)");
      }
      // Most likely a forgotten `store` line; silently using a local database
      // would split the fleet's lockout and replay state.
      if (config_.store == StoreBackend::sqlite && !config_.postgresql_dsn.empty()) {
        add(seen_[dsn],
            "postgresql_dsn: is set but store is sqlite; set store = postgresql or remove "
            "postgresql_dsn");
      }
      // Before any connection is tried: a DSN that would send the password
      // across the network to an unverified server is refused at start.
      if (config_.store == StoreBackend::postgresql && !config_.postgresql_dsn.empty() &&
          !config_.postgresql_allow_unverified) {
        if (const auto problem = dsn::transport_problem(config_.postgresql_dsn)) {
          add(seen_[dsn], "postgresql_dsn: " + *problem +
                              " (postgresql_allow_unverified = yes accepts it, for a lab only)");
        }
      }
    }
  }

  ConfigReading finish() {
    std::ranges::stable_sort(problems_, {}, &ConfigProblem::line);
    return ConfigReading{std::move(config_), std::move(problems_), std::move(keys_set_)};
  }

  DaemonConfig config_;
  std::array<std::size_t, kKeyCount> seen_{};  // line that set each key; 0: not set
  std::array<bool, kKeyCount> bad_{};          // its value was refused
  std::vector<ConfigProblem> problems_;
  std::vector<std::string_view> keys_set_;
};

using common::octal_mode;

std::expected<DaemonConfig, ConfigProblems> load_file(const std::filesystem::path& path,
                                                      const ConfigLoadOptions& options) {
  const std::string name = path.string();
  const auto problem = [&](const std::string& message) {
    return std::unexpected(ConfigProblems{name + ":0: " + message});
  };
  auto opened = open_no_follow(path, FileKind::regular);
  if (!opened) {
    const FileIssue& issue = opened.error();
    switch (issue.problem) {
      case FileProblem::missing:
        if (options.missing_is_default) {
          return DaemonConfig{};
        }
        break;
      case FileProblem::symlink:
        return problem(
            "is a symbolic link; refusing it: put the file itself there, or name the "
            "target with --config");
      case FileProblem::cannot_stat:
        return problem("cannot stat: " + common::errno_text(issue.error));
      case FileProblem::not_regular:
        return problem("not a regular file");
      default:
        break;
    }
    return problem("cannot open: " + common::errno_text(issue.error));
  }
  const common::UniqueFd fd = std::move(opened->fd);
  const struct stat& st = opened->info;
  if (options.check_permissions) {
    // Whoever can write the config can turn the second factor off.
    const auto issues =
        owner_and_mode_issues(st, path, OwnerAndMode{::geteuid(), true, S_IWGRP | S_IWOTH});
    const auto has = [&issues](FileProblem p) {
      return std::ranges::any_of(issues, [p](const FileIssue& i) { return i.problem == p; });
    };
    const bool owner_ok = !has(FileProblem::wrong_owner);
    const bool mode_ok = !has(FileProblem::too_open);
    if (!owner_ok || !mode_ok) {
      std::string what =
          !owner_ok ? "owned by uid " + std::to_string(st.st_uid) + ", not root" : std::string{};
      if (!mode_ok) {
        what += (what.empty() ? "" : ", and ") + std::string{"writable by group or others (mode "} +
                octal_mode(st.st_mode) + ")";
      }
      return problem(what + "; run: chown root:root " + name + "; chmod 644 " + name);
    }
  }
  if (st.st_size > static_cast<off_t>(kMaxFileBytes)) {
    return problem("larger than 1 MiB; this is not a kpanel-totpd config file");
  }
  // Read to the end rather than trusting st_size, one byte past the cap.
  std::string text;
  text.resize(kMaxFileBytes + 1);
  std::size_t used = 0;
  while (used < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + used, text.size() - used);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return problem("cannot read: " + common::errno_text(errno));
    }
    if (n == 0) {
      break;
    }
    used += static_cast<std::size_t>(n);
  }
  text.resize(used);
  auto config = parse_config(text, name);
  // A password in the file makes it a secret: whoever reads it can log in
  // to the database as the daemon (and change or roll back its state).
  if (config && options.check_permissions && (st.st_mode & (S_IRGRP | S_IROTH)) != 0 &&
      dsn::read(config->postgresql_dsn).password) {
    return problem(
        "postgresql_dsn holds a password, and the file is readable by group or "
        "others (mode " +
        octal_mode(st.st_mode) + "); run: chmod 600 " + name +
        " (owned by the user kpanel-totpd runs as), or put the password in a "
        "passfile= of mode 600");
  }
  return config;
}

}  // namespace

ConfigReading read_config_text(std::string_view text) { return Parser{}.run(text); }

std::string format_problem(std::string_view file_name, const ConfigProblem& problem) {
  return std::string{file_name} + ":" + std::to_string(problem.line) + ": " + problem.message;
}

std::expected<DaemonConfig, ConfigProblems> parse_config(std::string_view text,
                                                         std::string_view file_name) {
  try {
    ConfigReading reading = Parser{}.run(text);
    if (reading.problems.empty()) {
      return std::move(reading.config);
    }
    ConfigProblems out;
    out.reserve(reading.problems.size());
    for (const ConfigProblem& p : reading.problems) {
      out.push_back(format_problem(file_name, p));
    }
    return std::unexpected(std::move(out));
  } catch (const std::exception& e) {  // only allocation failure can get here
    return std::unexpected(ConfigProblems{std::string{file_name} + ":0: " + e.what()});
  }
}

std::expected<DaemonConfig, ConfigProblems> load_config(const std::filesystem::path& path,
                                                        const ConfigLoadOptions& options) {
  try {
    return load_file(path, options);
  } catch (const std::exception& e) {  // only allocation failure can get here
    return std::unexpected(ConfigProblems{path.string() + ":0: " + e.what()});
  }
}

std::string describe_config(const DaemonConfig& config) {
  std::string out;
  for (const Key& key : keys()) {
    const std::string value = key.show(config);
    out += key.name;
    out += value.empty() ? " =\n" : " = " + value + "\n";
  }
  return out;
}

std::string config_value(const DaemonConfig& config, std::string_view key) {
  const auto index = find_key(key);
  return index ? keys()[*index].show(config) : std::string{};
}

std::vector<ConfigKey> config_keys() {
  std::vector<ConfigKey> out;
  for (const Key& key : keys()) {
    out.push_back(ConfigKey{key.name, key.takes_effect});
  }
  return out;
}

std::vector<std::string_view> keys_needing_restart(const DaemonConfig& running,
                                                   const DaemonConfig& loaded) {
  std::vector<std::string_view> out;
  for (const Key& key : keys()) {
    if (key.takes_effect != TakesEffect::on_restart) {
      continue;
    }
    const bool changed = key.differs != nullptr ? key.differs(running, loaded)
                                                : key.show(running) != key.show(loaded);
    if (changed) {
      out.push_back(key.name);
    }
  }
  return out;
}

}  // namespace kpanel::daemon
