// admin_list with `all` (the rollout at a glance) and admin_stats.
#include <algorithm>

#include "rules_helpers.hpp"

namespace kpanel::daemon::test {

namespace {

Policy exempt_policy() {
  Policy policy = test_policy();
  policy.exempt_group = "breakglass";
  return policy;
}

std::vector<protocol::UserStatus> list_all(Harness& h) {
  const Response response = h.rules().admin_list(kRoot, protocol::AdminListRequest{.all = true});
  BOOST_TEST_REQUIRE(response.status == Status::ok);
  return std::get<protocol::AdminListResult>(response.result).users;
}

const protocol::UserStatus& find(const std::vector<protocol::UserStatus>& users,
                                 const std::string& name) {
  const auto found = std::ranges::find(users, name, &protocol::UserStatus::user);
  BOOST_TEST_REQUIRE((found != users.end()), name);
  return *found;
}

protocol::AdminStatsResult stats(Harness& h) {
  const Response response = h.rules().admin_stats(kRoot, {});
  BOOST_TEST_REQUIRE(response.status == Status::ok);
  return std::get<protocol::AdminStatsResult>(response.result);
}

}  // namespace

RULES_TEST(admin_list_all_adds_login_accounts_and_marks_the_exempt) {
  Harness h(std::make_unique<Backend>(), exempt_policy());
  enroll(h, "alice");
  enroll(h, "eve");  // exempt and enrolled
  // bob and dave can log in and have no state; carol is "a system account".
  h.accounts.set_login_accounts({"dave", "alice", "bob", "eve"});
  const auto users = list_all(h);
  BOOST_TEST_REQUIRE(users.size() == 4U);
  BOOST_TEST(users[0].user == "alice");  // sorted by name
  BOOST_TEST(users[3].user == "eve");
  BOOST_TEST(find(users, "alice").enrolled);
  BOOST_TEST((find(users, "alice").exempt == std::optional(false)));
  BOOST_TEST(!find(users, "bob").enrolled);
  BOOST_TEST(!find(users, "bob").enrolled_at.has_value());
  BOOST_TEST(find(users, "eve").enrolled);
  BOOST_TEST((find(users, "eve").exempt == std::optional(true)));

  // Without `all`: only the store's users, nobody marked.
  const Response plain = h.rules().admin_list(kRoot, {});
  const auto& known = std::get<protocol::AdminListResult>(plain.result).users;
  BOOST_TEST(known.size() == 2U);
  BOOST_TEST(std::ranges::none_of(
      known, [](const protocol::UserStatus& status) { return status.exempt.has_value(); }));
}

RULES_TEST(admin_list_all_keeps_enrolled_users_the_enumeration_misses) {
  Harness h(std::make_unique<Backend>(), exempt_policy());
  enroll(h, "carol");  // below UID_MIN or without a login shell: still has state
  h.accounts.set_login_accounts({"eve"}, /*truncated=*/true);
  const auto response = h.rules().admin_list(kRoot, protocol::AdminListRequest{.all = true});
  const auto& result = std::get<protocol::AdminListResult>(response.result);
  BOOST_TEST(result.truncated);
  BOOST_TEST_REQUIRE(result.users.size() == 2U);
  BOOST_TEST(result.users[0].user == "carol");
  BOOST_TEST(result.users[0].enrolled);
  BOOST_TEST(!result.users[1].enrolled);
  BOOST_TEST((result.users[1].exempt == std::optional(true)), "exempt and not enrolled");
}

RULES_TEST(admin_list_all_with_no_exempt_group_marks_nobody) {
  Harness h(std::make_unique<Backend>());
  h.accounts.set_login_accounts({"eve"});
  const auto users = list_all(h);
  BOOST_TEST_REQUIRE(users.size() == 1U);
  BOOST_TEST((users[0].exempt == std::optional(false)));
}

RULES_TEST(admin_stats_counts_what_the_counting_log_saw_and_reads_the_gauges) {
  Harness h(std::make_unique<Backend>());
  const Enrolled alice = enroll(h, "alice");
  enroll(h, "bob");
  BOOST_TEST(verify(h, code_at(h, alice.secret, 0)).status == Status::ok);
  BOOST_TEST(verify(h, code_at(h, alice.secret, 0)).status == Status::replayed);
  BOOST_TEST(verify(h, alice.recovery_codes.at(0)).status == Status::ok);
  fail_until_locked(h, alice);
  BOOST_TEST(verify(h, code_at(h, alice.secret, 1)).status == Status::locked);

  // What the daemon's CountingAuditLog would have counted, fed the same events.
  CountingAuditLog counted(h.audit);
  for (const AuditEvent& event : h.audit.events()) {
    counted.count(event);
  }
  h.rules().set_stats_sources(StatsSources{
      .counts = &counted, .runtime = []() noexcept {
        return RuntimeGauges{.in_flight_fast = 3, .in_flight_slow = 1, .connections = 5};
      }});
  const protocol::AdminStatsResult result = stats(h);
  BOOST_TEST(result.verify_ok == 1);
  BOOST_TEST(result.verify_replayed == 1);
  BOOST_TEST(result.verify_recovery == 1);
  // The failure that starts the lockout is answered (and counted) as locked.
  BOOST_TEST(result.verify_wrong_code == static_cast<std::int64_t>(test_policy().max_failures) - 1);
  BOOST_TEST(result.verify_locked == 2);
  BOOST_TEST(result.lockouts == 1);
  BOOST_TEST(result.enrollments == 2);
  BOOST_TEST(result.users_enrolled == 2);
  BOOST_TEST(result.users_locked == 1);
  BOOST_TEST(result.in_flight_fast == 3);
  BOOST_TEST(result.in_flight_slow == 1);
  BOOST_TEST(result.connections == 5);
  BOOST_TEST(result.started_at == common::to_unix(kStart));
  BOOST_TEST(result.now == common::to_unix(h.clock.now()));
}

RULES_TEST(admin_stats_without_sources_reports_zero_counters) {
  Harness h(std::make_unique<Backend>());
  enroll(h, "alice");
  const protocol::AdminStatsResult result = stats(h);
  BOOST_TEST(result.verify_ok == 0);
  BOOST_TEST(result.enrollments == 0);
  BOOST_TEST(result.users_enrolled == 1);
  BOOST_TEST(result.users_locked == 0);
}

}  // namespace kpanel::daemon::test
