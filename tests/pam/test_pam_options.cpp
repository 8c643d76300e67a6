#define BOOST_TEST_MODULE pam_options
#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "common/pam_options.hpp"

namespace {

using kpanel::pam::Options;
using kpanel::pam::parse_options;
using kpanel::pam::Unavailable;

auto parse(std::vector<const char*> arguments) { return parse_options(arguments); }

// The single error's reason, for a line that must be refused.
std::string refused(const char* argument) {
  const auto parsed = parse({argument});
  BOOST_REQUIRE_MESSAGE(!parsed, "accepted: " << argument);
  BOOST_REQUIRE_EQUAL(parsed.error().size(), 1U);
  return parsed.error().front().reason;
}

}  // namespace

BOOST_AUTO_TEST_CASE(no_arguments_give_the_spec_defaults) {
  const auto parsed = parse({});
  BOOST_REQUIRE(parsed);
  BOOST_TEST(parsed->socket_path == "/run/kpanel-totp/kpanel-totpd.sock");
  BOOST_TEST(!parsed->nullok);
  BOOST_TEST(parsed->timeout.count() == 10);
  BOOST_TEST((parsed->unavailable == Unavailable::deny));
  BOOST_TEST(parsed->prompt == "Verification code: ");
  BOOST_TEST(!parsed->debug);
  BOOST_TEST(!parsed->enroll);
  BOOST_TEST(!parsed->remember);
  BOOST_TEST(parse_options({}).has_value());  // argc 0, argv null
}

BOOST_AUTO_TEST_CASE(every_option_is_read) {
  const auto parsed = parse({"socket=/tmp/x.sock", "nullok", "timeout=300", "unavailable=ignore",
                             "prompt=Code from your phone: ", "debug", "enroll", "remember"});
  BOOST_REQUIRE(parsed);
  BOOST_TEST(parsed->socket_path == "/tmp/x.sock");
  BOOST_TEST(parsed->nullok);
  BOOST_TEST(parsed->timeout.count() == 300);
  BOOST_TEST((parsed->unavailable == Unavailable::ignore));
  BOOST_TEST(parsed->prompt == "Code from your phone: ");
  BOOST_TEST(parsed->debug);
  BOOST_TEST(parsed->enroll);
  BOOST_TEST(parsed->remember);
}

BOOST_AUTO_TEST_CASE(later_duplicates_win) {
  const auto parsed = parse({"unavailable=ignore", "unavailable=deny", "timeout=5", "timeout=1"});
  BOOST_REQUIRE(parsed);
  BOOST_TEST((parsed->unavailable == Unavailable::deny));
  BOOST_TEST(parsed->timeout.count() == 1);
}

BOOST_AUTO_TEST_CASE(timeout_bounds_and_syntax) {
  BOOST_TEST(parse({"timeout=1"}).has_value());
  BOOST_TEST(parse({"timeout=300"}).has_value());
  for (const char* bad :
       {"timeout=0", "timeout=301", "timeout=-1", "timeout=+5", "timeout= 5", "timeout=5s",
        "timeout=1O", "timeout=", "timeout", "timeout=99999999999999999999"}) {
    BOOST_TEST_CONTEXT(bad) { BOOST_TEST(!parse({bad}).has_value()); }
  }
}

BOOST_AUTO_TEST_CASE(unknown_and_malformed_options_are_refused) {
  BOOST_TEST(refused("nulok") == "unknown option");
  BOOST_TEST(refused("NULLOK") == "unknown option");
  BOOST_TEST(refused("use_first_pass") == "unknown option");
  BOOST_TEST(refused("nullok=1") == "takes no value");
  BOOST_TEST(refused("debug=yes") == "takes no value");
  BOOST_TEST(refused("remember=1") == "takes no value");
  BOOST_TEST(refused("unavailable=allow") == "must be deny or ignore");
  BOOST_TEST(refused("unavailable=") == "must be deny or ignore");
  BOOST_TEST(refused("socket=relative.sock") == "needs an absolute path");
  BOOST_TEST(refused("socket=") == "needs an absolute path");
  BOOST_TEST(refused(("socket=/" + std::string(200, 'a')).c_str()) ==
             "path too long for a UNIX socket");
  BOOST_TEST(refused("prompt=") == "needs a text");
  BOOST_TEST(refused("prompt=a\nb") == "text contains control characters");
  BOOST_TEST(refused("socket").starts_with("needs a value"));
  BOOST_TEST(refused("prompt").starts_with("needs a value"));
}

BOOST_AUTO_TEST_CASE(every_problem_is_reported_and_made_printable) {
  const auto parsed = parse({"nullok", "bogus\x1b[31m", "timeout=0", nullptr});
  BOOST_REQUIRE(!parsed);
  BOOST_REQUIRE_EQUAL(parsed.error().size(), 3U);
  BOOST_TEST(parsed.error()[0].argument == "bogus?[31m");
  BOOST_TEST(parsed.error()[1].argument == "timeout=0");
  BOOST_TEST(parsed.error()[2].reason == "missing argument");
}
