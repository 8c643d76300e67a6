#pragma once
// HOTP (RFC 4226) and TOTP (RFC 6238) with HMAC-SHA1/SHA256/SHA512 through
// OpenSSL 3's EVP_MAC.

#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/clock.hpp"
#include "common/secure_buffer.hpp"

namespace kpanel::common {

enum class TotpAlgorithm : std::uint8_t { sha1, sha256, sha512 };

[[nodiscard]] std::string_view to_string(TotpAlgorithm a) noexcept;  // "SHA1", "SHA256", "SHA512"
// Case-insensitive.
[[nodiscard]] std::optional<TotpAlgorithm> parse_algorithm(std::string_view name) noexcept;

struct TotpParams {
  TotpAlgorithm algorithm = TotpAlgorithm::sha1;
  unsigned digits = 6;   // 6..8
  unsigned period = 30;  // seconds, > 0
};

enum class TotpError : std::uint8_t { bad_digits, bad_period, empty_key, crypto_failure };

// The HOTP value for `counter`, as exactly `digits` decimal digits (zero-padded).
[[nodiscard]] std::expected<SecureString, TotpError> hotp(std::span<const std::uint8_t> key,
                                                          std::uint64_t counter,
                                                          TotpAlgorithm algorithm, unsigned digits);

// The time step containing `t` (floor((t - T0) / period), T0 = 0). Negative times give step < 0.
[[nodiscard]] std::int64_t totp_step(TimePoint t, unsigned period) noexcept;

// The code for `step`.
[[nodiscard]] std::expected<SecureString, TotpError> totp_code(std::span<const std::uint8_t> key,
                                                               std::int64_t step,
                                                               const TotpParams& params);

// The step in [center - window, center + window] whose code equals `code`
// (constant-time comparison of every candidate; all candidates are always
// computed so the time does not depend on which step matched), or nullopt.
[[nodiscard]] std::optional<std::int64_t> find_matching_step(std::span<const std::uint8_t> key,
                                                             std::string_view code,
                                                             std::int64_t center, unsigned window,
                                                             const TotpParams& params);

// True when `code` is exactly `digits` ASCII digits.
[[nodiscard]] bool looks_like_totp_code(std::string_view code, unsigned digits) noexcept;

}  // namespace kpanel::common
