#pragma once
// Byte and text buffers for secrets, codes and passwords: wiped when destroyed
// or cleared, never streamable, so a secret cannot reach a log line by accident.
// This unit is linked into the PAM module, which must not pull libcrypto into
// sshd, so it wipes with glibc's explicit_bzero: the same guarantee as
// OPENSSL_cleanse (the compiler may not elide it).

#include <cstddef>
#include <cstdint>
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
