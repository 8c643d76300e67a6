#pragma once
// An AuditLog that keeps every event, its formatted line (exactly what the
// daemon would write) and every error message, for tests to inspect.

#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "daemon/system/audit.hpp"

namespace kpanel::daemon::test {

class RecordingAuditLog final : public AuditLog {
 public:
  void record(const AuditEvent& event) noexcept override;
  void error(std::string_view message) noexcept override;
  // Kept with the errors (it is one, too) and on its own.
  void store_health(std::string_view message) noexcept override;

  [[nodiscard]] std::vector<AuditEvent> events() const;
  [[nodiscard]] std::vector<std::string> lines() const;
  [[nodiscard]] std::vector<std::string> errors() const;
  [[nodiscard]] std::vector<std::string> store_health_lines() const;
  // Every line and error message, one per line: what a reader of the logs sees.
  [[nodiscard]] std::string text() const;
  [[nodiscard]] std::size_t count(AuditEventKind kind) const;
  [[nodiscard]] std::optional<AuditEvent> last(AuditEventKind kind) const;
  void clear();

 private:
  mutable std::mutex mutex_;
  std::vector<AuditEvent> events_;
  std::vector<std::string> lines_;
  std::vector<std::string> errors_;
  std::vector<std::string> store_health_;
};

}  // namespace kpanel::daemon::test
