// admin stats (human, --json, --prometheus) and admin list --all: what the
// tool asks the daemon and what it prints.
#define BOOST_TEST_MODULE cli_stats_output
#include <boost/test/unit_test.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli/stats_output.hpp"
#include "shared/sample_stats.hpp"
#include "support/fake_environment.hpp"

namespace {

namespace protocol = kpanel::common::protocol;
using kpanel::cli::testing::FakeWorld;
using kpanel::cli::testing::kNow;
using kpanel::cli::testing::lines_of;
using kpanel::cli::testing::request_as;

protocol::AdminStatsResult sample() { return kpanel::test::sample_admin_stats(kNow); }

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

BOOST_AUTO_TEST_CASE(json_has_the_documented_keys) {
  const auto json = nlohmann::json::parse(kpanel::cli::stats_json(sample()));
  std::set<std::string> keys;
  for (const auto& [key, value] : json.items()) {
    keys.insert(key);
  }
  BOOST_TEST(
      keys == (std::set<std::string>{"started_at", "uptime_seconds", "verifications", "lockouts",
                                     "enrollments", "imports", "logins_without_code",
                                     "users_enrolled", "users_locked", "in_flight", "connections"}),
      boost::test_tools::per_element());
  BOOST_TEST(json["started_at"] == "2026-11-28T18:25:48Z");
  BOOST_TEST(json["uptime_seconds"] == 3700);
  BOOST_TEST(json["verifications"]["ok"] == 12);
  BOOST_TEST(json["verifications"]["recovery"] == 1);
  BOOST_TEST(json["verifications"]["wrong_code"] == 3);
  BOOST_TEST(json["verifications"]["replayed"] == 2);
  BOOST_TEST(json["verifications"]["locked"] == 4);
  BOOST_TEST(json["verifications"].size() == 9U);
  BOOST_TEST(json["logins_without_code"]["remembered"] == 11);
  BOOST_TEST(json["logins_without_code"]["nullok"] == 15);
  BOOST_TEST(json["in_flight"]["fast"] == 18);
  BOOST_TEST(json["in_flight"]["slow"] == 19);
  BOOST_TEST(json["connections"] == 20);
  BOOST_TEST(json["imports"] == 10);
}

// The text format's rules: every family announced by HELP then TYPE before
// its samples, names prefixed kpanel_totp_, counters ending in _total, one
// sample per line, a final newline. (The integration test also parses it
// with prometheus_client's own parser.)
BOOST_AUTO_TEST_CASE(prometheus_text_follows_the_exposition_format) {
  const std::string text = kpanel::cli::stats_prometheus(sample());
  BOOST_TEST_REQUIRE(text.ends_with("\n"));
  std::map<std::string, std::string> types;
  std::string announced;
  std::map<std::string, std::string> samples;
  std::string last_help;
  for (const std::string& line : lines_of(text)) {
    BOOST_TEST_REQUIRE(!line.empty());
    if (line.starts_with("# HELP ")) {
      last_help = line.substr(7, line.find(' ', 7) - 7);
      continue;
    }
    if (line.starts_with("# TYPE ")) {
      const std::string rest = line.substr(7);
      const std::string name = rest.substr(0, rest.find(' '));
      BOOST_TEST(name == last_help, "HELP right before TYPE");
      types[name] = rest.substr(rest.find(' ') + 1);
      announced = name;
      continue;
    }
    const std::string series = line.substr(0, line.find(' '));
    const std::string family = series.substr(0, series.find('{'));
    BOOST_TEST(family == announced, line);
    BOOST_TEST(samples.emplace(series, line.substr(line.find(' ') + 1)).second, "once: " << line);
  }
  for (const auto& [name, type] : types) {
    BOOST_TEST(name.starts_with("kpanel_totp_"), name);
    BOOST_TEST((type == "counter" || type == "gauge"), name);
    BOOST_TEST(name.ends_with("_total") == (type == "counter"), name);
  }
  BOOST_TEST(samples.at(R"(kpanel_totp_verifications_total{outcome="ok"})") == "12");
  BOOST_TEST(samples.at(R"(kpanel_totp_verifications_total{outcome="recovery"})") == "1");
  BOOST_TEST(samples.at(R"(kpanel_totp_verifications_total{outcome="wrong_code"})") == "3");
  BOOST_TEST(samples.at(R"(kpanel_totp_verifications_total{outcome="replayed"})") == "2");
  BOOST_TEST(samples.at(R"(kpanel_totp_verifications_total{outcome="locked"})") == "4");
  BOOST_TEST(samples.at("kpanel_totp_lockouts_total") == "1");
  BOOST_TEST(samples.at("kpanel_totp_enrollments_total") == "9");
  BOOST_TEST(samples.at("kpanel_totp_imports_total") == "10");
  BOOST_TEST(samples.at(R"(kpanel_totp_logins_without_code_total{reason="remembered"})") == "11");
  BOOST_TEST(samples.at("kpanel_totp_users_enrolled") == "16");
  BOOST_TEST(samples.at("kpanel_totp_users_locked") == "17");
  BOOST_TEST(samples.at(R"(kpanel_totp_requests_in_flight{lane="fast"})") == "18");
  BOOST_TEST(samples.at("kpanel_totp_start_time_seconds") == std::to_string(kNow - 3700));
}

BOOST_AUTO_TEST_CASE(stats_asks_the_daemon_once_in_each_form) {
  FakeWorld human;
  human.reply(sample());
  BOOST_TEST(human.run({"admin", "stats"}) == 0);
  BOOST_TEST(std::holds_alternative<protocol::AdminStatsRequest>(human.requests.at(0)));
  BOOST_TEST(contains(human.out(), "12 ok"));
  BOOST_TEST(contains(human.out(), "1 h 1 min"));

  FakeWorld json;
  json.reply(sample());
  BOOST_TEST(json.run({"--json", "admin", "stats"}) == 0);
  BOOST_TEST(nlohmann::json::parse(json.out())["lockouts"] == 1);

  FakeWorld prometheus;
  prometheus.reply(sample());
  BOOST_TEST(prometheus.run({"admin", "stats", "--prometheus"}) == 0);
  BOOST_TEST(prometheus.out().starts_with("# HELP kpanel_totp_"));
}

BOOST_AUTO_TEST_CASE(stats_usage_and_refusal) {
  FakeWorld both;
  BOOST_TEST(both.run({"--json", "admin", "stats", "--prometheus"}) == 2);
  BOOST_TEST(both.requests.empty());
  FakeWorld user_flag;
  BOOST_TEST(user_flag.run({"--user", "bob", "admin", "stats"}) == 2);
  FakeWorld refused;
  refused.reply_status(protocol::Status::forbidden);
  BOOST_TEST(refused.run({"admin", "stats", "--prometheus"}) == 1);
  BOOST_TEST(refused.out().empty(), "nothing a textfile collector would read");
  BOOST_TEST(lines_of(refused.err()).size() == 1U);
}

protocol::AdminListResult rollout() {
  protocol::AdminListResult list;
  protocol::UserStatus alice;
  alice.user = "alice";
  alice.enrolled = true;
  alice.enrolled_at = kNow;
  protocol::UserStatus bob;
  bob.user = "bob";
  protocol::UserStatus eve;
  eve.user = "eve";
  eve.exempt = true;
  list.users = {alice, bob, eve};
  return list;
}

BOOST_AUTO_TEST_CASE(list_all_asks_for_all_and_shows_exempt) {
  FakeWorld world;
  world.reply(rollout());
  BOOST_TEST(world.run({"--json", "admin", "list", "--all"}) == 0);
  BOOST_TEST(request_as<protocol::AdminListRequest>(world.requests.at(0)).all);
  const auto json = nlohmann::json::parse(world.out());
  BOOST_TEST_REQUIRE(json["users"].size() == 3U);
  BOOST_TEST(json["users"][0]["exempt"] == false);
  BOOST_TEST(json["users"][2]["exempt"] == true);
  BOOST_TEST(json["users"][1]["enrolled"] == false);
  BOOST_TEST(!json.contains("truncated"));

  FakeWorld plain;
  plain.reply(rollout());
  BOOST_TEST(plain.run({"--json", "admin", "list"}) == 0);
  BOOST_TEST(!request_as<protocol::AdminListRequest>(plain.requests.at(0)).all);
  BOOST_TEST(!nlohmann::json::parse(plain.out())["users"][0].contains("exempt"),
             "status objects gain exempt only with --all");
}

BOOST_AUTO_TEST_CASE(list_all_human_counts_the_rollout) {
  FakeWorld world;
  world.reply(rollout());
  BOOST_TEST(world.run({"admin", "list", "--all"}) == 0);
  const std::string out = world.out();
  BOOST_TEST(contains(lines_of(out).at(0), "EXEMPT"));
  BOOST_TEST(contains(out, "3 accounts: 1 enrolled, 2 not enrolled, 1 exempt."), out);
  BOOST_TEST(contains(out, "1 account is neither enrolled nor exempt"), out);

  protocol::AdminListResult done = rollout();
  done.users.erase(done.users.begin() + 1);  // bob enrolled or gone
  FakeWorld ready;
  ready.reply(done);
  BOOST_TEST(ready.run({"admin", "list", "--all"}) == 0);
  BOOST_TEST(contains(ready.out(), "Every account is enrolled or exempt"), ready.out());
}

BOOST_AUTO_TEST_CASE(a_truncated_list_says_so) {
  protocol::AdminListResult list = rollout();
  list.truncated = true;
  FakeWorld world;
  world.reply(list);
  BOOST_TEST(world.run({"--json", "admin", "list", "--all"}) == 0);
  BOOST_TEST(nlohmann::json::parse(world.out())["truncated"] == true);
  BOOST_TEST(contains(world.err(), "may be missing"));
}

}  // namespace
