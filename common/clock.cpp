#include "common/clock.hpp"

#include <array>
#include <cstdio>

namespace kpanel::common {

TimePoint SystemClock::now() const {
  return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
}

std::int64_t to_unix(TimePoint t) noexcept { return t.time_since_epoch().count(); }

TimePoint from_unix(std::int64_t seconds) noexcept {
  return TimePoint{std::chrono::seconds{seconds}};
}

std::string format_iso8601(TimePoint t) {
  // Calendar arithmetic from <chrono> rather than gmtime_r: no time_t range
  // limits and no dependence on the process's TZ.
  const auto day = std::chrono::floor<std::chrono::days>(t);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::hh_mm_ss hms{t - day};
  std::array<char, 32> out{};
  const int n = std::snprintf(
      out.data(), out.size(), "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
      static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
      static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
      static_cast<int>(hms.seconds().count()));
  if (n <= 0) {
    return {};
  }
  return {out.data(),
          static_cast<std::size_t>(n) < out.size() ? static_cast<std::size_t>(n) : out.size() - 1};
}

}  // namespace kpanel::common
