#pragma once
// The words the system's own errors and file modes are reported in: one spelling
// for the daemon, the tool and the PAM module, dependency-free.

#include <sys/types.h>

#include <string>

namespace kpanel::common {

// strerror() for `error`, thread-safe ("No such file or directory").
[[nodiscard]] std::string errno_text(int error);

// The permission bits of `mode` as four octal digits ("0600", "4755").
[[nodiscard]] std::string octal_mode(mode_t mode);

}  // namespace kpanel::common
