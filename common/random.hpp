#pragma once
// Randomness from OpenSSL's CSPRNG (RAND_priv_bytes for secrets).

#include <cstddef>
#include <cstdint>
#include <expected>

#include "common/secure_buffer.hpp"

namespace kpanel::common {

enum class RandomError : std::uint8_t { rng_failure };

inline constexpr std::size_t kTotpSecretBytes = 20;  // 160 bits, RFC 4226 §4 recommends it

[[nodiscard]] std::expected<SecureBytes, RandomError> random_bytes(std::size_t count);
[[nodiscard]] std::expected<SecureBytes, RandomError> generate_totp_secret();

}  // namespace kpanel::common
