#pragma once
// Who is at the other end of a client connection, as the kernel reports it
// (SO_PEERCRED). The only input authorization is decided from.

#include <sys/types.h>

namespace kpanel::daemon {

struct PeerCredentials {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  pid_t pid = 0;
};

}  // namespace kpanel::daemon
