#pragma once
// The PAM module's arguments from the PAM stack line (used by the module and
// by `kpanel-totp doctor`, which checks stack lines with the same rules). Parsing is strict:
// an unknown or malformed option is an error and the module then refuses the
// login, because a typo such as "nulok" or "timeout=1O" must not silently
// change what the stack lets through.

#include <chrono>
#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <vector>

#include "common/daemon_client.hpp"

namespace kpanel::pam {

enum class Unavailable : std::uint8_t {
  deny,    // daemon unreachable: the module fails (PAM_AUTHINFO_UNAVAIL)
  ignore,  // daemon unreachable: PAM_IGNORE, the rest of the stack decides
};

inline constexpr std::chrono::seconds kDefaultTimeout{10};
inline constexpr std::chrono::seconds kMinTimeout{1};
inline constexpr std::chrono::seconds kMaxTimeout{300};
inline constexpr std::string_view kDefaultPrompt = "Verification code: ";
// PAM_MAX_MSG_SIZE: longer prompts are cut by some applications.
inline constexpr std::size_t kMaxPromptLength = 512;

struct Options {
  std::string socket_path{common::kDefaultSocketPath};
  bool nullok = false;
  std::chrono::seconds timeout = kDefaultTimeout;
  Unavailable unavailable = Unavailable::deny;
  std::string prompt{kDefaultPrompt};
  bool debug = false;
  bool enroll = false;
  // This stack may skip the code inside the daemon's remember_seconds window
  // (pam_module/login_source.hpp says what a login's source is).
  bool remember = false;
};

struct OptionError {
  std::string argument;  // as given, with control characters replaced (it goes to syslog)
  std::string reason;
};

// Parses every argument; all problems are reported, not only the first, so a
// sysadmin sees them in one syslog pass. Later duplicates override earlier ones.
[[nodiscard]] std::expected<Options, std::vector<OptionError>> parse_options(
    std::span<const char* const> arguments);

}  // namespace kpanel::pam
