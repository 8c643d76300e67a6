#define BOOST_TEST_MODULE cli_google_authenticator_file
// The parser of google-authenticator-libpam's ~/.google_authenticator.
#include <boost/test/unit_test.hpp>
#include <string>
#include <string_view>

#include "cli/google_authenticator_file.hpp"

using kpanel::cli::parse_google_authenticator_file;

namespace {

// As `google-authenticator -t -d -f -w 3 -r 3 -R 30` writes it.
constexpr std::string_view kWritten =
    "H6KSOHSJAZCKTTZRVHGADYG2ZI\n"
    "\" RATE_LIMIT 3 30\n"
    "\" WINDOW_SIZE 3\n"
    "\" DISALLOW_REUSE\n"
    "\" TOTP_AUTH\n"
    "99209562\n"
    "46982185\n";

std::string reason_of(std::string_view text) {
  const auto parsed = parse_google_authenticator_file(text);
  BOOST_TEST_REQUIRE(!parsed.has_value(), "parsed: " << text);
  return parsed.error();
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_file_as_google_authenticator_writes_it) {
  const auto parsed = parse_google_authenticator_file(kWritten);
  BOOST_TEST_REQUIRE(parsed.has_value(), parsed.error());
  BOOST_TEST(parsed->secret_base32.view() == "H6KSOHSJAZCKTTZRVHGADYG2ZI");
  BOOST_TEST(parsed->step_size == 30U);
  BOOST_TEST(parsed->window_size == 3U);
  BOOST_TEST(parsed->time_skew == 0);
  BOOST_TEST(parsed->used_steps.empty());
  BOOST_TEST_REQUIRE(parsed->scratch_codes.size() == 2U);
  BOOST_TEST(parsed->scratch_codes[1].view() == "46982185");
}

BOOST_AUTO_TEST_CASE(every_option_it_writes) {
  const auto parsed = parse_google_authenticator_file(
      "jbswy3dpehpk3pxp\r\n"
      "\" STEP_SIZE 60\r\n"
      "\" WINDOW_SIZE 17\n"
      "\" DISALLOW_REUSE 29000000 29000001\n"
      "\" TIME_SKEW -2\n"
      "\" RESETTING_TIME_SKEW 29000000+1 29000003+1\n"
      "\" TOTP_AUTH\n"
      "\n"
      "12345678\n");
  BOOST_TEST_REQUIRE(parsed.has_value(), parsed.error());
  BOOST_TEST(parsed->secret_base32.view() == "JBSWY3DPEHPK3PXP");  // upper case, CR dropped
  BOOST_TEST(parsed->step_size == 60U);
  BOOST_TEST(parsed->window_size == 17U);
  BOOST_TEST(parsed->time_skew == -2);
  BOOST_TEST((parsed->used_steps == std::vector<std::int64_t>{29000000, 29000001}));
  BOOST_TEST(parsed->scratch_codes.size() == 1U);
}

BOOST_AUTO_TEST_CASE(counter_based_files_are_refused) {
  BOOST_TEST(
      contains(reason_of("JBSWY3DPEHPK3PXP\n\" WINDOW_SIZE 3\n\" HOTP_COUNTER 1\n"), "HOTP"));
  BOOST_TEST(contains(reason_of("JBSWY3DPEHPK3PXP\n\" WINDOW_SIZE 3\n"), "HOTP"));  // no type
  BOOST_TEST(contains(reason_of("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" HOTP_COUNTER 4\n"), "HOTP"));
}

BOOST_AUTO_TEST_CASE(malformed_files_name_the_line) {
  BOOST_TEST(reason_of("") == "empty");
  BOOST_TEST(contains(reason_of("not base32!\n\" TOTP_AUTH\n"), "line 1: not a base32 secret"));
  BOOST_TEST(contains(reason_of("JBSWY3DP\n\" TOTP_AUTH\n"), "line 1"));  // 40 bits
  BOOST_TEST(contains(reason_of("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n1234567\n"),
                      "line 3: neither an option nor an 8-digit scratch code"));
  BOOST_TEST(contains(reason_of("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n01234567\n"), "line 3"));
  BOOST_TEST(
      contains(reason_of("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" FOO 1\n"), "unknown option FOO"));
  BOOST_TEST(contains(reason_of("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" TOTP_AUTH\n"), "twice"));
  BOOST_TEST(contains(reason_of("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\"\n"), "empty option"));
  BOOST_TEST(contains(reason_of("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" DISALLOW_REUSE 1 x\n"),
                      "DISALLOW_REUSE"));
  BOOST_TEST(contains(reason_of("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" DISALLOW_REUSE -1\n"),
                      "DISALLOW_REUSE"));
  BOOST_TEST(
      contains(reason_of("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" DISALLOW_REUSE 99999999999999\n"),
               "DISALLOW_REUSE"));
}

BOOST_AUTO_TEST_CASE(option_values_within_its_bounds) {
  const auto with = [](std::string_view option) {
    return "JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" " + std::string(option) + "\n";
  };
  BOOST_TEST(parse_google_authenticator_file(with("STEP_SIZE 1")).has_value());
  BOOST_TEST(contains(reason_of(with("STEP_SIZE 0")), "STEP_SIZE must be"));
  BOOST_TEST(contains(reason_of(with("STEP_SIZE 61")), "STEP_SIZE"));
  BOOST_TEST(contains(reason_of(with("STEP_SIZE 30 30")), "STEP_SIZE"));
  BOOST_TEST(contains(reason_of(with("STEP_SIZE +30")), "STEP_SIZE"));
  BOOST_TEST(contains(reason_of(with("STEP_SIZE")), "STEP_SIZE"));
  BOOST_TEST(parse_google_authenticator_file(with("WINDOW_SIZE 100")).has_value());
  BOOST_TEST(contains(reason_of(with("WINDOW_SIZE 101")), "WINDOW_SIZE"));
  BOOST_TEST(contains(reason_of(with("WINDOW_SIZE -3")), "WINDOW_SIZE"));
  BOOST_TEST(parse_google_authenticator_file(with("TIME_SKEW -1500")).has_value());
  BOOST_TEST(contains(reason_of(with("TIME_SKEW 1501")), "TIME_SKEW"));
  BOOST_TEST(contains(reason_of(with("TIME_SKEW 99999999999999999999")), "TIME_SKEW"));
}

BOOST_AUTO_TEST_CASE(bounds) {
  std::string ten = "JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n";
  for (int i = 0; i < 10; ++i) ten += std::to_string(10000000 + i) + "\n";
  BOOST_TEST(parse_google_authenticator_file(ten).has_value());
  BOOST_TEST(contains(reason_of(ten + "20000000\n"), "more than 10 scratch codes"));

  std::string steps = "JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" DISALLOW_REUSE";
  for (int i = 0; i < 128; ++i) steps += " " + std::to_string(i);
  BOOST_TEST(parse_google_authenticator_file(steps + "\n").has_value());
  BOOST_TEST(contains(reason_of(steps + " 128\n"), "more than 128 steps"));

  std::string big = "JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n";
  big.resize(kpanel::cli::kMaxGoogleAuthenticatorFileSize, '\n');
  BOOST_TEST(parse_google_authenticator_file(big).has_value());
  BOOST_TEST(contains(reason_of(big + "\n"), "larger than 4096 bytes"));
}
