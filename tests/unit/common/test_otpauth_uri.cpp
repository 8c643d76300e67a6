#define BOOST_TEST_MODULE common_otpauth_uri
#include <unistd.h>

#include <array>
#include <boost/test/unit_test.hpp>
#include <string>

#include "common/otpauth_uri.hpp"

using namespace kpanel::common;

namespace {
std::string uri(std::string_view issuer, std::string_view user, std::string_view host,
                std::string_view secret, const TotpParams& params = {}) {
  return std::string(build_otpauth_uri(issuer, user, host, secret, params).view());
}
}  // namespace

BOOST_AUTO_TEST_CASE(spec_example_exactly) {
  BOOST_TEST(uri("ISSUER", "USER", "HOST", "BASE32") ==
             "otpauth://totp/ISSUER:USER%40HOST?secret=BASE32&issuer=ISSUER&algorithm=SHA1&"
             "digits=6&period=30");
}

BOOST_AUTO_TEST_CASE(typical_enrollment) {
  BOOST_TEST(uri("Kapsule", "alice", "web1", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP") ==
             "otpauth://totp/Kapsule:alice%40web1?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&"
             "issuer=Kapsule&algorithm=SHA1&digits=6&period=30");
}

BOOST_AUTO_TEST_CASE(other_parameters_are_written_as_given) {
  BOOST_TEST(uri("Kapsule", "bob", "db", "ABC", TotpParams{TotpAlgorithm::sha256, 8, 60}) ==
             "otpauth://totp/Kapsule:bob%40db?secret=ABC&issuer=Kapsule&algorithm=SHA256&"
             "digits=8&period=60");
  BOOST_TEST(uri("K", "u", "h", "S", TotpParams{TotpAlgorithm::sha512, 7, 120}) ==
             "otpauth://totp/K:u%40h?secret=S&issuer=K&algorithm=SHA512&digits=7&period=120");
}

BOOST_AUTO_TEST_CASE(odd_issuers_and_users_are_encoded) {
  // Spaces as %20 (never '+'), in the label and in the issuer parameter alike.
  BOOST_TEST(uri("Kapsule Hosting", "alice", "web1", "S") ==
             "otpauth://totp/Kapsule%20Hosting:alice%40web1?secret=S&issuer=Kapsule%20Hosting&"
             "algorithm=SHA1&digits=6&period=30");
  // Colons inside issuer or user are encoded; only the separator stays literal.
  BOOST_TEST(uri("Acme:Ops", "a:b", "h", "S") ==
             "otpauth://totp/Acme%3AOps:a%3Ab%40h?secret=S&issuer=Acme%3AOps&algorithm=SHA1&"
             "digits=6&period=30");
  // '@' in a user name (e.g. a directory login).
  BOOST_TEST(uri("Kapsule", "alice@corp.example", "web1", "S") ==
             "otpauth://totp/Kapsule:alice%40corp.example%40web1?secret=S&issuer=Kapsule&"
             "algorithm=SHA1&digits=6&period=30");
  // UTF-8, byte by byte, upper-case hex.
  BOOST_TEST(uri("Müller & Söhne", "Jörg", "hôte", "S") ==
             "otpauth://totp/M%C3%BCller%20%26%20S%C3%B6hne:J%C3%B6rg%40h%C3%B4te?secret=S&"
             "issuer=M%C3%BCller%20%26%20S%C3%B6hne&algorithm=SHA1&digits=6&period=30");
  // Query delimiters in the issuer cannot inject parameters.
  BOOST_TEST(uri("x&secret=EVIL?#", "u", "h", "S") ==
             "otpauth://totp/x%26secret%3DEVIL%3F%23:u%40h?secret=S&issuer=x%26secret%3DEVIL%3F%23&"
             "algorithm=SHA1&digits=6&period=30");
}

BOOST_AUTO_TEST_CASE(empty_host_leaves_it_out) {
  BOOST_TEST(uri("Kapsule", "alice", "", "S") ==
             "otpauth://totp/Kapsule:alice?secret=S&issuer=Kapsule&algorithm=SHA1&digits=6&"
             "period=30");
}

BOOST_AUTO_TEST_CASE(percent_encode_keeps_exactly_the_unreserved_set) {
  BOOST_TEST(percent_encode("AZaz09-._~") == "AZaz09-._~");
  BOOST_TEST(percent_encode(" ") == "%20");
  BOOST_TEST(percent_encode("+/%=?&#:@!$'()*,;[]") ==
             "%2B%2F%25%3D%3F%26%23%3A%40%21%24%27%28%29%2A%2C%3B%5B%5D");
  BOOST_TEST(percent_encode("Jörg") == "J%C3%B6rg");
  BOOST_TEST(percent_encode("").empty());
  BOOST_TEST(percent_encode(std::string_view("\0\x7F\xFF", 3)) == "%00%7F%FF");
  // Every byte value: unreserved ones as themselves, the rest as %XX.
  std::size_t kept = 0;
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    const std::string encoded = percent_encode(std::string_view(&c, 1));
    if (encoded.size() == 1) {
      ++kept;
      BOOST_TEST(encoded[0] == c);
    } else {
      BOOST_TEST(encoded.size() == 3U);
      BOOST_TEST(encoded[0] == '%');
      BOOST_TEST(std::stoi(encoded.substr(1), nullptr, 16) == b);
    }
  }
  BOOST_TEST(kept == 66U);  // 26 + 26 + 10 + 4
}

BOOST_AUTO_TEST_CASE(short_host_name_is_gethostname_up_to_the_first_dot) {
  std::array<char, 256> full{};
  BOOST_TEST_REQUIRE(gethostname(full.data(), full.size() - 1) == 0);
  const std::string_view expected =
      std::string_view(full.data()).substr(0, std::string_view(full.data()).find('.'));
  const std::string host = short_host_name();
  BOOST_TEST(host == expected);
  BOOST_TEST(!host.empty());
  BOOST_TEST(host.find('.') == std::string::npos);
}
