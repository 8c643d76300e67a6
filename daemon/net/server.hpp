#pragma once
// The socket side of kpanel-totpd: accepts connections on the UNIX stream
// socket, reads one framed request per connection under a deadline, learns
// the peer from SO_PEERCRED, and answers it in one of two places:
// - root's fast requests (the PAM module inside sshd, login, su, sudo asking
//   login_check or a TOTP verify), when the store answers from this host:
//   right where the request was read, on the io thread, so a login costs no
//   thread hand-off (ServerLimits::answer_root_fast_requests_inline);
// - everything else: the handler runs on a worker of its lane (handlers
//   block: fsync, scrypt, PAM; daemon/net/lanes.hpp), which sends the reply.
//   A lane that refuses the work is answered `busy` at once. Other users'
//   requests never run on an io thread, so however many they send, they
//   cannot hold one.
//
// The io_context runs on a few threads (the daemon's run()), so one of root's
// requests waiting on NSS or the disk does not stop the others from being
// read and answered. Each connection's handlers run on its own strand; the
// counts and sets shared by connections are under one mutex. A slow or
// hostile client only ever costs a few bytes of buffer and a timer. A
// worker's one send never waits: what the socket does not take at once, the
// io thread sends as the client reads.
// Limits: frame caps from common/protocol.hpp, a deadline for the
// whole request, a cap on concurrent connections overall and per peer uid.

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "common/protocol.hpp"
#include "common/unique_fd.hpp"
#include "daemon/net/lanes.hpp"
#include "daemon/net/peer_credentials.hpp"

namespace kpanel::daemon {

struct ServerLimits {
  // From accept to the last byte of the request; then again for the reply.
  // The module's default timeout is 10 s, so an honest client is never cut.
  std::chrono::milliseconds io_deadline{5000};
  std::size_t max_connections = 1024;
  // No single local user can take all the slots (root is the PAM module
  // inside sshd and login: it is not capped per uid).
  std::size_t max_connections_per_uid = 64;
  // Slots of max_connections only root may use: unprivileged users together
  // (as many uids as they like) never lock the PAM module out.
  std::size_t root_reserve = 64;
  // Root's fast-lane requests are answered on the io thread that read them.
  // Only when nothing they do waits on the network (the store is this host's
  // SQLite): a database across the network could hold every io thread.
  bool answer_root_fast_requests_inline = false;
};

class Server {
 public:
  // Must not throw; runs on a worker or an io thread, several at once. The
  // Dispatcher's handle().
  using Handler = std::function<common::protocol::Response(const PeerCredentials&,
                                                           const common::protocol::Request&)>;
  // Which lane a request's work runs in (Dispatcher::lane); io thread, must not throw.
  using LaneOf = std::function<Lane(const common::protocol::Request&)>;

  Server(boost::asio::io_context& io, boost::asio::local::stream_protocol::acceptor acceptor,
         WorkLanes& lanes, Handler handler, LaneOf lane_of, ServerLimits limits = {});
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  Server(Server&&) = delete;
  Server& operator=(Server&&) = delete;
  ~Server();

  void start();
  // SIGTERM: no new connections; connections that have not sent a request
  // yet are closed; those in flight finish (their deadlines bound how long
  // that takes) and then the io_context runs out of work.
  void stop_accepting();

  // For tests and the log.
  [[nodiscard]] std::size_t connection_count() const;

 private:
  class Connection;
  friend class Connection;

  // An accepted connection, counted against the limits.
  struct Accepted {
    common::UniqueFd fd;
    PeerCredentials peer;
  };
  enum class AtOnce : std::uint8_t { answered, not_taken };

  void accept_next();
  void accept_ready();
  // Credentials and limits; nullopt: dropped (closed here).
  [[nodiscard]] std::optional<Accepted> admit(common::UniqueFd fd);
  void serve(Accepted accepted);
  [[nodiscard]] AtOnce answer_at_once(Accepted& accepted, bool& connection_holds_slot);
  // A connection's slot back (and it out of waiting_, if it was there).
  void release(Connection* connection, uid_t uid) noexcept;

  boost::asio::io_context& io_;
  // The acceptor's wait and close, from any io thread (accepting itself is
  // accept4 on its fd, which needs no lock).
  std::mutex acceptor_mutex_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  WorkLanes& lanes_;
  Handler handler_;
  LaneOf lane_of_;
  ServerLimits limits_;
  bool accepting_ = false;    // under acceptor_mutex_
  mutable std::mutex mutex_;  // guards the three below
  std::size_t connections_ = 0;
  std::unordered_map<uid_t, std::size_t> connections_per_uid_;
  // Connections still waiting for their request's header.
  std::unordered_set<Connection*> waiting_;
  // Shared with connections so a late completion after ~Server is harmless.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace kpanel::daemon
