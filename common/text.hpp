#pragma once
// What counts as a control character and as UTF-8, decided once for every
// place that checks text from outside: the protocol codec, the daemon's config,
// the PAM module's options and user names. Dependency-free (the PAM module
// links it).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kpanel::common {

// A C0 control (U+0000..U+001F) or DEL: the bytes a terminal or a log line acts on.
[[nodiscard]] constexpr bool is_c0_control(unsigned char byte) noexcept {
  return byte < 0x20 || byte == 0x7f;
}

// Printable ASCII (U+0020..U+007E): what may go into a log field unescaped.
[[nodiscard]] constexpr bool is_printable_ascii(unsigned char byte) noexcept {
  return byte >= 0x20 && byte < 0x7f;
}

// Whether a C1 control (U+0080..U+009F, i.e. C2 80..C2 9F in UTF-8) starts at
// text[i]; some terminals act on those too (U+009B is a CSI).
[[nodiscard]] bool c1_control_at(std::string_view text, std::size_t i) noexcept;

// Which characters a scan refuses.
enum class Controls : std::uint8_t {
  c0,             // C0 controls and DEL
  c0_except_tab,  // the same, a tab allowed (config lines)
  c0_and_c1,      // C0 controls, DEL and C1 controls (protocol text, user names)
};

// Offset of the first control character in `text`, std::string_view::npos if none.
[[nodiscard]] std::size_t find_control(std::string_view text, Controls which) noexcept;
[[nodiscard]] inline bool has_control(std::string_view text, Controls which) noexcept {
  return find_control(text, which) != std::string_view::npos;
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF.
[[nodiscard]] bool valid_utf8(std::string_view text) noexcept;
// The number of code points in `text`, or nullopt when it is not strict UTF-8.
[[nodiscard]] std::optional<std::size_t> utf8_length(std::string_view text) noexcept;

}  // namespace kpanel::common
