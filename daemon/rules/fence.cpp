#include "daemon/rules/fence.hpp"

#include <algorithm>
#include <utility>

namespace kpanel::daemon {

std::string_view to_string(LastStop stop) noexcept {
  switch (stop) {
    case LastStop::first_start:
      return "first start";
    case LastStop::clean:
      return "clean stop";
    case LastStop::daemon_crash:
      return "daemon crash";
    case LastStop::host_crash:
      return "unclean host stop";
    case LastStop::restored:
      return "restored backup";
  }
  return "unknown";
}

LastStop classify_last_stop(const std::optional<RunState>& stored, std::string_view boot_id,
                            bool restored) noexcept {
  if (restored) return LastStop::restored;
  if (!stored) return LastStop::first_start;
  if (!stored->running) return LastStop::clean;
  return stored->boot_id == boot_id ? LastStop::daemon_crash : LastStop::host_crash;
}

std::int64_t fence_time(std::int64_t now, std::int64_t high_water) noexcept {
  return std::max(now, high_water + kHighWaterInterval.count() + kFenceMargin.count());
}

std::int64_t last_fenced_step(const Fence& fence, std::uint32_t period) noexcept {
  if (period == 0) return 0;  // no such enrollment (params are checked); nothing fenced
  // floor, not truncation: unix time is never negative here, but be exact.
  const auto p = static_cast<std::int64_t>(period);
  std::int64_t step = fence.time / p;
  if (fence.time % p != 0 && fence.time < 0) --step;
  return step + static_cast<std::int64_t>(fence.window);
}

bool fenced(const std::optional<Fence>& fence, std::int64_t step, std::uint32_t period) noexcept {
  return fence && period != 0 && step <= last_fenced_step(*fence, period);
}

RunState start_state(const std::optional<RunState>& stored, LastStop last_stop, std::string boot_id,
                     std::int64_t now, unsigned window) {
  RunState next;
  if (stored) next = *stored;
  next.boot_id = std::move(boot_id);
  next.running = true;
  if (last_stop == LastStop::host_crash || last_stop == LastStop::restored) {
    Fence fence{fence_time(now, next.high_water), window};
    if (next.fence) {  // a restart during a fence: the later end, the wider window
      fence.time = std::max(fence.time, next.fence->time);
      fence.window = std::max(fence.window, next.fence->window);
    }
    next.fence = fence;
  }
  next.high_water = next_high_water(next.high_water, now);
  return next;
}

std::int64_t next_high_water(std::int64_t previous, std::int64_t now) noexcept {
  return std::max(previous, now);
}

}  // namespace kpanel::daemon
