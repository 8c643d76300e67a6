#include "common/os_text.hpp"

#include <cstddef>
#include <system_error>

namespace kpanel::common {

std::string errno_text(int error) {
  // libstdc++ fills this in with strerror_r, so it is safe from any thread.
  return std::generic_category().message(error);
}

std::string octal_mode(mode_t mode) {
  constexpr std::size_t kDigits = 4;
  std::string out(kDigits, '0');
  auto bits = static_cast<unsigned>(mode) & 07777U;
  for (std::size_t i = kDigits; i-- > 0;) {
    out[i] = static_cast<char>('0' + (bits & 7U));
    bits >>= 3U;
  }
  return out;
}

}  // namespace kpanel::common
