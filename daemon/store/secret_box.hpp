#pragma once
// Sealing TOTP secrets at rest: AES-256-GCM under the key in key_file.
// Sealed format: 0x01 | nonce (12 random bytes) | ciphertext | tag (16).
// The AAD names where a sealed value belongs (the store: slot, user and
// enrollment, store_row.hpp), so a value copied to another row, slot or
// enrollment does not open.

#include <cstddef>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/secure_buffer.hpp"
#include "daemon/config/config.hpp"

namespace kpanel::daemon {

class SecretBox {
 public:
  static constexpr std::size_t kKeyBytes = kKeyFileBytes;  // what the doctor checks too
  static constexpr std::uint8_t kFormatVersion = 0x01;
  static constexpr std::size_t kNonceBytes = 12;
  static constexpr std::size_t kTagBytes = 16;
  static constexpr std::size_t kOverheadBytes = 1 + kNonceBytes + kTagBytes;

  // Answers, for a key_file that does not exist, whether the store holds
  // anything sealed with a key (true), or why it cannot tell (an error).
  using SealedProbe = std::function<std::expected<bool, std::string>()>;

  // Reads key_file, or creates it (0600, 32 bytes from the CSPRNG, fsync'd
  // with its directory) when it does not exist. An existing file must be a
  // regular file (not a symlink) owned by the effective uid, with no group or
  // other permissions and exactly 32 bytes; the error says what to fix.
  // A key is made only on a first start: when `holds_sealed` is given and
  // says the store holds sealed secrets (or cannot tell), nothing is created
  // and the error names key_file and says to restore it from a backup.
  static std::expected<SecretBox, std::string> load_or_create(const std::filesystem::path& key_file,
                                                              const SealedProbe& holds_sealed = {});

  // A box over `key` (tests); the key must be 32 bytes.
  static std::expected<SecretBox, std::string> from_key(common::SecureBytes key);

  SecretBox(const SecretBox&) = delete;
  SecretBox& operator=(const SecretBox&) = delete;
  SecretBox(SecretBox&&) noexcept = default;
  SecretBox& operator=(SecretBox&&) noexcept = default;
  ~SecretBox() = default;  // ProtectedBytes wipes the key

  // Where the key lives (tests: its page is excluded from core dumps).
  [[nodiscard]] const void* key_location() const noexcept { return key_.data(); }

  [[nodiscard]] std::expected<std::vector<std::uint8_t>, std::string> seal(
      std::span<const std::uint8_t> plaintext, std::string_view aad) const;

  // The plaintext, or an error when `sealed` is malformed or does not
  // authenticate under this key and `aad` (no partial plaintext is returned).
  [[nodiscard]] std::expected<common::SecureBytes, std::string> open(
      std::span<const std::uint8_t> sealed, std::string_view aad) const;

  // HMAC-SHA256 of `message` under a key derived from this box's key (HKDF,
  // its own label), for records the store keeps in clear but must know it
  // wrote (recovery-code hashes): whoever can write the database but has no
  // key_file cannot make or move one. Empty on an OpenSSL failure.
  static constexpr std::size_t kMacBytes = 32;
  [[nodiscard]] std::vector<std::uint8_t> mac(std::string_view message) const;
  // Whether `tag` is mac(message) (compared in constant time).
  [[nodiscard]] bool verify_mac(std::string_view message, std::span<const std::uint8_t> tag) const;

 private:
  SecretBox(common::ProtectedBytes key, common::ProtectedBytes mac_key)
      : key_(std::move(key)), mac_key_(std::move(mac_key)) {}
  // Derives the MAC key from `key` and builds the box.
  static std::expected<SecretBox, std::string> with_key(common::ProtectedBytes key);

  // Their own pages, never in a core dump: they live as long as the daemon.
  common::ProtectedBytes key_;
  common::ProtectedBytes mac_key_;
};

}  // namespace kpanel::daemon
