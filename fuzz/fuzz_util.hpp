#pragma once
// Helpers shared by the libFuzzer targets: a property that fails stops the
// run with a crash libFuzzer records (like a sanitizer report).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#define KPANEL_FUZZ_CHECK(cond) \
  do {                          \
    if (!(cond)) {              \
      __builtin_trap();         \
    }                           \
  } while (false)

namespace kpanel::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) noexcept {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits the input at '\n' into at most `parts` fields (the last one keeps the rest).
inline std::vector<std::string_view> split_fields(std::string_view text, std::size_t parts) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < parts) {
    const std::size_t nl = text.find('\n');
    if (nl == std::string_view::npos) break;
    out.push_back(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
  out.push_back(text);
  while (out.size() < parts) out.emplace_back();
  return out;
}

}  // namespace kpanel::fuzz
