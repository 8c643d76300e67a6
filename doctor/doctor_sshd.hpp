#pragma once
// admin doctor: the sshd side. Reads sshd_config and its Includes the way
// sshd does (first value wins, Match blocks apply to some connections only),
// optionally corrects the global values with `sshd -T`, and checks that SSH
// logins can and must answer the code: UsePAM, keyboard-interactive,
// AuthenticationMethods, and the password method (which cannot answer it).

#include <cstddef>
#include <expected>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "doctor/doctor.hpp"

namespace kpanel::cli::doctor {

inline constexpr std::string_view kSshdConfigPath = "/etc/ssh/sshd_config";
inline constexpr std::string_view kSshdBinary = "/usr/sbin/sshd";

struct SshdValue {
  std::string value;     // as written (keywords' yes/no lower-cased)
  std::string file;      // as shown; empty: sshd's built-in default
  std::size_t line = 0;  // 0 with a file: the effective value came from `sshd -T`
  bool from_sshd_t = false;
};

// Settings of one context: the global one or one Match block. Keys are the
// lower-case keywords ("usepam"); ChallengeResponseAuthentication is stored
// as kbdinteractiveauthentication, as sshd does.
using SshdSettings = std::map<std::string, SshdValue, std::less<>>;

struct SshdMatch {
  std::string condition;  // "User backup", as written
  std::string file;
  std::size_t line = 0;
  SshdSettings settings;
};

struct SshdConfig {
  std::string main_file;  // as shown
  SshdSettings global;
  std::vector<SshdMatch> matches;
};

// The value of `keyword` (lower case) for connections that match `block`
// (nullptr: those that match no block): the block's own, else the global
// one, else sshd's built-in default (file empty).
[[nodiscard]] SshdValue sshd_setting(const SshdConfig& config, const SshdMatch* block,
                                     std::string_view keyword);

// Reads kSshdConfigPath and its Includes under the tree. nullopt when it is
// missing (no sshd) or unreadable (reported as skipped).
[[nodiscard]] std::optional<SshdConfig> load_sshd_config(const Tree& tree, Report& report);

// Replaces the global values with those `sshd -T` printed (lower-case
// "keyword value" lines); a value that differs from the files keeps no line.
void apply_sshd_t(SshdConfig& config, std::string_view dump);

// Runs `sshd -T -f CONFIG` (stdout), with a deadline; the error says why not.
[[nodiscard]] std::expected<std::string, std::string> run_sshd_t(const std::string& sshd,
                                                                 const std::string& config);

// The checks, on the global settings and then each Match block.
void check_sshd(const SshdConfig& config, Report& report);

}  // namespace kpanel::cli::doctor
