#include "daemon/store/secret_box.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <exception>
#include <memory>
#include <system_error>

#include "common/os_text.hpp"
#include "common/random.hpp"
#include "common/unique_fd.hpp"
#include "daemon/config/private_file.hpp"

namespace kpanel::daemon {
namespace {

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const noexcept { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

using common::errno_text;
using common::octal_mode;

bool write_all(int fd, std::span<const std::uint8_t> data) noexcept {
  while (!data.empty()) {
    const ssize_t written = ::write(fd, data.data(), data.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return false;
    data = data.subspan(static_cast<std::size_t>(written));
  }
  return true;
}

// Reads until `out` is full or end of file; the number of bytes read, or -1.
ssize_t read_full(int fd, std::span<std::uint8_t> out) noexcept {
  std::size_t total = 0;
  while (total < out.size()) {
    const ssize_t got = ::read(fd, out.data() + total, out.size() - total);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return -1;
    if (got == 0) break;
    total += static_cast<std::size_t>(got);
  }
  return static_cast<ssize_t>(total);
}

// Without this a crash right after creating the key could lose the directory
// entry while secrets sealed with the key are already on disk.
bool fsync_directory(const std::filesystem::path& dir) noexcept {
  const common::UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  return fd.valid() && ::fsync(fd.get()) == 0;
}

// The key's home for the life of the process (see ProtectedBytes).
std::expected<common::ProtectedBytes, std::string> key_page() {
  auto page = common::ProtectedBytes::allocate(SecretBox::kKeyBytes);
  if (!page) {
    return std::unexpected("cannot set aside memory for the key: " + errno_text(errno));
  }
  return std::move(*page);
}

// `raced` is set when the file appeared since we looked.
std::expected<common::ProtectedBytes, std::string> create_key_file(
    const std::filesystem::path& key_file, bool& raced) {
  common::UniqueFd fd(::open(key_file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                             S_IRUSR | S_IWUSR));
  const int open_error = errno;
  const std::string name = key_file.string();
  if (!fd.valid()) {
    const int error = open_error;
    raced = error == EEXIST;
    return std::unexpected("cannot create key_file " + name + ": " + errno_text(error) +
                           (error == ENOENT ? " (create its directory first)" : ""));
  }
  auto page = key_page();
  if (!page) return std::unexpected(page.error());
  auto key = common::random_bytes(SecretBox::kKeyBytes);
  // The umask may have left the mode narrower than 0600, or (in theory) wider.
  const bool written = key.has_value() && ::fchmod(fd.get(), S_IRUSR | S_IWUSR) == 0 &&
                       write_all(fd.get(), key->view()) && ::fsync(fd.get()) == 0 &&
                       fd.close() == 0;
  if (!written) {
    const int error = errno;
    // A short or empty key file would be refused at every later start.
    ::unlink(key_file.c_str());
    if (!key) return std::unexpected("cannot create key_file " + name + ": no randomness");
    return std::unexpected("cannot write key_file " + name + ": " + errno_text(error));
  }
  const std::filesystem::path parent =
      key_file.has_parent_path() ? key_file.parent_path() : std::filesystem::path(".");
  if (!fsync_directory(parent)) {
    const int error = errno;
    return std::unexpected("cannot sync directory " + parent.string() + " of key_file " + name +
                           ": " + errno_text(error));
  }
  std::copy(key->view().begin(), key->view().end(), page->data());
  return std::move(*page);  // `key` wipes its heap copy
}

std::expected<common::ProtectedBytes, std::string> read_key_file(
    const std::filesystem::path& key_file, const OpenedFile& opened) {
  const int fd = opened.fd.get();
  const struct stat& info = opened.info;
  const std::string name = key_file.string();
  const uid_t euid = ::geteuid();
  // The first problem only: the owner, then the mode.
  for (const FileIssue& issue : owner_and_mode_issues(info, key_file, OwnerAndMode{euid})) {
    if (issue.problem == FileProblem::wrong_owner) {
      return std::unexpected("key_file " + name + " is owned by uid " +
                             std::to_string(info.st_uid) + ", not by the daemon's uid " +
                             std::to_string(euid) + ": chown " + std::to_string(euid) + " " + name);
    }
    return std::unexpected("key_file " + name + " has mode " + octal_mode(info.st_mode) +
                           " (group or others have access): chmod 600 " + name +
                           ", and treat the key as exposed if others could read it");
  }
  if (info.st_size != static_cast<off_t>(SecretBox::kKeyBytes)) {
    return std::unexpected("key_file " + name + " holds " + std::to_string(info.st_size) +
                           " bytes, not " + std::to_string(SecretBox::kKeyBytes) +
                           ": restore it from a backup (a new key cannot open the stored "
                           "secrets)");
  }
  auto key = key_page();
  if (!key) return std::unexpected(key.error());
  std::array<std::uint8_t, 1> extra{};
  const ssize_t got = read_full(fd, key->mutable_view());
  const int read_error = errno;
  if (got != static_cast<ssize_t>(SecretBox::kKeyBytes) || read_full(fd, extra) != 0) {
    return std::unexpected("cannot read key_file " + name + ": " +
                           (got < 0 ? errno_text(read_error) : "it changed size while being read"));
  }
  return key;
}

// A new key cannot open what an old one sealed: making one next to sealed
// secrets would only turn "key missing" into "wrong key", and leave that
// wrong key in place of the one to restore.
std::expected<void, std::string> may_create_key(const std::filesystem::path& key_file,
                                                const SecretBox::SealedProbe& holds_sealed) {
  if (!holds_sealed) return {};
  const std::string name = key_file.string();
  const auto holds = holds_sealed();
  if (!holds) {
    return std::unexpected("key_file " + name + " does not exist, and whether the store holds " +
                           "secrets sealed with it cannot be told (" + holds.error() +
                           "): no new key made; restore key_file, or start again once the " +
                           "store can be read");
  }
  if (*holds) {
    return std::unexpected("key_file " + name +
                           " does not exist, but the store holds secrets sealed with it: "
                           "restore key_file from a backup (a new key cannot open them); no "
                           "new key made");
  }
  return {};
}

std::expected<common::ProtectedBytes, std::string> load_or_create_key(
    const std::filesystem::path& key_file, const SecretBox::SealedProbe& holds_sealed) {
  // Two tries: a postinst may create the file between our open and our create.
  for (int attempt = 0; attempt < 2; ++attempt) {
    // Non-blocking, so a FIFO planted at the path cannot hang the start.
    const auto opened = open_no_follow(key_file, FileKind::regular);
    if (opened) return read_key_file(key_file, *opened);
    const FileIssue& issue = opened.error();
    const std::string name = key_file.string();
    if (issue.problem == FileProblem::symlink || issue.error == ELOOP) {
      return std::unexpected("key_file " + name +
                             " is a symbolic link, which is refused: set key_file to the real "
                             "file's path");
    }
    if (issue.problem == FileProblem::cannot_stat) {
      return std::unexpected("cannot stat key_file " + name + ": " + errno_text(issue.error));
    }
    if (issue.problem == FileProblem::not_regular) {
      return std::unexpected("key_file " + name + " is not a regular file: point key_file at one");
    }
    if (issue.problem != FileProblem::missing) {
      return std::unexpected("cannot open key_file " + name + ": " + errno_text(issue.error));
    }
    if (auto allowed = may_create_key(key_file, holds_sealed); !allowed) {
      return std::unexpected(std::move(allowed.error()));
    }
    bool raced = false;
    auto created = create_key_file(key_file, raced);
    if (created || !raced) return created;
  }
  return std::unexpected("cannot open key_file " + key_file.string() +
                         ": it keeps appearing and disappearing");
}

bool fits_int(std::size_t size) noexcept { return size <= static_cast<std::size_t>(INT_MAX); }

// OpenSSL's AAD input; nothing to feed for an empty AAD.
bool feed_aad(EVP_CIPHER_CTX* ctx, std::string_view aad, bool encrypt) noexcept {
  if (aad.empty()) return true;
  int ignored = 0;
  const auto* bytes = reinterpret_cast<const unsigned char*>(aad.data());
  const int size = static_cast<int>(aad.size());
  return encrypt ? EVP_EncryptUpdate(ctx, nullptr, &ignored, bytes, size) == 1
                 : EVP_DecryptUpdate(ctx, nullptr, &ignored, bytes, size) == 1;
}

}  // namespace

std::expected<SecretBox, std::string> SecretBox::load_or_create(
    const std::filesystem::path& key_file, const SealedProbe& holds_sealed) {
  try {
    auto key = load_or_create_key(key_file, holds_sealed);
    if (!key) return std::unexpected(std::move(key.error()));
    return with_key(std::move(*key));
  } catch (const std::exception& e) {
    return std::unexpected("cannot load key_file: " + std::string(e.what()));
  }
}

std::expected<SecretBox, std::string> SecretBox::from_key(common::SecureBytes key) {
  if (key.size() != kKeyBytes) {
    return std::unexpected("a secret box key must be " + std::to_string(kKeyBytes) + " bytes");
  }
  auto page = key_page();
  if (!page) return std::unexpected(page.error());
  std::copy(key.view().begin(), key.view().end(), page->data());
  return with_key(std::move(*page));  // `key` wipes its copy
}

std::expected<SecretBox, std::string> SecretBox::with_key(common::ProtectedBytes key) {
  auto mac_key = key_page();
  if (!mac_key) return std::unexpected(mac_key.error());
  // HKDF-SHA256 (RFC 5869): a key of its own for the MACs, so that no value
  // is ever both a GCM key and an HMAC key.
  constexpr std::string_view kInfo = "kpanel-totp/v2/record-mac";
  const std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr), &EVP_PKEY_CTX_free);
  std::size_t length = kKeyBytes;
  const bool ok =
      ctx && EVP_PKEY_derive_init(ctx.get()) == 1 &&
      EVP_PKEY_CTX_set_hkdf_md(ctx.get(), EVP_sha256()) == 1 &&
      EVP_PKEY_CTX_set1_hkdf_key(ctx.get(), key.data(), static_cast<int>(kKeyBytes)) == 1 &&
      EVP_PKEY_CTX_add1_hkdf_info(ctx.get(), reinterpret_cast<const unsigned char*>(kInfo.data()),
                                  static_cast<int>(kInfo.size())) == 1 &&
      EVP_PKEY_derive(ctx.get(), mac_key->data(), &length) == 1 && length == kKeyBytes;
  if (!ok) return std::unexpected("cannot derive the MAC key (HKDF-SHA256 failed)");
  return SecretBox(std::move(key), std::move(*mac_key));
}

std::vector<std::uint8_t> SecretBox::mac(std::string_view message) const {
  std::vector<std::uint8_t> tag(kMacBytes);
  unsigned int length = 0;
  if (mac_key_.size() != kKeyBytes ||
      HMAC(EVP_sha256(), mac_key_.data(), static_cast<int>(mac_key_.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), tag.data(),
           &length) == nullptr ||
      length != kMacBytes) {
    return {};
  }
  return tag;
}

bool SecretBox::verify_mac(std::string_view message, std::span<const std::uint8_t> tag) const {
  const std::vector<std::uint8_t> expected = mac(message);
  return !expected.empty() && tag.size() == expected.size() &&
         CRYPTO_memcmp(expected.data(), tag.data(), expected.size()) == 0;
}

std::expected<std::vector<std::uint8_t>, std::string> SecretBox::seal(
    std::span<const std::uint8_t> plaintext, std::string_view aad) const {
  try {
    if (key_.size() != kKeyBytes) return std::unexpected("secret box has no key");
    if (!fits_int(plaintext.size() + kOverheadBytes) || !fits_int(aad.size())) {
      return std::unexpected("value too large to seal");
    }
    std::vector<std::uint8_t> sealed(kOverheadBytes + plaintext.size());
    sealed[0] = kFormatVersion;
    std::uint8_t* const nonce = sealed.data() + 1;
    std::uint8_t* const ciphertext = nonce + kNonceBytes;
    std::uint8_t* const tag = ciphertext + plaintext.size();
    // A random 96-bit nonce per seal: safe for far more seals than a state
    // store makes under one key (NIST SP 800-38D's 2^32 bound).
    if (RAND_bytes(nonce, static_cast<int>(kNonceBytes)) != 1) {
      return std::unexpected("no randomness for a nonce");
    }
    const CipherCtx ctx(EVP_CIPHER_CTX_new());
    int written = 0;
    int final_written = 0;
    const bool ok =
        ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), nonce) == 1 &&
        feed_aad(ctx.get(), aad, true) &&
        EVP_EncryptUpdate(ctx.get(), ciphertext, &written, plaintext.data(),
                          static_cast<int>(plaintext.size())) == 1 &&
        static_cast<std::size_t>(written) == plaintext.size() &&
        EVP_EncryptFinal_ex(ctx.get(), ciphertext + written, &final_written) == 1 &&
        final_written == 0 &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagBytes), tag) ==
            1;
    if (!ok) return std::unexpected("AES-256-GCM encryption failed");
    return sealed;
  } catch (const std::exception& e) {
    return std::unexpected("cannot seal: " + std::string(e.what()));
  }
}

std::expected<common::SecureBytes, std::string> SecretBox::open(
    std::span<const std::uint8_t> sealed, std::string_view aad) const {
  try {
    if (key_.size() != kKeyBytes) return std::unexpected("secret box has no key");
    if (sealed.size() < kOverheadBytes || !fits_int(sealed.size()) || !fits_int(aad.size())) {
      return std::unexpected("sealed value has a bad length");
    }
    if (sealed[0] != kFormatVersion) return std::unexpected("sealed value has an unknown format");
    const std::size_t length = sealed.size() - kOverheadBytes;
    const std::uint8_t* const nonce = sealed.data() + 1;
    const std::uint8_t* const ciphertext = nonce + kNonceBytes;
    // OpenSSL's SET_TAG takes a non-const pointer.
    std::array<std::uint8_t, kTagBytes> tag{};
    std::copy_n(ciphertext + length, kTagBytes, tag.begin());
    // Decrypted here and returned only after the tag checks; SecureBytes wipes
    // it on every other path.
    common::SecureBytes plaintext(length);
    std::array<std::uint8_t, 16> tail{};  // GCM's final step writes nothing
    const CipherCtx ctx(EVP_CIPHER_CTX_new());
    int written = 0;
    int final_written = 0;
    const bool ok =
        ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), nonce) == 1 &&
        feed_aad(ctx.get(), aad, false) &&
        EVP_DecryptUpdate(ctx.get(), plaintext.data(), &written, ciphertext,
                          static_cast<int>(length)) == 1 &&
        static_cast<std::size_t>(written) == length &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagBytes),
                            tag.data()) == 1 &&
        EVP_DecryptFinal_ex(ctx.get(), tail.data(), &final_written) == 1 && final_written == 0;
    OPENSSL_cleanse(tail.data(), tail.size());
    if (!ok) return std::unexpected("sealed value does not authenticate (wrong key or AAD)");
    return plaintext;
  } catch (const std::exception& e) {
    return std::unexpected("cannot open sealed value: " + std::string(e.what()));
  }
}

}  // namespace kpanel::daemon
