#pragma once
// The one client side of the daemon socket, used by the PAM module and the
// tool: blocking, with a single overall deadline, no Boost/OpenSSL, no throws.
// Before sending anything it checks that the socket file and the process at
// the other end (SO_PEERCRED) belong to root or to the daemon's system user.

#include <chrono>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

#include "common/protocol.hpp"

namespace kpanel::common {

inline constexpr std::string_view kDefaultSocketPath = "/run/kpanel-totp/kpanel-totpd.sock";
inline constexpr std::string_view kDaemonUserName = "kpanel-totp";

enum class ClientError : std::uint8_t {
  // Nobody listening: no socket file (ENOENT/ENOTDIR), or connect() refused
  // (ECONNREFUSED: a stale socket file). The only "daemon down".
  unreachable,
  untrusted_peer,  // socket or daemon owned by someone other than root / the daemon user
  // A daemon is listening but gave no complete answer within the deadline:
  // it accepted and stalled, or its listen backlog stayed full (connect()
  // waited and failed with EAGAIN). A live daemon, not a missing one.
  timeout,
  io_error,        // connection reset, short read/write
  protocol_error,  // the answer did not decode, or the request did not encode (nothing sent)
};
[[nodiscard]] std::string_view to_string(ClientError e) noexcept;

struct ClientOptions {
  std::string socket_path{kDefaultSocketPath};
  std::chrono::milliseconds timeout{10'000};
};

// Connects, sends one request, reads one response, closes. `timeout` bounds the
// whole exchange (connect, write, read); the trust checks come before sending.
[[nodiscard]] std::expected<protocol::Response, ClientError> call_daemon(
    const ClientOptions& options, const protocol::Request& request) noexcept;

}  // namespace kpanel::common
