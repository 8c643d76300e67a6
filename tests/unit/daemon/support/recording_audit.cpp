#include "recording_audit.hpp"

#include <algorithm>
#include <cstdlib>
#include <exception>

namespace kpanel::daemon::test {

void RecordingAuditLog::record(const AuditEvent& event) noexcept {
  try {
    std::string line = format_audit_event(event);
    const std::lock_guard lock(mutex_);
    events_.push_back(event);
    lines_.push_back(std::move(line));
  } catch (...) {
    std::terminate();  // a test log that loses events would hide bugs
  }
}

void RecordingAuditLog::error(std::string_view message) noexcept {
  try {
    const std::lock_guard lock(mutex_);
    errors_.emplace_back(message);
  } catch (...) {
    std::terminate();
  }
}

void RecordingAuditLog::store_health(std::string_view message) noexcept {
  try {
    const std::lock_guard lock(mutex_);
    errors_.emplace_back(message);
    store_health_.emplace_back(message);
  } catch (...) {
    std::terminate();
  }
}

std::vector<std::string> RecordingAuditLog::store_health_lines() const {
  const std::lock_guard lock(mutex_);
  return store_health_;
}

std::vector<AuditEvent> RecordingAuditLog::events() const {
  const std::lock_guard lock(mutex_);
  return events_;
}

std::vector<std::string> RecordingAuditLog::lines() const {
  const std::lock_guard lock(mutex_);
  return lines_;
}

std::vector<std::string> RecordingAuditLog::errors() const {
  const std::lock_guard lock(mutex_);
  return errors_;
}

std::string RecordingAuditLog::text() const {
  const std::lock_guard lock(mutex_);
  std::string all;
  for (const auto& line : lines_) {
    all.append(line).push_back('\n');
  }
  for (const auto& line : errors_) {
    all.append(line).push_back('\n');
  }
  return all;
}

std::size_t RecordingAuditLog::count(AuditEventKind kind) const {
  const std::lock_guard lock(mutex_);
  return static_cast<std::size_t>(std::count_if(
      events_.begin(), events_.end(), [kind](const AuditEvent& e) { return e.kind == kind; }));
}

std::optional<AuditEvent> RecordingAuditLog::last(AuditEventKind kind) const {
  const std::lock_guard lock(mutex_);
  const auto found = std::find_if(events_.rbegin(), events_.rend(),
                                  [kind](const AuditEvent& e) { return e.kind == kind; });
  if (found == events_.rend()) {
    return std::nullopt;
  }
  return *found;
}

void RecordingAuditLog::clear() {
  const std::lock_guard lock(mutex_);
  events_.clear();
  lines_.clear();
  errors_.clear();
}

}  // namespace kpanel::daemon::test
