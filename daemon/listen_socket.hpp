#pragma once
// The daemon's listening socket: the one systemd passes (socket activation,
// sd_listen_fds) or one it binds itself at `socket` (SPEC §2: mode 0666,
// authorization is by peer credentials). Binding creates the parent
// directory, replaces a stale socket file left by a crash, and refuses to
// touch a socket a live daemon still answers on, or anything not a socket.

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <expected>
#include <filesystem>
#include <string>

namespace kpanel::daemon {

struct ListenSocket {
  boost::asio::local::stream_protocol::acceptor acceptor;
  bool from_systemd = false;  // then systemd owns the path: never unlink it
};

[[nodiscard]] std::expected<ListenSocket, std::string> open_listen_socket(
    boost::asio::io_context& io, const std::filesystem::path& path);

// Removes the socket file we bound (not systemd's) when the daemon exits.
void remove_socket_file(const std::filesystem::path& path) noexcept;

}  // namespace kpanel::daemon
