#pragma once
// One-time recovery codes: generation, normalization of what a user types,
// and the salted slow hash they are stored as.

#include <cstddef>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "common/secure_buffer.hpp"

namespace kpanel::common {

// Shown as "7KQ2-9MXD-4T": 10 symbols of the 32-symbol alphabet
// "023456789ABCDEFGHJKMNPQRSTUVWXYZ" = 50 bits. There are only 31 letters and
// digits without 0/O/1/I/L, so 0 is kept and a typed O is read as 0; 1/I/L
// never appear.
inline constexpr std::size_t kRecoveryCodeSymbols = 10;
// google-authenticator-libpam's scratch codes, imported as recovery codes:
// 8 decimal digits, the first not 0. Never confused with a code of ours
// (another length; 1 is not in our alphabet); hashed and checked like one.
inline constexpr std::size_t kScratchCodeDigits = 8;

enum class RecoveryCodeError : std::uint8_t {
  rng_failure,
  bad_character,
  bad_length,
  hash_failure,
  bad_hash_format
};

[[nodiscard]] std::expected<SecureString, RecoveryCodeError> generate_recovery_code();
[[nodiscard]] std::expected<std::vector<SecureString>, RecoveryCodeError> generate_recovery_codes(
    std::size_t count);

// Upper-cases, drops dashes and spaces, reads O as 0, checks alphabet and length:
// "7kq2 9mxd-4t" -> "7KQ29MXD4T".
[[nodiscard]] std::expected<SecureString, RecoveryCodeError> normalize_recovery_code(
    std::string_view typed);

// A google-authenticator scratch code as typed ("1234 5678"): its 8 digits,
// dashes and spaces dropped; the first digit is never 0.
[[nodiscard]] std::expected<SecureString, RecoveryCodeError> normalize_scratch_code(
    std::string_view typed);

// True when `typed` could be a recovery code rather than a TOTP code
// (after normalization it has the recovery-code length): protocol::Code's
// classification, which is what the daemon goes by.
[[nodiscard]] bool looks_like_recovery_code(std::string_view typed) noexcept;

// Salted slow hash of a normalized code (or a normalized scratch code), self-describing so
// parameters can change: "scrypt$ln=12,r=8,p=1$<16-byte salt, base64>$<32-byte hash, base64>"
// (unpadded base64).
[[nodiscard]] std::expected<std::string, RecoveryCodeError> hash_recovery_code(
    std::string_view normalized);
// Recomputes and compares in constant time; false on any malformed stored value.
[[nodiscard]] bool verify_recovery_code(std::string_view normalized,
                                        std::string_view stored_hash) noexcept;

}  // namespace kpanel::common
