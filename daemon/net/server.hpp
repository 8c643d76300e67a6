#pragma once
// The socket side of kpanel-totpd: accepts connections on the UNIX stream
// socket, reads one framed request per connection under a deadline, learns
// the peer from SO_PEERCRED, hands the request to the handler on a worker
// of its lane (handlers block: fsync, scrypt, PAM; daemon/net/lanes.hpp), which
// sends the reply. A lane that refuses the work is answered `busy` at once.
//
// One io_context thread does all waiting on sockets, so a slow or hostile
// client only ever costs a few bytes of buffer and a timer; it can never hold
// a worker. The worker's one send never waits: what the socket does not take
// at once, the io thread sends as the client reads.
// Limits: frame caps from common/protocol.hpp, a deadline for the
// whole request, a cap on concurrent connections overall and per peer uid.

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "common/protocol.hpp"
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
};

class Server {
 public:
  // Must not throw; runs on a worker thread. The Dispatcher's handle().
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

  // For tests and the log; io thread only.
  [[nodiscard]] std::size_t connection_count() const noexcept { return connections_; }

 private:
  class Connection;
  friend class Connection;

  void accept_next();
  void accept_ready();
  void on_accepted(int fd);
  void release(uid_t uid) noexcept;

  boost::asio::io_context& io_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  WorkLanes& lanes_;
  Handler handler_;
  LaneOf lane_of_;
  ServerLimits limits_;
  bool accepting_ = false;
  std::size_t connections_ = 0;
  std::unordered_map<uid_t, std::size_t> connections_per_uid_;
  // Connections still waiting for their request's header (io thread only).
  std::unordered_set<Connection*> waiting_;
  // Shared with connections so a late completion after ~Server is harmless.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace kpanel::daemon
