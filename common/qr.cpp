#include "common/qr.hpp"

#include <fcntl.h>
#include <png.h>
#include <qrencode.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <span>

#include "common/os_text.hpp"

namespace kpanel::common {
namespace {

// Half blocks in UTF-8: the upper / lower half or the whole cell in the
// terminal's foreground colour.
constexpr std::string_view kUpperHalf = "\xE2\x96\x80";  // U+2580
constexpr std::string_view kLowerHalf = "\xE2\x96\x84";  // U+2584
constexpr std::string_view kFullBlock = "\xE2\x96\x88";  // U+2588
// Bright white on black, then back to the terminal's defaults.
constexpr std::string_view kAnsiLightOnDark = "\x1B[97;40m";
constexpr std::string_view kAnsiReset = "\x1B[0m";

constexpr std::size_t kMaxPngScale = 64;

struct QrcodeDeleter {
  void operator()(QRcode* qr) const noexcept {
    if (qr == nullptr) {
      return;
    }
    // libqrencode does not wipe; the modules spell out the secret.
    secure_wipe(qr->data,
                static_cast<std::size_t>(qr->width) * static_cast<std::size_t>(qr->width));
    QRcode_free(qr);
  }
};

// The symbol plus its quiet zone: (x, y) in 0 .. width + 2 * kQrQuietZone.
bool dark_padded(const QrCode& code, std::size_t x, std::size_t y) noexcept {
  if (x < kQrQuietZone || y < kQrQuietZone) {
    return false;
  }
  return code.dark(x - kQrQuietZone, y - kQrQuietZone);
}

std::size_t padded_width(const QrCode& code) noexcept { return code.width() + 2 * kQrQuietZone; }

// An existing output path may be replaced only when it is a regular file of
// the caller's: never a symlink (it could point anywhere), never a file another
// user made (they could read what it gets, or own its inode).
std::expected<void, QrError> replaceable(const struct stat& st) {
  if (S_ISLNK(st.st_mode)) {
    return std::unexpected(QrError{QrErrorCode::symlink, 0});
  }
  if (!S_ISREG(st.st_mode)) {
    return std::unexpected(QrError{QrErrorCode::not_regular_file, 0});
  }
  if (st.st_uid != ::geteuid()) {
    return std::unexpected(QrError{QrErrorCode::not_owner, 0});
  }
  return {};
}

std::string parent_of(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? std::string("/") : path.substr(0, slash);
}

// Writes all of `data` to `fd`, fsyncs and closes it (always closed).
std::expected<void, QrError> write_and_close(int fd, std::span<const std::uint8_t> data) {
  auto fail = [fd](int err) {
    ::close(fd);
    return std::unexpected(QrError{QrErrorCode::write_failed, err});
  };
  // Exactly 0600 whatever the umask; nobody else may read the secret.
  if (::fchmod(fd, 0600) != 0) {
    return fail(errno);
  }
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail(errno);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    return fail(errno);
  }
  if (::close(fd) != 0) {
    return std::unexpected(QrError{QrErrorCode::write_failed, errno});
  }
  return {};
}

// The rename is durable only once the directory is synced; best effort.
void sync_directory(const std::string& directory) noexcept {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
}

// A file only the caller can read: created new (O_EXCL, so never someone
// else's file or a link), or replacing the caller's own regular file by
// rename, so no byte is ever written into an inode that already existed.
std::expected<void, QrError> write_private_file(const std::string& path,
                                                std::span<const std::uint8_t> data) {
  const std::string directory = parent_of(path);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0) {
    auto written = write_and_close(fd, data);
    if (!written) {
      ::unlink(path.c_str());  // ours, just made: no half picture left behind
      return written;
    }
    sync_directory(directory);
    return {};
  }
  if (errno != EEXIST) {
    return std::unexpected(QrError{QrErrorCode::open_failed, errno});
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return std::unexpected(QrError{QrErrorCode::open_failed, errno});
  }
  if (auto ok = replaceable(st); !ok) {
    return ok;
  }
  std::string temporary = directory + "/.kpanel-totp-qr-XXXXXX";
  const int temp_fd = ::mkostemp(temporary.data(), O_CLOEXEC);  // O_EXCL, 0600
  if (temp_fd < 0) {
    return std::unexpected(QrError{QrErrorCode::open_failed, errno});
  }
  if (auto written = write_and_close(temp_fd, data); !written) {
    ::unlink(temporary.c_str());
    return written;
  }
  // Checked again just before the rename. The rename replaces the directory
  // entry and never writes into the old inode, so a swap in between can at
  // worst lose the old file, never expose the new one.
  if (::lstat(path.c_str(), &st) != 0) {
    const int err = errno;
    ::unlink(temporary.c_str());
    return std::unexpected(QrError{QrErrorCode::open_failed, err});
  }
  if (auto ok = replaceable(st); !ok) {
    ::unlink(temporary.c_str());
    return ok;
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temporary.c_str());
    return std::unexpected(QrError{QrErrorCode::write_failed, err});
  }
  sync_directory(directory);
  return {};
}

std::span<const std::uint8_t> as_bytes(std::string_view text) noexcept {
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): char and uint8_t alias
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

}  // namespace

std::string describe(const QrError& error) {
  const auto with_errno = [&](std::string_view what) {
    std::string text(what);
    if (error.sys_errno != 0) {
      text += ": ";
      text += errno_text(error.sys_errno);
    }
    return text;
  };
  switch (error.code) {
    case QrErrorCode::invalid_input:
      return "nothing to encode (empty text or an embedded NUL)";
    case QrErrorCode::too_long:
      return "the text is too long for a QR code";
    case QrErrorCode::encode_failed:
      return with_errno("QR encoding failed");
    case QrErrorCode::open_failed:
      return with_errno("cannot create the file");
    case QrErrorCode::not_regular_file:
      return "not a regular file; refusing to write there (choose a new file name)";
    case QrErrorCode::symlink:
      return "a symbolic link; refusing to write through it (choose a new file name)";
    case QrErrorCode::not_owner:
      return "owned by another user; refusing to replace it, since the picture holds the "
             "secret (choose a new file name)";
    case QrErrorCode::write_failed:
      return with_errno("cannot write the file");
    case QrErrorCode::png_failed:
      return "PNG encoding failed";
  }
  return "QR error";
}

std::expected<QrCode, QrError> QrCode::encode(std::string_view text) {
  if (text.empty() || text.find('\0') != std::string_view::npos) {
    return std::unexpected(QrError{QrErrorCode::invalid_input, 0});
  }
  const SecureString terminated(text);  // libqrencode wants a C string
  errno = 0;
  const std::unique_ptr<QRcode, QrcodeDeleter> qr(
      QRcode_encodeString(terminated.c_str(), 0, QR_ECLEVEL_M, QR_MODE_8, 1));
  if (!qr) {
    const int err = errno;
    if (err == ERANGE) {
      return std::unexpected(QrError{QrErrorCode::too_long, 0});
    }
    return std::unexpected(QrError{QrErrorCode::encode_failed, err});
  }
  const auto width = static_cast<std::size_t>(qr->width);
  SecureBytes modules(width * width);
  const std::span<const unsigned char> data(qr->data, width * width);
  for (std::size_t i = 0; i < data.size(); ++i) {
    modules.mutable_view()[i] = static_cast<std::uint8_t>(data[i] & 1U);  // bit 0: dark
  }
  return QrCode(width, std::move(modules));
}

bool QrCode::dark(std::size_t x, std::size_t y) const noexcept {
  if (x >= width_ || y >= width_) {
    return false;
  }
  return modules_.view()[y * width_ + x] != 0;
}

// Which modules are blocks. A glyph is painted in the terminal's foreground
// colour, a space shows its background, and plain text cannot know which of
// the two is dark. Drawing the light modules (and the 4-module quiet zone as a
// solid frame) gives the right polarity on light-on-dark terminals; drawing
// the dark ones (the quiet zone left as background) on dark-on-light ones.
// Each is an inverted symbol on the other kind, which many readers (zbar
// among them) do not decode, so plain text (QrTextColors::none) shows both,
// one under the other: whatever the theme, one of them scans. That is the
// text the PAM module shows inside an SSH login, where colour codes are no
// option: OpenSSH prints the escape sequences of server messages as garbage.
// QrTextColors::ansi pins the palette (bright white on black) so one code is
// right everywhere; the tool uses it when writing to a colour terminal.
namespace {

void render_once(SecureString& text, const QrCode& code, bool draw_light, bool ansi) {
  const std::size_t side = padded_width(code);
  for (std::size_t y = 0; y < side; y += 2) {
    if (ansi) {
      text.append(kAnsiLightOnDark);
    }
    for (std::size_t x = 0; x < side; ++x) {
      const bool top = dark_padded(code, x, y) != draw_light;
      // Past the last row is outside the quiet zone: left as background.
      const bool bottom = y + 1 < side && dark_padded(code, x, y + 1) != draw_light;
      if (top && bottom) {
        text.append(kFullBlock);
      } else if (top) {
        text.append(kUpperHalf);
      } else if (bottom) {
        text.append(kLowerHalf);
      } else {
        text.push_back(' ');
      }
    }
    if (ansi) {
      text.append(kAnsiReset);
    }
    text.push_back('\n');
  }
}

}  // namespace

SecureString render_qr_text(const QrCode& code, QrTextColors colors) {
  SecureString text;  // grows into fresh buffers, wiping the old ones
  switch (colors) {
    case QrTextColors::ansi:
      render_once(text, code, /*draw_light=*/true, /*ansi=*/true);
      break;
    case QrTextColors::light_drawn:
      render_once(text, code, /*draw_light=*/true, /*ansi=*/false);
      break;
    case QrTextColors::dark_drawn:
      render_once(text, code, /*draw_light=*/false, /*ansi=*/false);
      break;
    case QrTextColors::none:
      render_once(text, code, /*draw_light=*/true, /*ansi=*/false);
      text.push_back('\n');
      text.append(kQrSecondCodeCaption);
      text.push_back('\n');
      render_once(text, code, /*draw_light=*/false, /*ansi=*/false);
      break;
  }
  return text;
}

std::expected<SecureString, QrError> qr_text(std::string_view text, QrTextColors colors) {
  auto code = QrCode::encode(text);
  if (!code) {
    return std::unexpected(code.error());
  }
  return render_qr_text(*code, colors);
}

std::expected<SecureBytes, QrError> render_qr_png(const QrCode& code, std::size_t scale) {
  if (scale == 0 || scale > kMaxPngScale) {
    return std::unexpected(QrError{QrErrorCode::invalid_input, 0});
  }
  const std::size_t side = padded_width(code) * scale;
  SecureBytes pixels(side * side);
  const std::span<std::uint8_t> out = pixels.mutable_view();
  for (std::size_t y = 0; y < side; ++y) {
    for (std::size_t x = 0; x < side; ++x) {
      out[y * side + x] = dark_padded(code, x / scale, y / scale) ? 0x00 : 0xFF;
    }
  }

  // libpng's simplified API: no setjmp/longjmp across C++ frames.
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(side);
  image.height = static_cast<png_uint_32>(side);
  image.format = PNG_FORMAT_GRAY;
  png_alloc_size_t size = 0;
  if (png_image_write_to_memory(&image, nullptr, &size, 0, pixels.data(), 0, nullptr) == 0) {
    png_image_free(&image);
    return std::unexpected(QrError{QrErrorCode::png_failed, 0});
  }
  SecureBytes png(size);
  if (png_image_write_to_memory(&image, png.data(), &size, 0, pixels.data(), 0, nullptr) == 0) {
    png_image_free(&image);
    return std::unexpected(QrError{QrErrorCode::png_failed, 0});
  }
  png_image_free(&image);
  png.resize(size);
  return png;
}

SecureString render_qr_svg(const QrCode& code) {
  const std::size_t side = padded_width(code);
  const std::string n = std::to_string(side);
  const std::string px = std::to_string(side * kQrPngScale);
  SecureString svg;  // grows into fresh buffers, wiping the old ones
  // Attribute values are numbers only: nothing to escape.
  const auto append = [&svg](std::initializer_list<std::string_view> parts) {
    for (const std::string_view part : parts) {
      svg.append(part);
    }
  };
  append({R"(<?xml version="1.0" encoding="UTF-8"?>)", "\n"});
  append({R"(<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width=")", px, R"(" height=")",
          px, R"(" viewBox="0 0 )", n, " ", n, R"(" shape-rendering="crispEdges">)", "\n"});
  append({R"(<rect width=")", n, R"(" height=")", n, R"(" fill="#ffffff"/>)", "\n"});
  append({R"(<path fill="#000000" d=")"});
  // One rectangle per horizontal run of dark modules.
  for (std::size_t y = 0; y < code.width(); ++y) {
    std::size_t x = 0;
    while (x < code.width()) {
      if (!code.dark(x, y)) {
        ++x;
        continue;
      }
      const std::size_t start = x;
      while (x < code.width() && code.dark(x, y)) {
        ++x;
      }
      const std::string run = std::to_string(x - start);
      append({"M", std::to_string(start + kQrQuietZone), " ", std::to_string(y + kQrQuietZone), "h",
              run, "v1h-", run, "z"});
    }
  }
  svg.append("\"/>\n</svg>\n");
  return svg;
}

std::expected<void, QrError> write_qr_png(const QrCode& code, const std::string& path,
                                          std::size_t scale) {
  const auto png = render_qr_png(code, scale);
  if (!png) {
    return std::unexpected(png.error());
  }
  return write_private_file(path, png->view());
}

std::expected<void, QrError> check_qr_output_path(const std::string& path) {
  if (path.empty()) {
    return std::unexpected(QrError{QrErrorCode::open_failed, ENOENT});
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    return replaceable(st);
  }
  if (errno != ENOENT) {
    return std::unexpected(QrError{QrErrorCode::open_failed, errno});
  }
  // A new file: its directory must exist and let the caller create it.
  if (::faccessat(AT_FDCWD, parent_of(path).c_str(), W_OK | X_OK, AT_EACCESS) != 0) {
    return std::unexpected(QrError{QrErrorCode::open_failed, errno});
  }
  return {};
}

std::expected<void, QrError> write_qr_svg(const QrCode& code, const std::string& path) {
  const SecureString svg = render_qr_svg(code);
  return write_private_file(path, as_bytes(svg.view()));
}

}  // namespace kpanel::common
