#include "common/daemon_client.hpp"

#include <fcntl.h>
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

// The socket is non-blocking: an AF_UNIX connect then succeeds at once (every
// call but an overloaded daemon's, with no timeout to set first) or, while the
// listener's backlog is full, fails with EAGAIN (never EINPROGRESS). Only
// then does it wait, blocking for at most SO_SNDTIMEO per attempt.
Step connect_before(int fd, const sockaddr_un& address, Clock::time_point deadline) noexcept {
  const auto* target = reinterpret_cast<const sockaddr*>(&address);
  if (::connect(fd, target, sizeof address) == 0) {
    return {};
  }
  if (errno == ENOENT || errno == ECONNREFUSED) {
    return Failure(ClientError::unreachable);
  }
  if (errno != EAGAIN && errno != EINTR) {
    return Failure(ClientError::io_error);
  }
  if (::fcntl(fd, F_SETFL, 0) != 0) {  // blocking, for the timed connect below
    return Failure(ClientError::io_error);
  }
  for (;;) {
    const int left = remaining_ms(deadline);
    if (left == 0) {
      return Failure(ClientError::timeout);
    }
    const timeval limit{.tv_sec = left / 1000,
                        .tv_usec = static_cast<suseconds_t>(left % 1000) * 1000};
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit) != 0) {
      return Failure(ClientError::io_error);
    }
    if (::connect(fd, target, sizeof address) == 0) {
      return {};
    }
    switch (errno) {
      case EINTR:
        continue;
      case EAGAIN:  // the backlog stayed full until the deadline
      case ENOENT:
      case ECONNREFUSED:
        // A daemon is there but overloaded, or it was and went away while we
        // waited for room (stalled, then stopped): never "nobody listening",
        // which unavailable=ignore lets through, as any local user can stall
        // it with a flood.
        return Failure(ClientError::timeout);
      default:
        return Failure(ClientError::io_error);
    }
  }
}

// A send tries first and polls only when the socket buffer is full: a
// request fits an empty one.
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

// Reads at least `wanted` bytes (up to data.size()) and returns how many it
// read. It polls before each read: the answer cannot be there before the
// daemon has read the request, so a read first would fail (EAGAIN) on every call.
std::expected<std::size_t, ClientError> receive_at_least(int fd, std::span<std::uint8_t> data,
                                                         std::size_t wanted,
                                                         Clock::time_point deadline) noexcept {
  std::size_t got = 0;
  while (got < wanted) {
    if (Step ready = wait_for(fd, POLLIN, deadline); !ready) {
      return Failure(ready.error());
    }
    const ssize_t n = ::recv(fd, data.data() + got, data.size() - got, MSG_DONTWAIT);
    if (n == 0) {
      return Failure(ClientError::io_error);  // closed before a full answer
    }
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (errno != EINTR && errno != EAGAIN) {
      return Failure(ClientError::io_error);
    }
  }
  return got;
}

// The usual answer (a login's: well under 1 KiB) arrives whole in one read
// into this buffer, header and body, with no allocation; a larger one (an
// enrollment's QR code, an admin listing) gets a buffer of its size for the rest.
constexpr std::size_t kInlineAnswer = 2048;

// Wipes the inline buffer when the exchange ends: an answer may hold a secret.
class InlineAnswer {
 public:
  InlineAnswer() = default;
  InlineAnswer(const InlineAnswer&) = delete;
  InlineAnswer& operator=(const InlineAnswer&) = delete;
  ~InlineAnswer() { secure_wipe(bytes.data(), bytes.size()); }
  std::array<std::uint8_t, kInlineAnswer> bytes{};
};

struct Answer {
  std::span<const std::uint8_t> body;  // in the inline buffer or in `large`
  std::uint8_t version = 0;
};

// Reads one answer frame: into `inline_answer` when it fits, else the body
// into `large`, allocated once its declared length has passed the cap.
std::expected<Answer, ClientError> receive_answer(int fd, InlineAnswer& inline_answer,
                                                  SecureBytes& large,
                                                  Clock::time_point deadline) noexcept {
  const std::span<std::uint8_t> buffer(inline_answer.bytes);
  const auto got = receive_at_least(fd, buffer, protocol::kHeaderSize, deadline);
  if (!got) {
    return Failure(got.error());
  }
  const auto parsed =
      protocol::parse_header(buffer.first<protocol::kHeaderSize>(), protocol::kMaxResponseBodySize);
  if (!parsed) {
    return Failure(ClientError::protocol_error);
  }
  const std::size_t frame_size = protocol::kHeaderSize + parsed->body_length;
  if (frame_size <= buffer.size()) {
    // Whatever was read past the frame is ignored.
    if (*got < frame_size) {
      const auto rest = buffer.subspan(*got, frame_size - *got);
      if (const auto more = receive_at_least(fd, rest, rest.size(), deadline); !more) {
        return Failure(more.error());
      }
    }
    return Answer{.body = buffer.subspan(protocol::kHeaderSize, parsed->body_length),
                  .version = parsed->version};
  }
  try {
    large = SecureBytes(parsed->body_length);
  } catch (...) {  // std::bad_alloc
    return Failure(ClientError::io_error);
  }
  const std::size_t already = *got - protocol::kHeaderSize;
  std::copy_n(buffer.begin() + protocol::kHeaderSize, already, large.mutable_view().begin());
  const auto rest = large.mutable_view().subspan(already);
  if (const auto more = receive_at_least(fd, rest, rest.size(), deadline); !more) {
    return Failure(more.error());
  }
  return Answer{.body = large.view(), .version = parsed->version};
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

  const common::UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
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
  InlineAnswer answer;
  SecureBytes large;
  const auto received = receive_answer(socket.get(), answer, large, deadline);
  if (!received) {
    return Failure(received.error());
  }
  // An older daemon answers an unknown version in its own (older) version.
  auto response = protocol::decode_response(received->body, received->version);
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
