#include "doctor/doctor.hpp"

#include <fcntl.h>
#include <glob.h>
#include <pwd.h>
#include <sys/timex.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <utility>

#include "common/daemon_client.hpp"
#include "common/os_text.hpp"
#include "daemon/config/private_file.hpp"

namespace kpanel::cli::doctor {

namespace {

constexpr std::size_t kMaxFileBytes = std::size_t{1} << 20U;
using common::octal_mode;

bool trusted_owner(uid_t uid) {
  if (uid == 0) {
    return true;
  }
  const std::optional<uid_t> daemon = daemon_user_uid();
  return daemon && *daemon == uid;
}

}  // namespace

std::string_view to_string(Severity severity) noexcept {
  return severity == Severity::error ? "error" : "warning";
}

// ---- Report -------------------------------------------------------------------

void Report::ok(std::string message) {
  Entry entry{Kind::ok, {}};
  entry.finding.message = std::move(message);
  entries_.push_back(std::move(entry));
}

void Report::skipped(std::string message) {
  Entry entry{Kind::skipped, {}};
  entry.finding.message = std::move(message);
  entries_.push_back(std::move(entry));
}

void Report::add(Finding finding) {
  // A file included by several services (common-auth) would otherwise be
  // reported once per service.
  const bool seen = std::ranges::any_of(entries_, [&finding](const Entry& entry) {
    return entry.kind == Kind::finding && entry.finding.severity == finding.severity &&
           entry.finding.check == finding.check && entry.finding.message == finding.message &&
           entry.finding.file == finding.file && entry.finding.line == finding.line;
  });
  if (!seen) {
    entries_.push_back(Entry{Kind::finding, std::move(finding)});
  }
}

void Report::error(std::string check, std::string message, std::string file, std::size_t line) {
  add(Finding{Severity::error, std::move(check), std::move(message), std::move(file), line});
}

void Report::warning(std::string check, std::string message, std::string file, std::size_t line) {
  add(Finding{Severity::warning, std::move(check), std::move(message), std::move(file), line});
}

std::vector<Finding> Report::findings() const {
  std::vector<Finding> out;
  for (const Entry& entry : entries_) {
    if (entry.kind == Kind::finding) {
      out.push_back(entry.finding);
    }
  }
  return out;
}

std::size_t Report::count(Severity severity) const noexcept {
  return static_cast<std::size_t>(std::ranges::count_if(entries_, [severity](const Entry& entry) {
    return entry.kind == Kind::finding && entry.finding.severity == severity;
  }));
}

// ---- Tree ---------------------------------------------------------------------

Tree::Tree(std::filesystem::path root) : root_(std::move(root)) {
  if (root_.empty()) {
    root_ = "/";
  }
  root_ = root_.lexically_normal();
  host_ = root_ == "/";
}

std::filesystem::path Tree::real(std::string_view logical) const {
  std::filesystem::path path(logical);
  if (host_) {
    return path;
  }
  return (root_ / path.relative_path()).lexically_normal();
}

std::string Tree::shown(std::string_view logical) const { return real(logical).string(); }

std::expected<std::string, int> Tree::read(std::string_view logical) const {
  const std::filesystem::path path = real(logical);
  // O_NONBLOCK: a FIFO planted where a config file belongs must not hang the check.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    return std::unexpected(errno);
  }
  struct stat info {};
  std::expected<std::string, int> result = std::unexpected(EIO);
  if (::fstat(fd, &info) != 0) {
    result = std::unexpected(errno);
  } else if (S_ISDIR(info.st_mode)) {
    result = std::unexpected(EISDIR);
  } else if (!S_ISREG(info.st_mode)) {
    result = std::unexpected(EINVAL);
  } else if (static_cast<std::uintmax_t>(info.st_size) > kMaxFileBytes) {
    result = std::unexpected(EFBIG);
  } else {
    std::string text;
    std::array<char, 8192> buffer{};
    for (;;) {
      const ssize_t got = ::read(fd, buffer.data(), buffer.size());
      if (got < 0 && errno == EINTR) {
        continue;
      }
      if (got < 0) {
        result = std::unexpected(errno);
        break;
      }
      if (got == 0) {
        result = std::move(text);
        break;
      }
      text.append(buffer.data(), static_cast<std::size_t>(got));
      if (text.size() > kMaxFileBytes) {
        result = std::unexpected(EFBIG);
        break;
      }
    }
  }
  ::close(fd);
  return result;
}

std::expected<struct stat, int> Tree::lstat(std::string_view logical) const {
  struct stat info {};
  if (::lstat(real(logical).c_str(), &info) != 0) {
    return std::unexpected(errno);
  }
  return info;
}

bool Tree::exists(std::string_view logical) const {
  struct stat info {};
  return ::stat(real(logical).c_str(), &info) == 0;
}

std::vector<std::string> Tree::glob(std::string_view logical_pattern) const {
  std::vector<std::string> out;
  const std::string pattern = real(logical_pattern).string();
  glob_t found{};
  // glob(3) is not thread safe; the tool is single-threaded.
  if (::glob(pattern.c_str(), 0, nullptr, &found) == 0) {  // NOLINT(concurrency-mt-unsafe)
    const std::string prefix = host_ ? std::string() : root_.string();
    for (std::size_t i = 0; i < found.gl_pathc; ++i) {
      std::string path(found.gl_pathv[i]);  // NOLINT(*-pointer-arithmetic): glob's array
      if (!prefix.empty() && path.starts_with(prefix)) {
        path.erase(0, prefix.size());
        if (!path.starts_with('/')) {
          path.insert(path.begin(), '/');
        }
      }
      out.push_back(std::move(path));
    }
  }
  ::globfree(&found);
  std::ranges::sort(out);  // glob sorts already; sshd relies on that order, so be sure
  return out;
}

// ---- daemon config -------------------------------------------------------------

Enforcement enforcement_at(std::string_view date, std::int64_t now) {
  if (date.empty()) {
    return Enforcement::none;
  }
  int year = 0;
  unsigned month = 0;
  unsigned day = 0;
  const auto number = [&date](std::size_t from, std::size_t length, auto& out) {
    const char* const first = date.data() + from;
    const auto [stop, problem] = std::from_chars(first, first + length, out);
    return problem == std::errc{} && stop == first + length;
  };
  if (date.size() != 10 || date[4] != '-' || date[7] != '-' || !number(0, 4, year) ||
      !number(5, 2, month) || !number(8, 2, day)) {
    return Enforcement::none;
  }
  const std::chrono::year_month_day ymd{std::chrono::year{year}, std::chrono::month{month},
                                        std::chrono::day{day}};
  if (!ymd.ok()) {
    return Enforcement::none;
  }
  // The daemon enforces from 00:00 UTC that day.
  const std::int64_t from =
      std::chrono::sys_seconds{std::chrono::sys_days{ymd}}.time_since_epoch().count();
  return now >= from ? Enforcement::enforced : Enforcement::grace;
}

DaemonSettings parse_daemon_config(std::string_view text, std::int64_t now) {
  DaemonSettings settings;
  settings.known = true;
  daemon::ConfigReading reading = daemon::read_config_text(text);
  const auto set = [&reading](std::string_view key) {
    return std::ranges::find(reading.keys_set, key) != reading.keys_set.end();
  };
  if (set("socket")) {
    settings.socket = daemon::config_value(reading.config, "socket");
  }
  settings.key_file = daemon::config_value(reading.config, "key_file");
  settings.enforce_after = daemon::config_value(reading.config, "enforce_after");
  settings.exempt_group = daemon::config_value(reading.config, "exempt_group");
  settings.remember_seconds = reading.config.policy.remember.count();
  settings.enforcement = enforcement_at(settings.enforce_after, now);
  settings.problems = std::move(reading.problems);
  return settings;
}

DaemonSettings load_daemon_config(const Tree& tree, std::int64_t now, Report& report) {
  auto text = tree.read(kDaemonConfigPath);
  if (!text) {
    if (text.error() != ENOENT) {
      report.skipped("cannot read " + tree.shown(kDaemonConfigPath) + " (" +
                     errno_text(text.error()) + "); assuming the default socket and key_file");
      return DaemonSettings{};
    }
    DaemonSettings defaults;
    defaults.known = true;
    return defaults;
  }
  return parse_daemon_config(*text, now);
}

// ---- files ------------------------------------------------------------------------

std::optional<uid_t> daemon_user_uid() {
  std::array<char, 4096> buffer{};
  struct passwd entry {};
  struct passwd* found = nullptr;
  const std::string name(common::kDaemonUserName);
  if (::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) == 0 &&
      found != nullptr) {
    return found->pw_uid;
  }
  return std::nullopt;
}

std::string owner_name(uid_t uid) {
  if (uid == 0) {
    return "root";
  }
  const std::optional<uid_t> daemon = daemon_user_uid();
  if (daemon && *daemon == uid) {
    return std::string(common::kDaemonUserName);
  }
  return "uid " + std::to_string(uid);
}

void check_key_file(const Tree& tree, std::string_view logical, Report& report) {
  const std::string shown = tree.shown(logical);
  const auto info = daemon::lstat_no_follow(tree.real(logical), daemon::FileKind::regular);
  if (!info && (info.error().problem == daemon::FileProblem::missing ||
                info.error().problem == daemon::FileProblem::cannot_stat)) {
    const int error = info.error().error;
    if (error == EACCES) {
      report.skipped(shown + ": cannot look at it (permission denied; run as root)");
    } else if (error == ENOENT) {
      report.error("key_file",
                   shown +
                       " does not exist: kpanel-totpd cannot open the stored secrets without it, "
                       "so enrolled users cannot log in; restore it from a backup (a new key is "
                       "made only on the daemon's first start)",
                   shown);
    } else {
      report.error("key_file", "cannot look at " + shown + ": " + errno_text(error), shown);
    }
    return;
  }
  const std::size_t before = report.entries().size();
  if (!info) {
    if (info.error().problem == daemon::FileProblem::symlink) {
      // The daemon opens the key with O_NOFOLLOW, so a link makes it refuse to start.
      report.error("key_file",
                   shown +
                       " is a symbolic link: kpanel-totpd refuses it and does not start; put "
                       "the file itself there (or point key_file at it)",
                   shown);
      return;
    }
    report.error("key_file",
                 shown +
                     " is not a regular file: kpanel-totpd does not start; restore the key "
                     "file from a backup",
                 shown);
    return;
  }
  const std::optional<uid_t> daemon_uid = daemon_user_uid();
  const auto issues = daemon::owner_and_mode_issues(
      *info, tree.real(logical), daemon::OwnerAndMode{daemon_uid.value_or(0), true});
  const auto has = [&issues](daemon::FileProblem problem) {
    return std::ranges::any_of(
        issues, [problem](const daemon::FileIssue& issue) { return issue.problem == problem; });
  };
  if (has(daemon::FileProblem::too_open)) {
    report.error("key_file",
                 shown + " has mode " + octal_mode(info->st_mode) +
                     ": others may read the key that protects every TOTP secret; chmod 600 " +
                     shown + " and treat the key as exposed",
                 shown);
  }
  if (has(daemon::FileProblem::wrong_owner)) {
    report.error("key_file",
                 shown + " is owned by " + owner_name(info->st_uid) +
                     ": kpanel-totpd refuses a key it does not own and does not start; chown " +
                     std::string(common::kDaemonUserName) + " " + shown +
                     " (or root when the daemon runs as root)",
                 shown);
  }
  if (info->st_size != static_cast<off_t>(daemon::kKeyFileBytes)) {
    report.error("key_file",
                 shown + " holds " + std::to_string(info->st_size) + " bytes, not " +
                     std::to_string(daemon::kKeyFileBytes) +
                     ": kpanel-totpd does not start; restore it from a backup (a new key "
                     "cannot open the stored secrets)",
                 shown);
  }
  if (report.entries().size() == before) {
    report.ok(shown + ": mode " + octal_mode(info->st_mode) + ", owner " +
              owner_name(info->st_uid));
  }
}

bool check_socket_file(const std::filesystem::path& path, Report& report) {
  const std::string shown = path.string();
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    if (errno == EACCES) {
      report.skipped(shown + ": cannot look at the socket file (permission denied)");
    }
    return true;  // missing: the connection check says so
  }
  if (!S_ISSOCK(info.st_mode)) {
    report.error("socket",
                 shown +
                     " is not a socket: the module and the tool cannot reach kpanel-totpd, "
                     "so logins fail; remove it and restart kpanel-totpd",
                 shown);
    return false;
  }
  bool trusted = true;
  const std::size_t before = report.entries().size();
  if (!trusted_owner(info.st_uid)) {
    report.error(
        "socket",
        shown + " is owned by " + owner_name(info.st_uid) + ", not root or " +
            std::string(common::kDaemonUserName) +
            ": the module and the tool refuse to talk to it, so every login fails; "
            "make sure kpanel-totpd made it, or point --socket and socket= at the real one",
        shown);
    trusted = false;
  }
  // Authorization is by peer credentials, so every user must be able to connect:
  // a narrower mode refuses the logins of everyone it leaves out.
  constexpr mode_t kAllReadWrite = S_IRUSR | S_IWUSR | S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH;
  if ((info.st_mode & kAllReadWrite) != kAllReadWrite) {
    report.error("socket",
                 shown + " has mode " + octal_mode(info.st_mode) +
                     ": users who cannot write to it cannot log in; it must be 0666 "
                     "(SocketMode=0666 in kpanel-totpd.socket)",
                 shown);
  }
  const std::filesystem::path directory = path.parent_path();
  struct stat parent {};
  if (!directory.empty() && ::stat(directory.c_str(), &parent) == 0 &&
      (parent.st_mode & S_IXOTH) == 0) {
    report.error("socket",
                 directory.string() + " has mode " + octal_mode(parent.st_mode) +
                     ": users cannot reach the socket in it, so their logins fail; chmod 755 " +
                     directory.string(),
                 directory.string());
  }
  if (report.entries().size() == before) {
    report.ok(shown + ": a socket, mode " + octal_mode(info.st_mode) + ", owner " +
              owner_name(info.st_uid));
  }
  return trusted;
}

void check_time_sync(Report& report) {
  timex clock_state{};
  const int state = ::adjtimex(&clock_state);
  if (state == -1) {
    report.skipped("time sync: adjtimex failed, not checked");
    return;
  }
  if (state == TIME_ERROR || (clock_state.status & STA_UNSYNC) != 0) {
    report.warning("time",
                   "the system clock is not synchronized: codes are checked against it; run "
                   "chrony or systemd-timesyncd (timedatectl set-ntp true)");
    return;
  }
  report.ok("the system clock is synchronized");
}

}  // namespace kpanel::cli::doctor
