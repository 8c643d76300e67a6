#pragma once
// Request dispatch: one table row per operation naming its handler and who
// may call it (OpenSSH mon_table, USBGuard's handler privileges), so every
// authorization decision is reviewable in one screen of dispatch.cpp.
// Decided only from the peer's credentials (SO_PEERCRED), never from a
// request field.

#include <cstdint>
#include <string>
#include <utility>

#include "common/protocol.hpp"
#include "daemon/authz/accounts.hpp"
#include "daemon/net/lanes.hpp"
#include "daemon/net/peer_credentials.hpp"
#include "daemon/rules/rules.hpp"

namespace kpanel::daemon {

enum class Permit : std::uint8_t {
  self_or_root,   // own account; root for anyone (the PAM module inside sshd runs as root)
  self_or_admin,  // own account; root or an admin_group member for anyone (--user)
  admin,          // root or an admin_group member only
  root,           // root only (admin_import: sets a user's secret from a file only root reads)
};

// What a request's work costs, which decides its lane (daemon/net/lanes.hpp).
enum class Cost : std::uint8_t {
  fast,        // a store read or one update: the fast lane
  slow,        // a password check, scrypt, enrollment: the slow lane, bounded per uid
  by_request,  // verify: slow for a recovery code, fast for a TOTP code; admin_list:
               // slow with `all` (it enumerates NSS, which may be a directory server)
};

class Dispatcher {
 public:
  // The admin group is read from rules.policy() on every request, so a reload
  // changes it together with the rest of the policy.
  Dispatcher(Rules& rules, const AccountDirectory& accounts) : rules_(rules), accounts_(accounts) {}

  // An empty `user` in the request means the peer's own account. A peer uid
  // with no passwd entry may do nothing (forbidden) unless it is uid 0. A
  // named user is resolved through NSS to its account's canonical name
  // (AccountDirectory::canonical_name); a name NSS does not know is
  // no_such_user, except for admin reset and unlock, which then act on the
  // name as given (state left behind by a deleted account).
  [[nodiscard]] common::protocol::Response handle(
      const PeerCredentials& peer, const common::protocol::Request& request) noexcept;

  // Named in every store_unavailable reply ("the SQLite database in
  // /var/lib/kpanel-totp"), so the tool's message points at the right store.
  // A place, never a DSN (it may hold a password). Set before serving.
  void set_store_name(std::string name) { store_name_ = std::move(name); }

  // The table's answer for this request's operation.
  [[nodiscard]] static Permit permit(const common::protocol::Request& request) noexcept;
  // The lane its work runs in.
  [[nodiscard]] static Lane lane(const common::protocol::Request& request) noexcept;

 private:
  Rules& rules_;
  const AccountDirectory& accounts_;
  std::string store_name_;
};

}  // namespace kpanel::daemon
