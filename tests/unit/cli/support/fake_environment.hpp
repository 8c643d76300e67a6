#pragma once
// A scripted world for kpanel::cli::run(): a fake daemon that records every
// request and answers from a queue, a prompter with canned answers, captured
// stdout/stderr and a manual clock.

#include <deque>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "common/clock.hpp"
#include "common/daemon_client.hpp"
#include "common/protocol.hpp"

namespace kpanel::cli::testing {

// 2026-11-28T19:27:28Z
inline constexpr std::int64_t kNow = 1795894048;

class ScriptedPrompter final : public Prompter {
 public:
  std::deque<std::string> answers;  // popped in order; empty queue: no_input
  std::vector<std::string> prompts;
  bool is_interactive = false;

  std::expected<common::SecureString, PromptError> ask_secret(std::string_view prompt) override;
  bool interactive() const noexcept override { return is_interactive; }
};

using Reply = std::expected<common::protocol::Response, common::ClientError>;

class FakeWorld {
 public:
  FakeWorld();

  // Queue an answer of the daemon.
  void reply(common::protocol::Result result);
  void reply_status(common::protocol::Status status);
  void reply(Reply reply) { replies_.push_back(std::move(reply)); }

  // Runs kpanel-totp with these arguments; returns the exit code.
  int run(std::vector<std::string> args);

  [[nodiscard]] std::string out() const { return out_.str(); }
  [[nodiscard]] std::string err() const { return err_.str(); }

  ScriptedPrompter prompter;
  common::ManualClock clock;
  std::vector<common::protocol::Request> requests;
  std::vector<common::ClientOptions> options;
  bool out_colors = false;
  ServiceManager service_manager = ServiceManager::systemd;

 private:
  std::deque<Reply> replies_;
  std::ostringstream out_;
  std::ostringstream err_;
};

// The requests' types as the daemon sees them.
template <class T>
const T& request_as(const common::protocol::Request& request) {
  return std::get<T>(request);
}

// Lines of `text` (without the newlines).
std::vector<std::string> lines_of(const std::string& text);

}  // namespace kpanel::cli::testing
