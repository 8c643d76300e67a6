#pragma once
// Base32 (RFC 4648 §6). Output: upper case, no padding. Input: case-insensitive;
// spaces, dashes and trailing '=' padding are ignored; anything else is rejected.

#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>

#include "common/secure_buffer.hpp"

namespace kpanel::common {

enum class Base32Error : std::uint8_t { bad_character, bad_length, bad_padding };

[[nodiscard]] SecureString base32_encode(std::span<const std::uint8_t> data);
[[nodiscard]] std::expected<SecureBytes, Base32Error> base32_decode(std::string_view text);

// "JBSW Y3DP EHPK 3PXP": the key as a user types it from the screen.
[[nodiscard]] SecureString group_in_fours(std::string_view base32);

}  // namespace kpanel::common
