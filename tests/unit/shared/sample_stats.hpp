#pragma once
// One admin_stats result for the codec and the tool's output tests: every
// counter and gauge a different value, so a field read in the wrong place
// shows as a wrong number.
#include <cstdint>

#include "common/protocol.hpp"

namespace kpanel::test {

inline common::protocol::AdminStatsResult sample_admin_stats(std::int64_t now) {
  common::protocol::AdminStatsResult stats;
  stats.started_at = now - 3700;
  stats.now = now;
  stats.verify_ok = 12;
  stats.verify_recovery = 1;
  stats.verify_wrong_code = 3;
  stats.verify_replayed = 2;
  stats.verify_locked = 4;
  stats.verify_malformed = 5;
  stats.verify_busy = 6;
  stats.verify_store_unavailable = 7;
  stats.verify_other = 8;
  stats.lockouts = 1;
  stats.enrollments = 9;
  stats.imports = 10;
  stats.remembered_skips = 11;
  stats.exempt_logins = 13;
  stats.grace_logins = 14;
  stats.nullok_logins = 15;
  stats.users_enrolled = 16;
  stats.users_locked = 17;
  stats.in_flight_fast = 18;
  stats.in_flight_slow = 19;
  stats.connections = 20;
  return stats;
}

}  // namespace kpanel::test
