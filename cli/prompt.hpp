#pragma once
// Answers to prompts (codes, passwords). On a terminal: asked on /dev/tty with
// echo off. Otherwise (scripts, tests): one line of stdin per prompt, in the
// order the command asks, with no prompt text printed.

#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <string_view>

#include "common/secure_buffer.hpp"

namespace kpanel::cli {

enum class PromptError : std::uint8_t {
  no_input,  // end of input before a line (or an empty answer on a terminal: Ctrl-D)
  too_long,  // longer than kMaxAnswerLength
  io_error,  // the terminal or stdin could not be read
};

// Longer than any code or password the protocol carries.
inline constexpr std::size_t kMaxAnswerLength = 1024;

class Prompter {
 public:
  Prompter() = default;
  virtual ~Prompter() = default;
  Prompter(const Prompter&) = delete;
  Prompter& operator=(const Prompter&) = delete;
  Prompter(Prompter&&) = delete;
  Prompter& operator=(Prompter&&) = delete;

  // One answer without its line ending; never echoed.
  [[nodiscard]] virtual std::expected<common::SecureString, PromptError> ask_secret(
      std::string_view prompt) = 0;
  // A person is answering (so a mistyped code may be asked for again).
  [[nodiscard]] virtual bool interactive() const noexcept = 0;
};

// Reads one line per prompt from `fd` (not owned), byte by byte so nothing past
// the line is consumed; "\n" or "\r\n" ends a line, and so does end of input
// after at least one byte.
class LinePrompter final : public Prompter {
 public:
  explicit LinePrompter(int fd) noexcept : fd_(fd) {}
  [[nodiscard]] std::expected<common::SecureString, PromptError> ask_secret(
      std::string_view prompt) override;
  [[nodiscard]] bool interactive() const noexcept override { return false; }

 private:
  int fd_;
};

// Asks on the controlling terminal with echo off, restoring the terminal
// afterwards, also when interrupted by SIGINT/SIGTERM/SIGHUP/SIGQUIT.
class TerminalPrompter final : public Prompter {
 public:
  [[nodiscard]] std::expected<common::SecureString, PromptError> ask_secret(
      std::string_view prompt) override;
  [[nodiscard]] bool interactive() const noexcept override { return true; }
};

// TerminalPrompter when stdin is a terminal, else a LinePrompter on stdin.
[[nodiscard]] std::unique_ptr<Prompter> make_prompter();

// One line from `fd`, as LinePrompter reads it.
[[nodiscard]] std::expected<common::SecureString, PromptError> read_line(int fd);

}  // namespace kpanel::cli
