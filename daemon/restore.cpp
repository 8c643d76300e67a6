#include "daemon/restore.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string_view>

#include "common/atomic_file.hpp"
#include "common/clock.hpp"
#include "common/os_text.hpp"
#include "daemon/config/private_file.hpp"
#include "daemon/store/sql_rows.hpp"
#include "daemon/store/store_row.hpp"
#include "daemon/store/store_sqlite.hpp"
#include "daemon/system/audit_history.hpp"
#include "daemon/system/state_lock.hpp"

namespace kpanel::daemon {
namespace {

// A snapshot of 100,000 users is tens of MiB; far more is not one of ours.
constexpr std::size_t kMaxSnapshotBytes = std::size_t{1} << 30U;
constexpr std::string_view kSqliteMagic{"SQLite format 3\0", 16};
// Header bytes 18 and 19: the file format's read and write versions, 2 for WAL.
constexpr std::size_t kFormatVersionOffset = 18;
constexpr std::size_t kMaxAnswerBytes = 64;

struct DatabaseCloser {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using Database = std::unique_ptr<sqlite3, DatabaseCloser>;
using Statement = std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)>;

Statement prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) {
    sqlite3_finalize(raw);
    raw = nullptr;
  }
  return {raw, sqlite3_finalize};
}

std::optional<std::int64_t> single_integer(sqlite3* db, const char* sql) {
  const Statement statement = prepare(db, sql);
  if (!statement || sqlite3_step(statement.get()) != SQLITE_ROW) return std::nullopt;
  return sqlite3_column_int64(statement.get(), 0);
}

// A read-only in-memory database over a copy of `bytes`, marked as not WAL so
// it reads without -wal and -shm files.
std::expected<Database, std::string> open_copy(std::span<const std::uint8_t> bytes) {
  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(":memory:", &raw, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close_v2(raw);
    return std::unexpected(std::string("out of memory"));
  }
  Database db(raw);
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  auto* copy = static_cast<std::uint8_t*>(sqlite3_malloc64(bytes.size()));
  if (copy == nullptr) return std::unexpected(std::string("out of memory"));
  std::memcpy(copy, bytes.data(), bytes.size());
  copy[kFormatVersionOffset] = 1;      // NOLINT(*-pointer-arithmetic)
  copy[kFormatVersionOffset + 1] = 1;  // NOLINT(*-pointer-arithmetic)
  const auto size = static_cast<sqlite3_int64>(bytes.size());
  if (sqlite3_deserialize(db.get(), "main", copy, size, size,
                          SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_READONLY) !=
      SQLITE_OK) {
    return std::unexpected(std::string("cannot be opened as a SQLite database"));
  }
  return db;
}

// Every sealed secret opens with `box` (not only the first: a file put
// together from two hosts would otherwise pass).
// A snapshot from before the binding (schema_version below it) holds
// secrets sealed the legacy way; the daemon binds them at its next start.
std::expected<void, std::string> check_secrets(sqlite3* db, const SecretBox& box,
                                               std::int64_t schema_version) {
  const bool bound = schema_version >= sql::bound_schema_version(sql::Dialect::sqlite);
  const Statement statement = prepare(db,
                                      "SELECT user, active_secret, pending_secret, enrolled_at,"
                                      " pending_expires_at FROM users"
                                      " WHERE active_secret IS NOT NULL OR pending_secret IS NOT "
                                      "NULL");
  if (!statement) return std::unexpected(std::string("has no readable users table"));
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(statement.get())) == SQLITE_ROW) {
    const auto* text = sqlite3_column_text(statement.get(), 0);
    const std::string user = text != nullptr ? reinterpret_cast<const char*>(text) : "";  // NOLINT
    for (const auto& [column, slot] : {std::pair{1, "active"}, std::pair{2, "pending"}}) {
      if (sqlite3_column_type(statement.get(), column) == SQLITE_NULL) continue;
      const auto* blob =
          static_cast<const std::uint8_t*>(sqlite3_column_blob(statement.get(), column));
      const auto size = static_cast<std::size_t>(sqlite3_column_bytes(statement.get(), column));
      const std::span<const std::uint8_t> sealed(blob, blob == nullptr ? 0 : size);
      const std::int64_t at = sqlite3_column_int64(statement.get(), column + 2);
      if (!box.open(sealed, bound ? store_row::sealed_secret_aad(slot, user, at)
                                  : store_row::legacy_sealed_secret_aad(slot, user))) {
        return std::unexpected("holds secrets that do not open with key_file (the " +
                               std::string(slot) + " secret of user '" + user +
                               "'): restore the key_file that was backed up with it first");
      }
    }
  }
  if (rc != SQLITE_DONE) return std::unexpected(std::string("cannot read its users table"));
  return {};
}

void say(const std::string& text) { std::cout << text << '\n'; }

int refuse(const std::string& message) {
  std::cout.flush();
  std::cerr << "kpanel-totpd: " << message << '\n';
  return 1;
}

std::expected<std::vector<std::uint8_t>, std::string> read_snapshot(
    const std::filesystem::path& file) {
  auto opened = open_no_follow(file, FileKind::regular);
  if (!opened) {
    const FileIssue& issue = opened.error();
    if (issue.problem == FileProblem::symlink) return std::unexpected("is a symbolic link");
    if (issue.problem == FileProblem::not_regular) return std::unexpected("is not a regular file");
    return std::unexpected("cannot be opened: " + common::errno_text(issue.error));
  }
  const auto size = static_cast<std::size_t>(opened->info.st_size);
  if (size > kMaxSnapshotBytes) return std::unexpected("is too large for a kpanel-totp snapshot");
  std::vector<std::uint8_t> bytes(size);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t got = ::read(opened->fd.get(), bytes.data() + done, size - done);  // NOLINT
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return std::unexpected("cannot be read: " + common::errno_text(errno));
    if (got == 0) return std::unexpected(std::string("changed while it was read"));
    done += static_cast<std::size_t>(got);
  }
  return bytes;
}

// What the audit log shows since the snapshot; false when a named log cannot be read.
bool report_changes(const RestoreOptions& restore, std::int64_t since) {
  std::vector<std::filesystem::path> sources = restore.audit_logs;
  const std::string when = common::format_iso8601(common::from_unix(since));
  if (sources.empty()) {
    struct stat info {};
    if (::stat(std::string(kDefaultAuditLog).c_str(), &info) != 0) {
      say("No audit log to read (no " + std::string(kDefaultAuditLog) +
          "; name one with --audit-log, e.g. the output of journalctl -o short-iso -t "
          "kpanel-totpd): this cannot tell what changed since " +
          when +
          ". Check by other means for resets, disables, recovery codes used, enrollments and "
          "new recovery codes since then; the restore undoes them.");
      return true;
    }
    sources.emplace_back(kDefaultAuditLog);
  }
  std::vector<audit_history::Change> changes;
  std::optional<std::int64_t> first;
  for (const auto& source : sources) {
    std::ifstream in(source, std::ios::binary);
    if (!in) {
      (void)refuse("cannot read the audit log " + source.string() + ": " +
                   common::errno_text(errno));
      return false;
    }
    audit_history::History history = audit_history::read_changes(in, since);
    std::ranges::move(history.changes, std::back_inserter(changes));
    if (history.first_stamp)
      first = std::min(first.value_or(*history.first_stamp), *history.first_stamp);
  }
  std::ranges::stable_sort(changes, {}, &audit_history::Change::at);
  std::string names;
  for (const auto& source : sources)
    names.append(names.empty() ? "" : ", ").append(source.string());
  if (!first || *first > since) {
    say("Warning: " + names +
        (first ? " starts at " + common::format_iso8601(common::from_unix(*first))
               : std::string(" has no timestamped line")) +
        ", after the snapshot (" + when +
        "): changes in between are not in it (a rotated file? add it with another --audit-log).");
  }
  if (changes.empty()) {
    say("The audit log (" + names +
        ") shows no change since the snapshot that the restore undoes.");
    return true;
  }
  say("Since the snapshot, the audit log (" + names + ") shows " + std::to_string(changes.size()) +
      (changes.size() == 1 ? " change" : " changes") +
      " that the restore undoes; redo them once kpanel-totpd runs again:");
  for (const auto& change : changes) say("  " + audit_history::describe(change));
  return true;
}

// A terminal's yes, or --yes; anything else is a no.
bool confirmed(const RestoreOptions& restore) {
  if (restore.yes) return true;
  if (::isatty(STDIN_FILENO) == 0) {
    (void)refuse(
        "stdin is not a terminal: after reading the above, run again with --yes to "
        "restore; nothing changed");
    return false;
  }
  std::cout << "Restore this snapshot? [y/N] " << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer) || answer.size() > kMaxAnswerBytes) answer.clear();
  std::ranges::transform(answer, answer.begin(), [](unsigned char c) { return std::tolower(c); });
  if (answer == "y" || answer == "yes") return true;
  say("Not restored; nothing changed.");
  return false;
}

// Owner of the new state.db: the current one's, else state_dir's (the daemon's user).
std::pair<uid_t, gid_t> state_owner(const std::filesystem::path& state_dir,
                                    const std::filesystem::path& database) {
  struct stat info {};
  if (::lstat(database.c_str(), &info) == 0 && S_ISREG(info.st_mode)) {
    return {info.st_uid, info.st_gid};
  }
  if (::stat(state_dir.c_str(), &info) == 0) return {info.st_uid, info.st_gid};
  return {::geteuid(), ::getegid()};
}

// An old -wal applied to the new database would corrupt it: gone before the rename.
std::expected<void, std::string> remove_companions(const std::filesystem::path& database) {
  for (const char* suffix : {"-wal", "-shm", "-journal"}) {
    const std::string path = database.string() + suffix;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return std::unexpected("cannot remove " + path + ": " + common::errno_text(errno));
    }
  }
  return {};
}

// key_file read as the daemon's user (its effective uid), so it passes the
// daemon's own checks (owned by that uid, 0600). Never made here: the
// snapshot's secrets need the key backed up with it.
std::expected<SecretBox, std::string> load_key_as(const std::filesystem::path& key_file,
                                                  uid_t owner) {
  const bool switch_uid = owner != ::geteuid();
  if (switch_uid && ::seteuid(owner) != 0) {
    return std::unexpected("cannot act as uid " + std::to_string(owner) +
                           " to read key_file: " + common::errno_text(errno));
  }
  auto box =
      SecretBox::load_or_create(key_file, [] { return std::expected<bool, std::string>(true); });
  if (switch_uid && ::seteuid(0) != 0) {
    return std::unexpected("cannot become root again: " + common::errno_text(errno));
  }
  return box;
}

}  // namespace

std::expected<SnapshotInfo, std::string> check_snapshot(std::span<const std::uint8_t> bytes,
                                                        const SecretBox& box) {
  const std::string_view head(reinterpret_cast<const char*>(bytes.data()),  // NOLINT
                              std::min(bytes.size(), kSqliteMagic.size()));
  if (bytes.size() < 100 || head != kSqliteMagic) {
    return std::unexpected(std::string("is not a SQLite database"));
  }
  auto db = open_copy(bytes);
  if (!db) return std::unexpected(db.error());
  {
    const Statement check = prepare(db->get(), "PRAGMA integrity_check(1)");
    const unsigned char* text = nullptr;
    if (!check || sqlite3_step(check.get()) != SQLITE_ROW ||
        (text = sqlite3_column_text(check.get(), 0)) == nullptr ||
        std::string_view(reinterpret_cast<const char*>(text)) != "ok") {  // NOLINT
      return std::unexpected(std::string("fails SQLite's integrity check (damaged or truncated)"));
    }
  }
  SnapshotInfo info;
  const auto marked = single_integer(db->get(),
                                     "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                     "name = 'snapshot'");
  const auto taken = single_integer(db->get(), "SELECT max(taken_at) FROM snapshot");
  if (!marked || *marked == 0 || !taken) {
    return std::unexpected(std::string(
        "is not a kpanel-totp snapshot (no snapshot table; make one with kpanel-totp admin "
        "backup)"));
  }
  info.taken_at = *taken;
  info.schema_version = single_integer(db->get(), "PRAGMA user_version").value_or(0);
  if (info.schema_version > kSqliteSchemaVersion) {
    return std::unexpected("was written by a newer kpanel-totpd (schema version " +
                           std::to_string(info.schema_version) + ", this one knows " +
                           std::to_string(kSqliteSchemaVersion) + "): upgrade kpanel-totp first");
  }
  const auto users = single_integer(db->get(), "SELECT count(*) FROM users");
  if (info.schema_version < 1 || !users) {
    return std::unexpected(std::string("holds no kpanel-totp state (no users table)"));
  }
  info.users = *users;
  if (auto opened = check_secrets(db->get(), box, info.schema_version); !opened)
    return std::unexpected(opened.error());
  return info;
}

// Long: the steps of the procedure in order, each with its refusal.
int restore_snapshot(const DaemonOptions& options, const RestoreOptions& restore) noexcept {
  try {
    if (::geteuid() != 0) {
      return refuse("--restore needs root (it replaces the state in state_dir): run it with sudo");
    }
    const auto config = load_daemon_config(options);
    if (!config) {
      for (const auto& problem : config.error()) (void)refuse(problem);
      return 1;
    }
    if (config->store == StoreBackend::postgresql) {
      return refuse(
          "store = postgresql: the state is in PostgreSQL; restore it there (from "
          "pg_dump), not with --restore");
    }
    // Made by the daemon, owned by its user: root must not make it here.
    struct stat dir_info {};
    if (::lstat(config->state_dir.c_str(), &dir_info) != 0 || !S_ISDIR(dir_info.st_mode)) {
      return refuse("state_dir " + config->state_dir.string() +
                    " is not there: with key_file in place, start kpanel-totpd once (it makes "
                    "state_dir for its user), stop it, then restore");
    }
    // Held to the end: no daemon starts on the state while it is replaced.
    auto lock = StateLock::acquire(config->state_dir);
    if (!lock) {
      return refuse(lock.error() + " (stop kpanel-totpd before restoring; nothing changed)");
    }
    const std::filesystem::path database = config->state_dir / "state.db";
    const auto [uid, gid] = state_owner(config->state_dir, database);
    // A lock file this run made is root's: the daemon's user must be able to write its pid.
    const std::filesystem::path lock_file = config->state_dir / StateLock::kFileName;
    if (::lchown(lock_file.c_str(), uid, gid) != 0) {
      std::cerr << "kpanel-totpd: cannot chown " << lock_file.string() << ": "
                << common::errno_text(errno) << " (the daemon still locks it)\n";
    }
    const std::string file = restore.file.string();
    auto bytes = read_snapshot(restore.file);
    if (!bytes) return refuse(file + " " + bytes.error() + "; nothing changed");
    auto box = load_key_as(config->key_file, uid);
    if (!box) return refuse(box.error());
    auto info = check_snapshot(*bytes, *box);
    if (!info) return refuse(file + " " + info.error() + "; nothing changed");
    const std::string when = common::format_iso8601(common::from_unix(info->taken_at));
    say(file + ": a kpanel-totp snapshot of " + std::to_string(info->users) +
        (info->users == 1 ? " user" : " users") + " taken at " + when + "; its secrets open with " +
        config->key_file.string() + ".");
    if (!report_changes(restore, info->taken_at)) return 1;
    if (!confirmed(restore)) return 1;
    common::AtomicWriteOptions write{.mode = 0600, .uid = uid, .gid = gid, .before_rename = {}};
    write.before_rename = [&database] { return remove_companions(database); };
    if (auto written = common::write_file_atomically(database, *bytes, write); !written) {
      return refuse("not restored: " + written.error());
    }
    say("Restored " + database.string() + " from the snapshot of " + when + ".");
    say("Next: start kpanel-totpd (systemctl start kpanel-totpd.socket, or kpanel-totpd-ctl start "
        "without systemd). Opening a restored snapshot, "
        "it refuses the codes of the current time window once (the snapshot cannot know which "
        "were used since), so users wait for their app's next code, about a minute; recovery "
        "codes work at once. Then redo the changes listed above.");
    std::cout.flush();
    return std::cout ? 0 : 1;
  } catch (const std::exception& e) {
    return refuse(e.what());
  }
}

}  // namespace kpanel::daemon
