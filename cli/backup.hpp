#pragma once
// The SQLite side of `kpanel-totp admin backup`: a consistent snapshot of the
// daemon's live database, taken read-only while the daemon runs.

#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <vector>

namespace kpanel::cli::backup {

// The table that marks a database as a restored backup: the daemon, opening
// one, fences TOTP codes as after a host crash (a code accepted after the
// snapshot must not work again), logs the snapshot time and drops the table.
inline constexpr const char* kSnapshotTable = "snapshot";

struct Snapshot {
  std::vector<std::uint8_t> bytes;  // a whole SQLite database file
  std::int64_t users = 0;           // rows in its users table
};

// `database` opened read-only (never through a symbolic link), copied page by
// page with SQLite's online backup (one read transaction: the committed state,
// including what is still only in the -wal) into memory, the snapshot table
// added with one row (`taken_at`, unix seconds), and serialized. The error is
// one line.
[[nodiscard]] std::expected<Snapshot, std::string> take_snapshot(
    const std::filesystem::path& database, std::int64_t taken_at);

}  // namespace kpanel::cli::backup
