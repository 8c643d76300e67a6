#pragma once
// operator<< for the protocol's enums, so Boost.Test can print them in failures.

#include <ostream>

#include "common/protocol.hpp"
#include "daemon/system/audit.hpp"

namespace kpanel::common::protocol {
inline std::ostream& operator<<(std::ostream& out, Status status) {
  return out << to_string(status);
}
inline std::ostream& operator<<(std::ostream& out, LoginDecision decision) {
  return out << to_string(decision);
}
}  // namespace kpanel::common::protocol

namespace kpanel::daemon {
inline std::ostream& operator<<(std::ostream& out, AuditEventKind kind) {
  return out << to_string(kind);
}
}  // namespace kpanel::daemon
