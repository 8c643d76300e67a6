#include "daemon/config/private_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace kpanel::daemon {
namespace {

FileIssue issue(FileProblem problem, const std::filesystem::path& path, int error = 0) {
  return FileIssue{problem, path, error, {}};
}

bool is_link(const std::filesystem::path& path) {
  struct stat link {};
  return ::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode);
}

bool is_kind(const struct stat& info, FileKind kind) {
  return kind == FileKind::directory ? S_ISDIR(info.st_mode) : S_ISREG(info.st_mode);
}

FileProblem wrong_kind(FileKind kind) {
  return kind == FileKind::directory ? FileProblem::not_directory : FileProblem::not_regular;
}

}  // namespace

std::expected<OpenedFile, FileIssue> open_no_follow(const std::filesystem::path& path,
                                                    FileKind kind) {
  const int flags = kind == FileKind::directory
                        ? O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
                        : O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  OpenedFile opened;
  opened.fd = common::UniqueFd(::open(path.c_str(), flags));
  if (!opened.fd.valid()) {
    const int error = errno;
    if (error == ENOENT) {
      return std::unexpected(issue(FileProblem::missing, path, error));
    }
    // O_NOFOLLOW answers ELOOP for a final link; with O_DIRECTORY, Linux
    // answers ENOTDIR instead.
    if ((error == ELOOP || error == ENOTDIR) && is_link(path)) {
      return std::unexpected(issue(FileProblem::symlink, path, error));
    }
    if (error == ENOTDIR && kind == FileKind::directory) {
      return std::unexpected(issue(FileProblem::not_directory, path, error));
    }
    return std::unexpected(issue(FileProblem::cannot_open, path, error));
  }
  auto info = stat_opened(opened.fd.get(), path, kind);
  if (!info) {
    return std::unexpected(std::move(info.error()));
  }
  opened.info = *info;
  return opened;
}

std::expected<struct stat, FileIssue> stat_opened(int fd, const std::filesystem::path& path,
                                                  FileKind kind) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    return std::unexpected(issue(FileProblem::cannot_stat, path, errno));
  }
  if (!is_kind(info, kind)) {
    FileIssue wrong = issue(wrong_kind(kind), path);
    wrong.info = info;
    return std::unexpected(std::move(wrong));
  }
  return info;
}

std::expected<struct stat, FileIssue> lstat_no_follow(const std::filesystem::path& path,
                                                      FileKind kind) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    const int error = errno;
    return std::unexpected(
        issue(error == ENOENT ? FileProblem::missing : FileProblem::cannot_stat, path, error));
  }
  if (S_ISLNK(info.st_mode)) {
    FileIssue link = issue(FileProblem::symlink, path);
    link.info = info;
    return std::unexpected(std::move(link));
  }
  if (!is_kind(info, kind)) {
    FileIssue wrong = issue(wrong_kind(kind), path);
    wrong.info = info;
    return std::unexpected(std::move(wrong));
  }
  return info;
}

std::vector<FileIssue> owner_and_mode_issues(const struct stat& info,
                                             const std::filesystem::path& path,
                                             const OwnerAndMode& rule) {
  std::vector<FileIssue> out;
  if (info.st_uid != rule.owner && !(rule.root_too && info.st_uid == 0)) {
    out.push_back(FileIssue{FileProblem::wrong_owner, path, 0, info});
  }
  if ((info.st_mode & rule.forbidden) != 0) {
    out.push_back(FileIssue{FileProblem::too_open, path, 0, info});
  }
  return out;
}

}  // namespace kpanel::daemon
