#pragma once
// The daemon's listening socket: the one systemd passes (socket activation,
// sd_listen_fds) or one it binds itself at `socket` (mode 0666,
// authorization is by peer credentials). Binding creates the parent
// directory, replaces a stale socket file left by a crash, and refuses to
// touch a socket a live daemon still answers on, or anything not a socket.

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <expected>
#include <filesystem>
#include <string>

namespace kpanel::daemon {

// The socket file we bound, as it was then: at exit the path is removed only
// while it still is this file, never a successor's socket bound since.
struct SocketFileIdentity {
  dev_t device = 0;
  ino_t inode = 0;
};

struct ListenSocket {
  boost::asio::local::stream_protocol::acceptor acceptor;
  bool from_systemd = false;  // then systemd owns the path: never unlink it
  SocketFileIdentity file;    // when we bound it
};

[[nodiscard]] std::expected<ListenSocket, std::string> open_listen_socket(
    boost::asio::io_context& io, const std::filesystem::path& path);

// Removes the socket file we bound (not systemd's) when the daemon exits, if
// `path` is still that file. True when it removed it.
bool remove_socket_file(const std::filesystem::path& path, SocketFileIdentity ours) noexcept;

}  // namespace kpanel::daemon
