#define BOOST_TEST_MODULE daemon_lanes
// daemon/lanes: root first, one slow job per uid, a bound overall, and
// queued work run before the lanes stop.
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "daemon/net/lanes.hpp"
#include "shared/eventually.hpp"

namespace {

using kpanel::daemon::Lane;
using kpanel::daemon::LaneLimits;
using kpanel::daemon::WorkLanes;
using kpanel::test::eventually;
using namespace std::chrono_literals;

// Holds a lane's worker until opened.
class Gate {
 public:
  void wait() {
    entered_ = true;
    while (!open_.load()) std::this_thread::sleep_for(1ms);
  }
  void open() { open_ = true; }
  [[nodiscard]] bool entered() const { return entered_.load(); }

 private:
  std::atomic<bool> open_{false};
  std::atomic<bool> entered_{false};
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_second_slow_job_of_one_uid_is_refused_until_the_first_ends) {
  WorkLanes lanes(LaneLimits{.fast_threads = 1, .slow_threads = 1});
  Gate gate;
  BOOST_TEST(lanes.submit(Lane::slow, 1001, [&](WorkLanes::Ticket) noexcept { gate.wait(); }));
  BOOST_TEST(eventually([&] { return gate.entered(); }));
  BOOST_TEST(!lanes.submit(Lane::slow, 1001, [](WorkLanes::Ticket) noexcept {}));
  BOOST_TEST(lanes.submit(Lane::slow, 1002,
                          [](WorkLanes::Ticket) noexcept {}));  // another uid waits its turn
  // Fast work of the same uid is not bounded by its slow job.
  std::atomic<bool> fast_ran{false};
  BOOST_TEST(lanes.submit(Lane::fast, 1001, [&](WorkLanes::Ticket) noexcept { fast_ran = true; }));
  BOOST_TEST(eventually([&] { return fast_ran.load(); }));
  gate.open();
  BOOST_TEST(eventually([&] { return lanes.slow_in_flight() == 0; }));
  BOOST_TEST(lanes.submit(Lane::slow, 1001, [](WorkLanes::Ticket) noexcept {}));
}

BOOST_AUTO_TEST_CASE(a_job_that_released_its_ticket_frees_the_uids_slot_while_it_still_runs) {
  // The server releases the ticket when the handler is done and before it
  // sends the reply: a client that sends its next request the moment it has
  // the answer must not be told `busy` because the worker has not returned.
  WorkLanes lanes(LaneLimits{.fast_threads = 1, .slow_threads = 1});
  Gate gate;
  std::atomic<bool> released{false};
  BOOST_TEST(lanes.submit(Lane::slow, 1001, [&](WorkLanes::Ticket ticket) noexcept {
    ticket.release();
    released = true;
    gate.wait();  // still "sending the reply"
  }));
  BOOST_TEST(eventually([&] { return released.load() && gate.entered(); }));
  BOOST_TEST(lanes.slow_in_flight() == 0U);
  BOOST_TEST(lanes.submit(Lane::slow, 1001, [](WorkLanes::Ticket) noexcept {}));
  gate.open();
}

BOOST_AUTO_TEST_CASE(the_slow_lane_refuses_other_uids_beyond_its_capacity_but_not_root) {
  WorkLanes lanes(LaneLimits{.fast_threads = 1, .slow_threads = 1, .slow_capacity = 3});
  Gate gate;
  BOOST_TEST(lanes.submit(Lane::slow, 2000, [&](WorkLanes::Ticket) noexcept { gate.wait(); }));
  BOOST_TEST(lanes.submit(Lane::slow, 2001, [](WorkLanes::Ticket) noexcept {}));
  BOOST_TEST(lanes.submit(Lane::slow, 2002, [](WorkLanes::Ticket) noexcept {}));
  BOOST_TEST(!lanes.submit(Lane::slow, 2003, [](WorkLanes::Ticket) noexcept {}));
  BOOST_TEST(
      lanes.submit(Lane::slow, 0, [](WorkLanes::Ticket) noexcept {}));  // root has its own cap
  BOOST_TEST(
      lanes.submit(Lane::slow, 0, [](WorkLanes::Ticket) noexcept {}));  // and is not one-per-uid
  gate.open();
  BOOST_TEST(eventually([&] { return lanes.slow_in_flight() == 0; }));
}

BOOST_AUTO_TEST_CASE(roots_queued_jobs_run_before_other_uids_queued_jobs) {
  for (const Lane lane : {Lane::fast, Lane::slow}) {
    WorkLanes lanes(LaneLimits{.fast_threads = 1, .slow_threads = 1});
    Gate gate;
    std::mutex mutex;
    std::vector<int> order;
    const auto note = [&](int who) {
      const std::lock_guard lock(mutex);
      order.push_back(who);
    };
    BOOST_TEST(lanes.submit(lane, 0, [&](WorkLanes::Ticket) noexcept { gate.wait(); }));
    BOOST_TEST(eventually([&] { return gate.entered(); }));
    for (int uid = 3000; uid < 3005; ++uid) {
      BOOST_TEST(lanes.submit(lane, static_cast<uid_t>(uid),
                              [&, uid](WorkLanes::Ticket) noexcept { note(uid); }));
    }
    BOOST_TEST(lanes.submit(lane, 0, [&](WorkLanes::Ticket) noexcept { note(0); }));
    gate.open();
    lanes.join();
    BOOST_REQUIRE_EQUAL(order.size(), 6U);
    BOOST_TEST(order.front() == 0);
    BOOST_TEST(order.at(1) == 3000);  // the others keep their arrival order
    BOOST_TEST(order.back() == 3004);
  }
}

BOOST_AUTO_TEST_CASE(join_runs_what_is_queued_and_then_refuses_new_work) {
  WorkLanes lanes(LaneLimits{.fast_threads = 1, .slow_threads = 1});
  std::atomic<int> ran{0};
  for (int i = 0; i < 50; ++i) {
    BOOST_TEST(lanes.submit(Lane::fast, 1000, [&](WorkLanes::Ticket) noexcept { ++ran; }));
  }
  lanes.join();
  BOOST_TEST(ran.load() == 50);
  BOOST_TEST(!lanes.submit(Lane::fast, 0, [](WorkLanes::Ticket) noexcept {}));
}
