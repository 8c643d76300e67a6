// QR rendering: every output is decoded again with zbarimg (zbar-tools) and
// must give back exactly the URI that went in.
#define BOOST_TEST_MODULE common_qr
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <cstdio>   // popen
#include <cstdlib>  // mkdtemp
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <new>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/qr.hpp"
#include "shared/temp_dir.hpp"

// ---- freed-memory probe: does a freed block still hold a given text? --------
// Every allocation goes through malloc here, so a freed block's usable size is
// known; while a needle is set, each block is searched before it is freed.
namespace {
thread_local const std::string* t_needle = nullptr;
thread_local int t_freed_with_needle = 0;

void* allocate(std::size_t size) {
  void* memory = std::malloc(size == 0 ? 1 : size);  // NOLINT: the replaced allocator
  if (memory == nullptr) throw std::bad_alloc();
  return memory;
}
void release(void* memory) noexcept {
  if (memory != nullptr && t_needle != nullptr && !t_needle->empty()) {
    const std::size_t size = ::malloc_usable_size(memory);
    if (::memmem(memory, size, t_needle->data(), t_needle->size()) != nullptr) {
      ++t_freed_with_needle;
    }
  }
  std::free(memory);  // NOLINT: the replaced allocator
}
}  // namespace

void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void operator delete(void* memory) noexcept { release(memory); }
void operator delete[](void* memory) noexcept { release(memory); }
void operator delete(void* memory, std::size_t /*size*/) noexcept { release(memory); }
void operator delete[](void* memory, std::size_t /*size*/) noexcept { release(memory); }

namespace {

using kpanel::common::check_qr_output_path;
using kpanel::common::kQrQuietZone;
using kpanel::common::QrCode;
using kpanel::common::QrErrorCode;
using kpanel::common::QrTextColors;

const std::string kUri =
    "otpauth://totp/Kapsule:alice%40web01?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    "&issuer=Kapsule&algorithm=SHA1&digits=6&period=30";

using TempDir = kpanel::test::TempDir;

// A grid of modules as the test sees them: true = dark.
using Grid = std::vector<std::vector<bool>>;

// Writes the grid as a binary PGM, `scale` pixels per module.
void write_pgm(const std::filesystem::path& file, const Grid& grid, std::size_t scale) {
  const std::size_t height = grid.size() * scale;
  const std::size_t width = grid.empty() ? 0 : grid.front().size() * scale;
  std::ofstream out(file, std::ios::binary);
  out << "P5\n" << width << " " << height << "\n255\n";
  for (const auto& row : grid) {
    std::string line;
    for (const bool dark : row) {
      line.append(scale, dark ? '\0' : '\xFF');
    }
    for (std::size_t i = 0; i < scale; ++i) {
      out << line;
    }
  }
  BOOST_REQUIRE(out.good());
}

// zbarimg --raw -q --nodbus FILE; its stdout without the trailing newline.
std::string zbar_decode(const std::filesystem::path& file) {
  // NOLINTNEXTLINE(cert-env33-c,concurrency-mt-unsafe): a test running a fixed command
  BOOST_REQUIRE_MESSAGE(std::system("command -v zbarimg >/dev/null 2>&1") == 0,
                        "zbarimg not found: apt-get install zbar-tools");
  const std::string command = "zbarimg --raw -q --nodbus '" + file.string() + "'";
  FILE* pipe = ::popen(command.c_str(), "r");  // NOLINT(cert-env33-c): the test runs zbarimg
  BOOST_REQUIRE(pipe != nullptr);
  std::string output;
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    output.append(buffer.data(), n);
  }
  const int status = ::pclose(pipe);
  BOOST_TEST_INFO("zbarimg exit status " << status);
  BOOST_REQUIRE_EQUAL(status, 0);
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) {
    output.pop_back();
  }
  return output;
}

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The names in a directory, sorted: nothing left behind (no temporary file).
std::vector<std::string> entries(const std::filesystem::path& directory) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

mode_t file_mode(const std::filesystem::path& file) {
  struct stat st {};
  BOOST_REQUIRE_EQUAL(::lstat(file.c_str(), &st), 0);
  return st.st_mode & 07777;
}

// The symbol with its quiet zone, as the renderers should draw it.
Grid expected_grid(const QrCode& code) {
  const std::size_t side = code.width() + 2 * kQrQuietZone;
  Grid grid(side, std::vector<bool>(side, false));
  for (std::size_t y = 0; y < code.width(); ++y) {
    for (std::size_t x = 0; x < code.width(); ++x) {
      grid[y + kQrQuietZone][x + kQrQuietZone] = code.dark(x, y);
    }
  }
  return grid;
}

// Drops SGR sequences (ESC [ digits/semicolons m). (No <regex>: GCC 12 with
// ASan reports false maybe-uninitialized warnings inside it.)
std::string strip_ansi(const std::string& text) {
  std::string plain;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\x1B' && i + 1 < text.size() && text[i + 1] == '[') {
      i = text.find('m', i);
      BOOST_REQUIRE(i != std::string::npos);
      continue;
    }
    plain += text[i];
  }
  return plain;
}

// The runs of the SVG path: "M<x> <y>h<n>v1h-<n>z", in order.
struct Run {
  std::size_t x, y, length;
};
std::vector<Run> svg_runs(const std::string& svg) {
  const std::string start = " d=\"";
  const std::size_t begin = svg.find(start);
  BOOST_REQUIRE(begin != std::string::npos);
  const std::size_t end = svg.find('"', begin + start.size());
  std::istringstream path(svg.substr(begin + start.size(), end - begin - start.size()));
  std::vector<Run> runs;
  char m = 0;
  char h = 0;
  char v = 0;
  char h2 = 0;
  char minus = 0;
  char z = 0;
  std::size_t one = 0;
  std::size_t back = 0;
  Run run{};
  while (path >> m >> run.x >> run.y >> h >> run.length >> v >> one >> h2 >> minus >> back >> z) {
    BOOST_REQUIRE(m == 'M' && h == 'h' && v == 'v' && one == 1 && h2 == 'h' && minus == '-' &&
                  back == run.length && z == 'z');
    runs.push_back(run);
  }
  BOOST_REQUIRE(path.eof());
  return runs;
}

// Reads terminal text back into modules: each character is a top and a bottom
// module; a block half is a light module, a blank half a dark one.
Grid rasterize_text(const std::string& text) {
  Grid grid;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    BOOST_REQUIRE(end != std::string::npos);  // every line ends with '\n'
    const std::string line = text.substr(start, end - start);
    std::vector<bool> top;
    std::vector<bool> bottom;
    for (std::size_t i = 0; i < line.size();) {
      if (line[i] == ' ') {
        top.push_back(true);
        bottom.push_back(true);
        ++i;
        continue;
      }
      const std::string glyph = line.substr(i, 3);
      if (glyph == "\u2588") {
        top.push_back(false);
        bottom.push_back(false);
      } else if (glyph == "\u2580") {
        top.push_back(false);
        bottom.push_back(true);
      } else if (glyph == "\u2584") {
        top.push_back(true);
        bottom.push_back(false);
      } else {
        BOOST_FAIL("unexpected character in QR text at byte " << i << " of a line");
      }
      i += 3;
    }
    grid.push_back(top);
    grid.push_back(bottom);
    start = end + 1;
  }
  return grid;
}

QrCode encode_uri() {
  auto code = QrCode::encode(kUri);
  BOOST_REQUIRE(code.has_value());
  return *code;
}

}  // namespace

BOOST_AUTO_TEST_CASE(encodes_a_uri_into_a_square_symbol) {
  const QrCode code = encode_uri();
  BOOST_TEST(code.width() >= 21U);
  BOOST_TEST((code.width() - 21) % 4 == 0U);
  // Finder pattern corners are dark; outside the symbol is light.
  BOOST_TEST(code.dark(0, 0));
  BOOST_TEST(code.dark(code.width() - 1, 0));
  BOOST_TEST(code.dark(0, code.width() - 1));
  BOOST_TEST(!code.dark(code.width(), 0));
}

BOOST_AUTO_TEST_CASE(rejects_empty_embedded_nul_and_oversized_text) {
  BOOST_TEST((QrCode::encode("").error().code == QrErrorCode::invalid_input));
  BOOST_TEST((QrCode::encode(std::string("a\0b", 3)).error().code == QrErrorCode::invalid_input));
  BOOST_TEST((QrCode::encode(std::string(5000, 'x')).error().code == QrErrorCode::too_long));
  BOOST_TEST(!kpanel::common::qr_text(std::string(5000, 'x')).has_value());
}

BOOST_AUTO_TEST_CASE(terminal_text_scans_back_to_the_uri) {
  const TempDir dir;
  const QrCode code = encode_uri();
  const std::string text(render_qr_text(code, QrTextColors::light_drawn).view());
  BOOST_TEST(text.find('\x1B') == std::string::npos);  // plain: no escape sequences

  // Two module rows per line, one character per module column.
  const std::size_t side = code.width() + 2 * kQrQuietZone;
  Grid grid = rasterize_text(text);
  BOOST_REQUIRE_EQUAL(grid.size(), side + side % 2);
  // The half line past the quiet zone is background (drawn as dark here).
  if (side % 2 == 1) {
    for (const bool dark : grid.back()) {
      BOOST_TEST(dark);
    }
    grid.pop_back();
  }
  BOOST_TEST((grid == expected_grid(code)));

  write_pgm(dir.path() / "text.pgm", grid, 4);
  BOOST_TEST(zbar_decode(dir.path() / "text.pgm") == kUri);
}

// Plain text cannot know the terminal's colours, and a reader like zbar does
// not take an inverted symbol: the code comes twice, once drawn for each kind
// of terminal. Each is read here as that terminal shows it (a glyph in the
// foreground colour: light on a dark theme, dark on a light one).
BOOST_AUTO_TEST_CASE(plain_text_scans_on_dark_and_on_light_terminals) {
  const TempDir dir;
  const QrCode code = encode_uri();
  const std::string text(render_qr_text(code).view());
  BOOST_TEST(text.find('\x1B') == std::string::npos);
  const std::string for_dark(render_qr_text(code, QrTextColors::light_drawn).view());
  const std::string for_light(render_qr_text(code, QrTextColors::dark_drawn).view());
  BOOST_TEST(text == for_dark + "\n" + std::string(kpanel::common::kQrSecondCodeCaption) + "\n" +
                         for_light);

  // A dark theme: glyphs light (rasterize_text's reading).
  write_pgm(dir.path() / "dark-theme.pgm", rasterize_text(for_dark), 4);
  BOOST_TEST(zbar_decode(dir.path() / "dark-theme.pgm") == kUri);
  // A light theme: glyphs dark, spaces (the quiet zone too) light.
  Grid light = rasterize_text(for_light);
  for (auto& row : light) {
    row.flip();
  }
  const std::size_t side = code.width() + 2 * kQrQuietZone;
  if (side % 2 == 1) {
    light.pop_back();  // the background half line past the quiet zone
  }
  BOOST_TEST((light == expected_grid(code)));
  write_pgm(dir.path() / "light-theme.pgm", light, 4);
  BOOST_TEST(zbar_decode(dir.path() / "light-theme.pgm") == kUri);
}

BOOST_AUTO_TEST_CASE(terminal_text_is_a_pure_function_of_the_uri) {
  const auto once = kpanel::common::qr_text(kUri);
  const auto again = kpanel::common::qr_text(kUri);
  BOOST_REQUIRE(once.has_value());
  BOOST_REQUIRE(again.has_value());
  BOOST_TEST((*once == *again));
  BOOST_TEST((*once == render_qr_text(encode_uri())));
}

BOOST_AUTO_TEST_CASE(ansi_text_pins_light_on_dark_and_scans_back) {
  const TempDir dir;
  const QrCode code = encode_uri();
  const std::string text(render_qr_text(code, QrTextColors::ansi).view());
  // Every line sets the colours and resets them before the newline.
  std::size_t lines = 0;
  for (std::size_t start = 0; start < text.size(); ++lines) {
    const std::size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    BOOST_TEST(line.starts_with("\x1B[97;40m"));
    BOOST_TEST(line.ends_with("\x1B[0m"));
    start = end + 1;
  }
  BOOST_TEST(lines == (code.width() + 2 * kQrQuietZone + 1) / 2);
  BOOST_TEST(strip_ansi(text) ==
             std::string(render_qr_text(code, QrTextColors::light_drawn).view()));

  write_pgm(dir.path() / "ansi.pgm", rasterize_text(strip_ansi(text)), 4);
  BOOST_TEST(zbar_decode(dir.path() / "ansi.pgm") == kUri);
}

BOOST_AUTO_TEST_CASE(png_file_is_private_and_scans_back) {
  const TempDir dir;
  const QrCode code = encode_uri();
  const auto file = dir.path() / "qr.png";
  const auto old_umask = ::umask(0);  // the mode must not depend on the umask
  const auto written = write_qr_png(code, file.string());
  ::umask(old_umask);
  BOOST_REQUIRE(written.has_value());
  BOOST_TEST(file_mode(file) == 0600U);

  // 8-bit grayscale, 8 px per module, quiet zone included (IHDR after the signature).
  const std::string png = read_file(file);
  BOOST_REQUIRE(png.size() > 26);
  BOOST_TEST(png.substr(1, 3) == "PNG");
  const auto be32 = [&png](std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      v = (v << 8) | static_cast<std::uint8_t>(png[at + i]);
    }
    return v;
  };
  const auto side = static_cast<std::uint32_t>((code.width() + 2 * kQrQuietZone) * 8);
  BOOST_TEST(be32(16) == side);
  BOOST_TEST(be32(20) == side);
  BOOST_TEST(static_cast<int>(png[24]) == 8);  // bit depth
  BOOST_TEST(static_cast<int>(png[25]) == 0);  // colour type: grayscale

  BOOST_TEST(zbar_decode(file) == kUri);
}

// Only the caller's own regular file is replaced, and by rename: no byte goes
// into the inode that was there (a hard link to it keeps the old content).
BOOST_AUTO_TEST_CASE(own_existing_file_is_replaced_not_written_into) {
  const TempDir dir;
  const auto file = dir.path() / "qr.png";
  const auto other_link = dir.path() / "other-name";
  {
    std::ofstream out(file);
    out << std::string(1 << 20, 'x');
  }
  ::chmod(file.c_str(), 0644);
  std::filesystem::create_hard_link(file, other_link);
  BOOST_REQUIRE(write_qr_png(encode_uri(), file.string()).has_value());
  BOOST_TEST(file_mode(file) == 0600U);
  BOOST_TEST(std::filesystem::file_size(file) < (1U << 20));
  BOOST_TEST(zbar_decode(file) == kUri);
  BOOST_TEST(read_file(other_link) == std::string(1 << 20, 'x'));  // old inode untouched
  BOOST_TEST(entries(dir.path()) == (std::vector<std::string>{"other-name", "qr.png"}));
}

BOOST_AUTO_TEST_CASE(new_file_is_created_0600_and_nothing_else) {
  const TempDir dir;
  const auto file = dir.path() / "qr.svg";
  const auto old_umask = ::umask(0);
  const auto written = write_qr_svg(encode_uri(), file.string());
  ::umask(old_umask);
  BOOST_REQUIRE(written.has_value());
  BOOST_TEST(file_mode(file) == 0600U);
  BOOST_TEST(entries(dir.path()) == std::vector<std::string>{"qr.svg"});
  BOOST_TEST(check_qr_output_path((dir.path() / "new.png").string()).has_value());
  BOOST_TEST(check_qr_output_path(file.string()).has_value());  // ours: may be replaced
}

BOOST_AUTO_TEST_CASE(symlink_is_refused) {
  const TempDir dir;
  const auto target = dir.path() / "target";
  const auto link = dir.path() / "link.svg";
  const auto dangling = dir.path() / "dangling.png";
  {
    std::ofstream out(target);
    out << "keep me";
  }
  std::filesystem::create_symlink(target, link);
  std::filesystem::create_symlink(dir.path() / "not-yet", dangling);
  const auto written = write_qr_svg(encode_uri(), link.string());
  BOOST_REQUIRE(!written.has_value());
  BOOST_TEST((written.error().code == QrErrorCode::symlink));
  BOOST_TEST(read_file(target) == "keep me");
  BOOST_TEST(describe(written.error()).find("symbolic link") != std::string::npos);
  const auto through_dangling = write_qr_png(encode_uri(), dangling.string());
  BOOST_REQUIRE(!through_dangling.has_value());
  BOOST_TEST((through_dangling.error().code == QrErrorCode::symlink));
  BOOST_TEST(!std::filesystem::exists(dir.path() / "not-yet"));
  for (const auto& path : {link, dangling}) {
    const auto checked = check_qr_output_path(path.string());
    BOOST_REQUIRE(!checked.has_value());
    BOOST_TEST((checked.error().code == QrErrorCode::symlink));
  }
  BOOST_TEST(entries(dir.path()) ==
             (std::vector<std::string>{"dangling.png", "link.svg", "target"}));
}

// In a sticky world-writable directory (/tmp) another user pre-creates the
// file root is about to write the QR code of someone's secret into.
BOOST_AUTO_TEST_CASE(file_of_another_user_in_a_sticky_directory_is_refused) {
  BOOST_REQUIRE_MESSAGE(::geteuid() == 0, "needs root to give a file to another uid");
  const TempDir dir;
  BOOST_REQUIRE_EQUAL(::chmod(dir.path().c_str(), 01777), 0);
  const auto file = dir.path() / "qr.png";
  {
    std::ofstream out(file);
    out << "attacker's";
  }
  BOOST_REQUIRE_EQUAL(::chmod(file.c_str(), 0666), 0);
  BOOST_REQUIRE_EQUAL(::chown(file.c_str(), 65534, 65534), 0);
  for (const bool png : {true, false}) {
    const auto written =
        png ? write_qr_png(encode_uri(), file.string()) : write_qr_svg(encode_uri(), file.string());
    BOOST_REQUIRE(!written.has_value());
    BOOST_TEST((written.error().code == QrErrorCode::not_owner));
    BOOST_TEST(describe(written.error()).find("owned by another user") != std::string::npos);
  }
  struct stat st {};
  BOOST_REQUIRE_EQUAL(::lstat(file.c_str(), &st), 0);
  BOOST_TEST(st.st_uid == 65534U);
  BOOST_TEST((st.st_mode & 07777) == 0666U);
  BOOST_TEST(read_file(file) == "attacker's");
  const auto checked = check_qr_output_path(file.string());
  BOOST_REQUIRE(!checked.has_value());
  BOOST_TEST((checked.error().code == QrErrorCode::not_owner));
  BOOST_TEST(entries(dir.path()) == std::vector<std::string>{"qr.png"});  // no temp left
}

BOOST_AUTO_TEST_CASE(directory_and_missing_parent_are_errors) {
  const TempDir dir;
  const auto directory = write_qr_png(encode_uri(), dir.path().string());
  BOOST_REQUIRE(!directory.has_value());
  BOOST_TEST((directory.error().code == QrErrorCode::not_regular_file));
  const auto missing = write_qr_png(encode_uri(), (dir.path() / "no" / "qr.png").string());
  BOOST_REQUIRE(!missing.has_value());
  BOOST_TEST(missing.error().sys_errno == ENOENT);
  BOOST_TEST(describe(missing.error()).find("No such file") != std::string::npos);
  const auto checked_missing = check_qr_output_path((dir.path() / "no" / "qr.png").string());
  BOOST_REQUIRE(!checked_missing.has_value());
  BOOST_TEST(checked_missing.error().sys_errno == ENOENT);
  const auto checked_directory = check_qr_output_path(dir.path().string());
  BOOST_REQUIRE(!checked_directory.has_value());
  BOOST_TEST((checked_directory.error().code == QrErrorCode::not_regular_file));
}

BOOST_AUTO_TEST_CASE(svg_file_is_private_and_draws_exactly_the_dark_modules) {
  const TempDir dir;
  const QrCode code = encode_uri();
  const auto file = dir.path() / "qr.svg";
  BOOST_REQUIRE(write_qr_svg(code, file.string()).has_value());
  BOOST_TEST(file_mode(file) == 0600U);

  const std::string svg = read_file(file);
  BOOST_TEST(svg.starts_with("<?xml"));
  const std::size_t side = code.width() + 2 * kQrQuietZone;
  BOOST_TEST(svg.find("viewBox=\"0 0 " + std::to_string(side) + " " + std::to_string(side) +
                      "\"") != std::string::npos);

  // Rasterize the path's runs and compare with the symbol, then scan it.
  Grid grid(side, std::vector<bool>(side, false));
  std::size_t dark_modules = 0;
  for (const Run& run : svg_runs(svg)) {
    BOOST_REQUIRE(run.x + run.length <= side && run.y < side);
    for (std::size_t i = 0; i < run.length; ++i) {
      grid[run.y][run.x + i] = true;
    }
    dark_modules += run.length;
  }
  std::size_t expected_dark = 0;
  for (std::size_t y = 0; y < code.width(); ++y) {
    for (std::size_t x = 0; x < code.width(); ++x) {
      expected_dark += code.dark(x, y) ? 1 : 0;
    }
  }
  BOOST_TEST(dark_modules == expected_dark);
  BOOST_TEST((grid == expected_grid(code)));

  write_pgm(dir.path() / "svg.pgm", grid, 4);
  BOOST_TEST(zbar_decode(dir.path() / "svg.pgm") == kUri);
}

// The terminal text and the SVG draw the secret: neither may be left in freed
// memory, not the result and not a buffer outgrown while building it.
BOOST_AUTO_TEST_CASE(drawings_are_wiped_before_their_memory_is_freed) {
  const QrCode code = encode_uri();
  // Needles from the middle of each drawing (the data region, not the finder
  // patterns every QR code shares), taken before watching starts.
  const std::string text(render_qr_text(code).view());
  const std::string svg(kpanel::common::render_qr_svg(code).view());
  const std::string text_needle = text.substr(text.size() / 2, 48);
  const std::string svg_needle = svg.substr(svg.size() / 2, 48);
  for (const auto& [needle, draw] :
       std::vector<std::pair<const std::string*, std::function<std::size_t()>>>{
           {&text_needle, [&] { return render_qr_text(code).size(); }},
           {&text_needle, [&] { return render_qr_text(code, QrTextColors::ansi).size(); }},
           {&svg_needle, [&] { return kpanel::common::render_qr_svg(code).size(); }},
           {&text_needle, [&] { return kpanel::common::qr_text(kUri)->size(); }}}) {
    t_freed_with_needle = 0;
    t_needle = needle;
    const std::size_t drawn = draw();
    t_needle = nullptr;
    BOOST_TEST(drawn > 0U);
    BOOST_TEST(t_freed_with_needle == 0);
  }
  // The probe works: an unwiped copy is seen.
  t_freed_with_needle = 0;
  t_needle = &svg_needle;
  {
    const std::string copy(svg);
    BOOST_TEST(copy.size() == svg.size());
  }
  t_needle = nullptr;
  BOOST_TEST(t_freed_with_needle == 1);
}

BOOST_AUTO_TEST_CASE(png_scale_is_bounded) {
  BOOST_TEST(!render_qr_png(encode_uri(), 0).has_value());
  const auto small = render_qr_png(encode_uri(), 1);
  BOOST_TEST(small.has_value());
}
