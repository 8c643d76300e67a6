#define BOOST_TEST_MODULE daemon_server
// The socket side of the daemon (daemon/server): a real io_context, worker
// pool and UNIX socket, a handler of the test's own, and common/daemon_client
// or raw sockets as the clients.
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "common/daemon_client.hpp"
#include "common/protocol.hpp"
#include "common/unique_fd.hpp"
#include "daemon/net/server.hpp"
#include "shared/eventually.hpp"

namespace {

namespace asio = boost::asio;
namespace protocol = kpanel::common::protocol;
using kpanel::daemon::Lane;
using kpanel::daemon::LaneLimits;
using kpanel::daemon::PeerCredentials;
using kpanel::daemon::Server;
using kpanel::daemon::ServerLimits;
using kpanel::daemon::WorkLanes;
using kpanel::test::eventually;
using namespace std::chrono_literals;

// A Server on a socket in a fresh directory, its io threads (two, as the
// daemon runs several) and its lanes (two fast workers and one slow one
// unless the test says otherwise).
class RunningServer {
 public:
  RunningServer(
      Server::Handler handler, ServerLimits limits,
      Server::LaneOf lane_of = [](const protocol::Request&) { return Lane::fast; },
      LaneLimits lanes = {.fast_threads = 2, .slow_threads = 1}, unsigned io_threads = 2)
      : lanes_(lanes) {
    std::array<char, 64> pattern{};
    std::snprintf(pattern.data(), pattern.size(), "/tmp/kpanel-server-test-XXXXXX");
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir_ = pattern.data();
    socket_ = dir_ + "/sock";
    asio::local::stream_protocol::acceptor acceptor(
        io_, asio::local::stream_protocol::endpoint(socket_));
    server_.emplace(io_, std::move(acceptor), lanes_, std::move(handler), std::move(lane_of),
                    limits);
    server_->start();
    for (unsigned i = 0; i < io_threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  RunningServer(const RunningServer&) = delete;
  RunningServer& operator=(const RunningServer&) = delete;
  RunningServer(RunningServer&&) = delete;
  RunningServer& operator=(RunningServer&&) = delete;
  ~RunningServer() {
    asio::post(io_, [this] { server_->stop_accepting(); });
    for (auto& thread : threads_) thread.join();
    lanes_.join();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  [[nodiscard]] const std::string& socket_path() const { return socket_; }
  [[nodiscard]] const std::string& directory() const { return dir_; }

  [[nodiscard]] bool is_io_thread(std::thread::id id) const {
    for (const auto& thread : threads_) {
      if (thread.get_id() == id) return true;
    }
    return false;
  }

  // SIGTERM's first step (it takes effect on the io threads).
  void stop_accepting() { server_->stop_accepting(); }

  // Connections still open.
  std::size_t connections() { return server_->connection_count(); }

 private:
  asio::io_context io_;
  WorkLanes lanes_;
  std::string dir_;
  std::string socket_;
  std::optional<Server> server_;
  std::vector<std::thread> threads_;
};

// A reply larger than both sockets' buffers together: an AdminListResult of
// `users` entries with long names.
protocol::Response big_list(std::size_t users) {
  protocol::AdminListResult list;
  for (std::size_t i = 0; i < users; ++i) {
    list.users.push_back(protocol::UserStatus{
        .user = "user-with-a-rather-long-name-" + std::to_string(i), .recovery_codes_left = 10});
  }
  return protocol::Response{.status = protocol::Status::ok, .result = list};
}

kpanel::common::UniqueFd connect_to(const std::string& path, int receive_buffer) {
  kpanel::common::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  BOOST_REQUIRE(fd.valid());
  BOOST_REQUIRE_EQUAL(
      ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer), 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  BOOST_REQUIRE_EQUAL(
      ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  return fd;
}

void send_request(int fd, const protocol::Request& request) {
  const auto frame = protocol::encode_request(request);
  BOOST_REQUIRE_EQUAL(::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL),
                      static_cast<ssize_t>(frame.size()));
}

// Reads until the server closes, `pause` between reads: a slow client.
std::vector<std::uint8_t> read_to_end(int fd, std::chrono::milliseconds pause) {
  std::vector<std::uint8_t> bytes;
  std::array<std::uint8_t, 4096> chunk{};
  for (;;) {
    pollfd entry{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&entry, 1, 10'000) <= 0) break;
    const ssize_t got = ::recv(fd, chunk.data(), chunk.size(), 0);
    if (got <= 0) break;
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + got);
    std::this_thread::sleep_for(pause);
  }
  return bytes;
}

std::optional<protocol::Response> decode(const std::vector<std::uint8_t>& bytes) {
  if (bytes.size() < protocol::kHeaderSize) return std::nullopt;
  const auto header = protocol::parse_header(std::span(bytes).first(protocol::kHeaderSize),
                                             protocol::kMaxResponseBodySize);
  if (!header || bytes.size() != protocol::kHeaderSize + header->body_length) return std::nullopt;
  auto response = protocol::decode_response(std::span(bytes).subspan(protocol::kHeaderSize));
  if (!response) return std::nullopt;
  return std::move(*response);
}

}  // namespace

BOOST_AUTO_TEST_CASE(reply_from_the_worker_reaches_the_client_and_the_slot_is_freed) {
  std::atomic<int> calls{0};
  RunningServer server(
      [&](const PeerCredentials& peer, const protocol::Request& request) {
        ++calls;
        BOOST_TEST(peer.uid == ::geteuid());
        BOOST_TEST(std::holds_alternative<protocol::StatusRequest>(request));
        return protocol::Response{.status = protocol::Status::no_such_user};
      },
      ServerLimits{});
  for (int i = 0; i < 20; ++i) {
    const auto reply = kpanel::common::call_daemon(
        {.socket_path = server.socket_path(), .timeout = 5s}, protocol::StatusRequest{"alice"});
    BOOST_REQUIRE(reply.has_value());
    BOOST_TEST((reply->status == protocol::Status::no_such_user));
  }
  BOOST_TEST(calls.load() == 20);
  BOOST_TEST(eventually([&] { return server.connections() == 0; }));
}

BOOST_AUTO_TEST_CASE(a_reply_larger_than_the_socket_buffers_reaches_a_slow_reader_whole) {
  // The worker sends what the socket takes at once; the io thread must send
  // the rest as the client reads, under the deadline, and then close.
  const protocol::Response answer = big_list(12'000);
  RunningServer server([&](const PeerCredentials&, const protocol::Request&) { return answer; },
                       ServerLimits{.io_deadline = 5000ms});
  const auto client = connect_to(server.socket_path(), 4096);
  send_request(client.get(), protocol::AdminListRequest{});
  std::this_thread::sleep_for(200ms);  // the worker has answered; nothing read yet
  const auto bytes = read_to_end(client.get(), 1ms);
  BOOST_TEST(bytes.size() > std::size_t{400} * 1024);
  const auto reply = decode(bytes);
  BOOST_REQUIRE(reply.has_value());
  BOOST_TEST((*reply == answer));
  BOOST_TEST(eventually([&] { return server.connections() == 0; }));
}

BOOST_AUTO_TEST_CASE(a_handler_slower_than_the_io_deadline_still_answers) {
  // The deadline bounds reading the request and writing the reply, never the
  // handler (fsync, scrypt, PAM); a deadline that fires while the handler
  // runs must not close the socket it is about to answer on.
  RunningServer server(
      [](const PeerCredentials&, const protocol::Request&) {
        std::this_thread::sleep_for(400ms);
        return protocol::Response{.status = protocol::Status::ok,
                                  .result = protocol::EmptyResult{}};
      },
      ServerLimits{.io_deadline = 100ms});
  const auto reply = kpanel::common::call_daemon(
      {.socket_path = server.socket_path(), .timeout = 5s}, protocol::StatusRequest{"alice"});
  BOOST_REQUIRE(reply.has_value());
  BOOST_TEST((reply->status == protocol::Status::ok));
  BOOST_TEST(eventually([&] { return server.connections() == 0; }));
}

BOOST_AUTO_TEST_CASE(a_client_that_never_reads_a_big_reply_is_cut_at_the_deadline) {
  const protocol::Response answer = big_list(12'000);
  RunningServer server([&](const PeerCredentials&, const protocol::Request&) { return answer; },
                       ServerLimits{.io_deadline = 300ms});
  const auto client = connect_to(server.socket_path(), 4096);
  send_request(client.get(), protocol::AdminListRequest{});
  // The rest of the reply cannot go; the deadline closes the connection.
  BOOST_TEST(eventually([&] { return server.connections() == 0; }));
}

BOOST_AUTO_TEST_CASE(a_fast_request_is_answered_while_the_slow_lane_is_busy) {
  // A slow handler (a password check) holds the only slow worker; a status
  // request in the fast lane must not wait for it.
  std::atomic<bool> release{false};
  RunningServer server(
      [&](const PeerCredentials&, const protocol::Request& request) {
        if (std::holds_alternative<protocol::DisableRequest>(request)) {
          while (!release.load()) std::this_thread::sleep_for(5ms);
        }
        return protocol::Response{.status = protocol::Status::ok,
                                  .result = protocol::EmptyResult{}};
      },
      ServerLimits{},
      [](const protocol::Request& request) {
        return std::holds_alternative<protocol::DisableRequest>(request) ? Lane::slow : Lane::fast;
      });
  auto slow = std::async(std::launch::async, [&] {
    return kpanel::common::call_daemon({.socket_path = server.socket_path(), .timeout = 10s},
                                       protocol::DisableRequest{});
  });
  std::this_thread::sleep_for(100ms);  // the slow request is in its handler
  const auto started = std::chrono::steady_clock::now();
  const auto fast = kpanel::common::call_daemon(
      {.socket_path = server.socket_path(), .timeout = 5s}, protocol::StatusRequest{"alice"});
  const auto took = std::chrono::steady_clock::now() - started;
  BOOST_REQUIRE(fast.has_value());
  BOOST_TEST((fast->status == protocol::Status::ok));
  BOOST_TEST((took < 1s));
  BOOST_TEST((slow.wait_for(0s) == std::future_status::timeout));  // still held
  release = true;
  const auto slow_reply = slow.get();
  BOOST_REQUIRE(slow_reply.has_value());
  BOOST_TEST((slow_reply->status == protocol::Status::ok));
}

BOOST_AUTO_TEST_CASE(slow_work_beyond_the_lane_bound_is_answered_busy_at_once) {
  // Root's own slow jobs are capped too (here at one); the second is refused
  // with `busy` without running its handler, and without waiting.
  std::atomic<bool> release{false};
  std::atomic<int> calls{0};
  RunningServer server(
      [&](const PeerCredentials&, const protocol::Request&) {
        ++calls;
        while (!release.load()) std::this_thread::sleep_for(5ms);
        return protocol::Response{.status = protocol::Status::ok,
                                  .result = protocol::EmptyResult{}};
      },
      ServerLimits{}, [](const protocol::Request&) { return Lane::slow; },
      LaneLimits{.fast_threads = 1, .slow_threads = 1, .slow_root_capacity = 1});
  auto first = std::async(std::launch::async, [&] {
    return kpanel::common::call_daemon({.socket_path = server.socket_path(), .timeout = 10s},
                                       protocol::DisableRequest{});
  });
  BOOST_TEST(eventually([&] { return calls.load() == 1; }));
  const auto started = std::chrono::steady_clock::now();
  const auto second = kpanel::common::call_daemon(
      {.socket_path = server.socket_path(), .timeout = 5s}, protocol::DisableRequest{});
  BOOST_TEST((std::chrono::steady_clock::now() - started < 1s));
  BOOST_REQUIRE(second.has_value());
  BOOST_TEST((second->status == protocol::Status::busy));
  release = true;
  BOOST_TEST((first.get()->status == protocol::Status::ok));
  BOOST_TEST(calls.load() == 1);
}

BOOST_AUTO_TEST_CASE(stopping_closes_connections_that_have_not_sent_a_request) {
  // A successor daemon waits for this one to exit; idle clients must not
  // hold it for their whole deadline. A request already being handled still
  // gets its answer.
  std::atomic<bool> release{false};
  RunningServer server(
      [&](const PeerCredentials&, const protocol::Request&) {
        while (!release.load()) std::this_thread::sleep_for(5ms);
        return protocol::Response{.status = protocol::Status::ok,
                                  .result = protocol::EmptyResult{}};
      },
      ServerLimits{.io_deadline = 5000ms});
  auto busy = std::async(std::launch::async, [&] {
    return kpanel::common::call_daemon({.socket_path = server.socket_path(), .timeout = 10s},
                                       protocol::StatusRequest{"alice"});
  });
  const auto idle = connect_to(server.socket_path(), 4096);
  BOOST_TEST(eventually([&] { return server.connections() == 2; }));
  const auto started = std::chrono::steady_clock::now();
  server.stop_accepting();
  const auto bytes = read_to_end(idle.get(), 0ms);  // EOF once the server closes it
  BOOST_TEST(bytes.empty());
  BOOST_TEST((std::chrono::steady_clock::now() - started < 1s));
  BOOST_TEST(eventually([&] { return server.connections() == 1; }));
  release = true;
  const auto reply = busy.get();
  BOOST_REQUIRE(reply.has_value());
  BOOST_TEST((reply->status == protocol::Status::ok));
}

BOOST_AUTO_TEST_CASE(back_to_back_slow_requests_of_one_caller_are_never_busy) {
  // One request at a time is what the slow lane allows a caller (here root,
  // capped at one): the next one, sent the moment the answer arrives, must
  // find the slot free although the worker may not have returned yet.
  RunningServer server(
      [](const PeerCredentials&, const protocol::Request&) {
        return protocol::Response{.status = protocol::Status::ok,
                                  .result = protocol::EmptyResult{}};
      },
      ServerLimits{}, [](const protocol::Request&) { return Lane::slow; },
      LaneLimits{.fast_threads = 1, .slow_threads = 1, .slow_root_capacity = 1});
  // Both cores busy at normal priority, as on a loaded host: the slow lane's
  // niced worker then often runs late after sending the answer.
  std::atomic<bool> spin{true};
  std::vector<std::jthread> load;
  for (int i = 0; i < 2; ++i) {
    load.emplace_back([&spin] {
      while (spin.load(std::memory_order_relaxed)) {
      }
    });
  }
  int busy = 0;
  for (int i = 0; i < 300; ++i) {
    const auto reply = kpanel::common::call_daemon(
        {.socket_path = server.socket_path(), .timeout = 5s}, protocol::DisableRequest{});
    BOOST_REQUIRE(reply.has_value());
    busy += reply->status == protocol::Status::busy ? 1 : 0;
  }
  spin = false;
  BOOST_TEST(busy == 0);
}

// An upgraded daemon keeps serving the module sshd loaded before the upgrade:
// each request is read in its frame's version and answered in the same one,
// so a version 1 client gets exactly the version 1 shape.
BOOST_AUTO_TEST_CASE(each_request_is_answered_in_its_own_protocol_version) {
  const protocol::Response answer{
      .status = protocol::Status::ok,
      .result = protocol::EnrollBeginResult{.uri = kpanel::common::SecureString("otpauth://totp/x"),
                                            .secret_base32 = kpanel::common::SecureString("S"),
                                            .expires_at = 5,
                                            .algorithm = kpanel::common::TotpAlgorithm::sha256,
                                            .digits = 8,
                                            .period = 60}};
  RunningServer server(
      [&](const PeerCredentials&, const protocol::Request& request) {
        BOOST_TEST(std::holds_alternative<protocol::EnrollBeginRequest>(request));
        return answer;
      },
      ServerLimits{});
  for (const std::uint8_t version : {std::uint8_t{1}, std::uint8_t{2}, protocol::kVersion}) {
    BOOST_TEST_CONTEXT("version " << int{version}) {
      const auto client = connect_to(server.socket_path(), 65536);
      const auto frame = protocol::encode_request(protocol::EnrollBeginRequest{}, version);
      BOOST_REQUIRE_EQUAL(::send(client.get(), frame.data(), frame.size(), MSG_NOSIGNAL),
                          static_cast<ssize_t>(frame.size()));
      const auto bytes = read_to_end(client.get(), 0ms);
      BOOST_REQUIRE(bytes.size() > protocol::kHeaderSize);
      const auto header = protocol::parse_header(std::span(bytes).first(protocol::kHeaderSize),
                                                 protocol::kMaxResponseBodySize);
      BOOST_REQUIRE(header.has_value());
      BOOST_TEST(header->version == version);
      const std::string body(bytes.begin() + protocol::kHeaderSize, bytes.end());
      BOOST_TEST((body.find("\"algorithm\":\"SHA256\"") != std::string::npos) == (version >= 2),
                 body);
      const auto reply =
          protocol::decode_response(std::span(bytes).subspan(protocol::kHeaderSize), version);
      BOOST_REQUIRE(reply.has_value());
      const auto& begun = std::get<protocol::EnrollBeginResult>(reply->result);
      BOOST_TEST(begun.digits == (version >= 2 ? 8U : 6U));
    }
  }
  // A version it does not speak: answered in version 1, which every client reads.
  const auto client = connect_to(server.socket_path(), 65536);
  const std::string body = R"({"op":"status"})";
  std::string frame("KP", 2);
  frame.push_back(static_cast<char>(protocol::kVersion + 1));
  frame.append("\x00\x00\x00\x00", 4);
  frame.push_back(static_cast<char>(body.size()));
  frame += body;
  BOOST_REQUIRE_EQUAL(::send(client.get(), frame.data(), frame.size(), MSG_NOSIGNAL),
                      static_cast<ssize_t>(frame.size()));
  const auto bytes = read_to_end(client.get(), 0ms);
  BOOST_REQUIRE(bytes.size() > protocol::kHeaderSize);
  BOOST_TEST(bytes[2] == 1U);
  BOOST_TEST(std::string(bytes.begin() + protocol::kHeaderSize, bytes.end()) ==
             R"({"result":"empty","status":"unsupported_version"})");
}

namespace {

protocol::Response ok_reply() {
  return protocol::Response{.status = protocol::Status::ok, .result = protocol::EmptyResult{}};
}

Lane enroll_is_slow(const protocol::Request& request) {
  return std::holds_alternative<protocol::EnrollBeginRequest>(request) ? Lane::slow : Lane::fast;
}

// Asks for `request` from a child running as nobody; true when it was answered ok.
bool answered_as_nobody(const std::string& socket_path, const protocol::Request& request) {
  const pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    const auto reply =
        kpanel::common::call_daemon({.socket_path = socket_path, .timeout = 5s}, request);
    ::_exit(reply && reply->status == protocol::Status::ok ? 0 : 1);
  }
  int status = 0;
  BOOST_REQUIRE_EQUAL(::waitpid(child, &status, 0), child);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

BOOST_AUTO_TEST_CASE(roots_fast_requests_are_answered_on_the_io_thread_that_read_them) {
  // A login (root's login_check and verify) costs no thread hand-off; root's
  // slow work and every other user's requests still go to the lanes, so they
  // never hold an io thread.
  std::atomic<int> on_io{0};
  std::atomic<int> on_worker{0};
  std::atomic<RunningServer*> running{nullptr};
  RunningServer server(
      [&](const PeerCredentials&, const protocol::Request&) {
        ++(running.load()->is_io_thread(std::this_thread::get_id()) ? on_io : on_worker);
        return ok_reply();
      },
      ServerLimits{.answer_root_fast_requests_inline = true}, enroll_is_slow);
  running = &server;
  const kpanel::common::ClientOptions client{.socket_path = server.socket_path(), .timeout = 5s};

  BOOST_REQUIRE(kpanel::common::call_daemon(client, protocol::StatusRequest{"alice"}).has_value());
  BOOST_TEST(on_io.load() == 1);
  BOOST_TEST(on_worker.load() == 0);

  BOOST_REQUIRE(
      kpanel::common::call_daemon(client, protocol::EnrollBeginRequest{"alice"}).has_value());
  BOOST_TEST(on_io.load() == 1);
  BOOST_TEST(on_worker.load() == 1);

  std::filesystem::permissions(
      server.directory(), std::filesystem::perms::owner_all | std::filesystem::perms::others_exec);
  std::filesystem::permissions(server.socket_path(), std::filesystem::perms::all);
  BOOST_TEST(answered_as_nobody(server.socket_path(), protocol::StatusRequest{"nobody"}));
  BOOST_TEST(on_io.load() == 1);
  BOOST_TEST(on_worker.load() == 2);
}

BOOST_AUTO_TEST_CASE(without_the_inline_option_roots_requests_go_to_a_worker) {
  // A store across the network (PostgreSQL) could hold an io thread.
  std::atomic<int> on_io{0};
  std::atomic<RunningServer*> running{nullptr};
  RunningServer server(
      [&](const PeerCredentials&, const protocol::Request&) {
        if (running.load()->is_io_thread(std::this_thread::get_id())) ++on_io;
        return ok_reply();
      },
      ServerLimits{});
  running = &server;
  const auto reply = kpanel::common::call_daemon(
      {.socket_path = server.socket_path(), .timeout = 5s}, protocol::StatusRequest{"alice"});
  BOOST_REQUIRE(reply.has_value());
  BOOST_TEST(on_io.load() == 0);
}

BOOST_AUTO_TEST_CASE(a_root_request_waiting_in_its_handler_does_not_hold_the_others) {
  // One login waiting on NSS or the disk on one io thread; the next login is
  // read and answered on another.
  std::atomic<bool> entered{false};
  std::atomic<bool> release{false};
  RunningServer server(
      [&](const PeerCredentials&, const protocol::Request& request) {
        const auto* status = std::get_if<protocol::StatusRequest>(&request);
        if (status != nullptr && status->user == "waits") {
          entered = true;
          const auto until = std::chrono::steady_clock::now() + 10s;
          while (!release.load() && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(1ms);
          }
        }
        return ok_reply();
      },
      ServerLimits{.answer_root_fast_requests_inline = true});
  const kpanel::common::ClientOptions client{.socket_path = server.socket_path(), .timeout = 10s};
  auto waiting = std::async(std::launch::async, [&] {
    return kpanel::common::call_daemon(client, protocol::StatusRequest{"waits"});
  });
  BOOST_REQUIRE(eventually([&] { return entered.load(); }));
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    const auto reply = kpanel::common::call_daemon(client, protocol::StatusRequest{"alice"});
    BOOST_REQUIRE(reply.has_value());
    BOOST_TEST((reply->status == protocol::Status::ok));
  }
  BOOST_TEST((std::chrono::steady_clock::now() - started < 2s));
  BOOST_TEST((waiting.wait_for(0s) == std::future_status::timeout));  // still in its handler
  release = true;
  const auto reply = waiting.get();
  BOOST_REQUIRE(reply.has_value());
  BOOST_TEST((reply->status == protocol::Status::ok));
}

BOOST_AUTO_TEST_CASE(a_big_reply_to_a_request_answered_at_accept_reaches_a_slow_reader_whole) {
  // Both io threads held by root requests waiting in their handlers: the
  // next client connects and sends before anyone accepts it, so its request
  // is answered at accept time. A reply the socket does not take at once
  // must still reach a slow reader whole, and the slot come back.
  const protocol::Response answer = big_list(12'000);
  std::atomic<int> entered{0};
  std::atomic<bool> release{false};
  RunningServer server(
      [&](const PeerCredentials&, const protocol::Request& request) {
        if (std::holds_alternative<protocol::StatusRequest>(request)) {
          ++entered;
          const auto until = std::chrono::steady_clock::now() + 10s;
          while (!release.load() && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(1ms);
          }
          return ok_reply();
        }
        return answer;
      },
      ServerLimits{.io_deadline = 5000ms, .answer_root_fast_requests_inline = true});
  const kpanel::common::ClientOptions options{.socket_path = server.socket_path(), .timeout = 10s};
  std::vector<std::future<void>> holders;
  for (int i = 0; i < 2; ++i) {
    holders.push_back(std::async(std::launch::async, [&] {
      (void)kpanel::common::call_daemon(options, protocol::StatusRequest{"waits"});
    }));
  }
  BOOST_REQUIRE(eventually([&] { return entered.load() == 2; }));
  const auto client = connect_to(server.socket_path(), 4096);
  send_request(client.get(), protocol::AdminListRequest{});
  release = true;
  std::this_thread::sleep_for(200ms);  // answered; nothing read yet
  const auto bytes = read_to_end(client.get(), 1ms);
  const auto reply = decode(bytes);
  BOOST_REQUIRE(reply.has_value());
  BOOST_TEST((*reply == answer));
  for (auto& holder : holders) holder.get();
  BOOST_TEST(eventually([&] { return server.connections() == 0; }));
}

BOOST_AUTO_TEST_CASE(a_root_request_sent_in_pieces_is_answered_and_its_slot_freed) {
  // Not all there at accept: the connection reads the rest, then answers.
  RunningServer server([&](const PeerCredentials&, const protocol::Request&) { return ok_reply(); },
                       ServerLimits{.answer_root_fast_requests_inline = true});
  for (int i = 0; i < 3; ++i) {
    const auto client = connect_to(server.socket_path(), 4096);
    const auto frame = protocol::encode_request(protocol::StatusRequest{"alice"});
    BOOST_REQUIRE_EQUAL(::send(client.get(), frame.data(), 3, MSG_NOSIGNAL), 3);
    std::this_thread::sleep_for(20ms);
    BOOST_REQUIRE_EQUAL(::send(client.get(), frame.data() + 3, frame.size() - 3, MSG_NOSIGNAL),
                        static_cast<ssize_t>(frame.size() - 3));
    const auto reply = decode(read_to_end(client.get(), 0ms));
    BOOST_REQUIRE(reply.has_value());
    BOOST_TEST((reply->status == protocol::Status::ok));
  }
  for (int i = 0; i < 20; ++i) {
    const auto reply = kpanel::common::call_daemon(
        {.socket_path = server.socket_path(), .timeout = 5s}, protocol::StatusRequest{"alice"});
    BOOST_REQUIRE(reply.has_value());
  }
  BOOST_TEST(eventually([&] { return server.connections() == 0; }));
}
