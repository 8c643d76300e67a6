#pragma once
// kpanel-totp admin doctor: what it found and where it reads. The checks live
// in doctor.cpp (daemon config, key file, socket file), doctor_pam.cpp (PAM
// stacks), doctor_sshd.cpp (sshd settings), doctor_model.cpp (the PAM stack
// run as libpam runs it) and doctor_ssh_logins.cpp (what SSH logins need);
// cli/cmd_doctor.cpp asks the daemon and prints. Nothing here throws: a file that cannot be read is
// a finding or a skipped check, never an exception.

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/os_text.hpp"
#include "daemon/config/config.hpp"

namespace kpanel::cli::doctor {

enum class Severity : std::uint8_t { error, warning };
[[nodiscard]] std::string_view to_string(Severity severity) noexcept;

struct Finding {
  Severity severity = Severity::error;
  std::string check;     // "daemon", "socket", "key_file", "daemon_config", "pam", "sshd"
  std::string message;   // one line: names the file:line and what to change
  std::string file;      // empty: not about one file
  std::size_t line = 0;  // 0: the whole file (or no file)
};

// Everything one run found, in the order it was found, plus the lines that
// say what passed ("ok:") and what could not be checked ("skipped:").
class Report {
 public:
  enum class Kind : std::uint8_t { ok, skipped, finding };
  struct Entry {
    Kind kind = Kind::ok;
    Finding finding{};  // for ok/skipped only `message` is used
  };

  void ok(std::string message);
  void skipped(std::string message);
  void add(Finding finding);
  void error(std::string check, std::string message, std::string file = {}, std::size_t line = 0);
  void warning(std::string check, std::string message, std::string file = {}, std::size_t line = 0);

  [[nodiscard]] const std::vector<Entry>& entries() const noexcept { return entries_; }
  [[nodiscard]] std::vector<Finding> findings() const;
  [[nodiscard]] std::size_t count(Severity severity) const noexcept;

 private:
  std::vector<Entry> entries_;
};

// The files the doctor reads, under a root: "/" for this host, or a directory
// holding a copy of one (tests, chroots, disk images). Paths are given as the
// host would see them ("/etc/pam.d/sshd"); messages show the real path.
class Tree {
 public:
  explicit Tree(std::filesystem::path root = "/");

  [[nodiscard]] bool is_host() const noexcept { return host_; }
  [[nodiscard]] const std::filesystem::path& root() const noexcept { return root_; }
  // ROOT + logical path.
  [[nodiscard]] std::filesystem::path real(std::string_view logical) const;
  // For messages: the real path as a string.
  [[nodiscard]] std::string shown(std::string_view logical) const;

  // A regular file's contents (at most 1 MiB); the errno on failure.
  [[nodiscard]] std::expected<std::string, int> read(std::string_view logical) const;
  // lstat(); the errno on failure.
  [[nodiscard]] std::expected<struct stat, int> lstat(std::string_view logical) const;
  [[nodiscard]] bool exists(std::string_view logical) const;
  // glob(3) of a logical pattern; logical paths, sorted.
  [[nodiscard]] std::vector<std::string> glob(std::string_view logical_pattern) const;

 private:
  std::filesystem::path root_;
  bool host_ = true;
};

// ---- the daemon's config (only what the doctor needs) -----------------------
// Read with the daemon's own library (daemon/config): the same key table,
// defaults and validation, so the doctor cannot drift from kpanel-totpd.

inline constexpr std::string_view kDaemonConfigPath = daemon::kDefaultConfigPath;

// What enforce_after means at the time the doctor runs.
enum class Enforcement : std::uint8_t {
  none,      // not set (or not a date: the daemon refuses it): nullok lets users with no
             // enrollment through
  grace,     // before the date: users with no enrollment are let through, nullok or not
  enforced,  // from 00:00 UTC that day: nullok lets nobody through any more
};

struct DaemonSettings {
  // The file was read, or it does not exist (so the daemon uses the defaults);
  // false when it could not be read and the values below are guesses.
  bool known = false;
  std::string socket;  // empty: the default
  std::string key_file = daemon::DaemonConfig{}.key_file.string();
  std::string enforce_after;          // empty: never
  std::string exempt_group;           // empty: nobody skips the code
  std::int64_t remember_seconds = 0;  // 0: stacks with `remember` still ask every time
  Enforcement enforcement = Enforcement::none;
  // What kpanel-totpd refuses in the file (it would not start); the values
  // above are the ones it accepts, the others keep their defaults.
  std::vector<daemon::ConfigProblem> problems;
};

// enforce_after (YYYY-MM-DD) at `now` (Unix seconds).
[[nodiscard]] Enforcement enforcement_at(std::string_view date, std::int64_t now);

// The daemon's parser over the text: every value it accepts, every problem it
// finds. `now` (Unix seconds) settles what enforce_after means.
[[nodiscard]] DaemonSettings parse_daemon_config(std::string_view text, std::int64_t now = 0);
// Reads kDaemonConfigPath under the tree; a missing file means the defaults,
// an unreadable one is reported as skipped.
[[nodiscard]] DaemonSettings load_daemon_config(const Tree& tree, std::int64_t now, Report& report);

// ---- files ------------------------------------------------------------------

// strerror(), thread-safe.
using common::errno_text;

// uid of the daemon's system user on this host, if it exists.
[[nodiscard]] std::optional<uid_t> daemon_user_uid();
// "root", "kpanel-totp" or "uid N".
[[nodiscard]] std::string owner_name(uid_t uid);

// The secret-encryption key: exists, regular file (not a link), 0600 or
// stricter, owned by root or kpanel-totp, daemon::kKeyFileBytes long; judged
// with the daemon's private-file checks (daemon/config/private_file.hpp).
void check_key_file(const Tree& tree, std::string_view logical, Report& report);

// Codes are checked against the host's clock: warns when the kernel says no
// time service disciplines it (adjtimex STA_UNSYNC), e.g. chrony or
// systemd-timesyncd not running. Host only: a --root tree has no clock.
void check_time_sync(Report& report);
// The daemon socket as a file: a socket, mode 0666, owned by root or
// kpanel-totp, its directory searchable by everyone. Returns false when the
// file is there but the module and the tool would refuse it (owner, type), so
// the caller does not report the same thing twice. A missing file is left to
// the connection check.
bool check_socket_file(const std::filesystem::path& path, Report& report);

}  // namespace kpanel::cli::doctor
