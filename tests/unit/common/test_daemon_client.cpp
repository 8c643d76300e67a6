#define BOOST_TEST_MODULE daemon_client
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/daemon_client.hpp"

// ---- allocation probe: the largest single allocation made by a thread ------
// Lets a test prove that a huge declared body length is refused before the
// client allocates anything of that size.
namespace {
thread_local std::size_t t_largest_allocation = 0;

void* allocate(std::size_t size) {
  if (size > t_largest_allocation) t_largest_allocation = size;
  void* memory = std::malloc(size == 0 ? 1 : size);  // NOLINT: the replaced allocator
  if (memory == nullptr) throw std::bad_alloc();
  return memory;
}
}  // namespace

void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void* operator new(std::size_t size, const std::nothrow_t& /*tag*/) noexcept {
  try {
    return allocate(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t& /*tag*/) noexcept {
  try {
    return allocate(size);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete[](void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t /*size*/) noexcept { std::free(memory); }
void operator delete[](void* memory, std::size_t /*size*/) noexcept { std::free(memory); }
void operator delete(void* memory, const std::nothrow_t& /*tag*/) noexcept { std::free(memory); }
void operator delete[](void* memory, const std::nothrow_t& /*tag*/) noexcept { std::free(memory); }

// ---- passwd probe: how many getpwnam_r lookups a thread made ----------------
// The client's lookup of the daemon user is on every login's path; these
// tests pin down when it happens (never for a root daemon, once otherwise).
namespace {
thread_local int t_passwd_lookups = 0;
}  // namespace

extern "C" int getpwnam_r(const char* name, passwd* entry, char* buffer, std::size_t size,
                          passwd** result) {
  ++t_passwd_lookups;
  using Real = int (*)(const char*, passwd*, char*, std::size_t, passwd**);
  static const auto real = reinterpret_cast<Real>(::dlsym(RTLD_NEXT, "getpwnam_r"));
  if (real == nullptr) {
    *result = nullptr;
    return ENOSYS;
  }
  return real(name, entry, buffer, size, result);
}

// ---- system call probe: the socket calls a thread made ---------------------
// The client is on every login's path: one connect, one send, one receive
// for an answer that arrives whole, and nothing else it does not need. The
// calls are counted where the client makes them (the fortified variants
// too); other threads (the test servers) are not counted.
namespace {
struct SocketCalls {
  int lstat = 0, socket = 0, connect = 0, setsockopt = 0, getsockopt = 0, send = 0, poll = 0,
      recv = 0, close = 0;
  [[nodiscard]] int total() const {
    return lstat + socket + connect + setsockopt + getsockopt + send + poll + recv + close;
  }
};
thread_local SocketCalls t_calls;

template <typename Function>
Function real(const char* name) {
  return reinterpret_cast<Function>(::dlsym(RTLD_NEXT, name));
}
}  // namespace

// NOLINTBEGIN(readability-inconsistent-declaration-parameter-name): libc's names
extern "C" {
int lstat(const char* path, struct stat* info) {
  ++t_calls.lstat;
  static const auto next = real<int (*)(const char*, struct stat*)>("lstat");
  return next(path, info);
}
int socket(int domain, int type, int protocol) {
  ++t_calls.socket;
  static const auto next = real<int (*)(int, int, int)>("socket");
  return next(domain, type, protocol);
}
int connect(int fd, const sockaddr* address, socklen_t length) {
  ++t_calls.connect;
  static const auto next = real<int (*)(int, const sockaddr*, socklen_t)>("connect");
  return next(fd, address, length);
}
int setsockopt(int fd, int level, int name, const void* value, socklen_t length) {
  ++t_calls.setsockopt;
  static const auto next = real<int (*)(int, int, int, const void*, socklen_t)>("setsockopt");
  return next(fd, level, name, value, length);
}
int getsockopt(int fd, int level, int name, void* value, socklen_t* length) {
  ++t_calls.getsockopt;
  static const auto next = real<int (*)(int, int, int, void*, socklen_t*)>("getsockopt");
  return next(fd, level, name, value, length);
}
ssize_t send(int fd, const void* data, std::size_t size, int flags) {
  ++t_calls.send;
  static const auto next = real<ssize_t (*)(int, const void*, std::size_t, int)>("send");
  return next(fd, data, size, flags);
}
int poll(pollfd* entries, nfds_t count, int timeout) {
  ++t_calls.poll;
  static const auto next = real<int (*)(pollfd*, nfds_t, int)>("poll");
  return next(entries, count, timeout);
}
int __poll_chk(pollfd* entries, nfds_t count, int timeout, std::size_t size) {
  ++t_calls.poll;
  static const auto next = real<int (*)(pollfd*, nfds_t, int, std::size_t)>("__poll_chk");
  return next(entries, count, timeout, size);
}
ssize_t recv(int fd, void* data, std::size_t size, int flags) {
  ++t_calls.recv;
  static const auto next = real<ssize_t (*)(int, void*, std::size_t, int)>("recv");
  return next(fd, data, size, flags);
}
ssize_t __recv_chk(int fd, void* data, std::size_t size, std::size_t capacity, int flags) {
  ++t_calls.recv;
  static const auto next =
      real<ssize_t (*)(int, void*, std::size_t, std::size_t, int)>("__recv_chk");
  return next(fd, data, size, capacity, flags);
}
int close(int fd) {
  ++t_calls.close;
  static const auto next = real<int (*)(int)>("close");
  return next(fd);
}
}  // extern "C"
// NOLINTEND(readability-inconsistent-declaration-parameter-name)

namespace {

using namespace kpanel::common;
using namespace kpanel::common::protocol;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class TempDir {
 public:
  TempDir() {
    std::array<char, 64> pattern{};
    std::snprintf(pattern.data(), pattern.size(), "/tmp/kpanel-client-test-XXXXXX");
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern.data();
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    ::unlink((path_ + "/sock").c_str());
    ::rmdir(path_.c_str());
  }
  [[nodiscard]] std::string socket_path() const { return path_ + "/sock"; }

 private:
  std::string path_;
};

sockaddr_un address_of(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  BOOST_REQUIRE_LT(path.size(), sizeof address.sun_path);
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

int bound_socket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE_GE(fd, 0);
  const sockaddr_un address = address_of(path);
  BOOST_REQUIRE_EQUAL(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  return fd;
}

bool wait_readable(int fd, std::chrono::milliseconds limit) {
  pollfd entry{.fd = fd, .events = POLLIN, .revents = 0};
  return ::poll(&entry, 1, static_cast<int>(limit.count())) > 0;
}

bool read_exactly(int fd, std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    if (!wait_readable(fd, 5s)) return false;
    const ssize_t got = ::recv(fd, data, size, 0);
    if (got <= 0) return false;
    data += got;
    size -= static_cast<std::size_t>(got);
  }
  return true;
}

void write_all(int fd, std::span<const std::uint8_t> data) {
  while (!data.empty()) {
    const ssize_t sent = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (sent <= 0) return;
    data = data.subspan(static_cast<std::size_t>(sent));
  }
}

std::optional<Request> read_request(int fd) {
  std::array<std::uint8_t, kHeaderSize> header{};
  if (!read_exactly(fd, header.data(), header.size())) return std::nullopt;
  const auto parsed = parse_header(header);
  if (!parsed) return std::nullopt;
  std::vector<std::uint8_t> body(parsed->body_length);
  if (!read_exactly(fd, body.data(), body.size())) return std::nullopt;
  auto request = decode_request(body);
  if (!request) return std::nullopt;
  return std::move(*request);
}

// Waits (bounded) until the client hangs up.
void wait_for_hangup(int fd) {
  std::array<std::uint8_t, 256> sink{};
  while (wait_readable(fd, 5s) && ::recv(fd, sink.data(), sink.size(), 0) > 0) {
  }
}

// One listening socket in a fresh directory and a thread that serves at most
// one connection with `handler`. Stops waiting for a connection on destruction.
class TestServer {
 public:
  using Handler = std::function<void(int fd)>;

  explicit TestServer(Handler handler, int connections = 1)
      : listener_(bound_socket(dir_.socket_path())), connections_(connections) {
    BOOST_REQUIRE_EQUAL(::listen(listener_, 4), 0);
    BOOST_REQUIRE_EQUAL(::pipe2(stop_.data(), O_CLOEXEC), 0);
    thread_ = std::thread([this, handler = std::move(handler)] { serve(handler); });
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;
  ~TestServer() {
    stop();
    ::close(listener_);
    ::close(stop_[0]);
    ::close(stop_[1]);
  }

  [[nodiscard]] std::string socket_path() const { return dir_.socket_path(); }
  [[nodiscard]] ClientOptions options(std::chrono::milliseconds timeout = 5s) const {
    return ClientOptions{.socket_path = socket_path(), .timeout = timeout};
  }
  // Joins the thread; afterwards connected() says whether a client came.
  void stop() {
    if (!thread_.joinable()) return;
    const char byte = 'x';
    (void)!::write(stop_[1], &byte, 1);
    thread_.join();
  }
  [[nodiscard]] bool connected() const { return connected_.load(); }

 private:
  void serve(const Handler& handler) {
    for (int served = 0; served < connections_; ++served) {
      std::array<pollfd, 2> entries{pollfd{.fd = listener_, .events = POLLIN, .revents = 0},
                                    pollfd{.fd = stop_[0], .events = POLLIN, .revents = 0}};
      if (::poll(entries.data(), entries.size(), 10'000) <= 0 || entries[0].revents == 0) return;
      const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;
      connected_ = true;
      handler(client);
      ::close(client);
    }
  }

  TempDir dir_;
  int listener_;
  int connections_;
  std::array<int, 2> stop_{-1, -1};
  std::atomic<bool> connected_{false};
  std::thread thread_;
};

std::vector<std::uint8_t> header_claiming(std::uint32_t length) {
  return {'K',
          'P',
          kVersion,
          0,
          static_cast<std::uint8_t>(length >> 24U),
          static_cast<std::uint8_t>(length >> 16U),
          static_cast<std::uint8_t>(length >> 8U),
          static_cast<std::uint8_t>(length)};
}

std::span<const std::uint8_t> as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

const Request kVerify =
    VerifyRequest{.user = "alice", .service = "sshd", .code = SecureString("123456")};

long long milliseconds_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

void check_error(const std::expected<Response, ClientError>& result, ClientError expected) {
  BOOST_REQUIRE(!result.has_value());
  BOOST_TEST(to_string(result.error()) == to_string(expected));
}

}  // namespace

BOOST_AUTO_TEST_CASE(error_names) {
  BOOST_TEST(to_string(ClientError::unreachable) == "unreachable");
  BOOST_TEST(to_string(ClientError::untrusted_peer) == "untrusted_peer");
  BOOST_TEST(to_string(ClientError::timeout) == "timeout");
  BOOST_TEST(to_string(ClientError::io_error) == "io_error");
  BOOST_TEST(to_string(ClientError::protocol_error) == "protocol_error");
}

BOOST_AUTO_TEST_CASE(round_trip_through_a_server) {
  std::optional<Request> seen;
  const Response answer{
      .status = Status::ok,
      .result = VerifyResult{.used_recovery_code = true, .recovery_codes_left = 3}};
  TestServer server([&](int fd) {
    seen = read_request(fd);
    const SecureBytes frame = encode_response(answer);
    write_all(fd, frame.view());
  });
  const int lookups_before = t_passwd_lookups;
  const auto result = call_daemon(server.options(), kVerify);
  server.stop();
  BOOST_REQUIRE(result.has_value());
  BOOST_TEST((*result == answer));
  BOOST_REQUIRE(seen.has_value());
  BOOST_TEST((*seen == kVerify));
  // Socket file and process both root's (the tests run as root): trusted
  // without asking NSS who the daemon user is.
  BOOST_REQUIRE_EQUAL(::geteuid(), 0U);
  BOOST_TEST(t_passwd_lookups == lookups_before);
}

// What a login's call costs in system calls: the trust checks (socket file,
// peer), one connect with no timeout to set first, one send, one wait and
// one read for an answer that arrives in one piece, and the close.
BOOST_AUTO_TEST_CASE(a_login_call_makes_one_connect_one_send_one_receive) {
  const Response answer{.status = Status::ok, .result = VerifyResult{}};
  TestServer server([&](int fd) {
    if (!read_request(fd)) return;
    const SecureBytes frame = encode_response(answer);
    write_all(fd, frame.view());  // one send: the answer arrives whole
  });
  const SocketCalls before = t_calls;
  const auto result = call_daemon(server.options(), kVerify);
  const SocketCalls after = t_calls;
  server.stop();
  BOOST_REQUIRE(result.has_value());
  BOOST_TEST((*result == answer));
  BOOST_TEST(after.lstat - before.lstat == 1);
  BOOST_TEST(after.socket - before.socket == 1);
  BOOST_TEST(after.connect - before.connect == 1);
  BOOST_TEST(after.setsockopt - before.setsockopt == 0);
  BOOST_TEST(after.getsockopt - before.getsockopt == 1);  // SO_PEERCRED
  BOOST_TEST(after.send - before.send == 1);
  BOOST_TEST(after.poll - before.poll == 1);
  BOOST_TEST(after.recv - before.recv == 1);
  BOOST_TEST(after.close - before.close == 1);
  BOOST_TEST(after.total() - before.total() == 8);
}

// A listener with a backlog of 0 and the one connection that fills it.
struct FullBacklog {
  explicit FullBacklog(const std::string& path)
      : listener(bound_socket(path)),
        filler(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)),
        address(address_of(path)) {
    BOOST_REQUIRE_EQUAL(::listen(listener, 0), 0);
    BOOST_REQUIRE_EQUAL(
        ::connect(filler, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  }
  int listener;
  int filler;
  sockaddr_un address;
};

// A backlog that is full when the client comes and frees up before its
// deadline: the client waits for room and is then served.
BOOST_AUTO_TEST_CASE(backlog_full_for_a_moment_is_waited_for) {
  const TempDir dir;
  const FullBacklog full(dir.socket_path());
  const int listener = full.listener;
  const int filler = full.filler;
  const Response answer{.status = Status::ok, .result = VerifyResult{}};
  std::thread server([&] {
    std::this_thread::sleep_for(150ms);
    const int first = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);  // the filler
    if (first >= 0) ::close(first);
    if (!wait_readable(listener, 5s)) return;
    const int client = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) return;
    if (read_request(client)) write_all(client, encode_response(answer).view());
    ::close(client);
  });
  const auto started = Clock::now();
  const auto result =
      call_daemon(ClientOptions{.socket_path = dir.socket_path(), .timeout = 3s}, kVerify);
  const auto elapsed = milliseconds_since(started);
  server.join();
  BOOST_REQUIRE(result.has_value());
  BOOST_TEST((*result == answer));
  BOOST_TEST(elapsed >= 100);  // it did wait for room
  ::close(filler);
  ::close(listener);
}

// A daemon whose backlog was full (it is there, but stalled) and that then
// goes away while the client waits for room: it was listening, so this is no
// "nobody listening" (which unavailable=ignore would let through), but a
// daemon that did not answer in time.
BOOST_AUTO_TEST_CASE(a_daemon_that_stalls_then_goes_away_is_no_unreachable_one) {
  const TempDir dir;
  const FullBacklog full(dir.socket_path());
  std::thread server([&] {
    std::this_thread::sleep_for(150ms);
    ::close(full.listener);  // the stalled daemon is stopped (or killed)
  });
  const auto result =
      call_daemon(ClientOptions{.socket_path = dir.socket_path(), .timeout = 2s}, kVerify);
  server.join();
  check_error(result, ClientError::timeout);
  ::close(full.filler);
}

BOOST_AUTO_TEST_CASE(answer_in_small_pieces_and_larger_than_a_request) {
  AdminListResult list;
  for (int i = 0; i < 1500; ++i) {
    list.users.push_back(UserStatus{.user = "user" + std::to_string(i), .recovery_codes_left = 10});
  }
  const Response answer{.status = Status::ok, .result = list};
  TestServer server([&](int fd) {
    if (!read_request(fd)) return;
    const SecureBytes frame = encode_response(answer);
    BOOST_TEST(frame.size() > kMaxBodySize);
    auto rest = frame.view();
    for (std::size_t piece = 1; !rest.empty(); piece *= 3) {  // 1, 3, 9, ... bytes
      const std::size_t size = std::min(piece, rest.size());
      write_all(fd, rest.first(size));
      rest = rest.subspan(size);
      std::this_thread::sleep_for(1ms);
    }
  });
  const auto result = call_daemon(server.options(), AdminListRequest{});
  BOOST_REQUIRE(result.has_value());
  BOOST_TEST((*result == answer));
}

BOOST_AUTO_TEST_CASE(silent_server_times_out_on_time) {
  TestServer server([](int fd) {
    (void)read_request(fd);
    wait_for_hangup(fd);  // never answers
  });
  const auto started = Clock::now();
  const auto result = call_daemon(server.options(300ms), kVerify);
  const auto elapsed = milliseconds_since(started);
  check_error(result, ClientError::timeout);
  BOOST_TEST_MESSAGE("timed out after " << elapsed << " ms");
  BOOST_TEST(elapsed >= 290);
  BOOST_TEST(elapsed < 1500);  // generous: shared CI cores, sanitizers
  BOOST_TEST(server.connected());
}

BOOST_AUTO_TEST_CASE(server_that_never_accepts_times_out_too) {
  // The backlog takes the connection; nobody reads it.
  const TempDir dir;
  const int listener = bound_socket(dir.socket_path());
  BOOST_REQUIRE_EQUAL(::listen(listener, 1), 0);
  const auto started = Clock::now();
  const auto result =
      call_daemon(ClientOptions{.socket_path = dir.socket_path(), .timeout = 300ms}, kVerify);
  check_error(result, ClientError::timeout);
  BOOST_TEST(milliseconds_since(started) < 1500);
  ::close(listener);
}

// A listen backlog that stays full (a flood, a stopped daemon) makes connect()
// wait and fail with EAGAIN: a live daemon that did not answer, which the
// module must never mistake for "nobody listening".
BOOST_AUTO_TEST_CASE(full_backlog_is_a_timeout_not_unreachable) {
  const TempDir dir;
  const FullBacklog full(dir.socket_path());
  const int listener = full.listener;
  const int filler = full.filler;
  const sockaddr_un& address = full.address;
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  BOOST_REQUIRE_EQUAL(::connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address),
                      -1);
  BOOST_REQUIRE_EQUAL(errno, EAGAIN);  // the backlog is full

  const auto started = Clock::now();
  const auto result =
      call_daemon(ClientOptions{.socket_path = dir.socket_path(), .timeout = 300ms}, kVerify);
  const auto elapsed = milliseconds_since(started);
  check_error(result, ClientError::timeout);
  BOOST_TEST(elapsed >= 290);  // it waited for the backlog, up to the deadline
  BOOST_TEST(elapsed < 1500);
  ::close(probe);
  ::close(filler);
  ::close(listener);
}

BOOST_AUTO_TEST_CASE(no_socket_is_unreachable) {
  const TempDir dir;
  check_error(
      call_daemon(ClientOptions{.socket_path = dir.socket_path(), .timeout = 300ms}, kVerify),
      ClientError::unreachable);
  check_error(
      call_daemon(ClientOptions{.socket_path = "/nonexistent-kpanel-dir/sock", .timeout = 300ms},
                  kVerify),
      ClientError::unreachable);
}

BOOST_AUTO_TEST_CASE(socket_without_listener_is_unreachable) {
  const TempDir dir;
  const int fd = bound_socket(dir.socket_path());  // bound, never listening
  check_error(
      call_daemon(ClientOptions{.socket_path = dir.socket_path(), .timeout = 300ms}, kVerify),
      ClientError::unreachable);
  ::close(fd);
}

BOOST_AUTO_TEST_CASE(socket_owned_by_another_user_is_untrusted) {
  TestServer server([](int fd) { wait_for_hangup(fd); });
  BOOST_REQUIRE_EQUAL(::lchown(server.socket_path().c_str(), 65534, 65534), 0);
  const int lookups_before = t_passwd_lookups;
  check_error(call_daemon(server.options(300ms), kVerify), ClientError::untrusted_peer);
  BOOST_TEST(t_passwd_lookups == lookups_before + 1);  // is nobody the daemon user? no
  server.stop();
  BOOST_TEST(!server.connected());  // refused before connecting, nothing sent
}

BOOST_AUTO_TEST_CASE(something_else_at_the_path_is_untrusted) {
  const TempDir dir;
  FILE* file = std::fopen(dir.socket_path().c_str(), "w");
  BOOST_REQUIRE(file != nullptr);
  std::fclose(file);
  check_error(
      call_daemon(ClientOptions{.socket_path = dir.socket_path(), .timeout = 300ms}, kVerify),
      ClientError::untrusted_peer);
}

BOOST_AUTO_TEST_CASE(daemon_running_as_another_user_is_untrusted) {
  // The socket file belongs to root, but the process listening on it (whose
  // credentials SO_PEERCRED reports) runs as nobody.
  const TempDir dir;
  std::array<int, 2> ready{};
  BOOST_REQUIRE_EQUAL(::pipe2(ready.data(), O_CLOEXEC), 0);
  const pid_t child = ::fork();
  BOOST_REQUIRE_GE(child, 0);
  if (child == 0) {
    const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string path = dir.socket_path();
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    const bool ok =
        listener >= 0 &&
        ::bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0 &&
        ::setgid(65534) == 0 && ::setuid(65534) == 0 && ::listen(listener, 1) == 0;
    const char byte = ok ? 'y' : 'n';
    (void)!::write(ready[1], &byte, 1);
    if (ok && wait_readable(listener, 5s)) {
      const int client = ::accept(listener, nullptr, nullptr);
      std::array<char, 64> sink{};
      bool got_bytes = false;
      while (client >= 0 && wait_readable(client, 5s) &&
             ::recv(client, sink.data(), sink.size(), 0) > 0) {
        got_bytes = true;
      }
      ::_exit(got_bytes ? 3 : 0);  // 3: the client sent its request anyway
    }
    ::_exit(ok ? 0 : 2);
  }
  ::close(ready[1]);
  char byte = 0;
  BOOST_REQUIRE_EQUAL(::read(ready[0], &byte, 1), 1);
  ::close(ready[0]);
  BOOST_REQUIRE_EQUAL(byte, 'y');
  struct stat info {};
  BOOST_REQUIRE_EQUAL(::lstat(dir.socket_path().c_str(), &info), 0);
  BOOST_REQUIRE_EQUAL(info.st_uid, 0U);
  const int lookups_before = t_passwd_lookups;
  check_error(call_daemon(ClientOptions{.socket_path = dir.socket_path(), .timeout = 2s}, kVerify),
              ClientError::untrusted_peer);
  BOOST_TEST(t_passwd_lookups == lookups_before + 1);  // for the peer only: the file is root's
  int status = 0;
  BOOST_REQUIRE_EQUAL(::waitpid(child, &status, 0), child);
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 0);
}

BOOST_AUTO_TEST_CASE(garbage_answer_is_a_protocol_error) {
  TestServer server([](int fd) {
    (void)read_request(fd);
    write_all(fd, as_bytes("HTTP/1.1 400 Bad Request\r\n\r\n"));
  });
  check_error(call_daemon(server.options(), kVerify), ClientError::protocol_error);
}

BOOST_AUTO_TEST_CASE(good_header_with_a_bad_body_is_a_protocol_error) {
  TestServer server([](int fd) {
    (void)read_request(fd);
    const std::string_view body = R"({"status":"ok","result":"verify"})";
    write_all(fd, header_claiming(static_cast<std::uint32_t>(body.size())));
    write_all(fd, as_bytes(body));
  });
  check_error(call_daemon(server.options(), kVerify), ClientError::protocol_error);
}

BOOST_AUTO_TEST_CASE(other_protocol_version_is_a_protocol_error) {
  TestServer server([](int fd) {
    (void)read_request(fd);
    SecureBytes frame = encode_response(Response{.status = Status::ok});
    frame.mutable_view()[2] = kVersion + 1;
    write_all(fd, frame.view());
  });
  check_error(call_daemon(server.options(), kVerify), ClientError::protocol_error);
}

// A daemon that reads only version 1 (not yet restarted after an upgrade)
// answers unsupported_version; the client asks again in version 1 and gets
// its answer, so the login is served instead of refused.
BOOST_AUTO_TEST_CASE(an_older_daemon_is_asked_again_in_the_oldest_version) {
  std::vector<std::uint8_t> versions_seen;
  std::optional<Request> seen;
  const Response answer{.status = Status::ok, .result = VerifyResult{}};
  TestServer server(
      [&](int fd) {
        std::array<std::uint8_t, kHeaderSize> header{};
        if (!read_exactly(fd, header.data(), header.size())) return;
        const auto parsed = parse_header(header);
        if (!parsed) return;
        std::vector<std::uint8_t> body(parsed->body_length);
        if (!read_exactly(fd, body.data(), body.size())) return;
        versions_seen.push_back(parsed->version);
        if (parsed->version != kOldestVersion) {
          const SecureBytes refusal =
              encode_response(Response{.status = Status::unsupported_version}, kOldestVersion);
          write_all(fd, refusal.view());
          return;
        }
        if (auto request = decode_request(body, kOldestVersion)) seen = std::move(*request);
        write_all(fd, encode_response(answer, kOldestVersion).view());
      },
      2);
  const auto result = call_daemon(server.options(), kVerify);
  server.stop();
  BOOST_REQUIRE(result.has_value());
  BOOST_TEST((*result == answer));
  BOOST_TEST(versions_seen == (std::vector<std::uint8_t>{kVersion, kOldestVersion}),
             boost::test_tools::per_element());
  BOOST_REQUIRE(seen.has_value());
  BOOST_TEST((*seen == kVerify));
}

// A daemon of this version never sees a second request for one call.
BOOST_AUTO_TEST_CASE(a_current_daemon_is_asked_once) {
  int requests = 0;
  TestServer server(
      [&](int fd) {
        if (read_request(fd)) ++requests;
        write_all(fd,
                  encode_response(Response{.status = Status::ok, .result = VerifyResult{}}).view());
      },
      2);
  BOOST_REQUIRE(call_daemon(server.options(), kVerify).has_value());
  server.stop();
  BOOST_TEST(requests == 1);
}

BOOST_AUTO_TEST_CASE(huge_declared_body_is_refused_without_allocating_it) {
  TestServer server([](int fd) {
    (void)read_request(fd);
    write_all(fd, header_claiming(1U << 30U));  // 1 GiB
    wait_for_hangup(fd);
  });
  t_largest_allocation = 0;
  const auto result = call_daemon(server.options(), kVerify);
  const std::size_t largest = t_largest_allocation;
  check_error(result, ClientError::protocol_error);
  BOOST_TEST_MESSAGE("largest allocation during the call: " << largest << " bytes");
  BOOST_TEST(largest < 1024U * 1024U);
}

BOOST_AUTO_TEST_CASE(server_hanging_up_mid_answer_is_an_io_error) {
  TestServer server([](int fd) {
    (void)read_request(fd);
    write_all(fd, header_claiming(100));
    write_all(fd, as_bytes(R"({"status":)"));
  });
  check_error(call_daemon(server.options(), kVerify), ClientError::io_error);
}

BOOST_AUTO_TEST_CASE(server_hanging_up_without_answer_is_an_io_error) {
  TestServer server([](int fd) { (void)read_request(fd); });
  check_error(call_daemon(server.options(), kVerify), ClientError::io_error);
}

BOOST_AUTO_TEST_CASE(request_that_does_not_encode_is_never_sent) {
  TestServer server([](int fd) { wait_for_hangup(fd); });
  check_error(call_daemon(server.options(300ms), StatusRequest{.user = "../etc"}),
              ClientError::protocol_error);
  server.stop();
  BOOST_TEST(!server.connected());
}

BOOST_AUTO_TEST_CASE(path_too_long_for_a_unix_socket_is_an_io_error) {
  check_error(
      call_daemon(ClientOptions{.socket_path = "/tmp/" + std::string(200, 'x'), .timeout = 300ms},
                  kVerify),
      ClientError::io_error);
}

BOOST_AUTO_TEST_CASE(timeout_option_extremes) {
  {
    TestServer server([](int fd) { wait_for_hangup(fd); });
    check_error(call_daemon(server.options(0ms), kVerify), ClientError::timeout);
    check_error(call_daemon(server.options(-5ms), kVerify), ClientError::timeout);
  }
  // A huge timeout is clamped, not overflowed into the past.
  TestServer server([](int fd) {
    (void)read_request(fd);
    const SecureBytes frame = encode_response(Response{.status = Status::forbidden});
    write_all(fd, frame.view());
  });
  const auto result = call_daemon(server.options(std::chrono::milliseconds::max()), kVerify);
  BOOST_REQUIRE(result.has_value());
  BOOST_TEST((result->status == Status::forbidden));
}
