#pragma once
// Lockout arithmetic (SPEC §3, §9), as pure functions over a user's record.
// max_failures consecutive failures start a lockout of lockout << level
// (capped at lockout_max) and restart the count; the level persists until a
// success or an admin unlock. max_failures = 0 turns lockouts off.

#include <chrono>
#include <cstdint>
#include <optional>

#include "common/clock.hpp"
#include "daemon/policy.hpp"
#include "daemon/store.hpp"

namespace kpanel::daemon {

[[nodiscard]] bool is_locked(const UserRecord& record, common::TimePoint now) noexcept;

// How long the lockout at `level` (0 for the first) lasts.
[[nodiscard]] std::chrono::seconds lockout_duration(const Policy& policy,
                                                    std::uint32_t level) noexcept;

// Counts one failure; true when it started a lockout (record.locked_until is
// then set). Callers refuse locked accounts before checking, so this is never
// called while locked.
bool register_failure(UserRecord& record, const Policy& policy, common::TimePoint now) noexcept;

// A right code: failures, level and any lockout are cleared.
void register_success(UserRecord& record) noexcept;

// Failures still allowed before a lockout; nullopt when lockouts are off.
[[nodiscard]] std::optional<std::uint32_t> failures_left(const UserRecord& record,
                                                         const Policy& policy) noexcept;

}  // namespace kpanel::daemon
