#pragma once
// google-authenticator-libpam's per-user file (~/.google_authenticator), as
// its `google-authenticator` command writes it and its PAM module reads it:
//
//   line 1            the secret, base32
//   `" KEY [VALUE…]`  options: TOTP_AUTH or HOTP_COUNTER N (the code type),
//                     STEP_SIZE S (1..60 s, default 30), WINDOW_SIZE W (1..100
//                     steps in all, default 3 = now±1), DISALLOW_REUSE [STEP…]
//                     (steps already used, STEP = unix time / S), TIME_SKEW N
//                     (steps the phone is off), RATE_LIMIT N M [TIME…] and
//                     RESETTING_TIME_SKEW … (its own bookkeeping)
//   other lines       scratch codes: 8 digits, the first not 0
//
// A pure parser: reading the file safely is the command's job (cmd_import.cpp).

#include <cstddef>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "common/protocol.hpp"
#include "common/secure_buffer.hpp"

namespace kpanel::cli {

// Real files are a few hundred bytes: a secret, a few options, up to ten codes.
inline constexpr std::size_t kMaxGoogleAuthenticatorFileSize = 4096;
inline constexpr std::size_t kMaxScratchCodes = 10;      // the most it writes
inline constexpr std::size_t kMaxDisallowedSteps = 128;  // it keeps one window's worth
inline constexpr std::int64_t kMaxTimeSkewSteps = 1500;  // it searches 25 minutes each way

struct GoogleAuthenticatorFile {
  common::SecureString secret_base32;  // re-encoded: upper case, no padding or spaces
  std::uint32_t step_size = 30;
  std::uint32_t window_size = 3;
  std::int64_t time_skew = 0;
  std::vector<std::int64_t> used_steps;  // DISALLOW_REUSE
  std::vector<common::SecureString> scratch_codes;
};

// The file, or why it cannot be imported (one line, names the option or line,
// never a secret or a code). A counter-based (HOTP) file is refused.
[[nodiscard]] std::expected<GoogleAuthenticatorFile, std::string> parse_google_authenticator_file(
    std::string_view text);

}  // namespace kpanel::cli
