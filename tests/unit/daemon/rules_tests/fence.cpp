// The crash fence in the rules (fence.hpp, checks.cpp), and which updates
// are deferred and which durable (durability_of).
#include "daemon/rules/fence.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "rules_helpers.hpp"

namespace kpanel::daemon::test {
namespace {

std::uint32_t failures_of(Harness& h) {
  const auto loaded = h.store().load(kUser);
  BOOST_TEST_REQUIRE((loaded.has_value() && loaded->has_value()));
  return (*loaded)->failures;
}

void fence_now(Harness& h, unsigned window) {
  h.rules().set_fence(Fence{common::to_unix(h.clock.now()), window});
}

}  // namespace

BOOST_AUTO_TEST_SUITE(crash_fence)

// enroll() leaves the clock one step after the confirming code's step s0.
RULES_TEST(a_fence_refuses_codes_up_to_its_step_without_counting_them) {
  Harness h(std::make_unique<Backend>());
  const Enrolled enrolled = enroll(h);
  fence_now(h, 1);  // closes every step up to now + 1
  for (const std::int64_t offset : {0, 1}) {
    const Response reply = verify(h, code_at(h, enrolled.secret, offset));
    // Told to wait for the next code; no failures_left: nothing was counted.
    BOOST_TEST(reply.status == Status::replayed);
    BOOST_TEST(!reply.failures_left.has_value());
    BOOST_TEST(h.audit.events().back().fenced);
  }
  BOOST_TEST(failures_of(h) == 0U);
  // A wrong code is still a guess, counted as ever.
  const Response wrong = verify(h, wrong_code(h, enrolled.secret));
  BOOST_TEST(wrong.status == Status::wrong_code);
  BOOST_TEST(failures_of(h) == 1U);
  // Recovery codes work during the fence.
  BOOST_TEST(verify(h, enrolled.recovery_codes.at(0)).status == Status::ok);
  // The first step after the fence is accepted, once.
  h.clock.advance(60s);
  const std::string next = code_at(h, enrolled.secret, 0);
  BOOST_TEST(verify(h, next).status == Status::ok);
  BOOST_TEST(verify(h, next).status == Status::replayed);
  BOOST_TEST(failures_of(h) == 1U);  // that replay was a real one, counted
  // The fence still closes its own steps.
  BOOST_TEST(verify(h, code_at(h, enrolled.secret, -1)).status == Status::replayed);
}

RULES_TEST(a_reload_keeps_the_fence) {
  Harness h(std::make_unique<Backend>());
  const Enrolled enrolled = enroll(h);
  fence_now(h, 1);
  h.rules().set_policy(test_policy());
  BOOST_TEST(h.rules().policy()->fence.has_value());
  BOOST_TEST(verify(h, code_at(h, enrolled.secret, 0)).status == Status::replayed);
  BOOST_TEST(failures_of(h) == 0U);
}

RULES_TEST(a_fence_also_guards_disable_and_new_recovery_codes) {
  Harness h(std::make_unique<Backend>());
  const Enrolled enrolled = enroll(h);
  fence_now(h, 1);
  BOOST_TEST(regenerate(h, code_at(h, enrolled.secret, 0)).status == Status::replayed);
  BOOST_TEST(disable(h, "alice-password", code_at(h, enrolled.secret, 1)).status ==
             Status::replayed);
  BOOST_TEST(status_of(h, kSelf).enrolled);
  BOOST_TEST(failures_of(h) == 0U);
}

// Only a TOTP code's verify waits for no disk; everything that cannot be
// undone is durable, a recovery code's verify included.
BOOST_AUTO_TEST_CASE(only_a_totp_verify_is_deferred) {
  auto backend = std::make_unique<MemoryBackend>();
  const auto state = backend->state();
  Harness h(std::move(backend));
  using enum Durability;
  const Enrolled enrolled = enroll(h);
  BOOST_TEST((state->writes == std::vector<Durability>{durable, durable}));  // begin, confirm
  state->writes.clear();
  BOOST_TEST(verify(h, code_at(h, enrolled.secret, 0)).status == Status::ok);
  BOOST_TEST(verify(h, wrong_code(h, enrolled.secret)).status == Status::wrong_code);
  BOOST_TEST((state->writes == std::vector<Durability>{deferred, deferred}));
  state->writes.clear();
  BOOST_TEST(verify(h, enrolled.recovery_codes.at(0)).status == Status::ok);
  h.clock.advance(30s);
  BOOST_TEST(regenerate(h, code_at(h, enrolled.secret, 0)).status == Status::ok);
  BOOST_TEST((state->writes == std::vector<Durability>{durable, durable}));
  BOOST_TEST(verify(h, wrong_code(h, enrolled.secret)).status == Status::wrong_code);
  state->writes.clear();
  BOOST_TEST(h.rules().admin_unlock(kRoot, kUser, {}).status == Status::ok);
  h.clock.advance(30s);
  BOOST_TEST(disable(h, "alice-password", code_at(h, enrolled.secret, 0)).status == Status::ok);
  (void)enroll(h);
  BOOST_TEST(h.rules().admin_reset(kRoot, kUser, {}).status == Status::ok);
  // unlock, disable, begin, confirm, reset
  BOOST_TEST(
      (state->writes == std::vector<Durability>{durable, durable, durable, durable, durable}));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace kpanel::daemon::test
