#include "daemon/authz/login_accounts.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <limits>

#include "common/unique_fd.hpp"

namespace kpanel::daemon {
namespace {

bool is_blank(char c) noexcept { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view text) noexcept {
  while (!text.empty() && is_blank(text.front())) {
    text.remove_prefix(1);
  }
  while (!text.empty() && is_blank(text.back())) {
    text.remove_suffix(1);
  }
  return text;
}

// Calls `each` with every line, without its newline.
template <class Each>
void for_each_line(std::string_view text, Each each) {
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    each(text.substr(0, end));
    if (end == std::string_view::npos) {
      break;
    }
    text.remove_prefix(end + 1);
  }
}

// A number as shadow's getdef reads it (strtol base 0): decimal, 0x hex, 0 octal.
std::optional<std::uint64_t> parse_number(std::string_view text) noexcept {
  unsigned base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    text.remove_prefix(2);
  } else if (text.size() > 1 && text[0] == '0') {
    base = 8;
    text.remove_prefix(1);
  }
  if (text.empty()) {
    return std::nullopt;
  }
  std::uint64_t value = 0;
  for (const char c : text) {
    unsigned digit = 0;
    if (c >= '0' && c <= '9') {
      digit = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<unsigned>(c - 'a') + 10;
    } else if (c >= 'A' && c <= 'F') {
      digit = static_cast<unsigned>(c - 'A') + 10;
    } else {
      return std::nullopt;
    }
    if (digit >= base || value > (std::numeric_limits<std::uint32_t>::max() - digit) / base) {
      return std::nullopt;
    }
    value = value * base + digit;
  }
  return value;
}

}  // namespace

uid_t uid_min_from(std::string_view login_defs) noexcept {
  uid_t found = kDefaultUidMin;
  for_each_line(login_defs, [&](std::string_view line) {
    line = trim(line);
    constexpr std::string_view kKey = "UID_MIN";
    if (!line.starts_with(kKey) || line.size() == kKey.size() || !is_blank(line[kKey.size()])) {
      return;  // another key, a comment, or UID_MINIMUM
    }
    std::string_view value = trim(line.substr(kKey.size()));
    if (const std::size_t comment = value.find('#'); comment != std::string_view::npos) {
      value = trim(value.substr(0, comment));
    }
    // A value quoted like "1000" is taken as shadow takes it: the quotes removed.
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    const auto number = parse_number(value);
    // uid -1 is "no uid"; such a value is as malformed as letters.
    if (number && *number < std::numeric_limits<uid_t>::max()) {
      found = static_cast<uid_t>(*number);
    } else {
      found = kDefaultUidMin;
    }
  });
  return found;
}

std::vector<std::string> shells_from(std::string_view text) {
  std::vector<std::string> shells;
  for_each_line(text, [&](std::string_view line) {
    line = trim(line);
    if (line.starts_with('/')) {
      shells.emplace_back(line);
    }
  });
  return shells;
}

bool is_login_shell(std::string_view shell, const std::optional<std::vector<std::string>>& shells) {
  if (shell.empty()) {
    shell = "/bin/sh";
  }
  const std::size_t slash = shell.rfind('/');
  const std::string_view base = slash == std::string_view::npos ? shell : shell.substr(slash + 1);
  if (base == "nologin" || base == "false") {
    return false;
  }
  if (!shells) {
    return true;
  }
  return std::ranges::find(*shells, shell) != shells->end();
}

std::optional<std::string> read_system_file(const std::filesystem::path& path) {
  // O_NONBLOCK: a FIFO put there cannot hang a request.
  const common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  struct stat info {};
  if (!fd.valid() || ::fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode)) {
    return std::nullopt;
  }
  std::string text;
  std::array<char, 4096> chunk{};
  while (text.size() < kMaxSystemFileBytes) {
    const ssize_t got = ::read(fd.get(), chunk.data(), chunk.size());
    if (got < 0) {
      if (errno == EINTR) {
        continue;
      }
      return std::nullopt;
    }
    if (got == 0) {
      break;
    }
    text.append(chunk.data(), static_cast<std::size_t>(got));
  }
  if (text.size() > kMaxSystemFileBytes) {
    text.resize(kMaxSystemFileBytes);
  }
  return text;
}

LoginAccountRules read_login_account_rules(const std::filesystem::path& login_defs,
                                           const std::filesystem::path& shells) {
  LoginAccountRules rules;
  if (const auto text = read_system_file(login_defs)) {
    rules.uid_min = uid_min_from(*text);
  }
  if (const auto text = read_system_file(shells)) {
    rules.shells = shells_from(*text);
  }
  return rules;
}

bool can_log_in(const LoginAccountRules& rules, uid_t uid, std::string_view shell) {
  return uid >= rules.uid_min && is_login_shell(shell, rules.shells);
}

}  // namespace kpanel::daemon
