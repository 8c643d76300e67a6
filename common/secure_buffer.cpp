#include "common/secure_buffer.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>  // explicit_bzero (glibc)
#include <utility>

namespace kpanel::common {

void secure_wipe(void* data, std::size_t size) noexcept {
  if (data != nullptr && size != 0) explicit_bzero(data, size);
}

bool constant_time_equal(std::span<const std::uint8_t> a,
                         std::span<const std::uint8_t> b) noexcept {
  // Length is not secret (codes have fixed public lengths); contents are.
  if (a.size() != b.size()) return false;
  volatile std::uint8_t diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff = static_cast<std::uint8_t>(diff | (a[i] ^ b[i]));
  return diff == 0;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  return constant_time_equal(std::span(reinterpret_cast<const std::uint8_t*>(a.data()), a.size()),
                             std::span(reinterpret_cast<const std::uint8_t*>(b.data()), b.size()));
}

SecureBytes& SecureBytes::operator=(const SecureBytes& other) {
  if (this != &other) {
    clear();
    bytes_ = other.bytes_;
  }
  return *this;
}

SecureBytes::SecureBytes(SecureBytes&& other) noexcept : bytes_(std::move(other.bytes_)) {
  other.clear();
}

SecureBytes& SecureBytes::operator=(SecureBytes&& other) noexcept {
  if (this != &other) {
    clear();
    bytes_ = std::move(other.bytes_);
    other.clear();
  }
  return *this;
}

SecureBytes::~SecureBytes() { clear(); }

void SecureBytes::clear() noexcept {
  // Wipe the whole allocation, not only the live bytes.
  bytes_.resize(bytes_.capacity());
  secure_wipe(bytes_.data(), bytes_.size());
  bytes_.clear();
}

void SecureBytes::resize(std::size_t size) {
  if (size < bytes_.size()) {
    secure_wipe(bytes_.data() + size, bytes_.size() - size);
    bytes_.resize(size);
  } else if (size > bytes_.capacity()) {
    // A reallocation would leave the old buffer unwiped: move by hand.
    std::vector<std::uint8_t> grown(size);
    std::copy(bytes_.begin(), bytes_.end(), grown.begin());
    clear();
    bytes_ = std::move(grown);
  } else {
    bytes_.resize(size);
  }
}

std::optional<ProtectedBytes> ProtectedBytes::allocate(std::size_t size) noexcept {
  const long page_size = ::sysconf(_SC_PAGESIZE);
  const std::size_t page = page_size > 0 ? static_cast<std::size_t>(page_size) : 4096U;
  if (size == 0 || size > SIZE_MAX - page) return std::nullopt;
  const std::size_t mapped = (size + page - 1) / page * page;
  void* where = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (where == MAP_FAILED) return std::nullopt;
  if (::madvise(where, mapped, MADV_DONTDUMP) != 0) {
    ::munmap(where, mapped);
    return std::nullopt;
  }
  // Best effort, both: older kernels lack WIPEONFORK, RLIMIT_MEMLOCK may be 0.
  (void)::madvise(where, mapped, MADV_WIPEONFORK);
  (void)::mlock(where, mapped);
  return ProtectedBytes(static_cast<std::uint8_t*>(where), size, mapped);
}

ProtectedBytes::ProtectedBytes(ProtectedBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, 0)) {}

ProtectedBytes& ProtectedBytes::operator=(ProtectedBytes&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, 0);
  }
  return *this;
}

ProtectedBytes::~ProtectedBytes() { release(); }

void ProtectedBytes::release() noexcept {
  if (data_ == nullptr) return;
  secure_wipe(data_, mapped_);
  (void)::munlock(data_, mapped_);
  (void)::munmap(data_, mapped_);
  data_ = nullptr;
  size_ = 0;
  mapped_ = 0;
}

SecureString& SecureString::operator=(const SecureString& other) {
  if (this != &other) {
    clear();
    text_ = other.text_;
  }
  return *this;
}

SecureString::SecureString(SecureString&& other) noexcept : text_(std::move(other.text_)) {
  other.clear();
}

SecureString& SecureString::operator=(SecureString&& other) noexcept {
  if (this != &other) {
    clear();
    text_ = std::move(other.text_);
    other.clear();
  }
  return *this;
}

SecureString::~SecureString() { clear(); }

void SecureString::append(std::string_view more) {
  if (text_.size() + more.size() > text_.capacity()) {
    // Grow into a fresh buffer and wipe the old one instead of letting
    // std::string free it with the secret still in it.
    std::string grown;
    grown.reserve((text_.size() + more.size()) * 2);
    grown.append(text_).append(more);
    clear();
    text_.swap(grown);
  } else {
    text_.append(more);
  }
}

void SecureString::push_back(char c) { append(std::string_view(&c, 1)); }

void SecureString::clear() noexcept {
  // Includes the small-string buffer and the bytes past size().
  secure_wipe(text_.data(), text_.capacity());
  text_.clear();
}

}  // namespace kpanel::common
