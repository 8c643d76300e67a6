#pragma once
// The knobs the rules obey, filled from the config file (daemon/config/config.hpp).
// Defaults here are the documented ones (kpanel-totpd.conf(5)); the config
// table repeats none of them.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "common/totp.hpp"
#include "daemon/rules/fence.hpp"

namespace kpanel::daemon {

struct Policy {
  std::string issuer = "Kapsule";
  common::TotpParams totp{};  // for new enrollments
  unsigned window = 1;        // accepted steps either side of now
  unsigned max_failures = 5;
  std::chrono::seconds lockout{300};
  std::chrono::seconds lockout_max{3600};
  unsigned recovery_codes = 10;
  std::chrono::seconds enrollment_timeout{600};
  std::string admin_group;                             // empty: root only
  std::optional<std::chrono::sys_days> enforce_after;  // empty: never
  std::string exempt_group;                            // empty: nobody
  std::chrono::seconds remember{0};                    // remembered logins; 0: off
  // Not from the config: the crash fence in force (fence.hpp), set by the
  // daemon at start through Rules::set_fence and kept across reloads.
  std::optional<Fence> fence;
  // Not from the config either: whose remembered-login windows are ours
  // (remember.hpp), set at start (Rules::set_host_id) and kept across reloads.
  std::string host_id;
};

}  // namespace kpanel::daemon
