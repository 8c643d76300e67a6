#pragma once
// The crash fence. Accepted TOTP steps and failure counts are committed
// without waiting for the disk (Durability::deferred): a killed daemon loses
// none of them (they are in the kernel's page cache), but a host that stops
// uncleanly (power loss, kernel crash) may lose the last few seconds of them,
// and a code accepted then would be fresh again. So after such a stop, and
// after a backup is restored, the daemon refuses every TOTP code whose step
// is not later than the fence: fence_time, the later of the clock at start
// and what the database last knew durably (its high-water time) plus the
// part of time that was not yet synced, plus `window` steps. Users wait for
// their next code (at most about a minute); recovery codes still work.
//
// Pure arithmetic and decisions here; the SQLite store keeps the state
// (store_sqlite.hpp), the daemon reads the boot id and refreshes the
// high-water time (daemon.cpp), the rules refuse fenced codes (checks.cpp).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kpanel::daemon {

// How often the daemon writes its high-water time durably, which also makes
// every deferred write before it durable: the most a host crash can lose.
inline constexpr std::chrono::seconds kHighWaterInterval{5};
// Slack for a refresh that ran late (a busy host, a slow disk) and for the
// clock read at the refresh itself.
inline constexpr std::chrono::seconds kFenceMargin{5};

struct Fence {
  std::int64_t time = 0;  // unix seconds
  unsigned window = 0;    // the configured window when the fence was set
  friend bool operator==(const Fence&, const Fence&) = default;
};

// What the database says about the daemon's runs.
struct RunState {
  std::string boot_id;          // the kernel's boot id the daemon last ran under
  bool running = false;         // set at start, cleared by a clean stop
  std::int64_t high_water = 0;  // unix seconds, durable, never decreases
  std::optional<Fence> fence;   // in force since the last unclean host stop or restore
  friend bool operator==(const RunState&, const RunState&) = default;
};

enum class LastStop : std::uint8_t {
  first_start,   // no run recorded: a new database
  clean,         // stopped cleanly
  daemon_crash,  // still marked running under this boot: only the process died (kill -9);
                 // the page cache kept every deferred write
  host_crash,    // marked running under another boot: the host stopped uncleanly
  restored,      // the database is a restored backup (it holds a `snapshot` table)
};
[[nodiscard]] std::string_view to_string(LastStop stop) noexcept;

[[nodiscard]] LastStop classify_last_stop(const std::optional<RunState>& stored,
                                          std::string_view boot_id, bool restored) noexcept;

// The later of now and the high-water time plus what may not have been synced
// after it: a clock that lost time while the host was down (a dead RTC
// battery) cannot put the fence before a code accepted before the stop.
[[nodiscard]] std::int64_t fence_time(std::int64_t now, std::int64_t high_water) noexcept;

// The last step (of a secret with this period) a fence refuses.
[[nodiscard]] std::int64_t last_fenced_step(const Fence& fence, std::uint32_t period) noexcept;
[[nodiscard]] bool fenced(const std::optional<Fence>& fence, std::int64_t step,
                          std::uint32_t period) noexcept;

// The run state to write at start. A new fence after a host crash or a
// restore (`high_water` includes a snapshot's time), merged with one still on
// record so that a restart during a fence keeps it; otherwise the recorded
// fence stays as it was. Marks the run as running under `boot_id`.
[[nodiscard]] RunState start_state(const std::optional<RunState>& stored, LastStop last_stop,
                                   std::string boot_id, std::int64_t now, unsigned window);

// A high-water time never goes back, whatever the clock does.
[[nodiscard]] std::int64_t next_high_water(std::int64_t previous, std::int64_t now) noexcept;

}  // namespace kpanel::daemon
