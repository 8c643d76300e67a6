#pragma once
// Byte and text buffers for secrets, codes and passwords: wiped when destroyed
// or cleared, never streamable, so a secret cannot reach a log line by accident.
// This unit is linked into the PAM module, which must not pull libcrypto into
// sshd, so it wipes with glibc's explicit_bzero: the same guarantee as
// OPENSSL_cleanse (the compiler may not elide it).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kpanel::common {

// Wipes `size` bytes at `data` in a way the optimizer cannot remove.
void secure_wipe(void* data, std::size_t size) noexcept;

// Constant-time equality: the time taken depends only on the lengths.
[[nodiscard]] bool constant_time_equal(std::span<const std::uint8_t> a,
                                       std::span<const std::uint8_t> b) noexcept;
[[nodiscard]] bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

class SecureBytes {
 public:
  SecureBytes() = default;
  explicit SecureBytes(std::size_t size) : bytes_(size) {}
  explicit SecureBytes(std::span<const std::uint8_t> data) : bytes_(data.begin(), data.end()) {}
  SecureBytes(const SecureBytes& other) = default;
  SecureBytes& operator=(const SecureBytes& other);
  SecureBytes(SecureBytes&& other) noexcept;
  SecureBytes& operator=(SecureBytes&& other) noexcept;
  ~SecureBytes();

  [[nodiscard]] std::uint8_t* data() noexcept { return bytes_.data(); }
  [[nodiscard]] const std::uint8_t* data() const noexcept { return bytes_.data(); }
  [[nodiscard]] std::size_t size() const noexcept { return bytes_.size(); }
  [[nodiscard]] bool empty() const noexcept { return bytes_.empty(); }
  [[nodiscard]] std::span<const std::uint8_t> view() const noexcept { return bytes_; }
  [[nodiscard]] std::span<std::uint8_t> mutable_view() noexcept { return bytes_; }
  void clear() noexcept;
  // Grows or shrinks; bytes dropped by a shrink are wiped first.
  void resize(std::size_t size);

  friend bool operator==(const SecureBytes& a, const SecureBytes& b) noexcept {
    return constant_time_equal(a.view(), b.view());
  }

 private:
  std::vector<std::uint8_t> bytes_;
};

// A fixed-size buffer for a secret that lives as long as the process (the
// daemon's key): a page-aligned mapping of its own, so that page-granular
// protections cover it and nothing else. It is excluded from core dumps
// (MADV_DONTDUMP), reads as zeros in a forked child (MADV_WIPEONFORK, where
// the kernel has it), and is kept out of swap when mlock is allowed (best
// effort: RLIMIT_MEMLOCK). Wiped and unmapped when destroyed.
// SecureBytes/SecureString stay on the heap: they live for one request and
// are wiped at once, and a mapping each would cost system calls and
// address-space lock traffic on every verification; the daemon makes no core
// at all (non-dumpable, core limit 0) to cover them.
class ProtectedBytes {
 public:
  // Empty when the mapping or MADV_DONTDUMP fails (errno says why).
  [[nodiscard]] static std::optional<ProtectedBytes> allocate(std::size_t size) noexcept;

  ProtectedBytes() = default;
  ProtectedBytes(const ProtectedBytes&) = delete;
  ProtectedBytes& operator=(const ProtectedBytes&) = delete;
  ProtectedBytes(ProtectedBytes&& other) noexcept;
  ProtectedBytes& operator=(ProtectedBytes&& other) noexcept;
  ~ProtectedBytes();

  [[nodiscard]] std::uint8_t* data() noexcept { return data_; }
  [[nodiscard]] const std::uint8_t* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::span<const std::uint8_t> view() const noexcept { return {data_, size_}; }
  [[nodiscard]] std::span<std::uint8_t> mutable_view() noexcept { return {data_, size_}; }

 private:
  ProtectedBytes(std::uint8_t* data, std::size_t size, std::size_t mapped) noexcept
      : data_(data), size_(size), mapped_(mapped) {}
  void release() noexcept;

  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t mapped_ = 0;  // whole pages
};

class SecureString {
 public:
  SecureString() = default;
  explicit SecureString(std::string_view text) : text_(text) {}
  SecureString(const SecureString& other) = default;
  SecureString& operator=(const SecureString& other);
  SecureString(SecureString&& other) noexcept;
  SecureString& operator=(SecureString&& other) noexcept;
  ~SecureString();

  [[nodiscard]] std::string_view view() const noexcept { return text_; }
  [[nodiscard]] const char* c_str() const noexcept { return text_.c_str(); }
  [[nodiscard]] std::size_t size() const noexcept { return text_.size(); }
  [[nodiscard]] bool empty() const noexcept { return text_.empty(); }
  void append(std::string_view more);
  void push_back(char c);
  void clear() noexcept;

  friend bool operator==(const SecureString& a, const SecureString& b) noexcept {
    return constant_time_equal(a.view(), b.view());
  }

 private:
  std::string text_;
};

}  // namespace kpanel::common
