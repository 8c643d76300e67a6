#define BOOST_TEST_MODULE daemon state lock
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon/system/state_lock.hpp"
#include "support/store_backends.hpp"

namespace kpanel::daemon::test {
namespace {

using std::chrono::milliseconds;

// flock locks belong to an open file description, so a second acquire in
// this process meets the first one's lock just as another process would.
constexpr StateLockOptions kQuick{.wait_for_stopping = milliseconds(3000),
                                  .grace = milliseconds(100)};

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

BOOST_AUTO_TEST_CASE(the_lock_file_names_the_holder_and_a_second_acquire_is_refused) {
  const TempDir dir;
  const auto state = dir.path() / "state";
  auto first = StateLock::acquire(state, kQuick);
  BOOST_TEST_REQUIRE(first.has_value(), first.error());
  const auto file = state / StateLock::kFileName;
  BOOST_TEST(read_text(file) == std::to_string(::getpid()) + "\n");
  struct stat info {};
  BOOST_TEST_REQUIRE(::stat(state.c_str(), &info) == 0);
  BOOST_TEST((info.st_mode & 07777U) == 0700U);

  const auto started = std::chrono::steady_clock::now();
  auto second = StateLock::acquire(state, kQuick);
  BOOST_TEST_REQUIRE(!second.has_value());
  BOOST_TEST(second.error().find("pid " + std::to_string(::getpid())) != std::string::npos,
             second.error());
  BOOST_TEST(second.error().find(state.string()) != std::string::npos, second.error());
  // A running holder is refused after the grace, not after the long wait.
  const bool quick = std::chrono::steady_clock::now() - started < milliseconds(2000);
  BOOST_TEST(quick);
}

BOOST_AUTO_TEST_CASE(a_stopping_holder_is_waited_for_and_then_the_lock_is_taken) {
  const TempDir dir;
  const auto state = dir.path() / "state";
  std::optional<StateLock> first;
  {
    auto taken = StateLock::acquire(state, kQuick);
    BOOST_TEST_REQUIRE(taken.has_value(), taken.error());
    first.emplace(std::move(*taken));
  }
  first->mark_stopping();
  BOOST_TEST(read_text(state / StateLock::kFileName).find(" stopping") != std::string::npos);
  std::thread release([&first] {
    std::this_thread::sleep_for(milliseconds(400));
    first.reset();
  });
  std::vector<std::string> notes;
  auto second = StateLock::acquire(state, kQuick,
                                   [&notes](const std::string& line) { notes.push_back(line); });
  release.join();
  BOOST_TEST_REQUIRE(second.has_value(), second.error());
  BOOST_TEST_REQUIRE(notes.size() == 1U);
  BOOST_TEST(notes[0].find("waiting for kpanel-totpd (pid") != std::string::npos, notes[0]);
  BOOST_TEST(read_text(state / StateLock::kFileName) == std::to_string(::getpid()) + "\n");
}

BOOST_AUTO_TEST_CASE(a_holder_that_never_finishes_stopping_is_refused_after_the_wait) {
  const TempDir dir;
  const auto state = dir.path() / "state";
  auto first = StateLock::acquire(state, kQuick);
  BOOST_TEST_REQUIRE(first.has_value(), first.error());
  first->mark_stopping();
  auto second = StateLock::acquire(
      state, StateLockOptions{.wait_for_stopping = milliseconds(300), .grace = milliseconds(100)});
  BOOST_TEST_REQUIRE(!second.has_value());
  BOOST_TEST(second.error().find("stopping") != std::string::npos, second.error());
}

BOOST_AUTO_TEST_CASE(a_full_disk_does_not_keep_the_holder_from_starting) {
  const TempDir dir;
  const auto state = dir.path() / "state";
  // The pid cannot be written (as on a full disk): the lock is still taken.
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit old_limit{};
  BOOST_TEST_REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
  const rlimit nothing{.rlim_cur = 0, .rlim_max = old_limit.rlim_max};
  BOOST_TEST_REQUIRE(::setrlimit(RLIMIT_FSIZE, &nothing) == 0);
  auto first = StateLock::acquire(state, kQuick);
  (void)::setrlimit(RLIMIT_FSIZE, &old_limit);
  (void)std::signal(SIGXFSZ, old_handler);
  BOOST_TEST_REQUIRE(first.has_value(), first.error());
  auto second = StateLock::acquire(state, kQuick);
  BOOST_TEST_REQUIRE(!second.has_value());
  BOOST_TEST(second.error().find("pid is not in the lock file") != std::string::npos,
             second.error());
}

BOOST_AUTO_TEST_CASE(a_symlinked_state_dir_is_refused) {
  const TempDir dir;
  const auto real = dir.path() / "real";
  std::filesystem::create_directory(real);
  std::filesystem::create_directory_symlink(real, dir.path() / "link");
  auto lock = StateLock::acquire(dir.path() / "link", kQuick);
  BOOST_TEST_REQUIRE(!lock.has_value());
  BOOST_TEST(lock.error().find("symbolic link") != std::string::npos, lock.error());
}

}  // namespace
}  // namespace kpanel::daemon::test
