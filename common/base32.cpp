#include "common/base32.hpp"

namespace kpanel::common {
namespace {

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr std::uint8_t kInvalid = 0xFF;

// Symbol value for an input character (either case), or kInvalid.
constexpr std::uint8_t symbol_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') {
    return static_cast<std::uint8_t>(c - 'A');
  }
  if (c >= 'a' && c <= 'z') {
    return static_cast<std::uint8_t>(c - 'a');
  }
  if (c >= '2' && c <= '7') {
    return static_cast<std::uint8_t>(c - '2' + 26);
  }
  return kInvalid;
}

constexpr bool is_separator(char c) noexcept { return c == ' ' || c == '-'; }

}  // namespace

SecureString base32_encode(std::span<const std::uint8_t> data) {
  SecureString out;
  std::uint32_t buffer = 0;  // never holds more than 12 pending bits
  unsigned bits = 0;
  for (const std::uint8_t byte : data) {
    buffer = ((buffer << 8U) | byte) & 0xFFFU;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push_back(kAlphabet[(buffer >> bits) & 0x1FU]);
    }
  }
  if (bits > 0) {
    out.push_back(kAlphabet[(buffer << (5 - bits)) & 0x1FU]);
  }
  secure_wipe(&buffer, sizeof buffer);  // it held key bits
  return out;
}

std::expected<SecureBytes, Base32Error> base32_decode(std::string_view text) {
  // Pass 1: validate and count symbols, so the output is allocated once and no
  // partial secret is left in a reallocated buffer.
  std::size_t symbols = 0;
  bool in_padding = false;
  for (const char c : text) {
    if (is_separator(c)) {
      continue;
    }
    if (c == '=') {
      in_padding = true;
      continue;
    }
    if (symbol_value(c) == kInvalid) {
      return std::unexpected(Base32Error::bad_character);
    }
    if (in_padding) {
      return std::unexpected(Base32Error::bad_padding);  // data after '='
    }
    ++symbols;
  }
  // A final group of 1, 3 or 6 symbols cannot come from whole bytes (RFC 4648 §6).
  const std::size_t tail = symbols % 8;
  if (tail == 1 || tail == 3 || tail == 6) {
    return std::unexpected(Base32Error::bad_length);
  }

  SecureBytes out(symbols * 5 / 8);
  std::size_t written = 0;
  std::uint32_t buffer = 0;  // never holds more than 12 pending bits
  unsigned bits = 0;
  for (const char c : text) {
    const std::uint8_t v = symbol_value(c);
    if (v == kInvalid) {
      continue;  // separators and padding, already validated
    }
    buffer = ((buffer << 5U) | v) & 0xFFFU;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.mutable_view()[written++] = static_cast<std::uint8_t>(buffer >> bits);
    }
  }
  // Leftover bits must be zero: otherwise the last symbol was mistyped or the
  // text is not a canonical encoding (RFC 4648 §3.5).
  const bool leftover_clean = (buffer & ((1U << bits) - 1U)) == 0;
  secure_wipe(&buffer, sizeof buffer);
  if (!leftover_clean) {
    return std::unexpected(Base32Error::bad_padding);
  }
  return out;
}

SecureString group_in_fours(std::string_view base32) {
  SecureString out;
  for (std::size_t i = 0; i < base32.size(); ++i) {
    if (i != 0 && i % 4 == 0) {
      out.push_back(' ');
    }
    out.push_back(base32[i]);
  }
  return out;
}

}  // namespace kpanel::common
