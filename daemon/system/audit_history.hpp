#pragma once
// Reading kpanel-totpd's audit lines back from a syslog file, for a restore
// from backup: which irreversible changes (resets, disables, recovery codes
// used, enrollments, new recovery codes) happened after the snapshot and so
// are undone by restoring it, and must be redone by the admin.
//
// A line is `TIMESTAMP HOST kpanel-totpd[PID]: event=... user=... outcome=...`
// (audit.cpp writes the key=value part). TIMESTAMP is RFC 3339 as Debian 12's
// rsyslog writes it (2026-12-05T01:28:30.123456+00:00) or journalctl's
// short-iso (2026-12-05T01:28:30+0000). Anything else is skipped: lines of
// other programs, unknown events, lines over kMaxLineBytes. The file is read
// as untrusted text: what is reported is re-escaped to printable ASCII.

#include <cstddef>
#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kpanel::daemon::audit_history {

inline constexpr std::size_t kMaxLineBytes = 8192;

// Unix seconds of a leading RFC 3339 / short-iso timestamp; `rest` gets what
// follows it (after one space).
[[nodiscard]] std::optional<std::int64_t> parse_timestamp(std::string_view line,
                                                          std::string_view* rest = nullptr);

enum class ChangeKind : std::uint8_t {
  reset,                 // an admin removed the user's enrollment
  disable,               // the user turned the second factor off
  recovery_code_used,    // a recovery code was consumed
  enrollment_confirmed,  // a new enrollment (or a replaced phone) was confirmed
  recovery_regenerated,  // new recovery codes were issued
};

struct Change {
  std::int64_t at = 0;  // unix seconds
  ChangeKind kind = ChangeKind::reset;
  std::string user;  // printable ASCII (escaped as the audit log writes it)
};

// One line: the change it records, or nullopt (not kpanel-totpd's, not an
// audit line, not a change a restore undoes, not a success, malformed).
[[nodiscard]] std::optional<Change> parse_line(std::string_view line);

struct History {
  std::vector<Change> changes;              // at or after `since`, in file order
  std::optional<std::int64_t> first_stamp;  // earliest timestamp of any line read
  std::size_t lines = 0;                    // lines read
  std::size_t overlong = 0;                 // lines skipped for their length
};

// Every change at or after `since` (a change in the snapshot's own second
// may or may not be in it: listed, to be safe). Reads to the end of `in`.
[[nodiscard]] History read_changes(std::istream& in, std::int64_t since);

// One line for the admin: what happened and what to do now.
[[nodiscard]] std::string describe(const Change& change);

}  // namespace kpanel::daemon::audit_history
