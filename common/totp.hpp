#pragma once
// HOTP (RFC 4226) and TOTP (RFC 6238) with HMAC-SHA1/SHA256/SHA512 through
// OpenSSL 3's EVP_MAC.

#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/clock.hpp"
#include "common/secure_buffer.hpp"
#include "common/totp_params.hpp"

struct evp_mac_ctx_st;  // OpenSSL's EVP_MAC_CTX, kept out of this header

namespace kpanel::common {

[[nodiscard]] std::string_view to_string(TotpAlgorithm a) noexcept;  // "SHA1", "SHA256", "SHA512"
// Case-insensitive.
[[nodiscard]] std::optional<TotpAlgorithm> parse_algorithm(std::string_view name) noexcept;

enum class TotpError : std::uint8_t { bad_digits, bad_period, empty_key, crypto_failure };

// The codes of one key at any number of counters or steps. The key goes into
// the HMAC once: scanning a window (21 steps per verify) re-keyed for every
// step cost three times the MACs themselves with OpenSSL 3.
class CodeGenerator {
 public:
  static std::expected<CodeGenerator, TotpError> create(std::span<const std::uint8_t> key,
                                                        TotpAlgorithm algorithm, unsigned digits);
  static std::expected<CodeGenerator, TotpError> create(std::span<const std::uint8_t> key,
                                                        const TotpParams& params);

  // The HOTP value for `counter`, exactly `digits` decimal digits (zero-padded).
  [[nodiscard]] std::expected<SecureString, TotpError> hotp(std::uint64_t counter) const;
  // The TOTP code for `step` (create() with TotpParams only).
  [[nodiscard]] std::expected<SecureString, TotpError> at_step(std::int64_t step) const;
  // The step in [center - window, center + window] whose code equals `code`,
  // or nullopt; see find_matching_step. An error only when the MAC fails.
  [[nodiscard]] std::expected<std::optional<std::int64_t>, TotpError> find_step(
      std::string_view code, std::int64_t center, unsigned window) const;

 private:
  struct ContextDeleter {
    void operator()(::evp_mac_ctx_st* ctx) const noexcept;
  };
  CodeGenerator(std::unique_ptr<::evp_mac_ctx_st, ContextDeleter> ctx, unsigned digits,
                unsigned period)
      : ctx_(std::move(ctx)), digits_(digits), period_(period) {}

  std::unique_ptr<::evp_mac_ctx_st, ContextDeleter> ctx_;  // keyed; its key is wiped on free
  unsigned digits_;
  unsigned period_;  // 0: made for HOTP
};

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
