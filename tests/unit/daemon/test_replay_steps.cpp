#define BOOST_TEST_MODULE daemon replay steps
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "daemon/rules/replay_steps.hpp"

namespace kpanel::daemon::test {
namespace {

using Runs = std::vector<StepRun>;
constexpr std::int64_t kLowest = std::numeric_limits<std::int64_t>::min();

BOOST_AUTO_TEST_CASE(consecutive_steps_make_one_run_and_others_stay_apart) {
  Runs runs;
  for (const std::int64_t step : {10, 12, 11, 20, 9}) {
    mark_step_used(runs, step);
  }
  BOOST_TEST((runs == Runs{{9, 12}, {20, 20}}));
  BOOST_TEST(step_used(runs, 9));
  BOOST_TEST(step_used(runs, 12));
  BOOST_TEST(!step_used(runs, 13));
  BOOST_TEST(!step_used(runs, 19));
  BOOST_TEST(step_used(runs, 20));
}

// Past the bound, the smallest gap behind the newest step is filled: every
// step ever marked stays used, and the steps after the newest stay free.
BOOST_AUTO_TEST_CASE(the_bound_fills_the_smallest_gap_behind_the_newest_step) {
  Runs runs;
  std::vector<std::int64_t> marked;
  std::int64_t step = 1000;
  for (std::int64_t i = 0; i < 100; ++i) {
    step += i % 3 == 0 ? 7 : 50;
    marked.push_back(step);
    mark_step_used(runs, step);
    BOOST_TEST_REQUIRE(runs.size() <= kMaxStepRuns);
    for (const std::int64_t earlier : marked) {
      BOOST_TEST_REQUIRE(step_used(runs, earlier));
    }
    BOOST_TEST_REQUIRE(!step_used(runs, step + 1));
  }
}

// The clock moved back: the runs ahead of the newest step are kept apart
// while gaps behind it remain, so steps between them stay free.
BOOST_AUTO_TEST_CASE(runs_ahead_of_the_newest_step_are_joined_last) {
  Runs runs;
  for (std::int64_t i = 0; i < 20; ++i) {
    mark_step_used(runs, 100'000 + i * 100);  // a day ahead
  }
  for (std::int64_t i = 0; i < 40; ++i) {
    mark_step_used(runs, 1000 + i * 10);  // back now
  }
  BOOST_TEST(runs.size() == kMaxStepRuns);
  BOOST_TEST(!step_used(runs, 1391));     // the next step now is free
  BOOST_TEST(!step_used(runs, 100'050));  // so are the gaps ahead
  BOOST_TEST(step_used(runs, 1005));      // a gap far behind was filled
}

BOOST_AUTO_TEST_CASE(encode_and_decode_round_trip) {
  const Runs runs{
      {kLowest, -5},
      {7, 7},
      {9, 12},
      {std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::max()}};
  const std::string text = encode_step_runs(runs);
  BOOST_TEST(text == "-9223372036854775808..-5,7,9..12,9223372036854775807");
  BOOST_TEST((decode_step_runs(text) == runs));
  BOOST_TEST((decode_step_runs("") == Runs{}));
}

BOOST_AUTO_TEST_CASE(decode_refuses_what_encode_never_writes) {
  for (const char* bad : {"x", "1,", ",1", "1..", "..1", "2..1", "1..1", "3,2", "1,2", "1..3,2",
                          "1 ", "+1", "1;2", "99999999999999999999"}) {
    BOOST_TEST(!decode_step_runs(bad).has_value(), bad);
  }
  std::string many;
  for (std::size_t i = 0; i <= kMaxStepRuns; ++i) {
    if (i != 0) many += ',';
    many += std::to_string(i * 2);
  }
  BOOST_TEST(!decode_step_runs(many).has_value());
}

BOOST_AUTO_TEST_CASE(an_old_record_knows_only_that_everything_up_to_last_step_is_used) {
  const Runs runs = step_runs_up_to(500);
  BOOST_TEST(step_used(runs, kLowest));
  BOOST_TEST(step_used(runs, 500));
  BOOST_TEST(!step_used(runs, 501));
  Runs merged{{600, 600}};
  merge_step_runs(merged, runs);
  BOOST_TEST((merged == Runs{{kLowest, 500}, {600, 600}}));
}

}  // namespace
}  // namespace kpanel::daemon::test
