#pragma once
// QR codes for enrollment: libqrencode (level M, 8-bit mode, case-sensitive)
// builds the module matrix; renderers turn it into terminal text, PNG or SVG.
// The text renderer is a pure function (the daemon uses it for the PAM
// module's inline enrollment); the file writers never put a byte into a file
// someone else could read or owns, since the picture carries the TOTP secret.

#include <cstddef>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

#include "common/secure_buffer.hpp"

namespace kpanel::common {

// Light modules around the code; the QR standard asks for 4.
inline constexpr std::size_t kQrQuietZone = 4;
// Pixels per module in PNG output (and the SVG's nominal size).
inline constexpr std::size_t kQrPngScale = 8;

enum class QrErrorCode : std::uint8_t {
  invalid_input,     // empty text or an embedded NUL
  too_long,          // does not fit in a version 40 symbol at level M
  encode_failed,     // libqrencode failed otherwise (e.g. out of memory)
  open_failed,       // the output file could not be created (sys_errno says why)
  not_regular_file,  // the output path names a device, FIFO or directory
  symlink,           // the output path is a symbolic link
  not_owner,         // the output path is a file owned by another user
  write_failed,      // write/fsync/close failed (sys_errno says why)
  png_failed,        // libpng refused the image
};

struct QrError {
  QrErrorCode code = QrErrorCode::encode_failed;
  int sys_errno = 0;  // for open_failed / write_failed
};

// "cannot create the file: Permission denied": a clause for a one-line message
// that the caller prefixes with the file name.
[[nodiscard]] std::string describe(const QrError& error);

// The module matrix, without quiet zone; wiped on destruction (it encodes the secret).
class QrCode {
 public:
  [[nodiscard]] static std::expected<QrCode, QrError> encode(std::string_view text);

  // Modules per side (21 + 4 * (version - 1)).
  [[nodiscard]] std::size_t width() const noexcept { return width_; }
  // Coordinates outside the symbol are light (the quiet zone).
  [[nodiscard]] bool dark(std::size_t x, std::size_t y) const noexcept;

 private:
  QrCode(std::size_t width, SecureBytes modules) : width_(width), modules_(std::move(modules)) {}

  std::size_t width_ = 0;
  SecureBytes modules_;  // width_ * width_ bytes, row-major, 1 = dark
};

enum class QrTextColors : std::uint8_t {
  // Plain text for a terminal of unknown colours: the code twice, one under
  // the other, first with the light modules drawn (right on a dark
  // background), then with the dark ones drawn (right on a light background),
  // after a line saying to scan that one if the first does not read.
  none,
  ansi,         // explicit colours (SGR 97;40): right on any terminal that shows colour; once
  light_drawn,  // plain, once: light modules drawn (dark-background terminals only)
  dark_drawn,   // plain, once: dark modules drawn (light-background terminals only)
};

// The line between the two codes of QrTextColors::none.
inline constexpr std::string_view kQrSecondCodeCaption =
    "If your phone does not read the code above (a light terminal background), scan this one:";

// Terminal rendering, two module rows per line with Unicode half blocks and a
// quiet zone of kQrQuietZone; see qr.cpp for which modules are drawn and why.
// Every line ends with '\n'.
// The text draws the secret: it is returned in wiping storage.
[[nodiscard]] SecureString render_qr_text(const QrCode& code,
                                          QrTextColors colors = QrTextColors::none);
// encode + render_qr_text: the pure uri -> text function the daemon uses.
[[nodiscard]] std::expected<SecureString, QrError> qr_text(
    std::string_view text, QrTextColors colors = QrTextColors::none);

// 8-bit grayscale PNG, `scale` pixels per module, quiet zone kQrQuietZone.
[[nodiscard]] std::expected<SecureBytes, QrError> render_qr_png(const QrCode& code,
                                                                std::size_t scale = kQrPngScale);
// SVG document: a white background and one path of dark runs ("M x y h n v1 h-n z"),
// in module units with the quiet zone included in the viewBox.
// Wiping storage too: the path data draws the secret.
[[nodiscard]] SecureString render_qr_svg(const QrCode& code);

// Write the PNG / SVG to `path`. A new file is created O_EXCL|O_NOFOLLOW, mode
// 0600. An existing path is replaced only when it is a regular file owned by
// the caller (euid), and never written into: a temporary file (0600, O_EXCL)
// in the same directory is written, fsync'ed and renamed over it. Anything
// else is refused (symlink, not_owner, not_regular_file): in a sticky
// world-writable directory another user could otherwise pre-create the file
// and read the secret from it.
[[nodiscard]] std::expected<void, QrError> write_qr_png(const QrCode& code, const std::string& path,
                                                        std::size_t scale = kQrPngScale);
[[nodiscard]] std::expected<void, QrError> write_qr_svg(const QrCode& code,
                                                        const std::string& path);
// The same checks, before anything is rendered (so the tool can refuse before
// it asks the daemon to start an enrollment): an existing path must be a
// regular file owned by the caller; for a new file the directory must exist
// and be writable. The writers check again: this is an early answer, not a lock.
[[nodiscard]] std::expected<void, QrError> check_qr_output_path(const std::string& path);

}  // namespace kpanel::common
