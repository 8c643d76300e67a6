#include "cli/prompt.hpp"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <memory>

#include "common/unique_fd.hpp"

namespace kpanel::cli {

std::expected<common::SecureString, PromptError> read_line(int fd) {
  common::SecureString line;
  bool got_any = false;
  for (;;) {
    char c = 0;
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return std::unexpected(PromptError::io_error);
    }
    if (n == 0) {
      if (!got_any) {
        return std::unexpected(PromptError::no_input);
      }
      break;
    }
    got_any = true;
    if (c == '\n') {
      break;
    }
    if (line.size() >= kMaxAnswerLength) {
      return std::unexpected(PromptError::too_long);
    }
    line.push_back(c);
  }
  if (!line.empty() && line.view().back() == '\r') {
    common::SecureString trimmed(line.view().substr(0, line.size() - 1));
    return trimmed;
  }
  return line;
}

std::expected<common::SecureString, PromptError> LinePrompter::ask_secret(
    std::string_view /*prompt*/) {
  return read_line(fd_);
}

namespace {

// The terminal state to put back if a signal arrives while echo is off. Only
// one prompt is active at a time (the tool is single-threaded).
struct termios g_saved_termios {};
volatile sig_atomic_t g_echo_off_fd = -1;

constexpr std::array kRestoreSignals{SIGINT, SIGTERM, SIGHUP, SIGQUIT};

extern "C" void restore_terminal_and_reraise(int signal_number) {
  const int fd = g_echo_off_fd;
  if (fd >= 0) {
    ::tcsetattr(fd, TCSAFLUSH, &g_saved_termios);
  }
  (void)::signal(signal_number, SIG_DFL);
  (void)::raise(signal_number);
}

// Echo off for the lifetime of the object (ECHONL keeps the newline visible).
class EchoOff {
 public:
  explicit EchoOff(int fd) : fd_(fd) {
    if (::tcgetattr(fd_, &g_saved_termios) != 0) {
      return;
    }
    struct sigaction action {};
    action.sa_handler = restore_terminal_and_reraise;
    (void)::sigemptyset(&action.sa_mask);
    for (std::size_t i = 0; i < kRestoreSignals.size(); ++i) {
      (void)::sigaction(kRestoreSignals[i], nullptr, &previous_[i]);
      // A signal the parent chose to ignore stays ignored.
      if (previous_[i].sa_handler != SIG_IGN) {
        (void)::sigaction(kRestoreSignals[i], &action, nullptr);
      }
    }
    struct termios quiet = g_saved_termios;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    g_echo_off_fd = fd_;
    active_ = ::tcsetattr(fd_, TCSAFLUSH, &quiet) == 0;
  }
  ~EchoOff() {
    if (active_) {
      ::tcsetattr(fd_, TCSAFLUSH, &g_saved_termios);
    }
    g_echo_off_fd = -1;
    for (std::size_t i = 0; i < kRestoreSignals.size(); ++i) {
      (void)::sigaction(kRestoreSignals[i], &previous_[i], nullptr);
    }
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;
  EchoOff(EchoOff&&) = delete;
  EchoOff& operator=(EchoOff&&) = delete;

 private:
  int fd_;
  bool active_ = false;
  std::array<struct sigaction, kRestoreSignals.size()> previous_{};
};

void write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return;  // the prompt is a courtesy; reading still decides
    }
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace

std::expected<common::SecureString, PromptError> TerminalPrompter::ask_secret(
    std::string_view prompt) {
  const common::UniqueFd tty(::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC));
  // No controlling terminal (rare when stdin is one): use stdin and stderr.
  const int in = tty.get() >= 0 ? tty.get() : STDIN_FILENO;
  const int out = tty.get() >= 0 ? tty.get() : STDERR_FILENO;
  const EchoOff echo_off(in);
  write_all(out, prompt);
  return read_line(in);
}

std::unique_ptr<Prompter> make_prompter() {
  if (::isatty(STDIN_FILENO) == 1) {
    return std::make_unique<TerminalPrompter>();
  }
  return std::make_unique<LinePrompter>(STDIN_FILENO);
}

}  // namespace kpanel::cli
