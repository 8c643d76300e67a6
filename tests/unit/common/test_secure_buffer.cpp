#define BOOST_TEST_MODULE common_secure_buffer
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "common/secure_buffer.hpp"
#include "shared/memory_map.hpp"

using kpanel::common::constant_time_equal;
using kpanel::common::secure_wipe;
using kpanel::common::SecureBytes;
using kpanel::common::SecureString;

namespace {

std::vector<std::uint8_t> pattern(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(0xA0 + (i % 16));
  return v;
}

bool all_zero(const void* p, std::size_t n) {
  const auto* bytes = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) {
    if (bytes[i] != 0) return false;
  }
  return true;
}

}  // namespace

BOOST_AUTO_TEST_CASE(secure_wipe_zeroes_the_range_only) {
  std::vector<std::uint8_t> v = pattern(32);
  secure_wipe(v.data() + 8, 16);
  BOOST_TEST(all_zero(v.data() + 8, 16));
  BOOST_TEST(v[7] == 0xA7);
  BOOST_TEST(v[24] == 0xA8);
  secure_wipe(nullptr, 10);  // tolerated
  secure_wipe(v.data(), 0);
  BOOST_TEST(v[0] == 0xA0);
}

// White-box: clear() keeps the allocation (std::vector/std::string never shrink
// on clear), so the bytes the secret occupied can be inspected afterwards.
BOOST_AUTO_TEST_CASE(secure_bytes_clear_wipes_contents) {
  const auto p = pattern(64);
  SecureBytes b{std::span<const std::uint8_t>(p)};
  const std::uint8_t* raw = b.data();
  BOOST_TEST(!all_zero(raw, 64));
  b.clear();
  BOOST_TEST(b.empty());
  BOOST_TEST(all_zero(raw, 64));
}

BOOST_AUTO_TEST_CASE(secure_bytes_shrink_wipes_dropped_tail) {
  const auto p = pattern(32);
  SecureBytes b{std::span<const std::uint8_t>(p)};
  const std::uint8_t* raw = b.data();
  b.resize(10);
  BOOST_TEST(b.size() == 10U);
  BOOST_TEST(all_zero(raw + 10, 22));
  BOOST_TEST(std::memcmp(b.data(), p.data(), 10) == 0);
}

BOOST_AUTO_TEST_CASE(secure_bytes_grow_keeps_contents) {
  const auto p = pattern(8);
  SecureBytes b{std::span<const std::uint8_t>(p)};
  b.resize(1000);
  BOOST_TEST(b.size() == 1000U);
  BOOST_TEST(std::memcmp(b.data(), p.data(), 8) == 0);
  BOOST_TEST(all_zero(b.data() + 8, 992));
}

BOOST_AUTO_TEST_CASE(secure_bytes_move_leaves_source_empty) {
  const auto p = pattern(20);
  SecureBytes a{std::span<const std::uint8_t>(p)};
  SecureBytes b(std::move(a));
  BOOST_TEST(a.empty());  // NOLINT(bugprone-use-after-move): the guarantee under test
  BOOST_TEST(b.size() == 20U);
  BOOST_TEST(std::memcmp(b.data(), p.data(), 20) == 0);

  SecureBytes c(5);
  c = std::move(b);
  BOOST_TEST(b.empty());  // NOLINT(bugprone-use-after-move)
  BOOST_TEST(c.size() == 20U);
  BOOST_TEST(std::memcmp(c.data(), p.data(), 20) == 0);
}

BOOST_AUTO_TEST_CASE(secure_bytes_copy_and_equality) {
  const auto p = pattern(16);
  const SecureBytes a{std::span<const std::uint8_t>(p)};
  SecureBytes b(a);
  BOOST_TEST((a == b));
  b.mutable_view()[15] ^= 1U;
  BOOST_TEST(!(a == b));
  SecureBytes c;
  c = a;
  BOOST_TEST((c == a));
  BOOST_TEST(!(SecureBytes(15) == SecureBytes(16)));
}

BOOST_AUTO_TEST_CASE(secure_string_clear_wipes_heap_and_small_buffers) {
  for (const std::string& text : {std::string("123456"), std::string(100, 'x')}) {
    SecureString s(text);
    const char* raw = s.c_str();
    BOOST_TEST(std::memcmp(raw, text.data(), text.size()) == 0);
    s.clear();
    BOOST_TEST(s.empty());
    BOOST_TEST(all_zero(raw, text.size()));
  }
}

BOOST_AUTO_TEST_CASE(secure_string_move_leaves_source_empty) {
  SecureString a("a secret longer than the small-string buffer");
  SecureString b(std::move(a));
  BOOST_TEST(a.empty());  // NOLINT(bugprone-use-after-move)
  BOOST_TEST(b.view() == "a secret longer than the small-string buffer");
  SecureString c("x");
  c = std::move(b);
  BOOST_TEST(b.empty());  // NOLINT(bugprone-use-after-move)
  BOOST_TEST(c.view() == "a secret longer than the small-string buffer");
}

BOOST_AUTO_TEST_CASE(secure_string_append_and_push_back) {
  SecureString s;
  for (int i = 0; i < 100; ++i) s.push_back(static_cast<char>('a' + i % 26));
  s.append("END");
  BOOST_TEST(s.size() == 103U);
  BOOST_TEST(s.view().substr(0, 3) == "abc");
  BOOST_TEST(s.view().substr(100) == "END");
  BOOST_TEST(std::string(s.c_str()) == std::string(s.view()));
}

BOOST_AUTO_TEST_CASE(constant_time_equal_compares_contents_and_lengths) {
  BOOST_TEST(constant_time_equal(std::string_view("123456"), std::string_view("123456")));
  BOOST_TEST(!constant_time_equal(std::string_view("123456"), std::string_view("123457")));
  BOOST_TEST(!constant_time_equal(std::string_view("023456"), std::string_view("123456")));
  BOOST_TEST(!constant_time_equal(std::string_view("12345"), std::string_view("123456")));
  BOOST_TEST(constant_time_equal(std::string_view(""), std::string_view("")));
  const auto p = pattern(64);
  auto q = p;
  BOOST_TEST(
      constant_time_equal(std::span<const std::uint8_t>(p), std::span<const std::uint8_t>(q)));
  q[63] ^= 0x80U;
  BOOST_TEST(
      !constant_time_equal(std::span<const std::uint8_t>(p), std::span<const std::uint8_t>(q)));
  BOOST_TEST((SecureString("code") == SecureString("code")));
  BOOST_TEST(!(SecureString("code") == SecureString("cod")));
}

// ---- ProtectedBytes: the key's own page -------------------------------------

namespace {

using kpanel::test::has_vm_flag;
using kpanel::test::vm_flags_of;

}  // namespace

BOOST_AUTO_TEST_CASE(protected_bytes_live_on_their_own_page_excluded_from_core_dumps) {
  auto bytes = kpanel::common::ProtectedBytes::allocate(32);
  BOOST_TEST_REQUIRE(bytes.has_value());
  BOOST_TEST(bytes->size() == 32U);
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(bytes->data()) % 4096 == 0U);
  const std::string flags = vm_flags_of(bytes->data());
  BOOST_TEST_REQUIRE(!flags.empty());
  BOOST_TEST(has_vm_flag(flags, "dd"), flags);  // MADV_DONTDUMP
  BOOST_TEST(has_vm_flag(flags, "wf"), flags);  // MADV_WIPEONFORK
  // A heap buffer next to it is not marked: the flag means what it says.
  const std::vector<std::uint8_t> heap(64);
  BOOST_TEST(!has_vm_flag(vm_flags_of(heap.data()), "dd"));
}

BOOST_AUTO_TEST_CASE(protected_bytes_move_and_start_zeroed) {
  auto bytes = kpanel::common::ProtectedBytes::allocate(100);
  BOOST_TEST_REQUIRE(bytes.has_value());
  for (const auto b : bytes->view()) BOOST_TEST(b == 0U);
  std::memset(bytes->data(), 0x5A, bytes->size());
  const std::uint8_t* const where = bytes->data();
  kpanel::common::ProtectedBytes moved = std::move(*bytes);
  BOOST_TEST(bytes->data() == nullptr);
  BOOST_TEST(bytes->size() == 0U);
  BOOST_TEST(moved.data() == where);
  BOOST_TEST(moved.view()[99] == 0x5AU);
  BOOST_TEST(!kpanel::common::ProtectedBytes::allocate(0).has_value());
}
