#pragma once
// Where a login comes from, for remembered logins (module option
// `remember`, the daemon's `remember_seconds`): a login with a code from one
// source lets the same user skip the code from that source until the
// daemon's window ends. In this order:
//   1. PAM_RHOST when the application set it (sshd: the client's address or
//      name);
//   2. else the remote host utmp records for PAM_TTY's line: a terminal of an
//      SSH login, whose entry sshd wrote with the client's host. So `sudo` in
//      an SSH session that used a code has that session's source, and skips
//      the code like the next SSH login from that host would;
//   3. else the terminal and the invoking user: "tty=LINE ruser=NAME";
//   4. no PAM_RHOST and no PAM_TTY: no source, the code is always asked.
// A host name or address has no space, so form 3 never equals form 1 or 2.
// Anything not printable ASCII, or longer than the protocol's bound, gives no
// source: better to ask for the code than to guess.

#include <string>
#include <string_view>

namespace kpanel::pam {

// glibc's utmp file (utmpx.h's _PATH_UTMPX, /run/utmp on Debian).
inline constexpr std::string_view kUtmpPath = "/var/run/utmp";

// The remote host utmp at `utmp_path` records for the user process on
// terminal `line` ("pts/3"; "/dev/" already stripped); empty when there is
// none (no entry, a local login, an unreadable file).
[[nodiscard]] std::string utmp_remote_host(const std::string& utmp_path, std::string_view line);

// The login's source (see above), empty for none. `rhost`, `tty` and `ruser`
// are the PAM items as the application set them (empty when unset).
[[nodiscard]] std::string login_source(std::string_view rhost, std::string_view tty,
                                       std::string_view ruser,
                                       const std::string& utmp_path = std::string(kUtmpPath));

}  // namespace kpanel::pam
