#pragma once
// Remembered logins: after a login with a code or a recovery code on a stack
// with the module's `remember` option, the same user from the same source
// skips the code until the window ends. Off unless both the daemon's
// `remember_seconds` and the module's `remember` are set.
//
// A window is kept in the user's record, tagged with the host that opened it
// (every host of a fleet sharing a PostgreSQL store keeps its own: a login on
// one host never lets the user skip the code on another). It has a fixed
// length from the login that opened it: a skip does not extend it, so a
// window always ends `remember_seconds` after the user last typed a code from
// that source. A shorter `remember_seconds` after a reload shortens every
// open window at once. It ends early at a lockout, reset, disable,
// `enroll --replace` or forget; and after an unclean host stop (the crash
// fence, fence.hpp) a window opened before the fence is never honoured, since
// the lockout or forget that ended it may be what the crash lost.
//
// Pure functions over the record's list; the rules decide when they apply.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/rules/fence.hpp"

namespace kpanel::daemon {

// The longest window an admin may configure (a day).
inline constexpr std::int64_t kMaxRememberSeconds = 86400;
// Windows one host keeps per user: the oldest goes first.
inline constexpr std::size_t kMaxWindowsPerHost = 16;
// Windows a record keeps for all hosts together (a fleet), oldest first out.
inline constexpr std::size_t kMaxWindows = 64;

struct RememberedLogin {
  std::string host;        // the host that opened it (Policy::host_id)
  std::string source;      // where the login came from (the module's source)
  std::int64_t from = 0;   // unix seconds: the login with a code
  std::int64_t until = 0;  // unix seconds: from + remember_seconds at the time
  friend bool operator==(const RememberedLogin&, const RememberedLogin&) = default;
};

// When `window` ends under the current policy: its own end, or sooner when
// remember_seconds has been shortened since it opened.
[[nodiscard]] std::int64_t window_end(const RememberedLogin& window,
                                      std::chrono::seconds remember) noexcept;

// Whether `window` lets this host skip the code at `now`.
[[nodiscard]] bool window_open(const RememberedLogin& window, std::string_view host,
                               std::int64_t now, std::chrono::seconds remember,
                               const std::optional<Fence>& fence) noexcept;

// The open window of `host` for `source`, if any.
[[nodiscard]] const RememberedLogin* find_window(const std::vector<RememberedLogin>& windows,
                                                 std::string_view host, std::string_view source,
                                                 std::int64_t now, std::chrono::seconds remember,
                                                 const std::optional<Fence>& fence) noexcept;

// Opens (or restarts) the window of `host` for `source` at `now`; drops the
// host's ended windows and, past the bounds, the oldest ones.
void open_window(std::vector<RememberedLogin>& windows, std::string_view host,
                 std::string_view source, std::int64_t now, std::chrono::seconds remember);

// The stored form (one line per window: from, until, host, source; host and
// source percent-encoded) and back. Nullopt for a value that does not decode.
[[nodiscard]] std::string encode_windows(const std::vector<RememberedLogin>& windows);
[[nodiscard]] std::optional<std::vector<RememberedLogin>> decode_windows(std::string_view stored);

}  // namespace kpanel::daemon
