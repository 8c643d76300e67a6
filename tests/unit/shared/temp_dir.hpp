#pragma once
// A fresh private directory for a test (mkdtemp under TMPDIR or /tmp, mode
// 0700), removed with everything in it when the test is done.
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

namespace kpanel::test {

class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "kpanel-test") {
    std::string pattern =
        (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
    }
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&&) = delete;
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  // The file `name` in it, holding `text`, with exactly `mode` (whatever the umask).
  [[nodiscard]] std::filesystem::path write(const std::string& name, std::string_view text,
                                            mode_t mode = 0644) const {
    const std::filesystem::path file = path_ / name;
    std::ofstream{file, std::ios::binary} << text;
    std::filesystem::permissions(file, static_cast<std::filesystem::perms>(mode));
    return file;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace kpanel::test
