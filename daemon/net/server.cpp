#include "daemon/net/server.hpp"

#include <openssl/crypto.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>
#include <cerrno>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "common/os_text.hpp"
#include "common/secure_buffer.hpp"
#include "common/unique_fd.hpp"
#include "daemon/system/audit.hpp"

namespace kpanel::daemon {

namespace asio = boost::asio;
using local_socket = asio::local::stream_protocol::socket;
namespace protocol = common::protocol;

namespace {

// Frame-level errors the client is told about before the connection closes;
// anything else (bad magic, oversized, garbage) is closed without a word.
std::optional<protocol::Status> reply_for(protocol::DecodeError error) noexcept {
  switch (error) {
    case protocol::DecodeError::unsupported_version:
      return protocol::Status::unsupported_version;
    case protocol::DecodeError::bad_magic:
    case protocol::DecodeError::oversized:
    case protocol::DecodeError::truncated:
      return std::nullopt;
    default:
      return protocol::Status::bad_request;
  }
}

// The reply's frame; a reply that breaks the codec's rules is answered
// internal_error, never half of it.
common::SecureBytes encode_reply(const protocol::Response& response, std::uint8_t version) {
  auto out = protocol::encode_response(response, version);
  if (out.empty()) {
    out = protocol::encode_response(protocol::Response{.status = protocol::Status::internal_error},
                                    version);
  }
  return out;
}

}  // namespace

// One client connection: header, body, handler on a worker, reply, close.
class Server::Connection : public std::enable_shared_from_this<Server::Connection> {
 public:
  // `socket` was opened on this connection's own strand, which the deadline
  // shares: every handler of the connection runs there, one at a time.
  Connection(Server& server, local_socket socket, PeerCredentials peer)
      : server_(server),
        alive_(server.alive_),
        socket_(std::move(socket)),
        deadline_(socket_.get_executor()),
        peer_(peer) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  Connection(Connection&&) = delete;
  Connection& operator=(Connection&&) = delete;
  ~Connection() {
    if (*alive_) server_.release(this, peer_.uid);
  }

  void start() {
    arm_deadline();
    {
      const std::lock_guard lock(server_.mutex_);
      server_.waiting_.insert(this);
    }
    asio::async_read(socket_, asio::buffer(header_),
                     [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                       self->on_header(ec);
                     });
  }

  // A reply answered at accept (Server::answer_at_once) that the socket did
  // not take whole: the rest goes as the client reads, under the deadline.
  // Before any other use of the connection.
  void send_rest(common::SecureBytes out, std::size_t sent) {
    out_ = std::move(out);
    finish_reply(sent);
  }

  // Stopping: a connection that has not sent its header yet is closed now
  // rather than at its deadline, so a successor daemon waits for requests
  // in flight only, not for idle clients. From any thread.
  static void cut_if_waiting(const std::weak_ptr<Connection>& weak) {
    auto self = weak.lock();
    if (!self) return;
    asio::post(self->socket_.get_executor(), [self] {
      const std::lock_guard lock(self->server_.mutex_);
      if (self->server_.waiting_.contains(self.get())) self->close();
    });
  }

 private:
  void arm_deadline() {
    deadline_.expires_after(server_.limits_.io_deadline);
    deadline_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;  // cancelled: the phase finished in time
      auto self = weak.lock();
      // A deadline that expired just as the request completed must not close
      // the socket under the worker that is about to answer on it: its fd
      // number could be another client's by then.
      if (!self || self->in_handler_) return;
      boost::system::error_code ignored;
      self->socket_.close(ignored);  // pending reads/writes complete with an error
    });
  }

  void on_header(const boost::system::error_code& ec) {
    {
      const std::lock_guard lock(server_.mutex_);
      server_.waiting_.erase(this);
    }
    if (ec) return;  // closed, reset or timed out: nothing to answer
    const auto header = protocol::parse_header(header_);
    if (!header) {
      refuse(header.error());
      return;
    }
    version_ = header->version;  // read and answered in the client's version
    body_.resize(header->body_length);
    asio::async_read(socket_, asio::buffer(body_.data(), body_.size()),
                     [self = shared_from_this()](const boost::system::error_code& read_ec,
                                                 std::size_t) { self->on_body(read_ec); });
  }

  void on_body(const boost::system::error_code& ec) {
    if (ec) return;
    deadline_.cancel();
    auto request = protocol::decode_request(body_.view(), version_);
    body_.clear();  // it may hold a code or a password
    if (!request) {
      refuse(request.error());
      return;
    }
    const Lane lane = server_.lane_of_(*request);
    if (lane == Lane::fast && peer_.uid == 0 && server_.limits_.answer_root_fast_requests_inline) {
      answer_here(std::move(*request));
      return;
    }
    // The handler blocks (fsync, scrypt, PAM): run it on a worker of its
    // lane, which also sends the reply, so the client's answer does not wait
    // for an io thread to wake. Until the worker posts back, only it touches
    // the socket (in_handler_ keeps the deadline off); the last reference to
    // this connection always returns to the strand, and the work guard
    // keeps the io threads running until it has.
    in_handler_ = true;
    const bool queued = server_.lanes_.submit(
        lane, peer_.uid,
        [self = shared_from_this(), req = std::move(*request),
         work = asio::make_work_guard(server_.io_)](WorkLanes::Ticket ticket) mutable noexcept {
          const HoldAuditLines audit_after_reply;
          protocol::Response response;
          try {
            response = self->server_.handler_(self->peer_, req);
          } catch (...) {
            response = protocol::Response{.status = protocol::Status::internal_error};
          }
          // Before the reply goes: the client's next request may follow at once.
          ticket.release();
          req = protocol::Request{};  // wipe the code before the worker moves on
          try {
            self->encode_reply(response);
            const std::size_t sent = self->send_now();
            asio::post(self->socket_.get_executor(), [self, sent] {
              self->in_handler_ = false;
              self->finish_reply(sent);
            });
          } catch (...) {  // out of memory: the client's deadline ends it
          }
          work.reset();
        });
    if (!queued) {  // this caller's slow work is already in flight, or the lane is full
      in_handler_ = false;
      reply(protocol::Response{.status = protocol::Status::busy});
    }
  }

  // Root's fast request, answered on this io thread: no hand-off, so a login
  // costs what its work costs. The deadline is already off.
  void answer_here(protocol::Request request) noexcept {
    const HoldAuditLines audit_after_reply;
    protocol::Response response;
    try {
      response = server_.handler_(peer_, request);
    } catch (...) {
      response = protocol::Response{.status = protocol::Status::internal_error};
    }
    request = protocol::Request{};  // wipe the code
    try {
      encode_reply(response);
      finish_reply(send_now());
    } catch (...) {  // out of memory: closing is all that is left
      close();
    }
  }

  void refuse(protocol::DecodeError error) {
    if (const auto status = reply_for(error)) {
      reply(protocol::Response{.status = *status});
    } else {
      close();
    }
  }

  // Frame-level refusals, from the io thread.
  void reply(const protocol::Response& response) {
    encode_reply(response);
    finish_reply(0);
  }

  void encode_reply(const protocol::Response& response) {
    out_ = kpanel::daemon::encode_reply(response, version_);
  }

  // One non-blocking send of the reply: how many bytes went. A reply fits in
  // the socket buffer of a connection that has sent its request, so this is
  // normally all of it; a client that stopped reading gets the rest from the
  // io thread, under the deadline.
  std::size_t send_now() noexcept {
    for (;;) {
      const ssize_t sent =
          ::send(socket_.native_handle(), out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent >= 0) return static_cast<std::size_t>(sent);
      if (errno != EINTR) return 0;  // EAGAIN, or an error the io thread's write meets too
    }
  }

  // io thread: the first `sent` bytes of out_ are gone; send the rest, then close.
  void finish_reply(std::size_t sent) {
    if (sent >= out_.size()) {
      out_.clear();
      close();
      return;
    }
    arm_deadline();
    asio::async_write(socket_, asio::buffer(out_.data() + sent, out_.size() - sent),
                      [self = shared_from_this()](const boost::system::error_code&, std::size_t) {
                        self->out_.clear();
                        self->close();
                      });
  }

  void close() noexcept {
    boost::system::error_code ignored;
    try {
      deadline_.cancel();  // throws only when the reactor fails; the socket must close anyway
    } catch (const boost::system::system_error&) {
    }
    socket_.shutdown(local_socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  Server& server_;
  std::shared_ptr<bool> alive_;
  local_socket socket_;
  asio::steady_timer deadline_;
  PeerCredentials peer_;
  bool in_handler_ = false;  // on the strand only
  std::array<std::uint8_t, protocol::kHeaderSize> header_{};
  // The request's frame version, once its header is read. Before that (a
  // version it does not speak) the reply is a version 1 frame, which every
  // client can read.
  std::uint8_t version_ = protocol::kOldestVersion;
  common::SecureBytes body_;
  common::SecureBytes out_;
};

Server::Server(asio::io_context& io, asio::local::stream_protocol::acceptor acceptor,
               WorkLanes& lanes, Handler handler, LaneOf lane_of, ServerLimits limits)
    : io_(io),
      acceptor_(std::move(acceptor)),
      lanes_(lanes),
      handler_(std::move(handler)),
      lane_of_(std::move(lane_of)),
      limits_(limits) {}

Server::~Server() { *alive_ = false; }

void Server::start() {
  {
    const std::lock_guard lock(acceptor_mutex_);
    accepting_ = true;
    boost::system::error_code ignored;
    acceptor_.non_blocking(true, ignored);  // accept_ready() drains it with accept4
  }
  accept_next();
}

void Server::stop_accepting() {
  {
    const std::lock_guard lock(acceptor_mutex_);
    accepting_ = false;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }
  // close() completes their reads with an error, which erases them. A
  // connection whose destructor has begun gives an expired weak_ptr.
  std::vector<std::weak_ptr<Connection>> waiting;
  {
    const std::lock_guard lock(mutex_);
    waiting.reserve(waiting_.size());
    for (Connection* connection : waiting_) waiting.push_back(connection->weak_from_this());
  }
  for (const auto& connection : waiting) Connection::cut_if_waiting(connection);
}

std::size_t Server::connection_count() const {
  const std::lock_guard lock(mutex_);
  return connections_;
}

// Accepting must cost the daemon less than connecting costs a client, or a
// connect flood from one user fills the listen backlog and root's connect
// waits behind it (test_abuse: root's p99 was 300 ms behind a single flooding
// process). So when the socket is readable, the backlog is drained with plain
// accept4 calls, and a connection already closed by its client is dropped
// before it costs an epoll registration, a timer or an allocation.
void Server::accept_next() {
  const std::lock_guard lock(acceptor_mutex_);
  if (!accepting_) return;
  acceptor_.async_wait(asio::socket_base::wait_read,
                       [this, alive = alive_](const boost::system::error_code& ec) {
                         if (!*alive) return;
                         if (ec) {
                           accept_next();  // closed: stops there; anything else: wait again
                           return;
                         }
                         accept_ready();
                       });
}

void Server::accept_ready() {
  // Bounded, so replies waiting on the io threads are not held up by a flood.
  constexpr int kAcceptBatch = 256;
  // The first of root's connections is answered on this thread, after the
  // wait is armed again (another io thread takes the next connections);
  // further ones of the batch go to the other io threads.
  std::optional<Accepted> answer_here;
  for (int i = 0; i < kAcceptBatch; ++i) {
    const int fd =
        ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      try {
        auto accepted = admit(common::UniqueFd(fd));
        if (!accepted) continue;
        if (accepted->peer.uid != 0 || !limits_.answer_root_fast_requests_inline) {
          serve(std::move(*accepted));
        } else if (!answer_here) {
          answer_here = std::move(accepted);
        } else {
          asio::post(io_, [this, alive = alive_, a = std::move(*accepted)]() mutable {
            if (*alive) serve(std::move(a));
          });
        }
      } catch (...) {  // out of memory: this connection is lost, not the daemon
        log_error("accept: connection setup failed");
      }
      continue;
    }
    const int error = errno;
    if (error == EINTR || error == ECONNABORTED) continue;
    if (error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM) {
      // Out of file descriptors: keep serving the connections we have; the
      // next wake-up will retry once some close.
      log_error("accept: " + common::errno_text(error));
    }
    break;  // EAGAIN: the backlog is empty
  }
  accept_next();
  if (answer_here) {
    try {
      serve(std::move(*answer_here));
    } catch (...) {
      log_error("accept: connection setup failed");
    }
  }
}

std::optional<Server::Accepted> Server::admit(common::UniqueFd fd) {
  ucred cred{};
  socklen_t length = sizeof cred;
  if (getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0 || length != sizeof cred) {
    log_error("connection without peer credentials dropped");
    return std::nullopt;
  }
  const PeerCredentials peer{.uid = cred.uid, .gid = cred.gid, .pid = cred.pid};
  const std::size_t cap = peer.uid == 0 || limits_.root_reserve >= limits_.max_connections
                              ? limits_.max_connections
                              : limits_.max_connections - limits_.root_reserve;
  std::array<char, 1> probe{};
  if (::recv(fd.get(), probe.data(), probe.size(), MSG_PEEK | MSG_DONTWAIT) == 0) {
    return std::nullopt;  // already closed by the client: a flood, or a client that gave up
  }
  const std::lock_guard lock(mutex_);
  const auto per_uid = connections_per_uid_.find(peer.uid);
  if (connections_ >= cap || (peer.uid != 0 && per_uid != connections_per_uid_.end() &&
                              per_uid->second >= limits_.max_connections_per_uid)) {
    // Closing at once keeps a flood from holding memory; honest clients
    // retry through their own timeout.
    return std::nullopt;
  }
  // Counted from here on: released by the Connection's destructor, or by
  // serve() when it answered at once.
  ++connections_;
  ++connections_per_uid_[peer.uid];
  return Accepted{.fd = std::move(fd), .peer = peer};
}

void Server::serve(Accepted accepted) {
  const uid_t uid = accepted.peer.uid;
  bool connection_holds_slot = false;  // from then on its destructor gives the slot back
  try {
    if (uid == 0 && limits_.answer_root_fast_requests_inline) {
      switch (answer_at_once(accepted, connection_holds_slot)) {
        case AtOnce::answered:
          if (!connection_holds_slot) release(nullptr, uid);
          return;
        case AtOnce::not_taken:
          break;
      }
    }
    local_socket socket(asio::make_strand(io_), asio::local::stream_protocol(), accepted.fd.get());
    static_cast<void>(accepted.fd.release());
    auto connection = std::make_shared<Connection>(*this, std::move(socket), accepted.peer);
    connection_holds_slot = true;
    connection->start();
  } catch (const std::exception& e) {
    log_error(std::string("connection setup failed: ") + e.what());
    if (!connection_holds_slot) release(nullptr, uid);
  }
}

// A login's request is normally in the socket by the time it is accepted
// (the client sends right after connecting). Then it is read, handled and
// answered right here, without an epoll registration, a timer, or another
// thread. Anything else (not all there yet, larger than a login's request,
// not a fast request, not a valid frame) is left unread (not_taken), for the
// Connection to take from the start. Answered: the fd is closed, or moved to
// a Connection that sends the rest of a reply the socket did not take at once.
Server::AtOnce Server::answer_at_once(Accepted& accepted, bool& connection_holds_slot) {
  // A login's request is a few hundred bytes; anything larger takes the
  // Connection's path.
  constexpr std::size_t kAtOnceLimit = 2048;
  std::array<std::uint8_t, kAtOnceLimit> frame{};
  const auto wipe = [&frame]() noexcept { OPENSSL_cleanse(frame.data(), frame.size()); };
  const int fd = accepted.fd.get();
  const ssize_t peeked = ::recv(fd, frame.data(), frame.size(), MSG_PEEK | MSG_DONTWAIT);
  if (peeked < static_cast<ssize_t>(protocol::kHeaderSize)) return AtOnce::not_taken;
  const auto header = protocol::parse_header(std::span(frame).first(protocol::kHeaderSize));
  const std::size_t total = header ? protocol::kHeaderSize + header->body_length : std::size_t{0};
  if (!header || total > static_cast<std::size_t>(peeked)) {
    wipe();
    return AtOnce::not_taken;
  }
  auto request = protocol::decode_request(
      std::span(frame).subspan(protocol::kHeaderSize, header->body_length), header->version);
  if (!request || lane_of_(*request) != Lane::fast) {
    wipe();
    return AtOnce::not_taken;
  }
  // Taken off the socket: a socket closed with unread data resets its peer,
  // which could lose the reply.
  const ssize_t taken = ::recv(fd, frame.data(), total, MSG_DONTWAIT);
  wipe();
  if (taken != static_cast<ssize_t>(total)) {
    accepted.fd.reset();  // cannot happen (it was all there); dropped, like a broken frame
    return AtOnce::answered;
  }
  const HoldAuditLines audit_after_reply;
  protocol::Response response;
  try {
    response = handler_(accepted.peer, *request);
  } catch (...) {
    response = protocol::Response{.status = protocol::Status::internal_error};
  }
  *request = protocol::Request{};  // wipe the code
  common::SecureBytes out = encode_reply(response, header->version);
  ssize_t sent = -1;
  do {
    sent = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0 || static_cast<std::size_t>(sent) == out.size()) {
    accepted.fd.reset();  // answered (or the client is gone)
    return AtOnce::answered;
  }
  // The rest as the client reads: a Connection holds the slot from here.
  local_socket socket(asio::make_strand(io_), asio::local::stream_protocol(), fd);
  static_cast<void>(accepted.fd.release());
  auto connection = std::make_shared<Connection>(*this, std::move(socket), accepted.peer);
  connection_holds_slot = true;
  connection->send_rest(std::move(out), static_cast<std::size_t>(sent));
  return AtOnce::answered;
}

void Server::release(Connection* connection, uid_t uid) noexcept {
  const std::lock_guard lock(mutex_);
  if (connection != nullptr) waiting_.erase(connection);
  --connections_;
  const auto it = connections_per_uid_.find(uid);
  if (it != connections_per_uid_.end() && --it->second == 0) connections_per_uid_.erase(it);
}

}  // namespace kpanel::daemon
