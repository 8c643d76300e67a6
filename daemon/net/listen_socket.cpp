#include "daemon/net/listen_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <boost/system/error_code.hpp>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include "common/os_text.hpp"

namespace kpanel::daemon {

namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

namespace {

// Also systemd/kpanel-totpd.socket's Backlog=.
constexpr int kListenBacklog = 32;

using common::errno_text;

// True when something accepts connections on `path`: a live daemon.
bool someone_listens(const std::filesystem::path& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string text = path.string();
  std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
  const bool connected =
      connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;  // NOLINT
  close(fd);
  return connected;
}

std::expected<ListenSocket, std::string> from_systemd(asio::io_context& io, int count) {
  if (count != 1) {
    return std::unexpected("systemd passed " + std::to_string(count) +
                           " sockets; kpanel-totpd.socket must define exactly one");
  }
  if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, nullptr, 0) <= 0) {
    return std::unexpected(
        std::string("the socket systemd passed is not a listening UNIX stream socket"));
  }
  boost::system::error_code ec;
  stream::acceptor acceptor(io);
  acceptor.assign(stream(), SD_LISTEN_FDS_START, ec);
  if (ec) return std::unexpected("cannot use the socket systemd passed: " + ec.message());
  return ListenSocket{.acceptor = std::move(acceptor), .from_systemd = true, .file = {}};
}

}  // namespace

std::expected<ListenSocket, std::string> open_listen_socket(asio::io_context& io,
                                                            const std::filesystem::path& path) {
  const int passed = sd_listen_fds(1);
  if (passed < 0) return std::unexpected("sd_listen_fds: " + errno_text(-passed));
  if (passed > 0) return from_systemd(io, passed);

  const std::string where = "socket " + path.string() + ": ";
  if (path.string().size() >= sizeof(sockaddr_un::sun_path)) {
    return std::unexpected(where + "path too long for a UNIX socket");
  }
  std::error_code fs_error;
  const auto parent = path.parent_path();
  if (!std::filesystem::exists(parent, fs_error)) {
    std::filesystem::create_directories(parent, fs_error);
    if (fs_error)
      return std::unexpected(where + "cannot create " + parent.string() + ": " +
                             fs_error.message());
    // Clients must reach the socket inside it.
    chmod(parent.c_str(), 0755);  // NOLINT(*-magic-numbers)
  }

  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return std::unexpected(where + "exists and is not a socket; remove it or set `socket`");
    }
    if (someone_listens(path)) {
      return std::unexpected(where + "another kpanel-totpd is already listening on it");
    }
    // Left over from a crash: nobody answers, so it is safe to replace.
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return std::unexpected(where + "cannot remove the stale socket: " + errno_text(errno));
    }
  }

  boost::system::error_code ec;
  stream::acceptor acceptor(io);
  acceptor.open(stream(), ec);
  if (!ec) {
    // 0666 from the start (no window with a narrower or wider mode); anyone
    // may connect, the daemon decides from SO_PEERCRED what they may do.
    const mode_t old_mask = umask(0111);  // NOLINT(*-magic-numbers)
    acceptor.bind(stream::endpoint(path.string()), ec);
    umask(old_mask);
  }
  // A short backlog: a connection waits behind every one queued before it, so
  // a connect flood with SOMAXCONN (4096) queued put root's login 100-300 ms
  // back (test_abuse). Beyond the backlog a client's connect() blocks briefly
  // until the next accept instead, which the daemon does in batches.
  if (!ec) acceptor.listen(kListenBacklog, ec);
  if (ec) return std::unexpected(where + ec.message());
  struct stat bound {};
  if (lstat(path.c_str(), &bound) != 0) {
    return std::unexpected(where + "cannot stat it after binding: " + errno_text(errno));
  }
  return ListenSocket{.acceptor = std::move(acceptor),
                      .from_systemd = false,
                      .file = {.device = bound.st_dev, .inode = bound.st_ino}};
}

bool remove_socket_file(const std::filesystem::path& path, SocketFileIdentity ours) noexcept {
  // A daemon started after us may have bound a new socket at the path (after
  // our listener closed): that one is not ours to remove.
  struct stat now {};
  if (lstat(path.c_str(), &now) != 0 || !S_ISSOCK(now.st_mode) || now.st_dev != ours.device ||
      now.st_ino != ours.inode) {
    return false;
  }
  return unlink(path.c_str()) == 0;
}

}  // namespace kpanel::daemon
