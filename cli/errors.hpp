#pragma once
// Exit codes and the one table that turns every daemon answer and every
// client failure into an exit code and a one-line message saying what to do next.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/clock.hpp"
#include "common/daemon_client.hpp"
#include "common/protocol.hpp"

namespace kpanel::cli {

// The tool's exit codes, fixed for scripts.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;      // wrong code, not allowed, locked, store down, ...
inline constexpr int kExitUsage = 2;        // bad command line or missing answers on stdin
inline constexpr int kExitUnreachable = 3;  // no daemon to ask

// What went wrong: the exit code, the message without the "kpanel-totp: "
// prefix, and a machine-readable reason for --json ({"error": reason}). An
// empty reason falls back to one derived from the exit code (reason_of).
struct Failure {
  Failure(int code, std::string text, std::string why = {})
      : exit_code(code), message(std::move(text)), reason(std::move(why)) {}

  int exit_code = kExitRefused;
  std::string message;
  std::string reason;
  std::optional<common::protocol::Status> status;  // when the daemon answered
};

// The reason a script sees: the daemon's status name ("wrong_code"), the
// client error's name ("unreachable"), or "usage" / "refused" by exit code.
[[nodiscard]] std::string reason_of(const Failure& failure);

// How to start the daemon on this host, for the "unreachable" hints.
enum class ServiceManager : std::uint8_t {
  systemd,  // the host was booted with systemd (/run/systemd/system exists)
  none,     // containers, chroots: kpanel-totpd-ctl runs it in the background
};
[[nodiscard]] ServiceManager detect_service_manager();

// What a message may mention.
struct FailureContext {
  std::string_view user;         // the account the request was about
  std::string_view socket_path;  // where the daemon was looked for
  common::TimePoint now;         // for "try again in N minutes"
  // The command line's "--user NAME " when acting for another user, so that
  // suggested commands act on the same account; empty otherwise.
  std::string_view user_flag{};
  ServiceManager service_manager = ServiceManager::systemd;
};

// Status::ok is not a failure; passing it yields a generic internal message.
[[nodiscard]] Failure describe_status(const common::protocol::Response& response,
                                      const FailureContext& context);
[[nodiscard]] Failure describe_client_error(common::ClientError error,
                                            const FailureContext& context);
// An ok answer whose result is not the one the request asks for.
[[nodiscard]] Failure unexpected_reply();

// Whole minutes until `until`, rounded up, at least 1.
[[nodiscard]] std::int64_t minutes_until(std::int64_t until_unix, common::TimePoint now);

}  // namespace kpanel::cli
