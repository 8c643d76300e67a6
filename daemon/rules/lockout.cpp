#include "daemon/rules/lockout.hpp"

#include <algorithm>
#include <limits>

namespace kpanel::daemon {

bool is_locked(const UserRecord& record, common::TimePoint now) noexcept {
  return record.locked_until.has_value() && now < *record.locked_until;
}

std::chrono::seconds lockout_duration(const Policy& policy, std::uint32_t level) noexcept {
  const std::chrono::seconds cap = std::max(policy.lockout_max, std::chrono::seconds{0});
  std::chrono::seconds duration = std::clamp(policy.lockout, std::chrono::seconds{0}, cap);
  // Doubling by repeated steps rather than a shift: no overflow, no shift past 63 bits.
  for (std::uint32_t i = 0; i < level && duration > std::chrono::seconds{0} && duration < cap;
       ++i) {
    duration = duration > cap / 2 ? cap : duration * 2;
  }
  return duration;
}

bool register_failure(UserRecord& record, const Policy& policy, common::TimePoint now) noexcept {
  if (record.locked_until && !is_locked(record, now)) {
    record.locked_until.reset();  // expired
  }
  if (policy.max_failures == 0) {
    return false;
  }
  if (record.failures < std::numeric_limits<std::uint32_t>::max()) {
    ++record.failures;
  }
  if (record.failures < policy.max_failures) {
    return false;
  }
  record.locked_until = now + lockout_duration(policy, record.lockout_level);
  record.failures = 0;
  if (record.lockout_level < std::numeric_limits<std::uint32_t>::max()) {
    ++record.lockout_level;
  }
  return true;
}

void register_success(UserRecord& record) noexcept {
  record.failures = 0;
  record.lockout_level = 0;
  record.locked_until.reset();
}

std::optional<std::uint32_t> failures_left(const UserRecord& record,
                                           const Policy& policy) noexcept {
  if (policy.max_failures == 0) {
    return std::nullopt;
  }
  return policy.max_failures - std::min(record.failures, policy.max_failures);
}

std::optional<SlowCheckReservations::Reservation> SlowCheckReservations::reserve(
    const std::string& user, const UserRecord& record, const Policy& policy) {
  const std::lock_guard lock(mutex_);
  std::uint32_t& count = in_flight_[user];
  // With lockouts off there is no count to keep inside; one check at a time
  // per user still bounds what parallel requests can cost.
  const std::uint64_t limit = policy.max_failures == 0 ? 1 : policy.max_failures;
  if (std::uint64_t{record.failures} + count >= limit) {
    if (count == 0) in_flight_.erase(user);
    return std::nullopt;
  }
  ++count;
  return std::optional<Reservation>(std::in_place, *this, user);
}

std::size_t SlowCheckReservations::in_flight(const std::string& user) const {
  const std::lock_guard lock(mutex_);
  const auto it = in_flight_.find(user);
  return it == in_flight_.end() ? 0 : it->second;
}

void SlowCheckReservations::release(const std::string& user) noexcept {
  const std::lock_guard lock(mutex_);
  const auto it = in_flight_.find(user);
  if (it != in_flight_.end() && --it->second == 0) in_flight_.erase(it);
}

}  // namespace kpanel::daemon
