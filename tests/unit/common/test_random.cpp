#define BOOST_TEST_MODULE common_random
#include <array>
#include <boost/test/unit_test.hpp>
#include <cstddef>

#include "common/random.hpp"

using namespace kpanel::common;

BOOST_AUTO_TEST_CASE(sizes) {
  const auto none = random_bytes(0);
  BOOST_TEST_REQUIRE(none.has_value());
  BOOST_TEST(none->empty());
  const auto some = random_bytes(33);
  BOOST_TEST_REQUIRE(some.has_value());
  BOOST_TEST(some->size() == 33U);
  const auto secret = generate_totp_secret();
  BOOST_TEST_REQUIRE(secret.has_value());
  BOOST_TEST(secret->size() == 20U);
  BOOST_TEST(kTotpSecretBytes == 20U);
}

BOOST_AUTO_TEST_CASE(secrets_differ) {
  const auto a = generate_totp_secret();
  const auto b = generate_totp_secret();
  BOOST_TEST_REQUIRE((a.has_value() && b.has_value()));
  BOOST_TEST(!(*a == *b));  // 2^-160
}

BOOST_AUTO_TEST_CASE(every_byte_value_appears) {
  // 64 KiB: the chance that a given value never appears is (255/256)^65536 ~ 1e-111.
  const auto data = random_bytes(65536);
  BOOST_TEST_REQUIRE(data.has_value());
  std::array<std::size_t, 256> counts{};
  for (const auto byte : data->view()) ++counts[byte];
  for (std::size_t v = 0; v < counts.size(); ++v) {
    // Expected 256 each, sd 16: a dead generator or a stuck bit falls far outside.
    BOOST_TEST(counts[v] > 128U, "value " << v);
    BOOST_TEST(counts[v] < 400U, "value " << v);
  }
}
