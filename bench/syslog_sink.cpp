#include "bench/syslog_sink.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <system_error>

namespace kpanel::bench {
namespace {

// NUL-terminated: a string literal.
constexpr std::string_view kDevLog = "/dev/log";

sockaddr_un dev_log_address() {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, kDevLog.data(), kDevLog.size() + 1);
  return address;
}

// Whether a process listens on /dev/log: a datagram socket connects to it.
bool someone_listens() {
  const int probe = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return false;
  const sockaddr_un address = dev_log_address();
  const bool connected =
      ::connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  ::close(probe);
  return connected;
}

}  // namespace

SyslogSink::SyslogSink() {
  struct stat info {};
  const bool exists = ::lstat(kDevLog.data(), &info) == 0;
  if (exists && S_ISSOCK(info.st_mode) && someone_listens()) {
    owner_ = Owner::host;
    return;
  }
  if (exists && !S_ISSOCK(info.st_mode)) {
    problem_ = "/dev/log is not a socket: left alone, syslog lines are lost";
    return;
  }
  // Absent, or a socket left behind by a syslog daemon that is gone (nobody
  // can receive on it): ours for the run.
  if (exists) ::unlink(kDevLog.data());
  socket_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const sockaddr_un address = dev_log_address();
  if (socket_ < 0 ||
      ::bind(socket_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      ::chmod(kDevLog.data(), 0666) != 0 || ::pipe2(stop_.data(), O_CLOEXEC) != 0) {
    problem_ = "cannot bind /dev/log (" + std::generic_category().message(errno) +
               "): syslog lines are lost";
    if (socket_ >= 0) ::close(socket_);
    socket_ = -1;
    ::unlink(kDevLog.data());
    return;
  }
  owner_ = Owner::suite;
  thread_ = std::thread([this] { drain(); });
}

SyslogSink::~SyslogSink() {
  if (thread_.joinable()) {
    const char byte = 'x';
    [[maybe_unused]] const ssize_t woken = ::write(stop_[1], &byte, 1);
    thread_.join();
  }
  if (socket_ >= 0) {
    ::unlink(kDevLog.data());
    ::close(socket_);
  }
  for (const int fd : stop_) {
    if (fd >= 0) ::close(fd);
  }
}

void SyslogSink::drain() noexcept {
  std::array<char, 8192> line{};
  std::array<pollfd, 2> entries{pollfd{.fd = socket_, .events = POLLIN, .revents = 0},
                                pollfd{.fd = stop_[0], .events = POLLIN, .revents = 0}};
  for (;;) {
    if (::poll(entries.data(), entries.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (entries[1].revents != 0) return;
    while (::recv(socket_, line.data(), line.size(), MSG_DONTWAIT) >= 0) {
      lines_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

std::string SyslogSink::description() const {
  switch (owner_) {
    case Owner::host:
      return "the host's syslog daemon (/dev/log)";
    case Owner::suite:
      return "no syslog daemon here: the suite bound /dev/log and discarded " +
             std::to_string(lines_.load()) + " lines (as journald would receive them)";
    case Owner::nobody:
      break;
  }
  return problem_;
}

}  // namespace kpanel::bench
