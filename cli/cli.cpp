#include "cli/cli.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <vector>

#include "cli/output.hpp"
#include "cli/prompt.hpp"
#include "kpanel/version.hpp"

namespace kpanel::cli {

namespace {

// The caller's login name, for messages only (the daemon trusts SO_PEERCRED).
std::string login_name() {
  const uid_t uid = ::geteuid();
  std::array<char, 4096> buffer{};
  struct passwd entry {};
  struct passwd* found = nullptr;
  if (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
    return found->pw_name;
  }
  return "uid " + std::to_string(uid);
}

// Explicit colours only where they are shown and wanted (https://no-color.org).
bool colour_terminal(int fd) {
  if (::isatty(fd) != 1) {
    return false;
  }
  const char* no_color = std::getenv("NO_COLOR");  // NOLINT(concurrency-mt-unsafe): no threads
  if (no_color != nullptr && *no_color != '\0') {
    return false;
  }
  const char* term = std::getenv("TERM");  // NOLINT(concurrency-mt-unsafe): no threads
  return term != nullptr && std::string_view(term) != "dumb";
}

}  // namespace

int run(std::span<const std::string> args, Environment& env) {
  auto invocation = parse_arguments(args, command_table());
  if (!invocation) {
    env.err << "kpanel-totp: " << invocation.error().message << '\n';
    print_usage(env.err, invocation.error().command);
    // The line did not parse, but a script that asked for JSON still gets its object.
    if (std::ranges::find(args, std::string_view("--json")) != args.end()) {
      env.out << error_json("usage", invocation.error().message) << '\n';
    }
    return kExitUsage;
  }
  if (invocation->help) {
    print_help(env.out);
    return kExitOk;
  }
  if (invocation->version) {
    env.out << "kpanel-totp " << kpanel::kVersion << '\n';
    return kExitOk;
  }
  const CommandLine& line = invocation->line;
  Context context(env, invocation->global, *line.command);
  const int exit_code = line.command->run(context, line);
  env.out.flush();
  if (!env.out) {
    // Recovery codes that never reached the screen are worse than an error.
    env.err << "kpanel-totp: could not write the output (stdout closed or full)\n";
    return exit_code == kExitOk ? kExitRefused : exit_code;
  }
  return exit_code;
}

int run_main(int argc, char** argv) noexcept {
  try {
    const std::span<char*> argv_span(argv, static_cast<std::size_t>(argc));
    std::vector<std::string> args;
    for (std::size_t i = 1; i < argv_span.size(); ++i) {
      args.emplace_back(argv_span[i]);
    }
    const auto prompter = make_prompter();
    const common::SystemClock clock;
    Environment env{std::cout,
                    std::cerr,
                    *prompter,
                    DaemonCaller(&common::call_daemon),
                    clock,
                    login_name(),
                    colour_terminal(STDOUT_FILENO),
                    colour_terminal(STDERR_FILENO),
                    detect_service_manager()};
    return run(args, env);
  } catch (const std::exception& e) {
    std::cerr << "kpanel-totp: unexpected error: " << e.what() << '\n';
  } catch (...) {
    std::cerr << "kpanel-totp: unexpected error\n";
  }
  return kExitRefused;
}

}  // namespace kpanel::cli
