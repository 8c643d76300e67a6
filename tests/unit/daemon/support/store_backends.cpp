#include "store_backends.hpp"

#include <cerrno>
#include <cstdlib>  // mkdtemp
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace kpanel::daemon::test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");  // NOLINT(concurrency-mt-unsafe): test setup
  std::string pattern =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/kpanel-totp-test-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
  }
  path_ = buffer.data();
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::unique_ptr<Store> MemoryBackend::open() { return std::make_unique<MemoryStore>(state_); }

}  // namespace kpanel::daemon::test
