#define BOOST_TEST_MODULE protocol_stats
// Version 3's admin_stats op and result, admin_list's `all` and `truncated`,
// and the user status's `exempt`: a field of a nested object that only
// version 3 frames carry.
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <string>
#include <variant>

#include "common/protocol.hpp"
#include "shared/sample_stats.hpp"
#include "tests/unit/common/protocol_samples.hpp"

using namespace kpanel::common;
using namespace kpanel::common::protocol;
using namespace kpanel::test_protocol;

namespace {

AdminStatsResult sample_stats() { return kpanel::test::sample_admin_stats(1'800'000'100); }

UserStatus exempt_status(const std::string& user) {
  UserStatus status;
  status.user = user;
  status.exempt = true;
  return status;
}

}  // namespace

BOOST_AUTO_TEST_CASE(admin_stats_round_trips_in_version_3) {
  const SecureBytes request = encode_request(AdminStatsRequest{}, 3);
  BOOST_REQUIRE(!request.empty());
  BOOST_TEST(text_of(request) == R"({"op":"admin_stats"})");
  const auto decoded = decode_request(body_of(request), 3);
  BOOST_REQUIRE(decoded.has_value());
  BOOST_TEST(std::holds_alternative<AdminStatsRequest>(*decoded));

  const Response response{.status = Status::ok, .result = sample_stats()};
  const SecureBytes frame = encode_response(response, 3);
  BOOST_REQUIRE(!frame.empty());
  const auto back = decode_response(body_of(frame), 3);
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST((*back == response));
}

BOOST_AUTO_TEST_CASE(admin_stats_is_unknown_in_a_version_2_frame) {
  for (const std::uint8_t version : {std::uint8_t{1}, std::uint8_t{2}}) {
    BOOST_TEST(encode_request(AdminStatsRequest{}, version).empty());
    BOOST_TEST(to_string(decode_request(bytes(R"({"op":"admin_stats"})"), version).error()) ==
               "unknown_op");
    BOOST_TEST(
        encode_response(Response{.status = Status::ok, .result = sample_stats()}, version).empty(),
        "never encoded into an older reply");
  }
}

BOOST_AUTO_TEST_CASE(admin_stats_fields_are_required) {
  const std::string body =
      text_of(encode_response(Response{.status = Status::ok, .result = sample_stats()}, 3));
  std::string without = body;
  const std::string key = R"("lockouts":1,)";
  without.erase(without.find(key), key.size());
  BOOST_TEST(to_string(decode_response(bytes(without), 3).error()) == "missing_field");
}

BOOST_AUTO_TEST_CASE(admin_list_all_is_a_version_3_field) {
  const AdminListRequest all{.all = true};
  BOOST_TEST(text_of(encode_request(all, 3)) == R"({"all":true,"op":"admin_list"})");
  const auto decoded = decode_request(bytes(R"({"all":true,"op":"admin_list"})"), 3);
  BOOST_REQUIRE(decoded.has_value());
  BOOST_TEST(std::get<AdminListRequest>(*decoded).all);
  // Older frames have no such field: unknown there, and left out when encoding.
  BOOST_TEST(to_string(decode_request(bytes(R"({"all":true,"op":"admin_list"})"), 2).error()) ==
             "unknown_field");
  BOOST_TEST(text_of(encode_request(all, 2)) == R"({"op":"admin_list"})");
}

// A nested object follows its frame's version: a version 2 reader, which
// refuses unknown fields, never sees `exempt` inside a user status.
BOOST_AUTO_TEST_CASE(a_nested_user_status_carries_exempt_only_in_version_3) {
  const Response list{
      .status = Status::ok,
      .result = AdminListResult{.users = {exempt_status("eve")}, .truncated = true}};
  const std::string v3 = text_of(encode_response(list, 3));
  BOOST_TEST(v3.find(R"("exempt":true)") != std::string::npos, v3);
  BOOST_TEST(v3.find(R"("truncated":true)") != std::string::npos, v3);
  const auto back = decode_response(bytes(v3), 3);
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST((*back == list));

  const std::string v2 = text_of(encode_response(list, 2));
  BOOST_TEST(v2.find("exempt") == std::string::npos, v2);
  BOOST_TEST(v2.find("truncated") == std::string::npos, v2);
  const auto old = decode_response(bytes(v2), 2);
  BOOST_REQUIRE(old.has_value());
  const auto& users = std::get<AdminListResult>(old->result).users;
  BOOST_REQUIRE(users.size() == 1U);
  BOOST_TEST(!users[0].exempt.has_value());
  // In a v2 frame the nested field is as unknown as a top-level one.
  std::string injected = v2;
  injected.replace(injected.find(R"("user":"eve")"), 12, R"("exempt":true,"user":"eve")");
  BOOST_TEST(to_string(decode_response(bytes(injected), 2).error()) == "unknown_field");
  BOOST_TEST(decode_response(bytes(injected), 3).has_value());

  const Response status{.status = Status::ok, .result = StatusResult{exempt_status("eve")}};
  BOOST_TEST(text_of(encode_response(status, 1)).find("exempt") == std::string::npos);
  const auto status_back = decode_response(body_of(encode_response(status, 3)), 3);
  BOOST_REQUIRE(status_back.has_value());
  BOOST_TEST((std::get<StatusResult>(status_back->result).status.exempt == std::optional(true)));
}

// Version 3's `unreadable`: the users whose stored record cannot be read. A
// list without any has the older shape; a version 2 frame never carries it.
BOOST_AUTO_TEST_CASE(admin_list_names_unreadable_users_only_in_version_3) {
  const Response list{
      .status = Status::ok,
      .result = AdminListResult{.users = {exempt_status("eve")}, .unreadable = {"bob", "mallory"}}};
  const std::string v3 = text_of(encode_response(list, 3));
  BOOST_TEST(v3.find(R"("unreadable":["bob","mallory"])") != std::string::npos, v3);
  const auto back = decode_response(bytes(v3), 3);
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST((*back == list));

  const Response none{.status = Status::ok,
                      .result = AdminListResult{.users = {exempt_status("eve")}}};
  BOOST_TEST(text_of(encode_response(none, 3)).find("unreadable") == std::string::npos);

  const std::string v2 = text_of(encode_response(list, 2));
  BOOST_TEST(v2.find("unreadable") == std::string::npos, v2);
  const auto old = decode_response(bytes(v2), 2);
  BOOST_REQUIRE(old.has_value());
  BOOST_TEST(std::get<AdminListResult>(old->result).unreadable.empty());
  // Unknown to a version 2 reader; each name is held to the login-name rule.
  std::string injected = v2;
  injected.replace(injected.find(R"("result")"), 8, R"("unreadable":["bob"],"result")");
  BOOST_TEST(to_string(decode_response(bytes(injected), 2).error()) == "unknown_field");
  BOOST_TEST(decode_response(bytes(injected), 3).has_value());
  std::string bad = v3;
  bad.replace(bad.find(R"("mallory")"), 9, R"("a/b")");
  BOOST_TEST(to_string(decode_response(bytes(bad), 3).error()) == "invalid_value");
}
