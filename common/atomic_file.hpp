#pragma once
// A whole file replaced at once: a new file with a random name next to the
// target (O_CREAT|O_EXCL|O_NOFOLLOW, so never someone else's file or a link
// planted there), written, fsync'd, renamed over the target, and the
// directory fsync'd. A reader sees the old file or the new one, never part of
// one; on any error the temporary file is removed and the target is as it was.
// A symbolic link (or anything but a regular file) at the target is refused,
// so its target is never touched. Used by `kpanel-totp admin backup` and by
// `kpanel-totpd --restore`.

#include <sys/types.h>

#include <cstdint>
#include <expected>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>

namespace kpanel::common {

struct AtomicWriteOptions {
  mode_t mode = 0600;
  // Owner of the new file (fchown before anything is written); unset: the caller's.
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  // Runs after the new file is durable and just before the rename (the
  // restore removes the old database's -wal and -shm there); an error stops
  // the write and is returned as it is.
  std::function<std::expected<void, std::string>()> before_rename;
};

// The error is one line naming the file and what failed.
[[nodiscard]] std::expected<void, std::string> write_file_atomically(
    const std::filesystem::path& target, std::span<const std::uint8_t> bytes,
    const AtomicWriteOptions& options = {});

}  // namespace kpanel::common
