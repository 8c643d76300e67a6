#include "user_records.hpp"

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdint>
#include <span>

namespace kpanel::daemon::test {

using namespace std::chrono_literals;

namespace {

const common::TimePoint kEnrolled = common::from_unix(1'800'000'000);

}  // namespace

common::SecureBytes bytes_of(std::string_view text) {
  return common::SecureBytes(
      std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

UserRecord full_record(const std::string& user) {
  UserRecord record;
  record.user = user;
  record.active = Enrollment{
      bytes_of("active-secret-" + user), {common::TotpAlgorithm::sha256, 8, 60}, kEnrolled};
  record.pending = PendingEnrollment{
      bytes_of("pending-secret-" + user), {common::TotpAlgorithm::sha512, 7, 45}, kEnrolled + 600s};
  record.last_step = 60'000'123;
  record.used_steps = {{59'000'000, 59'000'004}, {60'000'123, 60'000'123}};
  record.failures = 3;
  record.lockout_level = 2;
  record.locked_until = kEnrolled + 1200s;
  record.last_skew_seconds = -31;
  // Two hosts' windows (a fleet), a source with a space and a percent sign.
  record.remembered = {{"machine-id:one", "192.0.2.7", 1'800'000'000, 1'800'000'060},
                       {"machine-id:two", "tty=pts/3 ruser=100%", 1'800'000'001, 1'800'086'401}};
  record.recovery_codes = {
      {"$scrypt$hash-a", false}, {"$scrypt$hash-b", true}, {"$scrypt$hash-c", false}};
  return record;
}

void check_same(const UserRecord& got, const UserRecord& want) {
  BOOST_TEST(got.user == want.user);
  BOOST_TEST_REQUIRE(got.active.has_value() == want.active.has_value());
  if (want.active) {
    BOOST_TEST((got.active->secret == want.active->secret));
    BOOST_TEST((got.active->params.algorithm == want.active->params.algorithm));
    BOOST_TEST(got.active->params.digits == want.active->params.digits);
    BOOST_TEST(got.active->params.period == want.active->params.period);
    BOOST_TEST((got.active->enrolled_at == want.active->enrolled_at));
  }
  BOOST_TEST_REQUIRE(got.pending.has_value() == want.pending.has_value());
  if (want.pending) {
    BOOST_TEST((got.pending->secret == want.pending->secret));
    BOOST_TEST((got.pending->params.algorithm == want.pending->params.algorithm));
    BOOST_TEST(got.pending->params.digits == want.pending->params.digits);
    BOOST_TEST(got.pending->params.period == want.pending->params.period);
    BOOST_TEST((got.pending->expires_at == want.pending->expires_at));
  }
  BOOST_TEST((got.last_step == want.last_step));
  BOOST_TEST((got.used_steps == want.used_steps));
  BOOST_TEST(got.failures == want.failures);
  BOOST_TEST(got.lockout_level == want.lockout_level);
  BOOST_TEST((got.locked_until == want.locked_until));
  BOOST_TEST((got.last_skew_seconds == want.last_skew_seconds));
  BOOST_TEST((got.remembered == want.remembered));
  BOOST_TEST_REQUIRE(got.recovery_codes.size() == want.recovery_codes.size());
  for (std::size_t i = 0; i < want.recovery_codes.size(); ++i) {
    BOOST_TEST(got.recovery_codes[i].hash == want.recovery_codes[i].hash);
    BOOST_TEST(got.recovery_codes[i].used == want.recovery_codes[i].used);
  }
}

}  // namespace kpanel::daemon::test
