#pragma once
// The command line: global flags (anywhere), one command from the table in
// commands.cpp, that command's options and positional arguments.

#include <cstddef>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/daemon_client.hpp"

namespace kpanel::cli {

class Context;
struct CommandLine;

struct GlobalOptions {
  std::string socket_path{common::kDefaultSocketPath};
  std::string user;  // --user NAME; empty: the caller's own account
  bool json = false;
};

struct OptionSpec {
  std::string_view name;        // without the leading "--"
  std::string_view value_name;  // empty: a flag; else the option takes a value ("FILE")
  std::string_view help;        // one line for --help
};

using CommandHandler = int (*)(Context& context, const CommandLine& line);

struct CommandSpec {
  std::string_view name;       // "status", "admin reset": a group word, then the subcommand
  std::string_view arguments;  // for usage: "[--png FILE] ...", "USER"
  std::string_view summary;    // one line for --help
  std::span<const OptionSpec> options;
  // Exactly these, in order ("USER"); a last one ending in "..." ("USER...")
  // takes any number of arguments, none included.
  std::span<const std::string_view> positionals;
  CommandHandler run = nullptr;
};

struct CommandLine {
  const CommandSpec* command = nullptr;
  std::vector<std::pair<std::string, std::string>> options;  // name without "--", value or ""
  std::vector<std::string> positionals;

  [[nodiscard]] bool has(std::string_view name) const noexcept;
  // The option's value; nullptr when not given.
  [[nodiscard]] const std::string* value(std::string_view name) const noexcept;
};

struct Invocation {
  GlobalOptions global;
  bool help = false;
  bool version = false;
  CommandLine line;  // line.command is null only with help or version
};

struct UsageError {
  std::string message;
  const CommandSpec* command = nullptr;  // when known, its usage line is shown
};

// `args` without argv[0]. --help and --version win over everything else on the line.
[[nodiscard]] std::expected<Invocation, UsageError> parse_arguments(
    std::span<const std::string> args, std::span<const CommandSpec> table);

// Checks a user name by the protocol's rule (common/user_name.hpp); the message
// says what is wrong.
[[nodiscard]] std::expected<void, std::string> check_user_name(std::string_view name);

}  // namespace kpanel::cli
