#pragma once
// kpanel-totp as a function: parse, dispatch through the command table, map
// every outcome to an exit code. main() only wires the real environment.

#include <span>
#include <string>

#include "cli/commands.hpp"

namespace kpanel::cli {

// One run with the given environment (tests pass fakes); returns the exit code.
[[nodiscard]] int run(std::span<const std::string> args, Environment& env);

// The real environment: stdout/stderr, /dev/tty or stdin, the daemon socket,
// the system clock. Catches everything.
[[nodiscard]] int run_main(int argc, char** argv) noexcept;

}  // namespace kpanel::cli
