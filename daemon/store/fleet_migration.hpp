#pragma once
// Copying a host's state into the fleet's shared store
// (`kpanel-totpd --migrate-to-postgresql DSN`), so hosts join a fleet
// without their users enrolling again. Both stores seal with the same key.

#include <cstddef>
#include <expected>
#include <string>
#include <vector>

#include "daemon/store/store.hpp"

namespace kpanel::daemon {

struct MigrationReport {
  std::size_t copied = 0;              // enrolled here, not in the target: copied whole
  std::size_t present = 0;             // the same enrollment already there (replay state merged)
  std::size_t skipped = 0;             // no active enrollment here: nothing worth copying
  std::vector<std::string> conflicts;  // enrolled in the target with another secret: untouched
};

// Copies every user of `from` with an active enrollment into `to`, each in one
// atomic update of `to`. Idempotent: a second run finds them all present and
// writes nothing. A user enrolled in `to` with a different secret (or TOTP
// parameters) is a conflict and left as it is; the caller reports it. For a
// user already present, the later last_step and the used recovery codes of
// both sides are kept, so a code used on either side stays used.
std::expected<MigrationReport, StoreError> migrate_store(Store& from, Store& to);

}  // namespace kpanel::daemon
