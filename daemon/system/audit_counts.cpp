#include "daemon/system/audit_counts.hpp"

namespace kpanel::daemon {
namespace {

using common::protocol::Status;

Counter verify_counter(const AuditEvent& event) noexcept {
  switch (event.outcome) {
    case Status::ok:
      return event.recovery_code_used ? Counter::verify_recovery : Counter::verify_ok;
    case Status::wrong_code:
      return Counter::verify_wrong_code;
    case Status::replayed:
      return Counter::verify_replayed;
    case Status::locked:
      return Counter::verify_locked;
    case Status::malformed_code:
      return Counter::verify_malformed;
    case Status::busy:
      return Counter::verify_busy;
    case Status::store_unavailable:
      return Counter::verify_store_unavailable;
    default:
      return Counter::verify_other;
  }
}

}  // namespace

std::optional<Counter> counter_for(const AuditEvent& event) noexcept {
  const bool ok = event.outcome == Status::ok;
  switch (event.kind) {
    case AuditEventKind::verify:
      return verify_counter(event);
    case AuditEventKind::lockout:
      return Counter::lockouts;
    case AuditEventKind::enroll_confirm:
      return ok ? std::optional(Counter::enrollments) : std::nullopt;
    case AuditEventKind::import:
      return ok ? std::optional(Counter::imports) : std::nullopt;
    case AuditEventKind::remembered_login:
      return ok ? std::optional(Counter::remembered_skips) : std::nullopt;
    case AuditEventKind::exempt_login:
      return ok ? std::optional(Counter::exempt_logins) : std::nullopt;
    case AuditEventKind::grace_login:
      return ok ? std::optional(Counter::grace_logins) : std::nullopt;
    case AuditEventKind::nullok_login:
      return ok ? std::optional(Counter::nullok_logins) : std::nullopt;
    default:
      return std::nullopt;
  }
}

void CountingAuditLog::count(const AuditEvent& event) noexcept {
  if (const auto counter = counter_for(event)) {
    counts_.at(static_cast<std::size_t>(*counter)).fetch_add(1, std::memory_order_relaxed);
  }
}

AuditCounts CountingAuditLog::snapshot() const noexcept {
  AuditCounts counts;
  for (std::size_t i = 0; i < kCounterCount; ++i) {
    counts.values.at(i) = counts_.at(i).load(std::memory_order_relaxed);
  }
  return counts;
}

}  // namespace kpanel::daemon
