// JSON output has exactly the documented keys (kpanel-totp(1)), ISO 8601 UTC times with 'Z' and
// nulls; the human forms say the same things.
#define BOOST_TEST_MODULE cli_output
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/output.hpp"
#include "support/fake_environment.hpp"

namespace {

namespace protocol = kpanel::common::protocol;
using kpanel::cli::testing::kNow;
using kpanel::common::SecureString;

protocol::UserStatus enrolled_alice() {
  protocol::UserStatus status;
  status.user = "alice";
  status.enrolled = true;
  status.enrolled_at = kNow;
  status.recovery_codes_left = 7;
  // Internal detail that must not reach the JSON.
  status.enrollment_pending = true;
  // What the human output shows as "Clock offset": it reaches the JSON too.
  status.last_skew_seconds = -60;
  return status;
}

protocol::UserStatus locked_bob() {
  protocol::UserStatus status;
  status.user = "bob";
  status.locked_until = kNow + 300;
  return status;
}

std::set<std::string> keys_of(const nlohmann::json& object) {
  std::set<std::string> keys;
  for (const auto& item : object.items()) {
    keys.insert(item.key());
  }
  return keys;
}

const std::set<std::string> kStatusKeys{"user",         "enrolled",
                                        "enrolled_at",  "recovery_codes_left",
                                        "locked_until", "clock_offset_seconds"};

}  // namespace

BOOST_AUTO_TEST_CASE(status_json_of_an_enrolled_user) {
  BOOST_TEST(kpanel::cli::status_json(enrolled_alice()) ==
             R"({"user":"alice","enrolled":true,"enrolled_at":"2026-11-28T19:27:28Z",)"
             R"("recovery_codes_left":7,"locked_until":null,"clock_offset_seconds":-60,)"
             R"("remembered":[]})");
}

BOOST_AUTO_TEST_CASE(status_json_lists_remembered_logins) {
  const std::vector<protocol::RememberedWindow> windows{
      {.source = "192.0.2.7", .until = 1'800'000'000}, {.source = "tty=pts/1 ruser=a", .until = 5}};
  const auto json = nlohmann::json::parse(kpanel::cli::status_json(enrolled_alice(), windows));
  BOOST_TEST(json["remembered"].dump() ==
             R"([{"source":"192.0.2.7","until":"2027-01-15T08:00:00Z"},)"
             R"({"source":"tty=pts/1 ruser=a","until":"1970-01-01T00:00:05Z"}])");
  std::ostringstream human;
  kpanel::cli::print_status(human, enrolled_alice(), kpanel::common::from_unix(1'700'000'000),
                            "kpanel-totp ", windows);
  BOOST_TEST(human.str().find("Remembered:          no code asked from 192.0.2.7 until "
                              "2027-01-15T08:00:00Z (end it: kpanel-totp forget)") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(status_json_of_a_user_without_enrollment) {
  protocol::UserStatus status;
  status.user = "carol";
  BOOST_TEST(kpanel::cli::status_json(status) ==
             R"({"user":"carol","enrolled":false,"enrolled_at":null,)"
             R"("recovery_codes_left":0,"locked_until":null,"clock_offset_seconds":null,)"
             R"("remembered":[]})");
}

BOOST_AUTO_TEST_CASE(status_json_of_a_locked_user) {
  const auto json = nlohmann::json::parse(kpanel::cli::status_json(locked_bob()));
  std::set<std::string> keys = kStatusKeys;
  keys.insert("remembered");  // status only: admin list's objects have none
  BOOST_TEST(keys_of(json) == keys);
  BOOST_TEST(json["locked_until"] == "2026-11-28T19:32:28Z");
  BOOST_TEST(json["enrolled_at"].is_null());
}

BOOST_AUTO_TEST_CASE(admin_list_json) {
  const std::vector<protocol::UserStatus> users{enrolled_alice(), locked_bob()};
  const auto json = nlohmann::json::parse(kpanel::cli::admin_list_json(users));
  BOOST_TEST(keys_of(json) == std::set<std::string>{"users"});
  BOOST_REQUIRE(json["users"].is_array());
  BOOST_REQUIRE_EQUAL(json["users"].size(), 2U);
  BOOST_TEST(keys_of(json["users"][0]) == kStatusKeys);
  BOOST_TEST(keys_of(json["users"][1]) == kStatusKeys);
  BOOST_TEST(json["users"][0]["user"] == "alice");
  BOOST_TEST(json["users"][1]["locked_until"] == "2026-11-28T19:32:28Z");
  BOOST_TEST(kpanel::cli::admin_list_json({}) == R"({"users":[]})");
  const std::vector<std::string> unreadable{"carol"};
  BOOST_TEST(kpanel::cli::admin_list_json({}, false, false, unreadable) ==
             R"({"users":[],"unreadable":["carol"]})");
}

BOOST_AUTO_TEST_CASE(recovery_codes_json) {
  const std::vector<SecureString> codes{SecureString("ABCD-EFGH"), SecureString("JKLM-NPQR")};
  BOOST_TEST(kpanel::cli::recovery_codes_json(codes).view() ==
             R"({"recovery_codes":["ABCD-EFGH","JKLM-NPQR"]})");
  BOOST_TEST(kpanel::cli::recovery_codes_json({}).view() == R"({"recovery_codes":[]})");
}

BOOST_AUTO_TEST_CASE(enroll_begin_json) {
  const std::string uri =
      "otpauth://totp/Kapsule:alice%40web01?secret=JBSWY3DPEHPK3PXP&issuer=Kapsule"
      "&algorithm=SHA1&digits=6&period=30";
  const auto json = kpanel::cli::enroll_begin_json(uri, "JBSWY3DPEHPK3PXP", kNow + 600);
  BOOST_TEST(json.view() ==
             R"({"uri":")" + uri +
                 R"(","secret":"JBSWY3DPEHPK3PXP","expires_at":"2026-11-28T19:37:28Z"})");
  BOOST_TEST(kpanel::cli::enroll_begin_json(uri, "S", 0).view().ends_with(R"("expires_at":null})"));
}

BOOST_AUTO_TEST_CASE(error_json_has_reason_and_message) {
  const auto json = nlohmann::json::parse(kpanel::cli::error_json("wrong_code", "wrong \"code\""));
  BOOST_TEST(keys_of(json) == (std::set<std::string>{"error", "message"}));
  BOOST_TEST(json["error"] == "wrong_code");
  BOOST_TEST(json["message"] == "wrong \"code\"");
}

BOOST_AUTO_TEST_CASE(hand_written_json_escapes_like_a_json_library_reads_it) {
  const std::string awkward = "quote\" backslash\\ newline\n tab\t bell\x07 del\x7f \xc3\xa9";
  const std::vector<SecureString> codes{SecureString(awkward)};
  const auto parsed = nlohmann::json::parse(kpanel::cli::recovery_codes_json(codes).view());
  BOOST_TEST(parsed["recovery_codes"][0].get<std::string>() == awkward);
  const auto begin =
      nlohmann::json::parse(kpanel::cli::enroll_begin_json(awkward, "S", kNow).view());
  BOOST_TEST(begin["uri"].get<std::string>() == awkward);
}

BOOST_AUTO_TEST_CASE(human_status) {
  std::ostringstream out;
  kpanel::cli::print_status(out, enrolled_alice(), kpanel::common::from_unix(kNow));
  const std::string text = out.str();
  BOOST_TEST(text.find("alice") != std::string::npos);
  BOOST_TEST(text.find("yes, since 2026-11-28T19:27:28Z") != std::string::npos);
  BOOST_TEST(text.find("Recovery codes left: 7") != std::string::npos);
  BOOST_TEST(text.find("Locked:              no") != std::string::npos);

  std::ostringstream locked;
  kpanel::cli::print_status(locked, locked_bob(), kpanel::common::from_unix(kNow));
  BOOST_TEST(locked.str().find("until 2026-11-28T19:32:28Z (about 5 minutes)") !=
             std::string::npos);
  BOOST_TEST(locked.str().find("kpanel-totp enroll") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(human_user_table) {
  std::ostringstream out;
  const std::vector<protocol::UserStatus> users{enrolled_alice(), locked_bob()};
  kpanel::cli::print_user_table(out, users, kpanel::common::from_unix(kNow));
  const auto lines = kpanel::cli::testing::lines_of(out.str());
  BOOST_REQUIRE_EQUAL(lines.size(), 3U);
  BOOST_TEST(lines[0].starts_with("USER"));
  BOOST_TEST(lines[1].starts_with("alice"));
  BOOST_TEST(lines[2].starts_with("bob"));
  BOOST_TEST(lines[2].find("2026-11-28T19:32:28Z") != std::string::npos);

  std::ostringstream empty;
  kpanel::cli::print_user_table(empty, {}, kpanel::common::from_unix(kNow));
  BOOST_TEST(empty.str() == "No users are known to kpanel-totpd.\n");
}

BOOST_AUTO_TEST_CASE(recovery_codes_come_with_instructions) {
  std::ostringstream out;
  const std::vector<SecureString> codes{SecureString("ABCD-EFGH"), SecureString("JKLM-NPQR")};
  kpanel::cli::print_recovery_codes(out, codes);
  BOOST_TEST(out.str().find("store these now") != std::string::npos);
  BOOST_TEST(out.str().find("Each works once") != std::string::npos);
  BOOST_TEST(out.str().find("    ABCD-EFGH\n    JKLM-NPQR\n") != std::string::npos);
}

// The settings line comes from the reply's typed fields, not from the URI.
BOOST_AUTO_TEST_CASE(enrollment_shows_the_typed_totp_settings) {
  kpanel::common::protocol::EnrollBeginResult begun;
  begun.uri = kpanel::common::SecureString("otpauth://totp/L?secret=S&digits=6&period=30");
  begun.secret_base32 = kpanel::common::SecureString("JBSWY3DP");
  begun.algorithm = kpanel::common::TotpAlgorithm::sha256;
  begun.digits = 8;
  begun.period = 60;
  std::ostringstream out;
  kpanel::cli::print_enrollment(out, begun, "QR", kpanel::common::TimePoint{});
  BOOST_TEST(out.str().find("    Type: time-based, SHA256, 8 digits, every 60 seconds\n") !=
             std::string::npos);
}

// Only root/admin replies carry the skew; the status line shows it for them.
BOOST_AUTO_TEST_CASE(human_status_shows_the_phone_clock_skew_to_admins) {
  auto status = enrolled_alice();
  status.last_skew_seconds.reset();
  std::ostringstream without;
  kpanel::cli::print_status(without, status, kpanel::common::from_unix(kNow));
  BOOST_TEST(without.str().find("Clock offset") == std::string::npos);
  status.last_skew_seconds = -150;
  std::ostringstream with;
  kpanel::cli::print_status(with, status, kpanel::common::from_unix(kNow));
  BOOST_TEST(with.str().find("Clock offset:        the phone's codes match about 150 s behind "
                             "of this host's clock") != std::string::npos);
  // --json keeps the documented keys exactly.
  BOOST_TEST(kpanel::cli::status_json(status).find("skew") == std::string::npos);
}
