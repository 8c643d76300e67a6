#pragma once
// One daemon per state: an exclusive flock(2) on a lock file in state_dir,
// held for the whole life of the process (the kernel drops it when the
// process ends, however it ends). The file names the holder's pid, and
// "stopping" once it has been told to stop, so a successor knows whether to
// wait for it or to refuse.
//
// A restart that overlaps (an admin starting the new daemon while the old
// one finishes the requests in flight) waits up to `wait_for_stopping` for
// the old one to exit; a second daemon next to a running one is refused
// after `grace` (long enough for a SIGTERM sent just before to be handled).

#include <sys/types.h>

#include <chrono>
#include <expected>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "common/unique_fd.hpp"

namespace kpanel::daemon {

struct StateLockOptions {
  // Longer than a stopping daemon can take: a request's io deadline (5 s),
  // its handler, and the reply's deadline (5 s).
  std::chrono::milliseconds wait_for_stopping{15000};
  std::chrono::milliseconds grace{1000};
};

class StateLock {
 public:
  static constexpr std::string_view kFileName = "kpanel-totpd.lock";

  // Creates state_dir (0700) when missing, then takes the lock. `note` gets
  // one line when the lock is held by a daemon that is stopping (we wait).
  static std::expected<StateLock, std::string> acquire(
      const std::filesystem::path& state_dir, StateLockOptions options = {},
      const std::function<void(const std::string&)>& note = {});

  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;
  StateLock(StateLock&&) noexcept = default;
  StateLock& operator=(StateLock&&) noexcept = default;
  ~StateLock() = default;

  // Tells a successor waiting for the lock that it is coming free.
  void mark_stopping() noexcept;

 private:
  explicit StateLock(common::UniqueFd fd) : fd_(std::move(fd)) {}

  common::UniqueFd fd_;
};

}  // namespace kpanel::daemon
