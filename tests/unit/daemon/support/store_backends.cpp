#include "store_backends.hpp"

#include <cerrno>
#include <cstdint>
#include <cstdlib>  // mkdtemp
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "daemon/secret_box.hpp"
#include "daemon/store_sqlite.hpp"

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

common::SecureBytes test_store_key() {
  common::SecureBytes key(SecretBox::kKeyBytes);
  for (std::size_t i = 0; i < key.size(); ++i) {
    key.mutable_view()[i] = static_cast<std::uint8_t>(i);
  }
  return key;
}

std::unique_ptr<Store> SqliteBackend::open() {
  auto box = SecretBox::from_key(test_store_key());
  if (!box) {
    throw std::runtime_error(box.error());
  }
  auto store = SqliteStore::open(state_dir(), std::move(*box));
  if (!store) {
    throw std::runtime_error(store.error().message);
  }
  return std::move(*store);
}

}  // namespace kpanel::daemon::test
