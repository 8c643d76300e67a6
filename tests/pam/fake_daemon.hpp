#pragma once
// A stand-in for kpanel-totpd in the module's real-PAM tests: listens on a UNIX
// socket, answers each connection with the next scripted action and records
// every request it decoded. It speaks through the one codec (common_wire), so
// the module is tested against the real wire format.

#include <array>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/protocol.hpp"

namespace kpanel::test {

class FakeDaemon {
 public:
  // Binds `socket_path` (replacing a stale file) and starts serving.
  explicit FakeDaemon(std::string socket_path);
  FakeDaemon(const FakeDaemon&) = delete;
  FakeDaemon& operator=(const FakeDaemon&) = delete;
  FakeDaemon(FakeDaemon&&) = delete;
  FakeDaemon& operator=(FakeDaemon&&) = delete;
  ~FakeDaemon();

  // The next connection gets this response.
  void reply(common::protocol::Response response);
  // The next connection is accepted, read, and never answered (held open).
  void hang();

  [[nodiscard]] std::vector<common::protocol::Request> requests() const;
  [[nodiscard]] const std::string& socket_path() const { return socket_path_; }

 private:
  struct Action {
    bool hang = false;
    common::protocol::Response response{};
  };
  void serve();
  void handle(int client);

  std::string socket_path_;
  int listener_ = -1;
  std::array<int, 2> stop_{-1, -1};
  mutable std::mutex mutex_;
  std::deque<Action> script_;
  std::vector<common::protocol::Request> requests_;
  std::vector<int> held_;  // connections left unanswered until the end
  std::thread thread_;
};

// Shorthands for scripted answers.
[[nodiscard]] common::protocol::Response login_check_answer(
    common::protocol::LoginDecision decision, std::string notice = {},
    std::optional<std::int64_t> locked_until = std::nullopt);
[[nodiscard]] common::protocol::Response status_answer(
    common::protocol::Status status, std::optional<std::int64_t> locked_until = std::nullopt);
[[nodiscard]] common::protocol::Response verify_answer(bool used_recovery_code,
                                                       std::uint32_t recovery_codes_left);

}  // namespace kpanel::test
