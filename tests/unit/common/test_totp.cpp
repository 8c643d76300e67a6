#define BOOST_TEST_MODULE common_totp
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/totp.hpp"

using namespace kpanel::common;

BOOST_TEST_DONT_PRINT_LOG_VALUE(std::optional<std::int64_t>)

namespace {

std::span<const std::uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// RFC 4226 Appendix D and RFC 6238 Appendix B seeds (ASCII).
constexpr std::string_view kSeed20 = "12345678901234567890";
constexpr std::string_view kSeed32 = "12345678901234567890123456789012";
constexpr std::string_view kSeed64 =
    "1234567890123456789012345678901234567890123456789012345678901234";

std::string code_at(std::string_view key, std::int64_t step, const TotpParams& params) {
  const auto code = totp_code(bytes_of(key), step, params);
  BOOST_TEST_REQUIRE(code.has_value());
  return std::string(code->view());
}

}  // namespace

BOOST_AUTO_TEST_CASE(rfc4226_appendix_d_hotp_values) {
  const std::vector<std::string_view> expected{"755224", "287082", "359152", "969429", "338314",
                                               "254676", "287922", "162583", "399871", "520489"};
  for (std::uint64_t counter = 0; counter < expected.size(); ++counter) {
    const auto code = hotp(bytes_of(kSeed20), counter, TotpAlgorithm::sha1, 6);
    BOOST_TEST_REQUIRE(code.has_value(), "counter " << counter);
    BOOST_TEST(code->view() == expected[counter], "counter " << counter);
  }
}

BOOST_AUTO_TEST_CASE(one_generator_gives_every_counter_its_own_code) {
  // The generator keys the MAC once and restarts it per counter: each value
  // must still be the RFC's, in any order, with no state from the one before.
  const auto generator = CodeGenerator::create(bytes_of(kSeed20), TotpAlgorithm::sha1, 6);
  BOOST_TEST_REQUIRE(generator.has_value());
  const std::vector<std::string_view> expected{"755224", "287082", "359152", "969429", "338314",
                                               "254676", "287922", "162583", "399871", "520489"};
  for (const std::uint64_t counter : {9, 0, 1, 5, 5, 2, 8, 3, 7, 4, 6}) {
    const auto code = generator->hotp(counter);
    BOOST_TEST_REQUIRE(code.has_value(), "counter " << counter);
    BOOST_TEST(code->view() == expected[counter], "counter " << counter);
  }
  // SHA256/SHA512 with TOTP steps, through at_step, against totp_code.
  for (const auto& [algorithm, key] :
       {std::pair{TotpAlgorithm::sha256, kSeed32}, std::pair{TotpAlgorithm::sha512, kSeed64}}) {
    const TotpParams params{algorithm, 8, 30};
    const auto steps = CodeGenerator::create(bytes_of(key), params);
    BOOST_TEST_REQUIRE(steps.has_value());
    for (const std::int64_t step : {0x23523EC, 0x1, 0x27BC86AA, 0x23523ED}) {
      const auto code = steps->at_step(step);
      BOOST_TEST_REQUIRE(code.has_value());
      BOOST_TEST(code->view() == code_at(key, step, params), "step " << step);
    }
  }
  // A HOTP-only generator has no period: at_step refuses instead of guessing.
  BOOST_TEST((generator->at_step(1).error() == TotpError::bad_period));
  BOOST_TEST((CodeGenerator::create(bytes_of(kSeed20), TotpParams{.period = 0}).error() ==
              TotpError::bad_period));
}

BOOST_AUTO_TEST_CASE(rfc6238_appendix_b_all_rows) {
  struct Row {
    std::int64_t time;
    std::int64_t step;
    TotpAlgorithm algorithm;
    std::string_view code;
  };
  const std::vector<Row> rows{
      {59, 0x1, TotpAlgorithm::sha1, "94287082"},
      {59, 0x1, TotpAlgorithm::sha256, "46119246"},
      {59, 0x1, TotpAlgorithm::sha512, "90693936"},
      {1111111109, 0x23523EC, TotpAlgorithm::sha1, "07081804"},
      {1111111109, 0x23523EC, TotpAlgorithm::sha256, "68084774"},
      {1111111109, 0x23523EC, TotpAlgorithm::sha512, "25091201"},
      {1111111111, 0x23523ED, TotpAlgorithm::sha1, "14050471"},
      {1111111111, 0x23523ED, TotpAlgorithm::sha256, "67062674"},
      {1111111111, 0x23523ED, TotpAlgorithm::sha512, "99943326"},
      {1234567890, 0x273EF07, TotpAlgorithm::sha1, "89005924"},
      {1234567890, 0x273EF07, TotpAlgorithm::sha256, "91819424"},
      {1234567890, 0x273EF07, TotpAlgorithm::sha512, "93441116"},
      {2000000000, 0x3F940AA, TotpAlgorithm::sha1, "69279037"},
      {2000000000, 0x3F940AA, TotpAlgorithm::sha256, "90698825"},
      {2000000000, 0x3F940AA, TotpAlgorithm::sha512, "38618901"},
      {20000000000, 0x27BC86AA, TotpAlgorithm::sha1, "65353130"},
      {20000000000, 0x27BC86AA, TotpAlgorithm::sha256, "77737706"},
      {20000000000, 0x27BC86AA, TotpAlgorithm::sha512, "47863826"},
  };
  BOOST_TEST(rows.size() == 18U);
  for (const auto& row : rows) {
    const std::string_view key = row.algorithm == TotpAlgorithm::sha1     ? kSeed20
                                 : row.algorithm == TotpAlgorithm::sha256 ? kSeed32
                                                                          : kSeed64;
    const TotpParams params{row.algorithm, 8, 30};
    const std::int64_t step = totp_step(from_unix(row.time), params.period);
    BOOST_TEST(step == row.step, "time " << row.time);
    BOOST_TEST(code_at(key, step, params) == row.code,
               "time " << row.time << " " << to_string(row.algorithm));
    // And the same code is found when it is typed at that time.
    BOOST_TEST(find_matching_step(bytes_of(key), row.code, step, 1, params) == step);
  }
}

BOOST_AUTO_TEST_CASE(shorter_codes_are_the_low_digits) {
  // 10^6 and 10^7 divide 10^8, so 6/7-digit codes are the 8-digit code's tail.
  const auto c8 = hotp(bytes_of(kSeed20), 0x23523EC, TotpAlgorithm::sha1, 8);
  const auto c7 = hotp(bytes_of(kSeed20), 0x23523EC, TotpAlgorithm::sha1, 7);
  const auto c6 = hotp(bytes_of(kSeed20), 0x23523EC, TotpAlgorithm::sha1, 6);
  BOOST_TEST_REQUIRE((c8 && c7 && c6));
  BOOST_TEST(c8->view() == "07081804");
  BOOST_TEST(c7->view() == "7081804");
  BOOST_TEST(c6->view() == "081804");  // leading zero kept
}

BOOST_AUTO_TEST_CASE(hotp_rejects_bad_parameters) {
  const auto five = hotp(bytes_of(kSeed20), 0, TotpAlgorithm::sha1, 5);
  BOOST_TEST_REQUIRE(!five.has_value());
  BOOST_TEST((five.error() == TotpError::bad_digits));
  const auto nine = hotp(bytes_of(kSeed20), 0, TotpAlgorithm::sha1, 9);
  BOOST_TEST_REQUIRE(!nine.has_value());
  BOOST_TEST((nine.error() == TotpError::bad_digits));
  const auto empty = hotp({}, 0, TotpAlgorithm::sha1, 6);
  BOOST_TEST_REQUIRE(!empty.has_value());
  BOOST_TEST((empty.error() == TotpError::empty_key));
  const auto no_period = totp_code(bytes_of(kSeed20), 1, TotpParams{TotpAlgorithm::sha1, 6, 0});
  BOOST_TEST_REQUIRE(!no_period.has_value());
  BOOST_TEST((no_period.error() == TotpError::bad_period));
}

BOOST_AUTO_TEST_CASE(algorithm_names) {
  BOOST_TEST(to_string(TotpAlgorithm::sha1) == "SHA1");
  BOOST_TEST(to_string(TotpAlgorithm::sha256) == "SHA256");
  BOOST_TEST(to_string(TotpAlgorithm::sha512) == "SHA512");
  BOOST_TEST((parse_algorithm("SHA1") == TotpAlgorithm::sha1));
  BOOST_TEST((parse_algorithm("sha256") == TotpAlgorithm::sha256));
  BOOST_TEST((parse_algorithm("Sha512") == TotpAlgorithm::sha512));
  for (const std::string_view bad : {"", "SHA", "SHA-1", "sha1 ", "MD5", "SHA384", "SHA5121"}) {
    BOOST_TEST(!parse_algorithm(bad).has_value(), "'" << bad << "'");
  }
}

BOOST_AUTO_TEST_CASE(step_is_floor_division) {
  BOOST_TEST(totp_step(from_unix(0), 30) == 0);
  BOOST_TEST(totp_step(from_unix(29), 30) == 0);
  BOOST_TEST(totp_step(from_unix(30), 30) == 1);
  BOOST_TEST(totp_step(from_unix(59), 30) == 1);
  BOOST_TEST(totp_step(from_unix(60), 60) == 1);
  BOOST_TEST(totp_step(from_unix(-1), 30) == -1);
  BOOST_TEST(totp_step(from_unix(-30), 30) == -1);
  BOOST_TEST(totp_step(from_unix(-31), 30) == -2);
  BOOST_TEST(totp_step(from_unix(100), 0) == 0);  // invalid period: no division by zero
}

BOOST_AUTO_TEST_CASE(looks_like_totp_code_checks_length_and_digits) {
  BOOST_TEST(looks_like_totp_code("123456", 6));
  BOOST_TEST(looks_like_totp_code("00000000", 8));
  BOOST_TEST(!looks_like_totp_code("12345", 6));
  BOOST_TEST(!looks_like_totp_code("1234567", 6));
  BOOST_TEST(!looks_like_totp_code("12345a", 6));
  BOOST_TEST(!looks_like_totp_code("12345 ", 6));
  BOOST_TEST(!looks_like_totp_code("-12345", 6));
  BOOST_TEST(!looks_like_totp_code("", 6));
}

BOOST_AUTO_TEST_CASE(window_edges) {
  const TotpParams params{};  // SHA1, 6 digits, 30 s
  const std::int64_t center = 55'555'555;
  const auto key = bytes_of(kSeed20);
  const auto at = [&](std::int64_t step) { return code_at(kSeed20, step, params); };

  // window 1: center-1 .. center+1 accepted, ±2 refused.
  for (std::int64_t d = -1; d <= 1; ++d) {
    BOOST_TEST(find_matching_step(key, at(center + d), center, 1, params) == center + d,
               "offset " << d);
  }
  BOOST_TEST(!find_matching_step(key, at(center - 2), center, 1, params).has_value());
  BOOST_TEST(!find_matching_step(key, at(center + 2), center, 1, params).has_value());

  // window 0: only the current step.
  BOOST_TEST(find_matching_step(key, at(center), center, 0, params) == center);
  BOOST_TEST(!find_matching_step(key, at(center - 1), center, 0, params).has_value());
  BOOST_TEST(!find_matching_step(key, at(center + 1), center, 0, params).has_value());

  // window 2: ±2 accepted, ±3 refused.
  BOOST_TEST(find_matching_step(key, at(center - 2), center, 2, params) == center - 2);
  BOOST_TEST(find_matching_step(key, at(center + 2), center, 2, params) == center + 2);
  BOOST_TEST(!find_matching_step(key, at(center - 3), center, 2, params).has_value());
  BOOST_TEST(!find_matching_step(key, at(center + 3), center, 2, params).has_value());
}

BOOST_AUTO_TEST_CASE(find_matching_step_rejects_malformed_codes_and_params) {
  const TotpParams params{};
  const auto key = bytes_of(kSeed20);
  const std::int64_t center = 1'000'000;
  const std::string good = code_at(kSeed20, center, params);
  BOOST_TEST(find_matching_step(key, good, center, 1, params) == center);
  BOOST_TEST(!find_matching_step(key, good + "0", center, 1, params).has_value());
  BOOST_TEST(!find_matching_step(key, good.substr(1), center, 1, params).has_value());
  // Built by append: `" " + std::string` trips g++ 12's -Wrestrict false
  // positive at -O3 (GCC PR 105651).
  std::string spaced(" ");
  spaced.append(good, 1);
  BOOST_TEST(!find_matching_step(key, spaced, center, 1, params).has_value());
  BOOST_TEST(!find_matching_step(key, "", center, 1, params).has_value());
  std::string letter = good;
  letter[3] = 'a';
  BOOST_TEST(!find_matching_step(key, letter, center, 1, params).has_value());
  // The right code for another key is not accepted.
  BOOST_TEST(!find_matching_step(bytes_of(kSeed32), good, center, 1, params).has_value());
  // The right code under the wrong parameters is not accepted.
  BOOST_TEST(!find_matching_step(key, good, center, 1, TotpParams{TotpAlgorithm::sha256, 6, 30})
                  .has_value());
  BOOST_TEST(!find_matching_step(key, good, center, 1, TotpParams{TotpAlgorithm::sha1, 9, 30})
                  .has_value());
  BOOST_TEST(
      !find_matching_step(key, good, center, 1, TotpParams{TotpAlgorithm::sha1, 6, 0}).has_value());
  BOOST_TEST(!find_matching_step({}, good, center, 1, params).has_value());
}

BOOST_AUTO_TEST_CASE(window_at_the_ends_of_the_step_range) {
  const TotpParams params{};
  const auto key = bytes_of(kSeed20);
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
  BOOST_TEST(find_matching_step(key, code_at(kSeed20, kMax - 1, params), kMax, 2, params) ==
             kMax - 1);
  BOOST_TEST(find_matching_step(key, code_at(kSeed20, kMin + 1, params), kMin, 2, params) ==
             kMin + 1);
}

// Two steps with the same code inside the window: the later one is reported,
// since an earlier one may already be spent under the replay rule.
BOOST_AUTO_TEST_CASE(duplicate_code_in_window_reports_latest_step) {
  const TotpParams params{};
  std::map<std::string, std::int64_t> first_seen;
  std::int64_t early = -1;
  std::int64_t late = -1;
  for (std::int64_t step = 0; step < 20'000 && late < 0; ++step) {
    const auto [it, inserted] = first_seen.emplace(code_at(kSeed20, step, params), step);
    if (!inserted) {
      early = it->second;
      late = step;
    }
  }
  BOOST_TEST_REQUIRE(late > early);  // birthday bound: a repeat is all but certain
  const std::string code = code_at(kSeed20, late, params);
  BOOST_TEST(code_at(kSeed20, early, params) == code);
  const auto window = static_cast<unsigned>(late - early);
  const auto latest_match = [&](std::int64_t center) {
    std::int64_t latest = -1;
    for (std::int64_t step = center - window; step <= center + window; ++step) {
      if (step >= 0 && code_at(kSeed20, step, params) == code) latest = step;
    }
    return latest;
  };
  // Centered on the earlier step, the window ends at `late`.
  BOOST_TEST(latest_match(early) == late);
  BOOST_TEST(find_matching_step(bytes_of(kSeed20), code, early, window, params) == late);
  // Centered on the later one, the window reaches back to `early`.
  BOOST_TEST(find_matching_step(bytes_of(kSeed20), code, late, window, params) ==
             latest_match(late));
}
