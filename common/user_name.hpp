#pragma once
// The one rule for a login name as the protocol carries it, shared by the codec
// (both directions), the PAM module (PAM_USER before asking the daemon) and the
// tool (--user and admin commands), so none accepts a name another refuses.

#include <cstdint>
#include <expected>
#include <string_view>

namespace kpanel::common {

enum class UserNameProblem : std::uint8_t {
  empty,
  too_long,       // more than protocol::kMaxUserLength bytes
  bad_character,  // '/', ':', a control character (C0, DEL, C1) or not UTF-8
};

// Not empty, at most protocol::kMaxUserLength bytes, strict UTF-8 without '/',
// ':' or a control character (C0, DEL, C1): '/' and ':' separate paths and
// passwd fields, so no real login name holds them.
[[nodiscard]] std::expected<void, UserNameProblem> check_user_name(std::string_view name) noexcept;
[[nodiscard]] inline bool valid_user_name(std::string_view name) noexcept {
  return check_user_name(name).has_value();
}

}  // namespace kpanel::common
