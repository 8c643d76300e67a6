#pragma once
// Time as the rules see it. Production uses SystemClock; tests construct a
// ManualClock and move it, so window, replay, lockout and expiry logic is
// tested against exact instants.

#include <chrono>
#include <cstdint>
#include <string>

namespace kpanel::common {

using TimePoint = std::chrono::sys_seconds;

class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual TimePoint now() const = 0;
};

class SystemClock final : public Clock {
 public:
  [[nodiscard]] TimePoint now() const override;
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start) : now_(start) {}
  [[nodiscard]] TimePoint now() const override { return now_; }
  void set(TimePoint t) { now_ = t; }
  void advance(std::chrono::seconds by) { now_ += by; }

 private:
  TimePoint now_;
};

// Unix seconds <-> TimePoint, and ISO 8601 UTC with 'Z' ("2026-11-28T19:27:28Z").
[[nodiscard]] std::int64_t to_unix(TimePoint t) noexcept;
[[nodiscard]] TimePoint from_unix(std::int64_t seconds) noexcept;
[[nodiscard]] std::string format_iso8601(TimePoint t);

}  // namespace kpanel::common
