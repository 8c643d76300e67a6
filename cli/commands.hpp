#pragma once
// What a command handler gets (Context) and the table of commands.
//
// Adding a command: write cmd_NAME.cpp with `int run_NAME(Context&, const
// CommandLine&)`, declare it below, and add a row (name, usage, options,
// positionals, handler) to the table in commands.cpp. Parsing, --help and
// usage errors follow from the row.

#include <chrono>
#include <cstddef>
#include <expected>
#include <functional>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "cli/arguments.hpp"
#include "cli/errors.hpp"
#include "cli/prompt.hpp"
#include "common/clock.hpp"
#include "common/daemon_client.hpp"
#include "common/protocol.hpp"
#include "common/secure_buffer.hpp"

namespace kpanel::cli {

// Generous: disable makes the daemon check a password, which PAM slows down on purpose.
inline constexpr std::chrono::milliseconds kDaemonTimeout{15'000};

using DaemonCaller = std::function<std::expected<common::protocol::Response, common::ClientError>(
    const common::ClientOptions&, const common::protocol::Request&)>;

// The outside world of one run: cli.cpp wires the real one, tests wire fakes.
struct Environment {
  std::ostream& out;
  std::ostream& err;
  Prompter& prompter;
  DaemonCaller call_daemon;
  const common::Clock& clock;
  std::string self_name;    // the caller's login name, for messages
  bool out_colors = false;  // stdout is a colour terminal: draw QR codes with explicit colours
  bool err_colors = false;  // the same for stderr
  ServiceManager service_manager = ServiceManager::systemd;  // for "start the daemon" hints
};

class Context {
 public:
  Context(Environment& env, GlobalOptions global, const CommandSpec& command)
      : env_(env), global_(std::move(global)), command_(command) {}

  [[nodiscard]] const GlobalOptions& global() const noexcept { return global_; }
  [[nodiscard]] std::ostream& out() noexcept { return env_.out; }
  [[nodiscard]] std::ostream& err() noexcept { return env_.err; }
  [[nodiscard]] common::TimePoint now() const { return env_.clock.now(); }
  [[nodiscard]] bool colors(const std::ostream& stream) const noexcept;
  // The account the command is about: --user NAME, else the caller.
  [[nodiscard]] std::string_view subject() const noexcept;
  // "kpanel-totp --user NAME " + `command` when acting for another user, else
  // "kpanel-totp " + `command`: a suggested command that acts on the same account.
  [[nodiscard]] std::string suggest(std::string_view command) const;

  // One request; no answer, or an answer other than ok, becomes a Failure.
  // `about` is the account named in messages (defaults to subject()).
  [[nodiscard]] std::expected<common::protocol::Response, Failure> send(
      const common::protocol::Request& request, std::string_view about = {});

  // send(), expecting the result type `Result`.
  template <class Result>
  [[nodiscard]] std::expected<Result, Failure> request(const common::protocol::Request& request,
                                                       std::string_view about = {}) {
    auto response = send(request, about);
    if (!response) {
      return std::unexpected(std::move(response.error()));
    }
    if (auto* result = std::get_if<Result>(&response->result)) {
      return std::move(*result);
    }
    return std::unexpected(unexpected_reply());
  }

  // Asks for one secret answer. `what` names it in errors ("verification code");
  // an empty or over-long answer is refused before anything is sent.
  [[nodiscard]] std::expected<common::SecureString, Failure> ask(std::string_view prompt,
                                                                 std::string_view what,
                                                                 std::size_t max_length,
                                                                 bool allow_empty = false);
  [[nodiscard]] bool interactive() const noexcept { return env_.prompter.interactive(); }

  // "kpanel-totp: MESSAGE" on stderr and, with --json, {"error":REASON,"message":MESSAGE}
  // on stdout; returns the failure's exit code.
  int fail(const Failure& failure);
  // A usage error: the message and this command's usage line on stderr (and the
  // JSON object, reason "usage"); returns 2.
  int usage(std::string_view message);

 private:
  Environment& env_;
  GlobalOptions global_;
  const CommandSpec& command_;
};

// Every command, in --help order.
[[nodiscard]] std::span<const CommandSpec> command_table();

// The handlers, one file each (cmd_*.cpp).
int run_enroll(Context& context, const CommandLine& line);
int run_status(Context& context, const CommandLine& line);
int run_disable(Context& context, const CommandLine& line);
int run_recovery_codes(Context& context, const CommandLine& line);
int run_admin_list(Context& context, const CommandLine& line);
int run_admin_reset(Context& context, const CommandLine& line);
int run_admin_unlock(Context& context, const CommandLine& line);
int run_admin_doctor(Context& context, const CommandLine& line);
int run_admin_backup(Context& context, const CommandLine& line);
int run_admin_stats(Context& context, const CommandLine& line);
int run_admin_import(Context& context, const CommandLine& line);
int run_forget(Context& context, const CommandLine& line);
int run_admin_forget(Context& context, const CommandLine& line);

// --help: every command with its options.
void print_help(std::ostream& out);
// After a usage error: the command's usage line, or the general one.
void print_usage(std::ostream& out, const CommandSpec* command);

}  // namespace kpanel::cli
