#pragma once
// The counters of `admin stats`, kept where every security event passes: a
// decorator of the AuditLog (like RateLimitedAuditLog) that counts each
// recorded event, then hands it on. The daemon puts it outside the rate
// limit, so an event that is summarized instead of written still counts,
// and every outcome is counted exactly once. Lock-free (relaxed atomics):
// root's login path never waits for it.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "daemon/system/audit.hpp"

namespace kpanel::daemon {

enum class Counter : std::uint8_t {
  // verify requests by outcome
  verify_ok,        // a TOTP code accepted
  verify_recovery,  // a recovery code accepted
  verify_wrong_code,
  verify_replayed,   // a code already used (or fenced after a crash)
  verify_locked,     // refused unchecked: locked out
  verify_malformed,  // neither a code nor a recovery code: not checked, not counted as a guess
  verify_busy,       // a recovery code while one was being checked: not checked
  verify_store_unavailable,
  verify_other,  // refused before checking: not enrolled, not allowed, internal error
  lockouts,
  enrollments,  // confirmed (first ones and changes of phone, in the tool or inside a login)
  imports,      // google-authenticator files imported
  // logins let through without a code
  remembered_skips,
  exempt_logins,
  grace_logins,
  nullok_logins,
};
inline constexpr std::size_t kCounterCount = static_cast<std::size_t>(Counter::nullok_logins) + 1;

// Which counter an event moves; nullopt for events that are not counted
// (status, admin ops, clock notes, summaries).
[[nodiscard]] std::optional<Counter> counter_for(const AuditEvent& event) noexcept;

struct AuditCounts {
  std::array<std::uint64_t, kCounterCount> values{};
  [[nodiscard]] std::uint64_t operator[](Counter counter) const noexcept {
    return values.at(static_cast<std::size_t>(counter));
  }
};

class CountingAuditLog final : public AuditLog {
 public:
  explicit CountingAuditLog(AuditLog& inner) : inner_(inner) {}

  void record(const AuditEvent& event) noexcept override {
    count(event);
    inner_.record(event);
  }
  void error(std::string_view message) noexcept override { inner_.error(message); }
  void store_health(std::string_view message) noexcept override { inner_.store_health(message); }

  void count(const AuditEvent& event) noexcept;
  // Each counter read once; counters only grow, so a snapshot is never behind
  // an earlier one.
  [[nodiscard]] AuditCounts snapshot() const noexcept;

 private:
  AuditLog& inner_;
  std::array<std::atomic<std::uint64_t>, kCounterCount> counts_{};
};

}  // namespace kpanel::daemon
