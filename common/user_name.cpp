#include "common/user_name.hpp"

#include <algorithm>

#include "common/protocol.hpp"
#include "common/text.hpp"

namespace kpanel::common {

std::expected<void, UserNameProblem> check_user_name(std::string_view name) noexcept {
  if (name.empty()) {
    return std::unexpected(UserNameProblem::empty);
  }
  if (name.size() > protocol::kMaxUserLength) {
    return std::unexpected(UserNameProblem::too_long);
  }
  const bool separator = std::ranges::any_of(name, [](char c) { return c == '/' || c == ':'; });
  if (separator || has_control(name, Controls::c0_and_c1) || !valid_utf8(name)) {
    return std::unexpected(UserNameProblem::bad_character);
  }
  return {};
}

}  // namespace kpanel::common
