#include "fake_daemon.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>

namespace kpanel::test {
namespace {

namespace protocol = common::protocol;

constexpr int kReadTimeoutMs = 5'000;

bool read_exactly(int fd, std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    pollfd entry{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&entry, 1, kReadTimeoutMs) <= 0) return false;
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

}  // namespace

FakeDaemon::FakeDaemon(std::string socket_path) : socket_path_(std::move(socket_path)) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof address.sun_path) {
    throw std::runtime_error("socket path too long: " + socket_path_);
  }
  std::memcpy(address.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
  ::unlink(socket_path_.c_str());
  listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener_ < 0 ||
      ::bind(listener_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listener_, 8) != 0 || ::pipe2(stop_.data(), O_CLOEXEC) != 0) {
    throw std::runtime_error("cannot listen on " + socket_path_ + ": " + std::strerror(errno));
  }
  thread_ = std::thread([this] { serve(); });
}

FakeDaemon::~FakeDaemon() {
  const char byte = 'x';
  (void)!::write(stop_[1], &byte, 1);
  thread_.join();
  for (const int fd : held_) ::close(fd);
  ::close(listener_);
  ::close(stop_[0]);
  ::close(stop_[1]);
  ::unlink(socket_path_.c_str());
}

void FakeDaemon::reply(protocol::Response response) {
  const std::lock_guard lock(mutex_);
  script_.push_back(Action{.response = std::move(response)});
}

void FakeDaemon::hang() {
  const std::lock_guard lock(mutex_);
  script_.push_back(Action{.hang = true});
}

std::vector<protocol::Request> FakeDaemon::requests() const {
  const std::lock_guard lock(mutex_);
  return requests_;
}

void FakeDaemon::serve() {
  for (;;) {
    std::array<pollfd, 2> entries{pollfd{.fd = listener_, .events = POLLIN, .revents = 0},
                                  pollfd{.fd = stop_[0], .events = POLLIN, .revents = 0}};
    if (::poll(entries.data(), entries.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (entries[1].revents != 0) return;
    if (entries[0].revents == 0) continue;
    const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client >= 0) handle(client);
  }
}

void FakeDaemon::handle(int client) {
  std::array<std::uint8_t, protocol::kHeaderSize> header{};
  std::optional<protocol::Request> request;
  if (read_exactly(client, header.data(), header.size())) {
    if (const auto parsed = protocol::parse_header(header)) {
      std::vector<std::uint8_t> body(parsed->body_length);
      if (read_exactly(client, body.data(), body.size())) {
        if (auto decoded = protocol::decode_request(body)) request = std::move(*decoded);
      }
    }
  }
  Action action{.response = protocol::Response{.status = protocol::Status::bad_request}};
  {
    const std::lock_guard lock(mutex_);
    if (request) {
      requests_.push_back(*request);
      if (script_.empty()) {
        action.response = protocol::Response{.status = protocol::Status::internal_error};
      } else {
        action = std::move(script_.front());
        script_.pop_front();
      }
    }
    if (action.hang) {
      held_.push_back(client);
      return;
    }
  }
  const common::SecureBytes frame = protocol::encode_response(action.response);
  write_all(client, frame.view());
  ::close(client);
}

protocol::Response login_check_answer(protocol::LoginDecision decision, std::string notice,
                                      std::optional<std::int64_t> locked_until) {
  return protocol::Response{
      .status = protocol::Status::ok,
      .result = protocol::LoginCheckResult{
          .decision = decision, .notice = std::move(notice), .locked_until = locked_until}};
}

protocol::Response status_answer(protocol::Status status,
                                 std::optional<std::int64_t> locked_until) {
  return protocol::Response{.status = status, .locked_until = locked_until};
}

protocol::Response verify_answer(bool used_recovery_code, std::uint32_t recovery_codes_left) {
  return protocol::Response{
      .status = protocol::Status::ok,
      .result = protocol::VerifyResult{.used_recovery_code = used_recovery_code,
                                       .recovery_codes_left = recovery_codes_left}};
}

}  // namespace kpanel::test
