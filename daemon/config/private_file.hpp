#pragma once
// Files only the daemon (or root) may control: the config file, key_file,
// state_dir and what is in it. Each is opened without following a final
// symbolic link, checked on the descriptor (so what is checked is what is
// read), and judged by owner and mode. The answers are typed problems; each
// caller words them for its file. Used by the daemon and by
// `kpanel-totp doctor`, so both apply the same rules.

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <expected>
#include <filesystem>
#include <vector>

#include "common/unique_fd.hpp"

namespace kpanel::daemon {

enum class FileProblem : std::uint8_t {
  missing,        // nothing at the path (ENOENT)
  symlink,        // a symbolic link where the file itself belongs: refused
  not_directory,  // something else where a directory belongs
  not_regular,    // something else where a regular file belongs
  cannot_open,    // open() failed otherwise: `error`
  cannot_stat,    // stat failed: `error`
  wrong_owner,    // owned by someone the rule does not trust: `info.st_uid`
  too_open,       // mode grants what the rule forbids: `info.st_mode`
};

struct FileIssue {
  FileProblem problem = FileProblem::cannot_open;
  std::filesystem::path path;
  int error = 0;        // the errno, for missing, cannot_open and cannot_stat
  struct stat info {};  // for not_regular, wrong_owner and too_open
};

enum class FileKind : std::uint8_t { regular, directory };

struct OpenedFile {
  common::UniqueFd fd;
  struct stat info {};
};

// Opens `path` read-only, O_NOFOLLOW, O_CLOEXEC (a regular file also
// O_NONBLOCK and O_NOCTTY, so a FIFO or a terminal put there cannot hang or
// adopt the caller), and checks it is of `kind` on the descriptor.
[[nodiscard]] std::expected<OpenedFile, FileIssue> open_no_follow(const std::filesystem::path& path,
                                                                  FileKind kind);

// fstat() of an open descriptor, and its kind.
[[nodiscard]] std::expected<struct stat, FileIssue> stat_opened(int fd,
                                                                const std::filesystem::path& path,
                                                                FileKind kind);

// lstat() of `path`, for a file that must not be opened (closing a descriptor
// of a SQLite database drops the process's locks on it) or that the caller may
// not be able to open (the doctor as a user): a link is `symlink`.
[[nodiscard]] std::expected<struct stat, FileIssue> lstat_no_follow(
    const std::filesystem::path& path, FileKind kind);

// Who may own the file and which mode bits it must not have.
struct OwnerAndMode {
  uid_t owner = 0;
  bool root_too = false;  // root may own it as well
  mode_t forbidden = S_IRWXG | S_IRWXO;
};

// wrong_owner, then too_open: each that applies.
[[nodiscard]] std::vector<FileIssue> owner_and_mode_issues(const struct stat& info,
                                                           const std::filesystem::path& path,
                                                           const OwnerAndMode& rule);

}  // namespace kpanel::daemon
