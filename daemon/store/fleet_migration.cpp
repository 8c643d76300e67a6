#include "daemon/store/fleet_migration.hpp"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace kpanel::daemon {
namespace {

bool same_enrollment(const Enrollment& a, const Enrollment& b) {
  return a.secret == b.secret && a.params.algorithm == b.params.algorithm &&
         a.params.digits == b.params.digits && a.params.period == b.params.period;
}

// Folds `source` (the same enrollment) into `target`; true when it changed.
bool merge_into(UserRecord& target, const UserRecord& source) {
  bool changed = false;
  if (source.last_step && (!target.last_step || *target.last_step < *source.last_step)) {
    target.last_step = source.last_step;
    changed = true;
  }
  // Every step either copy accepted stays used.
  if (!source.used_steps.empty()) {
    const std::vector<StepRun> before = target.used_steps;
    merge_step_runs(target.used_steps, source.used_steps);
    changed = changed || target.used_steps != before;
  }
  const auto& from = source.recovery_codes;
  auto& to = target.recovery_codes;
  const bool same_codes = std::equal(from.begin(), from.end(), to.begin(), to.end(),
                                     [](const auto& a, const auto& b) { return a.hash == b.hash; });
  if (same_codes) {
    for (std::size_t i = 0; i < to.size(); ++i) {
      if (from[i].used && !to[i].used) {
        to[i].used = true;
        changed = true;
      }
    }
  }
  if (source.locked_until &&
      (!target.locked_until || *target.locked_until < *source.locked_until)) {
    target.locked_until = source.locked_until;
    target.lockout_level = std::max(target.lockout_level, source.lockout_level);
    changed = true;
  }
  return changed;
}

}  // namespace

std::expected<MigrationReport, StoreError> migrate_store(Store& from, Store& to) {
  auto records = from.list();
  if (!records) return std::unexpected(records.error());
  // Copying all but some would leave those users enrolled on no store.
  if (!records->unreadable.empty()) {
    const std::string& user = records->unreadable.front();
    return std::unexpected(StoreError{
        StoreErrorKind::corrupt,
        "the record of user '" + user + "' cannot be read (" +
            std::to_string(records->unreadable.size()) +
            " unreadable in all: see kpanel-totp admin list); clear each with kpanel-totp admin "
            "reset USER, then migrate"});
  }
  MigrationReport report;
  for (const UserRecord& source : records->records) {
    if (!source.active) {
      ++report.skipped;
      continue;
    }
    enum class Outcome : std::uint8_t { copied, present, conflict } outcome = Outcome::copied;
    auto updated = to.update(source.user, [&](UserRecord& target) {
      if (!target.active) {
        outcome = Outcome::copied;
        target = source;
        return true;
      }
      if (!same_enrollment(*target.active, *source.active)) {
        outcome = Outcome::conflict;
        return false;
      }
      outcome = Outcome::present;
      return merge_into(target, source);
    });
    if (!updated) return std::unexpected(updated.error());
    switch (outcome) {
      case Outcome::copied:
        ++report.copied;
        break;
      case Outcome::present:
        ++report.present;
        break;
      case Outcome::conflict:
        report.conflicts.push_back(source.user);
        break;
    }
  }
  return report;
}

}  // namespace kpanel::daemon
