#define BOOST_TEST_MODULE daemon_lifecycle
// The whole daemon (daemon/daemon.hpp) as kpanel-totpd runs it: a config file,
// a state_dir and a socket in a fresh directory, the real store and rules,
// and common/daemon_client as the client (so, like test_server, it runs as
// root). Start, answer, reload, refuse a second daemon, stop.
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <variant>

#include "common/base32.hpp"
#include "common/clock.hpp"
#include "common/daemon_client.hpp"
#include "common/protocol.hpp"
#include "common/totp.hpp"
#include "daemon/daemon.hpp"

namespace {

namespace protocol = kpanel::common::protocol;
using kpanel::daemon::Daemon;
using kpanel::daemon::DaemonOptions;
using protocol::Status;
using namespace std::chrono_literals;

// A directory of its own with a config naming a socket, state_dir and key_file in it.
class Site {
 public:
  Site() {
    std::array<char, 64> pattern{};
    std::snprintf(pattern.data(), pattern.size(), "/tmp/kpanel-lifecycle-test-XXXXXX");
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir_ = pattern.data();
    write_config("max_failures = 5\n");
  }
  Site(const Site&) = delete;
  Site& operator=(const Site&) = delete;
  Site(Site&&) = delete;
  Site& operator=(Site&&) = delete;
  ~Site() { std::filesystem::remove_all(dir_); }

  // The site's paths plus `extra` lines; 0644 like a real one.
  void write_config(const std::string& extra) const {
    std::ofstream out(config_path(), std::ios::trunc);
    out << "socket = " << socket_path() << "\n"
        << "state_dir = " << dir_ << "/state\n"
        << "key_file = " << dir_ << "/key\n"
        << extra;
    out.close();
    BOOST_REQUIRE(::chmod(config_path().c_str(), 0644) == 0);
  }

  [[nodiscard]] std::string config_path() const { return dir_ + "/kpanel-totpd.conf"; }
  [[nodiscard]] std::string socket_path() const { return dir_ + "/sock"; }
  [[nodiscard]] DaemonOptions options() const {
    return DaemonOptions{.config_path = config_path(), .config_given = true};
  }

 private:
  std::string dir_;
};

// A started Daemon serving on its own thread until stop() or the end of the test.
class Running {
 public:
  explicit Running(const Site& site) : daemon_(site.options()) {
    const auto started = daemon_.start();
    BOOST_REQUIRE_MESSAGE(started.has_value(),
                          "start: " << (started ? "" : started.error().message));
    thread_ = std::thread([this] { exit_code_ = daemon_.run(); });
  }
  Running(const Running&) = delete;
  Running& operator=(const Running&) = delete;
  Running(Running&&) = delete;
  Running& operator=(Running&&) = delete;
  ~Running() { stop(); }

  Daemon& daemon() { return daemon_; }

  int stop() {
    if (thread_.joinable()) {
      daemon_.stop();
      thread_.join();
    }
    return exit_code_;
  }

 private:
  Daemon daemon_;
  std::thread thread_;
  int exit_code_ = -1;
};

std::expected<protocol::Response, kpanel::common::ClientError> ask(
    const Site& site, const protocol::Request& request) {
  return kpanel::common::call_daemon({.socket_path = site.socket_path(), .timeout = 10s}, request);
}

// Enrolls the calling user (root) and returns a 6-digit code that is wrong now.
std::string enroll_and_pick_a_wrong_code(const Site& site) {
  const auto begun = ask(site, protocol::EnrollBeginRequest{});
  BOOST_REQUIRE(begun.has_value());
  BOOST_REQUIRE(begun->status == Status::ok);
  const auto& result = std::get<protocol::EnrollBeginResult>(begun->result);
  const auto key = kpanel::common::base32_decode(result.secret_base32.view());
  BOOST_REQUIRE(key.has_value());
  const kpanel::common::SystemClock clock;
  const std::int64_t step = kpanel::common::totp_step(clock.now(), 30);
  const auto code = kpanel::common::totp_code(key->view(), step, {});
  BOOST_REQUIRE(code.has_value());
  const auto confirmed =
      ask(site, protocol::EnrollConfirmRequest{.code = kpanel::common::SecureString(code->view())});
  BOOST_REQUIRE(confirmed.has_value());
  BOOST_REQUIRE(confirmed->status == Status::ok);
  // Any code no step near now produces (the window is at most a few steps).
  for (int guess = 0;; ++guess) {
    std::array<char, 16> text{};
    std::snprintf(text.data(), text.size(), "%06d", guess);
    if (!kpanel::common::find_matching_step(key->view(), text.data(), step, 5, {})) {
      return text.data();
    }
  }
}

// failures_left of the answer; 999 when it has none.
std::uint32_t failures_left_after_a_wrong_code(const Site& site, const std::string& wrong) {
  const auto answer = ask(
      site, protocol::VerifyRequest{.user = "root", .code = kpanel::common::SecureString(wrong)});
  BOOST_REQUIRE(answer.has_value());
  BOOST_TEST((answer->status == Status::wrong_code));
  return answer->failures_left.value_or(999);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_started_daemon_answers_on_its_socket) {
  const Site site;
  Running running(site);
  const auto answer = ask(site, protocol::StatusRequest{});
  BOOST_REQUIRE(answer.has_value());
  BOOST_TEST((answer->status == Status::ok));
  BOOST_TEST(std::holds_alternative<protocol::StatusResult>(answer->result));
}

BOOST_AUTO_TEST_CASE(stop_returns_and_the_socket_stops_answering) {
  const Site site;
  Running running(site);
  BOOST_REQUIRE(ask(site, protocol::StatusRequest{}).has_value());
  BOOST_TEST(running.stop() == 0);
  BOOST_TEST(!std::filesystem::exists(site.socket_path()));  // ours, so removed
  const auto answer = ask(site, protocol::StatusRequest{});
  BOOST_REQUIRE(!answer.has_value());
  BOOST_TEST((answer.error() == kpanel::common::ClientError::unreachable));
}

BOOST_AUTO_TEST_CASE(reload_applies_a_changed_policy) {
  const Site site;
  Running running(site);
  BOOST_TEST(running.daemon().policy()->max_failures == 5U);
  const std::string wrong = enroll_and_pick_a_wrong_code(site);
  BOOST_TEST(failures_left_after_a_wrong_code(site, wrong) == 4U);

  site.write_config("max_failures = 3\nwindow = 2\n");
  BOOST_TEST(running.daemon().reload().has_value());
  BOOST_TEST(running.daemon().policy()->max_failures == 3U);
  BOOST_TEST(running.daemon().policy()->window == 2U);
  // Two failures counted so far, of three now.
  BOOST_TEST(failures_left_after_a_wrong_code(site, wrong) == 1U);
}

BOOST_AUTO_TEST_CASE(reload_with_a_broken_config_keeps_the_running_one_and_says_why) {
  const Site site;
  Running running(site);
  site.write_config("max_failures = 3\nno_such_key = 1\n");
  const auto reloaded = running.daemon().reload();
  BOOST_REQUIRE(!reloaded.has_value());
  BOOST_REQUIRE(!reloaded.error().empty());
  BOOST_TEST(reloaded.error().front().find("no_such_key") != std::string::npos);
  BOOST_TEST(running.daemon().policy()->max_failures == 5U);
  // Still serving.
  const auto answer = ask(site, protocol::StatusRequest{});
  BOOST_REQUIRE(answer.has_value());
  BOOST_TEST((answer->status == Status::ok));
}

BOOST_AUTO_TEST_CASE(a_second_daemon_on_the_same_state_refuses_to_start) {
  const Site site;
  Running running(site);
  Daemon second(site.options());
  const auto started = second.start();
  BOOST_REQUIRE(!started.has_value());
  BOOST_TEST(started.error().config_problems.empty());
  BOOST_TEST(started.error().message.find("is in use by") != std::string::npos,
             started.error().message);
  // The first one is untouched.
  const auto answer = ask(site, protocol::StatusRequest{});
  BOOST_REQUIRE(answer.has_value());
  BOOST_TEST((answer->status == Status::ok));
}

BOOST_AUTO_TEST_CASE(a_broken_config_is_refused_at_start_with_every_problem) {
  const Site site;
  site.write_config("max_failures = 0\nno_such_key = 1\n");
  Daemon daemon(site.options());
  bool called = false;
  const auto started = daemon.start([&] { called = true; });
  BOOST_REQUIRE(!started.has_value());
  BOOST_TEST(started.error().config_problems.size() == 2U);
  BOOST_TEST(!called);  // nothing got as far as the socket
  BOOST_TEST(!std::filesystem::exists(site.socket_path()));
}
