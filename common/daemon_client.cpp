#include "common/daemon_client.hpp"

#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <span>
#include <vector>

#include "common/unique_fd.hpp"

namespace kpanel::common {
namespace {

using Clock = std::chrono::steady_clock;
using Failure = std::unexpected<ClientError>;
using Step = std::expected<void, ClientError>;

constexpr std::size_t kMaxPasswdBuffer = std::size_t{1024} * 1024;
constexpr std::chrono::milliseconds kLongestTimeout = std::chrono::hours{24};

// Stands for "this host has no daemon user": (uid_t)-1 is never a real uid.
constexpr uid_t kNoUid = static_cast<uid_t>(-1);

// The daemon's system user, or kNoUid. Root is trusted regardless. A plain
// uid, not std::optional: g++ -O2 compared an empty optional's uninitialized
// payload before testing it, which valgrind reports (valgrind_pam_flows).
uid_t daemon_uid() {
  const std::string name(kDaemonUserName);
  const long hint = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::size_t size = hint > 0 ? static_cast<std::size_t>(hint) : 1024;
  for (;;) {
    std::vector<char> buffer(size);
    passwd entry{};
    passwd* found = nullptr;
    const int rc = ::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (rc == ERANGE && size < kMaxPasswdBuffer) {
      size *= 2;
      continue;
    }
    if (rc != 0 || found == nullptr) {
      return kNoUid;
    }
    return entry.pw_uid;
  }
}

// Who may be at the other end: root, without a lookup, or the daemon user,
// looked up once per exchange and only when a non-root owner is seen. The
// lookup is on every login's path: ~6 µs when "files" has the user, ~60 µs
// when every NSS module (libnss_systemd) must say it has not.
class TrustedUids {
 public:
  bool trusted(uid_t uid) {
    if (uid == 0) {
      return true;
    }
    if (!looked_up_) {
      daemon_ = daemon_uid();
      looked_up_ = true;
    }
    return daemon_ != kNoUid && uid == daemon_;
  }

 private:
  // Not std::optional, for the reason daemon_uid() gives.
  uid_t daemon_ = kNoUid;
  bool looked_up_ = false;
};

// Milliseconds left before the deadline, rounded up; 0 once it has passed.
int remaining_ms(Clock::time_point deadline) noexcept {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) {
    return 0;
  }
  return static_cast<int>(std::min<decltype(left)>(left, INT_MAX));
}

// Waits until `fd` is ready for `events` (or has an error the next call reports).
Step wait_for(int fd, short events, Clock::time_point deadline) noexcept {
  for (;;) {
    const int left = remaining_ms(deadline);
    if (left == 0) {
      return Failure(ClientError::timeout);
    }
    pollfd entry{.fd = fd, .events = events, .revents = 0};
    const int rc = ::poll(&entry, 1, left);
    if (rc > 0) {
      return {};
    }
    if (rc < 0 && errno != EINTR) {
      return Failure(ClientError::io_error);
    }
  }
}

Step connect_before(int fd, const sockaddr_un& address, Clock::time_point deadline) noexcept {
  for (;;) {
    const int left = remaining_ms(deadline);
    if (left == 0) {
      return Failure(ClientError::timeout);
    }
    // AF_UNIX connect never returns EINPROGRESS: it succeeds at once or, while
    // the listener's backlog is full, blocks for at most SO_SNDTIMEO (EAGAIN).
    const timeval limit{.tv_sec = left / 1000,
                        .tv_usec = static_cast<suseconds_t>(left % 1000) * 1000};
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit) != 0) {
      return Failure(ClientError::io_error);
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
      return {};
    }
    switch (errno) {
      case EINTR:
        continue;
      case EAGAIN:
        // The backlog stayed full until the deadline: a daemon is there but
        // overloaded (or stopped), which is not "nobody listening".
        return Failure(ClientError::timeout);
      case ENOENT:
      case ECONNREFUSED:
        return Failure(ClientError::unreachable);
      default:
        return Failure(ClientError::io_error);
    }
  }
}

// Both try first and poll only when the socket is not ready: a request fits
// an empty socket buffer, and an answer is often all there by the time its
// header is read, so a call usually makes one poll, not four.
Step send_all(int fd, std::span<const std::uint8_t> data, Clock::time_point deadline) noexcept {
  while (!data.empty()) {
    // MSG_NOSIGNAL: a daemon that went away must not SIGPIPE sshd.
    const ssize_t sent = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent >= 0) {
      data = data.subspan(static_cast<std::size_t>(sent));
      continue;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN) {
      return Failure(ClientError::io_error);
    }
    if (Step ready = wait_for(fd, POLLOUT, deadline); !ready) {
      return ready;
    }
  }
  return {};
}

Step receive_exactly(int fd, std::span<std::uint8_t> data, Clock::time_point deadline) noexcept {
  while (!data.empty()) {
    const ssize_t got = ::recv(fd, data.data(), data.size(), MSG_DONTWAIT);
    if (got == 0) {
      return Failure(ClientError::io_error);  // closed before a full answer
    }
    if (got > 0) {
      data = data.subspan(static_cast<std::size_t>(got));
      continue;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN) {
      return Failure(ClientError::io_error);
    }
    if (Step ready = wait_for(fd, POLLIN, deadline); !ready) {
      return ready;
    }
  }
  return {};
}

std::expected<protocol::Response, ClientError> exchange(const ClientOptions& options,
                                                        const protocol::Request& request,
                                                        std::uint8_t version) {
  // Clamped so that a silly option cannot overflow the clock arithmetic.
  const auto deadline =
      Clock::now() + std::clamp(options.timeout, std::chrono::milliseconds{0}, kLongestTimeout);
  const SecureBytes frame = protocol::encode_request(request, version);  // wiped when it goes
  if (frame.empty()) {
    return Failure(ClientError::protocol_error);
  }

  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string& path = options.socket_path;
  if (path.empty() || path.size() >= sizeof address.sun_path ||
      path.find('\0') != std::string::npos) {
    return Failure(ClientError::io_error);
  }
  std::copy(path.begin(), path.end(), std::begin(address.sun_path));

  // Check the socket file, then (after connecting) the process behind it.
  TrustedUids trust;
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    return Failure(errno == ENOENT || errno == ENOTDIR ? ClientError::unreachable
                                                       : ClientError::io_error);
  }
  if (!S_ISSOCK(info.st_mode) || !trust.trusted(info.st_uid)) {
    return Failure(ClientError::untrusted_peer);
  }

  const common::UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (socket.get() < 0) {
    return Failure(ClientError::io_error);
  }
  if (Step connected = connect_before(socket.get(), address, deadline); !connected) {
    return Failure(connected.error());
  }
  ucred peer{};
  socklen_t peer_size = sizeof peer;
  if (::getsockopt(socket.get(), SOL_SOCKET, SO_PEERCRED, &peer, &peer_size) != 0 ||
      peer_size != sizeof peer) {
    return Failure(ClientError::io_error);
  }
  if (!trust.trusted(peer.uid)) {
    return Failure(ClientError::untrusted_peer);
  }

  if (Step sent = send_all(socket.get(), frame.view(), deadline); !sent) {
    return Failure(sent.error());
  }
  std::array<std::uint8_t, protocol::kHeaderSize> header{};
  if (Step got = receive_exactly(socket.get(), header, deadline); !got) {
    return Failure(got.error());
  }
  // The cap is checked here, before the body is allocated.
  const auto parsed = protocol::parse_header(header, protocol::kMaxResponseBodySize);
  if (!parsed) {
    return Failure(ClientError::protocol_error);
  }
  SecureBytes body(parsed->body_length);
  if (Step got = receive_exactly(socket.get(), body.mutable_view(), deadline); !got) {
    return Failure(got.error());
  }
  // An older daemon answers an unknown version in its own (older) version.
  auto response = protocol::decode_response(body.view(), parsed->version);
  if (!response) {
    return Failure(ClientError::protocol_error);
  }
  return std::move(*response);
}

}  // namespace

std::string_view to_string(ClientError e) noexcept {
  switch (e) {
    case ClientError::unreachable:
      return "unreachable";
    case ClientError::untrusted_peer:
      return "untrusted_peer";
    case ClientError::timeout:
      return "timeout";
    case ClientError::io_error:
      return "io_error";
    case ClientError::protocol_error:
      return "protocol_error";
  }
  return "unknown";
}

std::expected<protocol::Response, ClientError> call_daemon(
    const ClientOptions& options, const protocol::Request& request) noexcept {
  try {
    auto reply = exchange(options, request, protocol::kVersion);
    // A daemon older than this client (a package upgrade replaced the module
    // and the tool, the daemon restarts a moment later) refuses the newer
    // version without acting on the request. Asked again in the oldest
    // version, it serves the login instead of refusing it.
    if (reply && reply->status == protocol::Status::unsupported_version) {
      reply = exchange(options, request, protocol::kOldestVersion);
    }
    return reply;
  } catch (...) {  // std::bad_alloc: nothing may leave the PAM module's stack
    return Failure(ClientError::io_error);
  }
}

}  // namespace kpanel::common
