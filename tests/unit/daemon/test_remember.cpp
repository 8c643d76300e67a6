// Remembered-login windows as data (daemon/rules/remember.hpp): when one is
// open, how they are bounded, and their stored form.
#define BOOST_TEST_MODULE remember
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "daemon/rules/remember.hpp"

namespace kpanel::daemon {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t kNow = 1'800'000'000;

std::vector<RememberedLogin> one_window(std::chrono::seconds length = 60s) {
  std::vector<RememberedLogin> windows;
  open_window(windows, "h1", "192.0.2.1", kNow, length);
  return windows;
}

}  // namespace

BOOST_AUTO_TEST_CASE(open_from_its_start_to_its_length_for_its_host_and_source) {
  const auto windows = one_window();
  BOOST_TEST(find_window(windows, "h1", "192.0.2.1", kNow, 60s, std::nullopt) != nullptr);
  BOOST_TEST(find_window(windows, "h1", "192.0.2.1", kNow + 59, 60s, std::nullopt) != nullptr);
  BOOST_TEST(find_window(windows, "h1", "192.0.2.1", kNow + 60, 60s, std::nullopt) == nullptr);
  BOOST_TEST(find_window(windows, "h1", "192.0.2.1", kNow - 1, 60s, std::nullopt) == nullptr);
  BOOST_TEST(find_window(windows, "h2", "192.0.2.1", kNow, 60s, std::nullopt) == nullptr);
  BOOST_TEST(find_window(windows, "h1", "192.0.2.2", kNow, 60s, std::nullopt) == nullptr);
}

BOOST_AUTO_TEST_CASE(off_or_shortened_by_the_current_setting) {
  const auto windows = one_window();
  BOOST_TEST(find_window(windows, "h1", "192.0.2.1", kNow, 0s, std::nullopt) == nullptr);
  BOOST_TEST(find_window(windows, "h1", "192.0.2.1", kNow + 9, 10s, std::nullopt) != nullptr);
  BOOST_TEST(find_window(windows, "h1", "192.0.2.1", kNow + 10, 10s, std::nullopt) == nullptr);
  // A longer setting does not lengthen a window opened under a shorter one.
  BOOST_TEST(find_window(windows, "h1", "192.0.2.1", kNow + 60, 600s, std::nullopt) == nullptr);
  BOOST_TEST(window_end(windows.front(), 600s) == kNow + 60);
}

BOOST_AUTO_TEST_CASE(a_window_opened_before_the_fence_is_not_honoured) {
  const auto windows = one_window();
  BOOST_TEST(find_window(windows, "h1", "192.0.2.1", kNow + 5, 60s, Fence{kNow + 1, 1}) == nullptr);
  BOOST_TEST(find_window(windows, "h1", "192.0.2.1", kNow + 5, 60s, Fence{kNow, 1}) != nullptr);
}

BOOST_AUTO_TEST_CASE(reopening_restarts_it_and_ended_ones_are_dropped) {
  auto windows = one_window(60s);
  open_window(windows, "h1", "192.0.2.2", kNow, 60s);
  open_window(windows, "h1", "192.0.2.1", kNow + 100, 60s);  // .2 ended meanwhile
  BOOST_REQUIRE_EQUAL(windows.size(), 1U);
  BOOST_TEST(windows.front().from == kNow + 100);
  BOOST_TEST(windows.front().until == kNow + 160);
}

BOOST_AUTO_TEST_CASE(bounded_per_host_and_in_all_oldest_first) {
  std::vector<RememberedLogin> windows;
  for (int i = 0; i < 20; ++i) {
    open_window(windows, "h1", "10.0.0." + std::to_string(i), kNow + i, 3600s);
  }
  BOOST_TEST(windows.size() == kMaxWindowsPerHost);
  BOOST_TEST(find_window(windows, "h1", "10.0.0.3", kNow + 30, 3600s, std::nullopt) == nullptr);
  BOOST_TEST(find_window(windows, "h1", "10.0.0.4", kNow + 30, 3600s, std::nullopt) != nullptr);
  for (int host = 2; host < 10; ++host) {
    for (int i = 0; i < 16; ++i) {
      open_window(windows, "h" + std::to_string(host), "10.0.0." + std::to_string(i),
                  kNow + 100 + host * 16 + i, 3600s);
    }
  }
  BOOST_TEST(windows.size() == kMaxWindows);
  // Another host's windows never touch this host's bound.
  BOOST_TEST(find_window(windows, "h9", "10.0.0.15", kNow + 300, 3600s, std::nullopt) != nullptr);
}

BOOST_AUTO_TEST_CASE(stored_form_round_trips_any_text) {
  std::vector<RememberedLogin> windows;
  open_window(windows, "machine-id:3d12", "tty=pts/3 ruser=alice", kNow, 60s);
  open_window(windows, "host:web 1", "100%\n\x01\xff", kNow + 1, 30s);
  const std::string stored = encode_windows(windows);
  BOOST_TEST(stored.find("tty=pts/3%20ruser=alice") != std::string::npos);
  const auto decoded = decode_windows(stored);
  BOOST_REQUIRE(decoded.has_value());
  BOOST_TEST((*decoded == windows));
  BOOST_TEST(decode_windows("").value().empty());
}

BOOST_AUTO_TEST_CASE(a_stored_form_that_does_not_decode_is_refused) {
  for (const std::string bad : {"1 2 h", "1 2 h s", "x 2 h s\n", "1 2 h s t\n", "5 4 h s\n",
                                "1 2 h %4\n", "1 2 h %zz\n", "1 2 h s\x01\n", "1 2  s\n"}) {
    BOOST_TEST(!decode_windows(bad).has_value(), bad);
  }
  std::string many;
  for (std::size_t i = 0; i <= kMaxWindows; ++i) many += "1 2 h s\n";
  BOOST_TEST(!decode_windows(many).has_value());
}

}  // namespace kpanel::daemon
