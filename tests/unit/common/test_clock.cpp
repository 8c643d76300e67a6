#define BOOST_TEST_MODULE common_clock
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdint>

#include "common/clock.hpp"

using namespace kpanel::common;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_CASE(unix_round_trip) {
  BOOST_TEST(to_unix(from_unix(0)) == 0);
  BOOST_TEST(to_unix(from_unix(1'234'567'890)) == 1'234'567'890);
  BOOST_TEST(to_unix(from_unix(-86'400)) == -86'400);
  BOOST_TEST(to_unix(from_unix(20'000'000'000)) == 20'000'000'000);
  BOOST_TEST(from_unix(59).time_since_epoch().count() == 59);
}

// The instants of RFC 6238 Appendix B, with the UTC times the RFC lists.
BOOST_AUTO_TEST_CASE(iso8601_formats_utc_with_z) {
  BOOST_TEST(format_iso8601(from_unix(0)) == "1970-01-01T00:00:00Z");
  BOOST_TEST(format_iso8601(from_unix(59)) == "1970-01-01T00:00:59Z");
  BOOST_TEST(format_iso8601(from_unix(1'111'111'109)) == "2005-03-18T01:58:29Z");
  BOOST_TEST(format_iso8601(from_unix(1'111'111'111)) == "2005-03-18T01:58:31Z");
  BOOST_TEST(format_iso8601(from_unix(1'234'567'890)) == "2009-02-13T23:31:30Z");
  BOOST_TEST(format_iso8601(from_unix(2'000'000'000)) == "2033-05-18T03:33:20Z");
  BOOST_TEST(format_iso8601(from_unix(20'000'000'000)) == "2603-10-11T11:33:20Z");
}

BOOST_AUTO_TEST_CASE(iso8601_edges) {
  BOOST_TEST(format_iso8601(from_unix(-1)) == "1969-12-31T23:59:59Z");
  BOOST_TEST(format_iso8601(from_unix(951'782'400)) == "2000-02-29T00:00:00Z");  // leap day
  BOOST_TEST(format_iso8601(from_unix(951'868'799)) == "2000-02-29T23:59:59Z");
  BOOST_TEST(format_iso8601(from_unix(4'102'444'799)) == "2099-12-31T23:59:59Z");
}

BOOST_AUTO_TEST_CASE(system_clock_is_whole_seconds_and_current) {
  const SystemClock clock;
  const auto before = std::chrono::system_clock::now();
  const TimePoint now = clock.now();
  const auto after = std::chrono::system_clock::now();
  BOOST_TEST((now <= after));
  BOOST_TEST((now + 1s > before));  // floored, so at most 1 s behind
  BOOST_TEST(to_unix(now) > 1'700'000'000);
}

BOOST_AUTO_TEST_CASE(manual_clock_moves_only_when_told) {
  ManualClock clock(from_unix(1000));
  const Clock& as_base = clock;
  BOOST_TEST(to_unix(as_base.now()) == 1000);
  clock.advance(30s);
  BOOST_TEST(to_unix(as_base.now()) == 1030);
  clock.set(from_unix(5));
  BOOST_TEST(to_unix(as_base.now()) == 5);
}
