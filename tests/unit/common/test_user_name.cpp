// The one user-name rule, and that the codec applies exactly it: the PAM module
// and the tool check names with it before sending, so they must agree.
#define BOOST_TEST_MODULE common_user_name
#include <boost/test/unit_test.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/protocol.hpp"
#include "common/user_name.hpp"

using namespace kpanel::common;

namespace {

const std::vector<std::string> kGood{"alice",
                                     "first.last-2_x",
                                     "a",
                                     "j\xc3\xb6rg",  // "jörg"
                                     "\xe2\x82\xac",
                                     "\xf0\x9f\x98\x80",  // U+20AC, U+1F600
                                     "a b",
                                     std::string(protocol::kMaxUserLength, 'u')};

const std::vector<std::string> kBad{"a/b",
                                    "a:b",
                                    "a\nb",
                                    std::string("a\0b", 3),
                                    "a\x7f",
                                    "a\x1b[0m",
                                    "a\xc2\x80",
                                    "a\xc2\x9b",  // C1: U+0080, a CSI
                                    "a\xc2",
                                    "\xc0\xaf",
                                    "\xed\xa0\x80",  // cut, overlong '/', surrogate
                                    "\xf4\x90\x80\x80",
                                    "\xff",
                                    "\x80"};

}  // namespace

BOOST_AUTO_TEST_CASE(good_names_pass) {
  for (const std::string& name : kGood) {
    BOOST_TEST(valid_user_name(name), name);
  }
  BOOST_TEST(valid_user_name("a\xc2\xa0"));  // U+00A0 is not a control
}

BOOST_AUTO_TEST_CASE(each_problem_is_named) {
  BOOST_TEST((check_user_name("").error() == UserNameProblem::empty));
  BOOST_TEST((check_user_name(std::string(protocol::kMaxUserLength + 1, 'u')).error() ==
              UserNameProblem::too_long));
  for (const std::string& name : kBad) {
    const auto checked = check_user_name(name);
    BOOST_TEST_REQUIRE(!checked.has_value(), name);
    BOOST_TEST((checked.error() == UserNameProblem::bad_character), name);
  }
}

BOOST_AUTO_TEST_CASE(the_codec_sends_exactly_the_names_the_rule_allows) {
  std::vector<std::string> all = kGood;
  all.insert(all.end(), kBad.begin(), kBad.end());
  all.emplace_back(protocol::kMaxUserLength + 1, 'u');
  for (const std::string& name : all) {
    const SecureBytes frame = protocol::encode_request(protocol::AdminResetRequest{.user = name});
    BOOST_TEST(frame.empty() == !valid_user_name(name), name);
  }
  // A required name may not be empty; an optional one may (the peer itself).
  BOOST_TEST(protocol::encode_request(protocol::AdminResetRequest{.user = ""}).empty());
  BOOST_TEST(!protocol::encode_request(protocol::StatusRequest{.user = ""}).empty());
}
