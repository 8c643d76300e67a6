// Control characters and UTF-8: the one scan and the one validator.
#define BOOST_TEST_MODULE common_text
#include <boost/test/unit_test.hpp>
#include <string>
#include <string_view>

#include "common/text.hpp"

using namespace kpanel::common;

namespace {
constexpr std::size_t npos = std::string_view::npos;
}  // namespace

BOOST_AUTO_TEST_CASE(c0_controls_and_del) {
  for (unsigned byte = 0; byte < 0x20; ++byte) {
    BOOST_TEST(is_c0_control(static_cast<unsigned char>(byte)));
  }
  BOOST_TEST(is_c0_control(0x7f));
  BOOST_TEST(!is_c0_control(' '));
  BOOST_TEST(!is_c0_control('~'));
  BOOST_TEST(!is_c0_control(0x80));
  BOOST_TEST(!is_c0_control(0xc2));
}

BOOST_AUTO_TEST_CASE(printable_ascii) {
  BOOST_TEST(is_printable_ascii(' '));
  BOOST_TEST(is_printable_ascii('~'));
  BOOST_TEST(!is_printable_ascii('\t'));
  BOOST_TEST(!is_printable_ascii(0x7f));
  BOOST_TEST(!is_printable_ascii(0xc3));
}

BOOST_AUTO_TEST_CASE(c1_controls_are_c2_80_to_c2_9f) {
  BOOST_TEST(c1_control_at("\xc2\x80", 0));
  BOOST_TEST(c1_control_at("a\xc2\x9b", 1));
  BOOST_TEST(!c1_control_at("a\xc2\x9b", 0));
  BOOST_TEST(!c1_control_at("\xc2\xa0", 0));  // U+00A0, no-break space
  BOOST_TEST(!c1_control_at("\xc2", 0));      // cut: nothing follows
  BOOST_TEST(!c1_control_at("\xc3\x80", 0));  // U+00C0
}

BOOST_AUTO_TEST_CASE(find_control_per_set) {
  BOOST_TEST(find_control("plain text", Controls::c0) == npos);
  BOOST_TEST(find_control("ab\x1b[0m", Controls::c0) == 2U);
  BOOST_TEST(find_control("a\tb", Controls::c0) == 1U);
  BOOST_TEST(find_control("a\x7f", Controls::c0) == 1U);
  BOOST_TEST(find_control(std::string_view("a\0", 2), Controls::c0) == 1U);

  BOOST_TEST(find_control("a\tb", Controls::c0_except_tab) == npos);
  BOOST_TEST(find_control("a\tb\n", Controls::c0_except_tab) == 3U);
  BOOST_TEST(find_control("a\x7f", Controls::c0_except_tab) == 1U);

  // C1 only where asked for.
  BOOST_TEST(find_control("x\xc2\x9b", Controls::c0) == npos);
  BOOST_TEST(find_control("x\xc2\x9b", Controls::c0_except_tab) == npos);
  BOOST_TEST(find_control("x\xc2\x9b", Controls::c0_and_c1) == 1U);
  BOOST_TEST(find_control("x\xc2\xa0\t", Controls::c0_and_c1) == 3U);
  BOOST_TEST(find_control("j\xc3\xb6rg", Controls::c0_and_c1) == npos);

  BOOST_TEST(has_control("a\rb", Controls::c0));
  BOOST_TEST(!has_control("", Controls::c0_and_c1));
}

BOOST_AUTO_TEST_CASE(strict_utf8) {
  for (const std::string_view good :
       {std::string_view(""), std::string_view("ascii"), std::string_view("\xc2\x80"),
        std::string_view("\xdf\xbf"), std::string_view("\xe0\xa0\x80"),
        std::string_view("\xed\x9f\xbf"), std::string_view("\xee\x80\x80"),
        std::string_view("\xf0\x90\x80\x80"), std::string_view("\xf4\x8f\xbf\xbf")}) {
    BOOST_TEST(valid_utf8(good));
  }
  for (const std::string_view bad :
       {std::string_view("\x80"), std::string_view("\xbf"),                  // lone continuation
        std::string_view("\xc0\x80"), std::string_view("\xc1\xbf"),          // overlong 2-byte
        std::string_view("\xe0\x9f\xbf"),                                    // overlong 3-byte
        std::string_view("\xf0\x8f\xbf\xbf"),                                // overlong 4-byte
        std::string_view("\xed\xa0\x80"), std::string_view("\xed\xbf\xbf"),  // surrogates
        std::string_view("\xf4\x90\x80\x80"), std::string_view("\xf5\x80\x80\x80"),  // > U+10FFFF
        std::string_view("\xff"), std::string_view("\xc3"),                          // cut
        std::string_view("\xe2\x82"), std::string_view("\xc3\x28")}) {  // bad continuation
    BOOST_TEST(!valid_utf8(bad));
  }
}

BOOST_AUTO_TEST_CASE(utf8_length_counts_code_points) {
  BOOST_TEST(utf8_length("").value() == 0U);
  BOOST_TEST(utf8_length("abc").value() == 3U);
  BOOST_TEST(utf8_length("j\xc3\xb6rg").value() == 4U);
  BOOST_TEST(utf8_length("\xe2\x82\xac\xf0\x9f\x98\x80").value() == 2U);
  BOOST_TEST(!utf8_length("ab\xff").has_value());
}
