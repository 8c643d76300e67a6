#pragma once
// What `kpanel-totp admin stats` prints: the daemon's counters and gauges as
// a human summary, one JSON object, or the Prometheus text exposition format
// (for node_exporter's textfile collector).

#include <iosfwd>
#include <string>

#include "common/protocol.hpp"

namespace kpanel::cli {

// {"started_at":ISO 8601,"uptime_seconds":N,"verifications":{"ok":N,...},
//  "lockouts":N,"enrollments":N,"imports":N,"logins_without_code":{...},
//  "users_enrolled":N,"users_locked":N,"in_flight":{"fast":N,"slow":N},"connections":N}
[[nodiscard]] std::string stats_json(const common::protocol::AdminStatsResult& stats);
// Version 0.0.4 of the text format: # HELP and # TYPE for each metric, every
// name prefixed kpanel_totp_, counters ending in _total; ends with a newline.
[[nodiscard]] std::string stats_prometheus(const common::protocol::AdminStatsResult& stats);
void print_stats(std::ostream& out, const common::protocol::AdminStatsResult& stats);

}  // namespace kpanel::cli
