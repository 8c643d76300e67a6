#pragma once
// kpanel-totpd --restore FILE: puts a snapshot made by `kpanel-totp admin
// backup` in place of this host's state, with the daemon stopped. It checks
// the file (a SQLite database that passes its integrity check, marked as a
// snapshot, a schema this daemon knows, secrets that open with key_file),
// prints what the audit log shows happened since the snapshot (those changes
// are undone by the restore and must be redone), asks, and installs it.
// The daemon, opening a database marked as a snapshot, fences TOTP codes.

#include <cstdint>
#include <expected>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "daemon/daemon.hpp"
#include "daemon/store/secret_box.hpp"

namespace kpanel::daemon {

struct RestoreOptions {
  std::filesystem::path file;
  std::vector<std::filesystem::path> audit_logs;  // empty: /var/log/auth.log when it exists
  bool yes = false;                               // no question asked
};

inline constexpr std::string_view kDefaultAuditLog = "/var/log/auth.log";

// What a valid snapshot holds.
struct SnapshotInfo {
  std::int64_t taken_at = 0;  // unix seconds
  std::int64_t users = 0;
  std::int64_t schema_version = 0;
};

// The checks on a snapshot's bytes; the error is one line saying what is wrong.
[[nodiscard]] std::expected<SnapshotInfo, std::string> check_snapshot(
    std::span<const std::uint8_t> bytes, const SecretBox& box);

// 0 restored, 1 refused (not root, daemon running, not a snapshot, wrong key,
// the admin said no), as --restore exits.
[[nodiscard]] int restore_snapshot(const DaemonOptions& options,
                                   const RestoreOptions& restore) noexcept;

}  // namespace kpanel::daemon
