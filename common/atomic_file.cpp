#include "common/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

#include "common/os_text.hpp"
#include "common/random.hpp"
#include "common/unique_fd.hpp"

namespace kpanel::common {
namespace {

constexpr int kNameAttempts = 8;
constexpr std::size_t kNameRandomBytes = 8;

std::string hex(std::span<const std::uint8_t> bytes) {
  constexpr std::string_view kDigits = "0123456789abcdef";
  std::string out;
  for (const std::uint8_t byte : bytes) {
    out.push_back(kDigits[byte >> 4U]);
    out.push_back(kDigits[byte & 0x0fU]);
  }
  return out;
}

// Nothing but a regular file (or nothing at all) may sit at the target.
std::expected<void, std::string> check_target(const std::filesystem::path& target) {
  struct stat info {};
  if (::lstat(target.c_str(), &info) != 0) {
    const int error = errno;
    if (error == ENOENT) return {};
    return std::unexpected("cannot look at " + target.string() + ": " + errno_text(error));
  }
  if (S_ISLNK(info.st_mode)) {
    return std::unexpected(target.string() +
                           " is a symbolic link; refusing to write through it (name a new file)");
  }
  if (!S_ISREG(info.st_mode)) {
    return std::unexpected(target.string() + " exists and is not a regular file; refusing");
  }
  return {};
}

std::expected<void, std::string> write_all(int fd, std::span<const std::uint8_t> bytes) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(fd, bytes.data(), bytes.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(errno_text(errno));
    }
    bytes = bytes.subspan(static_cast<std::size_t>(written));
  }
  return {};
}

bool sync_directory(const std::filesystem::path& directory) {
  const UniqueFd fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  return fd.valid() && ::fsync(fd.get()) == 0;
}

}  // namespace

std::expected<void, std::string> write_file_atomically(const std::filesystem::path& target,
                                                       std::span<const std::uint8_t> bytes,
                                                       const AtomicWriteOptions& options) {
  if (target.filename().empty()) {
    return std::unexpected(target.string() + " names a directory, not a file");
  }
  if (auto checked = check_target(target); !checked) return checked;
  const std::filesystem::path directory =
      target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  std::filesystem::path temporary;
  UniqueFd fd;
  for (int attempt = 0; attempt < kNameAttempts && !fd.valid(); ++attempt) {
    auto random = random_bytes(kNameRandomBytes);
    if (!random) return std::unexpected(std::string("no randomness for a file name"));
    temporary = directory / ("." + target.filename().string() + ".tmp-" + hex(random->view()));
    fd = UniqueFd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                         options.mode));
    if (!fd.valid() && errno != EEXIST) {
      const int error = errno;
      return std::unexpected("cannot create a file in " + directory.string() + ": " +
                             errno_text(error));
    }
  }
  if (!fd.valid()) {
    return std::unexpected("cannot create a file in " + directory.string() +
                           ": every random name was taken");
  }
  const auto fail = [&](const std::string& message) -> std::expected<void, std::string> {
    (void)::unlink(temporary.c_str());
    return std::unexpected(message);
  };
  // The mode exactly, whatever the umask did; the owner before any byte is in it.
  if (::fchmod(fd.get(), options.mode) != 0) {
    return fail("cannot set the mode of " + temporary.string() + ": " + errno_text(errno));
  }
  if ((options.uid || options.gid) &&
      ::fchown(fd.get(), options.uid.value_or(static_cast<uid_t>(-1)),
               options.gid.value_or(static_cast<gid_t>(-1))) != 0) {
    return fail("cannot set the owner of " + temporary.string() + ": " + errno_text(errno));
  }
  if (auto written = write_all(fd.get(), bytes); !written) {
    return fail("cannot write " + temporary.string() + ": " + written.error());
  }
  if (::fsync(fd.get()) != 0) {
    return fail("cannot sync " + temporary.string() + ": " + errno_text(errno));
  }
  fd = UniqueFd();
  if (options.before_rename) {
    if (auto ready = options.before_rename(); !ready) return fail(ready.error());
  }
  // Again just before the rename: a link put there meanwhile is still refused.
  if (auto checked = check_target(target); !checked) return fail(checked.error());
  if (::rename(temporary.c_str(), target.c_str()) != 0) {
    return fail("cannot rename " + temporary.string() + " to " + target.string() + ": " +
                errno_text(errno));
  }
  if (!sync_directory(directory)) {
    // The file is in place; only its directory entry may not survive a crash yet.
    return std::unexpected("wrote " + target.string() + " but cannot sync " + directory.string() +
                           ": " + errno_text(errno));
  }
  return {};
}

}  // namespace kpanel::common
