#define BOOST_TEST_MODULE common_base32
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base32.hpp"

using namespace kpanel::common;

namespace {

std::span<const std::uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string as_text(const SecureBytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// RFC 4648 §10, as {input, padded encoding}.
const std::vector<std::pair<std::string_view, std::string_view>> kRfcVectors{
    {"", ""},
    {"f", "MY======"},
    {"fo", "MZXQ===="},
    {"foo", "MZXW6==="},
    {"foob", "MZXW6YQ="},
    {"fooba", "MZXW6YTB"},
    {"foobar", "MZXW6YTBOI======"},
};

std::string without_padding(std::string_view s) { return std::string(s.substr(0, s.find('='))); }

}  // namespace

BOOST_AUTO_TEST_CASE(rfc4648_vectors_encode_without_padding) {
  for (const auto& [plain, encoded] : kRfcVectors) {
    BOOST_TEST(std::string(base32_encode(bytes_of(plain)).view()) == without_padding(encoded),
               "input '" << plain << "'");
  }
}

BOOST_AUTO_TEST_CASE(rfc4648_vectors_decode_padded_and_unpadded) {
  for (const auto& [plain, encoded] : kRfcVectors) {
    const auto padded = base32_decode(encoded);
    BOOST_TEST_REQUIRE(padded.has_value(), "'" << encoded << "'");
    BOOST_TEST(as_text(*padded) == plain);
    const auto bare = base32_decode(without_padding(encoded));
    BOOST_TEST_REQUIRE(bare.has_value(), "'" << encoded << "' unpadded");
    BOOST_TEST(as_text(*bare) == plain);
  }
}

BOOST_AUTO_TEST_CASE(decode_tolerates_case_spaces_dashes_and_short_padding) {
  const auto expect_foobar = [](std::string_view text) {
    const auto decoded = base32_decode(text);
    BOOST_TEST_REQUIRE(decoded.has_value(), "'" << text << "'");
    BOOST_TEST(as_text(*decoded) == "foobar", "'" << text << "'");
  };
  expect_foobar("mzxw6ytboi");
  expect_foobar("MzXw6YtBoI");
  expect_foobar("MZXW 6YTB OI");
  expect_foobar("  MZXW-6YTB-OI  ");
  expect_foobar("MZXW6YTBOI=");
  expect_foobar("MZXW6YTBOI= = =");
  expect_foobar("mzxw 6ytb oi======");
}

BOOST_AUTO_TEST_CASE(decode_rejects_characters_outside_the_alphabet) {
  for (const std::string_view bad :
       {"MZXW6YTB1I", "MZXW6YTB0I", "MZXW6YTB8I", "MZXW6YTB9I", "MZXW6YTB!I", "MZXW6YTB\tI",
        "MZXW6YTB_I", "MZXW6YTB+I", "MZXW6YTB\xC3\xA9"}) {
    const auto r = base32_decode(bad);
    BOOST_TEST_REQUIRE(!r.has_value(), "'" << bad << "'");
    BOOST_TEST((r.error() == Base32Error::bad_character), "'" << bad << "'");
  }
}

BOOST_AUTO_TEST_CASE(decode_rejects_misplaced_padding) {
  for (const std::string_view bad : {"MZ=XW6===", "=MZXW6", "MZXW6=YTB", "MY==A=="}) {
    const auto r = base32_decode(bad);
    BOOST_TEST_REQUIRE(!r.has_value(), "'" << bad << "'");
    BOOST_TEST((r.error() == Base32Error::bad_padding), "'" << bad << "'");
  }
}

BOOST_AUTO_TEST_CASE(decode_rejects_impossible_lengths) {
  // Final groups of 1, 3 or 6 symbols do not encode whole bytes.
  for (const std::string_view bad : {"M", "MZX", "MZXW6Y", "MZXW6YTBM", "MZXW6YTBMZX======"}) {
    const auto r = base32_decode(bad);
    BOOST_TEST_REQUIRE(!r.has_value(), "'" << bad << "'");
    BOOST_TEST((r.error() == Base32Error::bad_length), "'" << bad << "'");
  }
}

BOOST_AUTO_TEST_CASE(decode_rejects_nonzero_trailing_bits) {
  // "MY" is 'f'; "MZ" has the same byte and a stray 1 in the two leftover bits.
  BOOST_TEST(base32_decode("MY").has_value());
  const auto r = base32_decode("MZ");
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST((r.error() == Base32Error::bad_padding));
}

BOOST_AUTO_TEST_CASE(round_trips_every_length_and_byte_value) {
  for (std::size_t len = 0; len <= 64; ++len) {
    std::vector<std::uint8_t> data(len);
    for (std::size_t i = 0; i < len; ++i) data[i] = static_cast<std::uint8_t>(i * 37 + len * 11);
    const auto encoded = base32_encode(data);
    const auto decoded = base32_decode(encoded.view());
    BOOST_TEST_REQUIRE(decoded.has_value(), "length " << len);
    BOOST_TEST(decoded->view().size() == len);
    BOOST_TEST(std::equal(data.begin(), data.end(), decoded->view().begin()), "length " << len);
  }
  std::vector<std::uint8_t> all(256);
  for (std::size_t i = 0; i < 256; ++i) all[i] = static_cast<std::uint8_t>(i);
  const auto decoded = base32_decode(base32_encode(all).view());
  BOOST_TEST_REQUIRE(decoded.has_value());
  BOOST_TEST(std::equal(all.begin(), all.end(), decoded->view().begin(), decoded->view().end()));
}

BOOST_AUTO_TEST_CASE(twenty_byte_secret_is_32_symbols) {
  const std::vector<std::uint8_t> secret(20, 0xFF);
  const auto encoded = base32_encode(secret);
  BOOST_TEST(encoded.view() == std::string(32, '7'));
}

BOOST_AUTO_TEST_CASE(group_in_fours_for_display) {
  BOOST_TEST(group_in_fours("JBSWY3DPEHPK3PXP").view() == "JBSW Y3DP EHPK 3PXP");
  BOOST_TEST(group_in_fours("ABCDE").view() == "ABCD E");
  BOOST_TEST(group_in_fours("ABCD").view() == "ABCD");
  BOOST_TEST(group_in_fours("").view().empty());
  // What the user types back from the grouped display decodes to the same key.
  const auto grouped = group_in_fours("JBSWY3DPEHPK3PXP");
  const auto a = base32_decode(grouped.view());
  const auto b = base32_decode("JBSWY3DPEHPK3PXP");
  BOOST_TEST_REQUIRE((a.has_value() && b.has_value()));
  BOOST_TEST((*a == *b));
  BOOST_TEST(as_text(*a) == "Hello!\xDE\xAD\xBE\xEF");
}
