#pragma once
// Where the suite's syslog lines go. glibc's syslog() sends datagrams to
// /dev/log, which journald (or rsyslog) owns on a real host. A machine with no
// syslog daemon (a container, CI, this VM) has no /dev/log: every syslog()
// call then tries to connect and fails, and a caller that opened the log with
// LOG_CONS (pam_google_authenticator does) writes each line to /dev/console
// instead — on a serial console about a millisecond per line, which made
// Google Authenticator's (c) rows five times slower than on a real host.
//
// So when nobody listens on /dev/log, the suite binds it for the run and
// drains what arrives (as a syslog daemon would, minus the storing), and
// removes it afterwards. When a syslog daemon is there, it is left alone.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

namespace kpanel::bench {

class SyslogSink {
 public:
  // Never fails: if /dev/log cannot be bound, the description says so.
  SyslogSink();
  SyslogSink(const SyslogSink&) = delete;
  SyslogSink& operator=(const SyslogSink&) = delete;
  SyslogSink(SyslogSink&&) = delete;
  SyslogSink& operator=(SyslogSink&&) = delete;
  ~SyslogSink();

  // For the table: whose /dev/log the run logged to (and how many lines the
  // suite's own sink received).
  [[nodiscard]] std::string description() const;

 private:
  void drain() noexcept;

  enum class Owner : std::uint8_t { host, suite, nobody };
  Owner owner_ = Owner::nobody;
  std::string problem_;  // why nobody, when nobody
  int socket_ = -1;
  std::array<int, 2> stop_{-1, -1};  // a pipe that wakes drain() to stop
  std::atomic<std::size_t> lines_{0};
  std::thread thread_;
};

}  // namespace kpanel::bench
