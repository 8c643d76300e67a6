#pragma once
// What kpanel-totpd.conf's checks need to know of a libpq connection string
// (keywords or a postgresql:// URI) without loading libpq: where it
// connects, with which sslmode, and whether it holds a password. libpq
// stays the judge of the syntax (at start, and in --check-config); a string
// this reader cannot follow is left to it.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kpanel::daemon::dsn {

struct Fields {
  std::vector<std::string> hosts;      // host=, or the URI's hosts (comma lists split)
  std::vector<std::string> hostaddrs;  // hostaddr=
  std::optional<std::string> sslmode;
  bool service = false;   // service=: the rest comes from a pg_service.conf
  bool password = false;  // a password (password=, or user:password@ in a URI)
};

[[nodiscard]] Fields read(std::string_view dsn);

// Whether a host (or hostaddr) entry stays on this machine: a UNIX socket
// directory, localhost, 127.0.0.0/8 or ::1. Empty (libpq's default: the
// UNIX socket) is local.
[[nodiscard]] bool is_local(std::string_view host);

// Why the string may not be used as it is: it reaches a host that is not
// local without sslmode=verify-full (which checks the server's certificate
// and name, so nobody on the path can pose as the database and read the
// password); nullopt when it is fine.
[[nodiscard]] std::optional<std::string> transport_problem(std::string_view dsn);

// `text` (libpq's error message, which may quote the connection string or a
// nested dbname='… password=…' of it) with the value of every key ending in
// "password" replaced by ***.
[[nodiscard]] std::string mask_passwords(std::string_view text);

}  // namespace kpanel::daemon::dsn
