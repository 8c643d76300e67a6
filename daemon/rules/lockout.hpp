#pragma once
// Lockout arithmetic, as pure functions over a user's record, and the
// reservations that keep parallel slow checks inside it.
// max_failures consecutive failures start a lockout of lockout << level
// (capped at lockout_max) and restart the count; the level persists until a
// success or an admin unlock. max_failures = 0 turns lockouts off.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "common/clock.hpp"
#include "daemon/rules/policy.hpp"
#include "daemon/store/store.hpp"

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

// Slow checks (a password through PAM, a recovery code through scrypt) in
// flight per user. Each may end in a failure, and the failure is counted only
// when the check ends; so without a bound, N requests sent at once would all
// pay for a check before the first failure is counted. A check may start only
// while the failures already counted plus the checks in flight stay under
// max_failures: N parallel wrong passwords cost at most max_failures checks.
class SlowCheckReservations {
 public:
  class Reservation {
   public:
    Reservation(SlowCheckReservations& owner, std::string user)
        : owner_(&owner), user_(std::move(user)) {}
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;
    Reservation(Reservation&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), user_(std::move(other.user_)) {}
    Reservation& operator=(Reservation&& other) noexcept {
      if (this != &other) {
        end();
        owner_ = std::exchange(other.owner_, nullptr);
        user_ = std::move(other.user_);
      }
      return *this;
    }
    ~Reservation() { end(); }

   private:
    void end() noexcept {
      if (owner_ != nullptr) owner_->release(user_);
      owner_ = nullptr;
    }
    SlowCheckReservations* owner_;
    std::string user_;
  };

  // nullopt: every failure the user has left is already spoken for by a check
  // in flight (or they are locked out); try again when those end.
  [[nodiscard]] std::optional<Reservation> reserve(const std::string& user,
                                                   const UserRecord& record, const Policy& policy);

  [[nodiscard]] std::size_t in_flight(const std::string& user) const;

 private:
  void release(const std::string& user) noexcept;

  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::uint32_t> in_flight_;
};

}  // namespace kpanel::daemon
