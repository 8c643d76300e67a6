#include "common/pam_options.hpp"

#include <sys/un.h>

#include <charconv>
#include <cstddef>
#include <string_view>
#include <system_error>

#include "common/text.hpp"

namespace kpanel::pam {
namespace {

// Option text reaches syslog; an admin's typo must not forge log lines.
std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    out.push_back(common::is_c0_control(static_cast<unsigned char>(c)) ? '?' : c);
  }
  return out;
}

std::expected<std::string, std::string> parse_socket(std::string_view value) {
  if (value.empty() || value.front() != '/') {
    return std::unexpected("needs an absolute path");
  }
  if (value.size() >= sizeof(sockaddr_un::sun_path)) {
    return std::unexpected("path too long for a UNIX socket");
  }
  if (common::has_control(value, common::Controls::c0)) {
    return std::unexpected("path contains control characters");
  }
  return std::string(value);
}

std::expected<std::chrono::seconds, std::string> parse_timeout(std::string_view value) {
  unsigned int seconds = 0;
  const char* const end = value.data() + value.size();
  const auto [stop, error] = std::from_chars(value.data(), end, seconds);
  // from_chars accepts no sign or space, so "+5" and " 5" are refused too.
  if (value.empty() || error != std::errc{} || stop != end) {
    return std::unexpected("needs a whole number of seconds");
  }
  const std::chrono::seconds timeout{seconds};
  if (timeout < kMinTimeout || timeout > kMaxTimeout) {
    return std::unexpected("must be between 1 and 300 seconds");
  }
  return timeout;
}

std::expected<std::string, std::string> parse_prompt(std::string_view value) {
  if (value.empty()) {
    return std::unexpected("needs a text");
  }
  if (value.size() > kMaxPromptLength) {
    return std::unexpected("text too long");
  }
  if (common::has_control(value, common::Controls::c0)) {
    return std::unexpected("text contains control characters");
  }
  return std::string(value);
}

}  // namespace

std::expected<Options, std::vector<OptionError>> parse_options(
    std::span<const char* const> arguments) {
  Options options;
  std::vector<OptionError> errors;
  const auto fail = [&errors](std::string_view argument, std::string reason) {
    errors.push_back(OptionError{.argument = printable(argument), .reason = std::move(reason)});
  };

  for (const char* const raw : arguments) {
    if (raw == nullptr) {
      fail("(null)", "missing argument");
      continue;
    }
    const std::string_view argument(raw);
    const std::size_t equals = argument.find('=');
    const std::string_view name = argument.substr(0, equals);
    const bool has_value = equals != std::string_view::npos;
    const std::string_view value = has_value ? argument.substr(equals + 1) : std::string_view{};

    if (name == "nullok" || name == "debug" || name == "enroll" || name == "remember") {
      if (has_value) {
        fail(argument, "takes no value");
      } else if (name == "nullok") {
        options.nullok = true;
      } else if (name == "debug") {
        options.debug = true;
      } else if (name == "remember") {
        options.remember = true;
      } else {
        options.enroll = true;
      }
    } else if (!has_value && (name == "socket" || name == "timeout" || name == "unavailable" ||
                              name == "prompt")) {
      fail(argument, "needs a value (" + std::string(name) + "=...)");
    } else if (name == "socket") {
      if (auto path = parse_socket(value)) {
        options.socket_path = std::move(*path);
      } else {
        fail(argument, path.error());
      }
    } else if (name == "timeout") {
      if (auto timeout = parse_timeout(value)) {
        options.timeout = *timeout;
      } else {
        fail(argument, timeout.error());
      }
    } else if (name == "unavailable") {
      if (value == "deny") {
        options.unavailable = Unavailable::deny;
      } else if (value == "ignore") {
        options.unavailable = Unavailable::ignore;
      } else {
        fail(argument, "must be deny or ignore");
      }
    } else if (name == "prompt") {
      if (auto prompt = parse_prompt(value)) {
        options.prompt = std::move(*prompt);
      } else {
        fail(argument, prompt.error());
      }
    } else {
      fail(argument, "unknown option");
    }
  }

  if (!errors.empty()) {
    return std::unexpected(std::move(errors));
  }
  return options;
}

}  // namespace kpanel::pam
