#define BOOST_TEST_MODULE daemon secret box
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/random.hpp"
#include "daemon/store/secret_box.hpp"
#include "daemon/store/store_sqlite.hpp"
#include "shared/memory_map.hpp"
#include "support/store_backends.hpp"

namespace kpanel::daemon::test {
namespace {

namespace fs = std::filesystem;

const std::string kAad = "kpanel-totp/v1/active/alice";

SecretBox random_box() {
  auto key = common::random_bytes(SecretBox::kKeyBytes);
  BOOST_TEST_REQUIRE(key.has_value());
  auto box = SecretBox::from_key(std::move(*key));
  BOOST_TEST_REQUIRE(box.has_value());
  return std::move(*box);
}

std::vector<std::uint8_t> bytes_of(std::string_view text) { return {text.begin(), text.end()}; }

std::string as_text(const common::SecureBytes& bytes) {
  return {bytes.view().begin(), bytes.view().end()};
}

mode_t mode_of(const fs::path& path) {
  struct stat info {};
  BOOST_TEST_REQUIRE(::lstat(path.c_str(), &info) == 0);
  return info.st_mode & 07777U;
}

void write_file(const fs::path& path, std::size_t size, mode_t mode) {
  {
    std::ofstream out(path, std::ios::binary);
    out << std::string(size, 'k');
  }
  BOOST_TEST_REQUIRE(::chmod(path.c_str(), mode) == 0);
}

std::vector<char> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

BOOST_AUTO_TEST_CASE(a_sealed_value_opens_to_the_same_plaintext) {
  const SecretBox box = random_box();
  const auto plaintext = bytes_of("12345678901234567890");
  const auto sealed = box.seal(plaintext, kAad);
  BOOST_TEST_REQUIRE(sealed.has_value());
  BOOST_TEST(sealed->size() == plaintext.size() + SecretBox::kOverheadBytes);
  BOOST_TEST((*sealed)[0] == SecretBox::kFormatVersion);
  const auto opened = box.open(*sealed, kAad);
  BOOST_TEST_REQUIRE(opened.has_value());
  BOOST_TEST(as_text(*opened) == "12345678901234567890");
}

BOOST_AUTO_TEST_CASE(an_empty_plaintext_and_an_empty_aad_roundtrip) {
  const SecretBox box = random_box();
  const auto sealed = box.seal({}, "");
  BOOST_TEST_REQUIRE(sealed.has_value());
  const auto opened = box.open(*sealed, "");
  BOOST_TEST_REQUIRE(opened.has_value());
  BOOST_TEST(opened->empty());
  BOOST_TEST(!box.open(*sealed, "x").has_value());
}

BOOST_AUTO_TEST_CASE(a_value_sealed_for_one_aad_does_not_open_under_another) {
  const SecretBox box = random_box();
  const auto sealed = box.seal(bytes_of("secret"), kAad);
  BOOST_TEST_REQUIRE(sealed.has_value());
  BOOST_TEST(!box.open(*sealed, "kpanel-totp/v1/active/bob").has_value());
  BOOST_TEST(!box.open(*sealed, "kpanel-totp/v1/pending/alice").has_value());
  BOOST_TEST(!box.open(*sealed, "").has_value());
}

BOOST_AUTO_TEST_CASE(every_flipped_bit_is_detected) {
  const SecretBox box = random_box();
  const auto sealed = box.seal(bytes_of("12345678901234567890"), kAad);
  BOOST_TEST_REQUIRE(sealed.has_value());
  int opened = 0;
  for (std::size_t byte = 0; byte < sealed->size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      auto tampered = *sealed;
      tampered[byte] = static_cast<std::uint8_t>(tampered[byte] ^ (1U << bit));
      opened += box.open(tampered, kAad).has_value() ? 1 : 0;
    }
  }
  BOOST_TEST(opened == 0);
}

BOOST_AUTO_TEST_CASE(truncated_and_extended_values_are_refused) {
  const SecretBox box = random_box();
  const auto sealed = box.seal(bytes_of("secret"), kAad);
  BOOST_TEST_REQUIRE(sealed.has_value());
  for (std::size_t size = 0; size < sealed->size(); ++size) {
    const std::vector<std::uint8_t> truncated(sealed->begin(),
                                              sealed->begin() + static_cast<std::ptrdiff_t>(size));
    BOOST_TEST(!box.open(truncated, kAad).has_value());
  }
  auto extended = *sealed;
  extended.push_back(0);
  BOOST_TEST(!box.open(extended, kAad).has_value());
}

BOOST_AUTO_TEST_CASE(two_seals_of_the_same_plaintext_use_different_nonces) {
  const SecretBox box = random_box();
  const auto plaintext = bytes_of("same");
  const auto a = box.seal(plaintext, kAad);
  const auto b = box.seal(plaintext, kAad);
  BOOST_TEST_REQUIRE((a.has_value() && b.has_value()));
  const std::vector<std::uint8_t> nonce_a(a->begin() + 1, a->begin() + 1 + SecretBox::kNonceBytes);
  const std::vector<std::uint8_t> nonce_b(b->begin() + 1, b->begin() + 1 + SecretBox::kNonceBytes);
  BOOST_TEST(nonce_a != nonce_b);
  BOOST_TEST(*a != *b);
}

BOOST_AUTO_TEST_CASE(another_key_does_not_open_a_sealed_value) {
  const auto sealed = random_box().seal(bytes_of("secret"), kAad);
  BOOST_TEST_REQUIRE(sealed.has_value());
  BOOST_TEST(!random_box().open(*sealed, kAad).has_value());
}

BOOST_AUTO_TEST_CASE(a_key_of_the_wrong_size_is_refused) {
  BOOST_TEST(!SecretBox::from_key(common::SecureBytes(31)).has_value());
  BOOST_TEST(!SecretBox::from_key(common::SecureBytes(33)).has_value());
  BOOST_TEST(!SecretBox::from_key(common::SecureBytes()).has_value());
  BOOST_TEST(SecretBox::from_key(common::SecureBytes(32)).has_value());
}

BOOST_AUTO_TEST_CASE(a_moved_from_box_refuses_instead_of_using_no_key) {
  SecretBox box = random_box();
  const SecretBox other = std::move(box);
  BOOST_TEST(other.seal(bytes_of("x"), kAad).has_value());
  // NOLINTNEXTLINE(bugprone-use-after-move,clang-analyzer-cplusplus.Move): the point here
  BOOST_TEST(!box.seal(bytes_of("x"), kAad).has_value());
}

// ---- key_file -----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_missing_key_file_is_created_0600_with_32_random_bytes) {
  const TempDir dir;
  const fs::path key_file = dir.path() / "state.key";
  const auto box = SecretBox::load_or_create(key_file);
  BOOST_TEST_REQUIRE(box.has_value(), box.error());
  BOOST_TEST(mode_of(key_file) == 0600U);
  BOOST_TEST(fs::file_size(key_file) == 32U);
  BOOST_TEST(read_file(key_file) != std::vector<char>(32, '\0'));
}

BOOST_AUTO_TEST_CASE(a_key_file_is_created_0600_whatever_the_umask) {
  const TempDir dir;
  const fs::path key_file = dir.path() / "state.key";
  const mode_t old = ::umask(0277);
  const auto box = SecretBox::load_or_create(key_file);
  ::umask(old);
  BOOST_TEST_REQUIRE(box.has_value(), box.error());
  BOOST_TEST(mode_of(key_file) == 0600U);
}

BOOST_AUTO_TEST_CASE(reopening_the_key_file_gives_the_same_key) {
  const TempDir dir;
  const fs::path key_file = dir.path() / "state.key";
  const auto first = SecretBox::load_or_create(key_file);
  BOOST_TEST_REQUIRE(first.has_value(), first.error());
  const auto before = read_file(key_file);
  const auto second = SecretBox::load_or_create(key_file);
  BOOST_TEST_REQUIRE(second.has_value(), second.error());
  BOOST_TEST(read_file(key_file) == before);
  const auto sealed = first->seal(bytes_of("secret"), kAad);
  BOOST_TEST_REQUIRE(sealed.has_value());
  const auto opened = second->open(*sealed, kAad);
  BOOST_TEST_REQUIRE(opened.has_value());
  BOOST_TEST(as_text(*opened) == "secret");
}

BOOST_AUTO_TEST_CASE(two_missing_key_files_get_different_keys) {
  const TempDir dir;
  BOOST_TEST_REQUIRE(SecretBox::load_or_create(dir.path() / "a.key").has_value());
  BOOST_TEST_REQUIRE(SecretBox::load_or_create(dir.path() / "b.key").has_value());
  BOOST_TEST(read_file(dir.path() / "a.key") != read_file(dir.path() / "b.key"));
}

BOOST_AUTO_TEST_CASE(a_group_or_world_readable_key_file_is_refused_with_the_fix) {
  const TempDir dir;
  const fs::path key_file = dir.path() / "state.key";
  write_file(key_file, 32, 0644);
  const auto box = SecretBox::load_or_create(key_file);
  BOOST_TEST_REQUIRE(!box.has_value());
  BOOST_TEST(box.error().find("chmod 600 " + key_file.string()) != std::string::npos, box.error());
  BOOST_TEST(box.error().find("0644") != std::string::npos, box.error());
  write_file(key_file, 32, 0640);
  BOOST_TEST(!SecretBox::load_or_create(key_file).has_value());
  write_file(key_file, 32, 0602);
  BOOST_TEST(!SecretBox::load_or_create(key_file).has_value());
  write_file(key_file, 32, 0400);
  BOOST_TEST(SecretBox::load_or_create(key_file).has_value());
}

BOOST_AUTO_TEST_CASE(a_symlinked_key_file_is_refused) {
  const TempDir dir;
  const fs::path real = dir.path() / "real.key";
  write_file(real, 32, 0600);
  const fs::path link = dir.path() / "state.key";
  fs::create_symlink(real, link);
  const auto box = SecretBox::load_or_create(link);
  BOOST_TEST_REQUIRE(!box.has_value());
  BOOST_TEST(box.error().find("symbolic link") != std::string::npos, box.error());
}

BOOST_AUTO_TEST_CASE(a_dangling_symlink_is_not_followed_to_create_a_key) {
  const TempDir dir;
  const fs::path target = dir.path() / "elsewhere.key";
  const fs::path link = dir.path() / "state.key";
  fs::create_symlink(target, link);
  BOOST_TEST(!SecretBox::load_or_create(link).has_value());
  BOOST_TEST(!fs::exists(target));
}

BOOST_AUTO_TEST_CASE(a_key_file_of_the_wrong_size_is_refused) {
  const TempDir dir;
  const fs::path key_file = dir.path() / "state.key";
  for (const std::size_t size : {0UL, 16UL, 31UL, 33UL, 64UL}) {
    write_file(key_file, size, 0600);
    const auto box = SecretBox::load_or_create(key_file);
    BOOST_TEST_REQUIRE(!box.has_value());
    BOOST_TEST(box.error().find(std::to_string(size) + " bytes") != std::string::npos, box.error());
  }
}

BOOST_AUTO_TEST_CASE(a_key_file_that_is_not_a_regular_file_is_refused) {
  const TempDir dir;
  const fs::path fifo = dir.path() / "state.key";
  BOOST_TEST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  BOOST_TEST(!SecretBox::load_or_create(fifo).has_value());  // and does not hang
  BOOST_TEST(!SecretBox::load_or_create(dir.path()).has_value());
}

BOOST_AUTO_TEST_CASE(a_key_file_owned_by_another_user_is_refused) {
  if (::geteuid() != 0) {
    BOOST_TEST_MESSAGE("skipped: needs root to give a file away");
    return;
  }
  const TempDir dir;
  const fs::path key_file = dir.path() / "state.key";
  write_file(key_file, 32, 0600);
  BOOST_TEST_REQUIRE(::chown(key_file.c_str(), 65534, 65534) == 0);
  const auto box = SecretBox::load_or_create(key_file);
  BOOST_TEST_REQUIRE(!box.has_value());
  BOOST_TEST(box.error().find("chown") != std::string::npos, box.error());
}

BOOST_AUTO_TEST_CASE(a_key_file_in_a_missing_directory_is_an_error_not_a_crash) {
  const TempDir dir;
  const auto box = SecretBox::load_or_create(dir.path() / "missing" / "state.key");
  BOOST_TEST_REQUIRE(!box.has_value());
  BOOST_TEST(box.error().find("missing") != std::string::npos, box.error());
}

// ---- the key is never in a core dump ----------------------------------------------

BOOST_AUTO_TEST_CASE(the_key_lives_on_a_page_excluded_from_core_dumps) {
  const TempDir dir;
  const auto loaded = SecretBox::load_or_create(dir.path() / "state.key");
  BOOST_TEST_REQUIRE(loaded.has_value(), loaded.error());
  const auto reread = SecretBox::load_or_create(dir.path() / "state.key");
  BOOST_TEST_REQUIRE(reread.has_value(), reread.error());
  const SecretBox given = random_box();
  for (const SecretBox* box : {&*loaded, &*reread, &given}) {
    const std::string flags = kpanel::test::vm_flags_of(box->key_location());
    BOOST_TEST(kpanel::test::has_vm_flag(flags, "dd"), flags);
  }
}

// ---- a key is made only on a first start -------------------------------------------

BOOST_AUTO_TEST_CASE(a_missing_key_is_not_made_while_the_store_holds_sealed_secrets) {
  const TempDir dir;
  const fs::path key_file = dir.path() / "state.key";
  const auto box = SecretBox::load_or_create(key_file, [] { return true; });
  BOOST_TEST_REQUIRE(!box.has_value());
  BOOST_TEST(box.error().find(key_file.string()) != std::string::npos, box.error());
  BOOST_TEST(box.error().find("holds secrets sealed") != std::string::npos, box.error());
  BOOST_TEST(box.error().find("restore") != std::string::npos, box.error());
  BOOST_TEST(!fs::exists(key_file));
}

BOOST_AUTO_TEST_CASE(a_missing_key_is_not_made_when_the_store_cannot_tell) {
  const TempDir dir;
  const fs::path key_file = dir.path() / "state.key";
  const auto box = SecretBox::load_or_create(
      key_file, []() -> std::expected<bool, std::string> { return std::unexpected("down"); });
  BOOST_TEST_REQUIRE(!box.has_value());
  BOOST_TEST(box.error().find(key_file.string()) != std::string::npos, box.error());
  BOOST_TEST(!fs::exists(key_file));
}

BOOST_AUTO_TEST_CASE(an_existing_key_is_read_without_asking_the_store) {
  const TempDir dir;
  const fs::path key_file = dir.path() / "state.key";
  BOOST_TEST_REQUIRE(SecretBox::load_or_create(key_file).has_value());
  bool asked = false;
  const auto box = SecretBox::load_or_create(key_file, [&asked] {
    asked = true;
    return true;
  });
  BOOST_TEST(box.has_value());
  BOOST_TEST(!asked);
}

BOOST_AUTO_TEST_CASE(the_sqlite_store_tells_whether_it_holds_sealed_secrets) {
  const TempDir dir;
  const fs::path state = dir.path() / "state";
  // Nothing there yet: a first start, and asking creates nothing.
  auto holds = SqliteStore::holds_sealed_secrets(state);
  BOOST_TEST_REQUIRE(holds.has_value(), holds.error().message);
  BOOST_TEST(!*holds);
  BOOST_TEST(!fs::exists(state));
  {
    auto store = SqliteStore::open(state, random_box());
    BOOST_TEST_REQUIRE(store.has_value(), store.error().message);
    BOOST_TEST_REQUIRE((*store)->update("alice", [](UserRecord&) { return true; }).has_value());
  }
  holds = SqliteStore::holds_sealed_secrets(state);
  BOOST_TEST_REQUIRE(holds.has_value(), holds.error().message);
  BOOST_TEST(!*holds);  // a row without a secret: a new key loses nothing
  {
    auto store = SqliteStore::open(state, random_box());
    BOOST_TEST_REQUIRE(store.has_value(), store.error().message);
    const auto enrolled = (*store)->update("alice", [](UserRecord& record) {
      record.pending =
          PendingEnrollment{.secret = common::SecureBytes(bytes_of("12345678901234567890")),
                            .params = {},
                            .expires_at = common::TimePoint{}};
      return true;
    });
    BOOST_TEST_REQUIRE(enrolled.has_value(), enrolled.error().message);
  }
  holds = SqliteStore::holds_sealed_secrets(state);
  BOOST_TEST_REQUIRE(holds.has_value(), holds.error().message);
  BOOST_TEST(*holds);
}

}  // namespace
}  // namespace kpanel::daemon::test
