#include "daemon/system/state_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <optional>
#include <system_error>
#include <thread>

#include "common/os_text.hpp"
#include "daemon/config/private_file.hpp"

namespace kpanel::daemon {
namespace {

using Clock = std::chrono::steady_clock;

using common::errno_text;

struct Holder {
  std::optional<pid_t> pid;
  bool stopping = false;
};

// What the holder wrote: "<pid>\n", or "<pid> stopping\n" once told to stop.
Holder read_holder(int fd) noexcept {
  std::array<char, 64> text{};
  const ssize_t got = ::pread(fd, text.data(), text.size() - 1, 0);
  Holder holder;
  if (got <= 0) return holder;
  const std::string_view content(text.data(), static_cast<std::size_t>(got));
  pid_t pid = 0;
  const auto [end, error] = std::from_chars(content.data(), content.data() + content.size(), pid);
  if (error == std::errc() && pid > 0) holder.pid = pid;
  holder.stopping =
      content.substr(static_cast<std::size_t>(end - content.data())).starts_with(" stopping");
  return holder;
}

std::string describe(const Holder& holder) {
  return holder.pid ? "kpanel-totpd (pid " + std::to_string(*holder.pid) + ")"
                    : std::string("another kpanel-totpd (its pid is not in the lock file)");
}

bool write_text(int fd, std::string_view text, bool truncate) noexcept {
  if (truncate && ::ftruncate(fd, 0) != 0) return false;
  return ::pwrite(fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size());
}

std::expected<common::UniqueFd, std::string> open_lock_file(const std::filesystem::path& dir) {
  const std::string name = dir.string();
  // The daemon creates a missing state_dir; the store checks its owner and mode.
  if (::mkdir(dir.c_str(), S_IRWXU) != 0 && errno != EEXIST) {
    const int error = errno;
    return std::unexpected("cannot create state_dir " + name + ": " + errno_text(error));
  }
  auto opened_dir = open_no_follow(dir, FileKind::directory);
  if (!opened_dir) {
    const FileIssue& issue = opened_dir.error();
    if (issue.problem == FileProblem::symlink || issue.error == ELOOP) {
      return std::unexpected("state_dir " + name +
                             " is a symbolic link, which is refused: set state_dir to the real "
                             "directory");
    }
    return std::unexpected("cannot open state_dir " + name + ": " + errno_text(issue.error));
  }
  const common::UniqueFd dir_fd = std::move(opened_dir->fd);
  const std::string file(StateLock::kFileName);
  common::UniqueFd fd(::openat(dir_fd.get(), file.c_str(),
                               O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
                               S_IRUSR | S_IWUSR));
  if (!fd.valid() && (errno == EACCES || errno == EROFS)) {
    // A state_dir read-only for now (a mount not yet writable): flock needs
    // no write access, and the daemon serves reads and recovers once it is.
    fd = common::UniqueFd(
        ::openat(dir_fd.get(), file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  }
  if (!fd.valid()) {
    const int error = errno;
    return std::unexpected("cannot open lock file " + (dir / file).string() + ": " +
                           errno_text(error));
  }
  if (!stat_opened(fd.get(), dir / file, FileKind::regular)) {
    return std::unexpected("lock file " + (dir / file).string() + " is not a regular file");
  }
  return fd;
}

}  // namespace

std::expected<StateLock, std::string> StateLock::acquire(
    const std::filesystem::path& state_dir, StateLockOptions options,
    const std::function<void(const std::string&)>& note) {
  try {
    auto fd = open_lock_file(state_dir);
    if (!fd) return std::unexpected(fd.error());
    const auto start = Clock::now();
    bool noted = false;
    for (;;) {
      if (::flock(fd->get(), LOCK_EX | LOCK_NB) == 0) break;
      const int error = errno;
      if (error == EINTR) continue;
      if (error != EWOULDBLOCK) {
        return std::unexpected("cannot lock " + (state_dir / kFileName).string() + ": " +
                               errno_text(error));
      }
      const Holder holder = read_holder(fd->get());
      const auto waited = Clock::now() - start;
      if (!holder.stopping && waited >= options.grace) {
        return std::unexpected("state_dir " + state_dir.string() + " is in use by " +
                               describe(holder) +
                               ": one daemon per state; stop that one first, or give this one "
                               "its own state_dir");
      }
      if (waited >= options.wait_for_stopping) {
        return std::unexpected("state_dir " + state_dir.string() + " is still in use by " +
                               describe(holder) + ", which is stopping; gave up after " +
                               std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                  options.wait_for_stopping)
                                                  .count()) +
                               " s");
      }
      if (holder.stopping && !noted && note) {
        note("waiting for " + describe(holder) + " to finish stopping (state_dir " +
             state_dir.string() + ")");
        noted = true;
      }
      constexpr auto kPoll = std::chrono::milliseconds(20);
      std::this_thread::sleep_for(kPoll);
    }
    // Only a name for a successor's message: a full disk must not stop the
    // daemon that holds the lock (the successor then says the pid is unknown).
    (void)write_text(fd->get(), std::to_string(::getpid()) + "\n", true);
    return StateLock(std::move(*fd));
  } catch (const std::exception& e) {
    return std::unexpected("cannot lock state_dir " + state_dir.string() + ": " + e.what());
  }
}

void StateLock::mark_stopping() noexcept {
  if (!fd_.valid()) return;
  try {
    const std::string text = std::to_string(::getpid()) + " stopping\n";
    (void)write_text(fd_.get(), text, false);
  } catch (...) {  // out of memory: the successor then waits out its grace, no worse
  }
}

}  // namespace kpanel::daemon
