#include "pam_module/login_source.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <utmpx.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/protocol.hpp"
#include "common/text.hpp"

namespace kpanel::pam {
namespace {

// utmp holds one entry per terminal line ever used since boot: a few hundred
// at most. Anything past this many is not read (no host found: the code is asked).
constexpr std::size_t kMaxUtmpEntries = 65536;

bool usable(std::string_view text) {
  return !text.empty() && text.size() <= common::protocol::kMaxSourceLength &&
         std::ranges::all_of(text, [](char c) {
           return common::is_printable_ascii(static_cast<unsigned char>(c));
         });
}

// A fixed-size utmp field as a string: up to its first NUL or its end.
template <std::size_t N>
std::string_view field(const char (&text)[N]) {  // NOLINT(*-avoid-c-arrays): utmpx's own type
  return {text, strnlen(text, N)};
}

}  // namespace

std::string utmp_remote_host(const std::string& utmp_path, std::string_view line) {
  if (line.empty()) return {};
  // Read directly rather than through getutxline(): no process-wide state
  // (sshd and sudo may use utmp themselves), and the path can be a test's.
  const int fd = ::open(utmp_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return {};
  std::string host;
  struct utmpx entry {};
  for (std::size_t i = 0; i < kMaxUtmpEntries; ++i) {
    ssize_t got = 0;
    do {
      got = ::read(fd, &entry, sizeof entry);
    } while (got < 0 && errno == EINTR);
    if (got != static_cast<ssize_t>(sizeof entry)) break;  // end of file (or a torn entry)
    if (entry.ut_type == USER_PROCESS && field(entry.ut_line) == line) {
      host = std::string(field(entry.ut_host));  // the last one for the line is current
    }
  }
  (void)::close(fd);
  return host;
}

std::string login_source(std::string_view rhost, std::string_view tty, std::string_view ruser,
                         const std::string& utmp_path) {
  if (!rhost.empty()) return usable(rhost) ? std::string(rhost) : std::string();
  if (tty.empty()) return {};
  std::string_view line = tty;
  if (line.starts_with("/dev/")) line.remove_prefix(5);
  if (const std::string host = utmp_remote_host(utmp_path, line); !host.empty()) {
    return usable(host) ? host : std::string();
  }
  std::string local = "tty=" + std::string(line) + " ruser=" + std::string(ruser);
  return usable(local) ? local : std::string();
}

}  // namespace kpanel::pam
