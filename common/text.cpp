#include "common/text.hpp"

namespace kpanel::common {

bool c1_control_at(std::string_view text, std::size_t i) noexcept {
  if (i + 1 >= text.size() || static_cast<unsigned char>(text[i]) != 0xc2) {
    return false;
  }
  const auto next = static_cast<unsigned char>(text[i + 1]);
  return next >= 0x80 && next <= 0x9f;
}

std::size_t find_control(std::string_view text, Controls which) noexcept {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (which == Controls::c0_except_tab && byte == '\t') {
      continue;
    }
    if (is_c0_control(byte) || (which == Controls::c0_and_c1 && c1_control_at(text, i))) {
      return i;
    }
  }
  return std::string_view::npos;
}

std::optional<std::size_t> utf8_length(std::string_view text) noexcept {
  std::size_t count = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    // Bounds of the second byte; the third and fourth are always 80..BF.
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    if (lead < 0x80) {
      length = 1;
    } else if (lead >= 0xc2 && lead <= 0xdf) {
      length = 2;
    } else if (lead >= 0xe0 && lead <= 0xef) {
      length = 3;
      lo = lead == 0xe0 ? 0xa0 : 0x80;  // overlong
      hi = lead == 0xed ? 0x9f : 0xbf;  // surrogates
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      length = 4;
      lo = lead == 0xf0 ? 0x90 : 0x80;  // overlong
      hi = lead == 0xf4 ? 0x8f : 0xbf;  // past U+10FFFF
    } else {
      return std::nullopt;  // a continuation byte, C0/C1 (overlong) or F5..FF
    }
    if (text.size() - i < length) {
      return std::nullopt;
    }
    for (std::size_t k = 1; k < length; ++k) {
      const auto byte = static_cast<unsigned char>(text[i + k]);
      if (byte < (k == 1 ? lo : 0x80) || byte > (k == 1 ? hi : 0xbf)) {
        return std::nullopt;
      }
    }
    i += length;
    ++count;
  }
  return count;
}

bool valid_utf8(std::string_view text) noexcept { return utf8_length(text).has_value(); }

}  // namespace kpanel::common
