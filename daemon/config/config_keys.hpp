#pragma once
// The table of kpanel-totpd.conf keys (config_keys.cpp) and the text helpers
// the parser (config.cpp) shares with it. Inside the daemon_config library
// only; everyone else goes through config.hpp.

#include <cstddef>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "daemon/config/config.hpp"

namespace kpanel::daemon::config_table {

inline constexpr std::string_view kWhitespace = " \t\r\f\v";

// A value's problem, without the `FILE:LINE: key: ` prefix the caller adds.
using Parsed = std::expected<void, std::string>;

[[nodiscard]] std::string_view trim(std::string_view s);
// Quoted for a message: control characters, quotes and backslashes escaped.
[[nodiscard]] std::string quoted(std::string_view s);

// One row: a key, how its value is parsed and shown, and when a change applies.
struct Key {
  std::string_view name;
  bool may_be_empty;  // only keys whose default is empty
  TakesEffect takes_effect;
  Parsed (*parse)(std::string_view value, DaemonConfig& config);
  std::string (*show)(const DaemonConfig& config);
  // Whether two configurations differ in this key; nullptr: their show() differ.
  bool (*differs)(const DaemonConfig& a, const DaemonConfig& b) = nullptr;
};

inline constexpr std::size_t kKeyCount = 21;

// Every key of kpanel-totpd.conf(5), in the order of the shipped file.
[[nodiscard]] std::span<const Key, kKeyCount> keys();
[[nodiscard]] std::optional<std::size_t> find_key(std::string_view name);

}  // namespace kpanel::daemon::config_table
