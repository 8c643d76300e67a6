#define BOOST_TEST_MODULE daemon crash fence
// The fence's arithmetic and decisions (daemon/rules/fence.hpp), pure.
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <optional>

#include "daemon/rules/fence.hpp"

namespace kpanel::daemon {
namespace {

constexpr std::int64_t kSlack = kHighWaterInterval.count() + kFenceMargin.count();

BOOST_AUTO_TEST_CASE(the_fence_time_is_the_later_of_now_and_the_unsynced_high_water) {
  // The clock at boot is right: now is later than anything unsynced.
  BOOST_TEST(fence_time(10'000, 9'000) == 10'000);
  // The clock at boot is behind (an RTC that lost time): the high-water time
  // and what may not have been synced after it decide.
  BOOST_TEST(fence_time(5'000, 9'000) == 9'000 + kSlack);
  BOOST_TEST(fence_time(9'000, 9'000) == 9'000 + kSlack);
}

BOOST_AUTO_TEST_CASE(a_fence_closes_every_step_up_to_its_time_plus_the_window) {
  const Fence fence{1'800'000'005, 1};  // 5 s into step 60'000'000 of 30 s
  BOOST_TEST(last_fenced_step(fence, 30) == 60'000'001);
  BOOST_TEST(fenced(fence, 60'000'001, 30));
  BOOST_TEST(fenced(fence, 59'000'000, 30));
  BOOST_TEST(!fenced(fence, 60'000'002, 30));
  // Another period, another step; a wider window, more steps.
  BOOST_TEST(last_fenced_step(fence, 60) == 30'000'000 + 1);
  BOOST_TEST(last_fenced_step(Fence{1'800'000'005, 3}, 30) == 60'000'003);
  // On a step boundary: that step is closed too (floor).
  BOOST_TEST(last_fenced_step(Fence{1'800'000'000, 0}, 30) == 60'000'000);
  BOOST_TEST(!fenced(std::nullopt, 0, 30));
}

BOOST_AUTO_TEST_CASE(how_the_last_run_ended) {
  const RunState running{"boot-a", true, 100, std::nullopt};
  RunState stopped = running;
  stopped.running = false;
  BOOST_TEST((classify_last_stop(std::nullopt, "boot-a", false) == LastStop::first_start));
  BOOST_TEST((classify_last_stop(stopped, "boot-b", false) == LastStop::clean));
  BOOST_TEST((classify_last_stop(running, "boot-a", false) == LastStop::daemon_crash));
  BOOST_TEST((classify_last_stop(running, "boot-b", false) == LastStop::host_crash));
  // A restored backup is fenced whatever its run state says.
  BOOST_TEST((classify_last_stop(stopped, "boot-a", true) == LastStop::restored));
  BOOST_TEST((classify_last_stop(std::nullopt, "boot-a", true) == LastStop::restored));
}

BOOST_AUTO_TEST_CASE(the_state_a_start_writes) {
  const RunState running{"boot-a", true, 9'000, std::nullopt};
  // A daemon crash: running again, no fence, the high-water time moves on.
  RunState next = start_state(running, LastStop::daemon_crash, "boot-a", 9'100, 1);
  BOOST_TEST((next == RunState{"boot-a", true, 9'100, std::nullopt}));
  // A host crash with a clock behind: fenced from the high-water time, which
  // never goes back.
  next = start_state(running, LastStop::host_crash, "boot-b", 5'000, 2);
  BOOST_TEST((next == RunState{"boot-b", true, 9'000, Fence{9'000 + kSlack, 2}}));
  // A restart during that fence keeps it, even with a narrower window.
  RunState again = start_state(next, LastStop::daemon_crash, "boot-b", 5'010, 1);
  BOOST_TEST((again.fence == Fence{9'000 + kSlack, 2}));
  // Another host crash then: the later time, the wider window.
  again = start_state(next, LastStop::host_crash, "boot-c", 20'000, 1);
  BOOST_TEST((again.fence == Fence{20'000, 2}));
  // A first start has nothing to fence.
  next = start_state(std::nullopt, LastStop::first_start, "boot-a", 7'000, 1);
  BOOST_TEST((next == RunState{"boot-a", true, 7'000, std::nullopt}));
}

BOOST_AUTO_TEST_CASE(the_high_water_time_never_goes_back) {
  BOOST_TEST(next_high_water(100, 200) == 200);
  BOOST_TEST(next_high_water(200, 100) == 200);
}

}  // namespace
}  // namespace kpanel::daemon
