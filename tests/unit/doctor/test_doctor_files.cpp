// The doctor's file checks: the key file, the daemon config's keys, the
// socket's mode.
#include <sys/socket.h>
#include <sys/un.h>

#include "doctor_test_support.hpp"

// The shared helpers (doctor_test_support.hpp) by their short names.
using namespace kpanel::doctor_testing;  // NOLINT(google-build-using-namespace)

// ---- files --------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(files)

BOOST_AUTO_TEST_CASE(key_file) {
  FakeRoot root;
  const std::string key = "/etc/kpanel-totp/state.key";
  {
    Report report;
    doctor::check_key_file(root.tree(), key, report);
    if (as_root()) {
      BOOST_TEST(report.findings().empty());
      BOOST_TEST(contains(report.entries().at(0).finding.message, "mode 0600, owner root"));
    } else {
      the_finding(report, "kpanel-totpd refuses a key it does not own");
    }
  }
  {
    root.write(key, std::string(32, 'k'), 0640);
    Report report;
    doctor::check_key_file(root.tree(), key, report);
    the_finding(report, "has mode 0640");
  }
  {
    root.write(key, std::string(31, 'k'), 0600);
    Report report;
    doctor::check_key_file(root.tree(), key, report);
    the_finding(report, "holds 31 bytes");
  }
  {
    root.remove(key);
    Report report;
    doctor::check_key_file(root.tree(), key, report);
    const auto finding = the_finding(report, "does not exist");
    BOOST_TEST(finding.file == root.shown(key));
  }
}

BOOST_AUTO_TEST_CASE(daemon_config_keys) {
  const auto settings = doctor::parse_daemon_config(
      "# socket = /nope\n socket = /run/x.sock \nkey_file=/k\nenforce_after = 2030-01-01\n");
  BOOST_TEST(settings.known);
  BOOST_TEST(settings.socket == "/run/x.sock");
  BOOST_TEST(settings.key_file == "/k");
  BOOST_TEST(settings.enforce_after == "2030-01-01");
}

BOOST_AUTO_TEST_CASE(socket_file_mode) {
  FakeRoot root;
  const auto path = root.real("/run/kpanel-totpd.sock");
  std::filesystem::create_directories(path.parent_path());
  ::chmod(path.parent_path().c_str(), 0755);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  BOOST_REQUIRE(fd >= 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string text = path.string();
  BOOST_REQUIRE(text.size() < sizeof address.sun_path);
  std::copy(text.begin(), text.end(), std::begin(address.sun_path));
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address),  // NOLINT: the socket API
                       sizeof address) == 0);
  BOOST_REQUIRE(::chmod(path.c_str(), 0660) == 0);
  {
    Report report;
    doctor::check_socket_file(path, report);
    the_finding(report, "has mode 0660");
  }
  BOOST_REQUIRE(::chmod(path.c_str(), 0666) == 0);
  {
    Report report;
    const bool trusted = doctor::check_socket_file(path, report);
    if (::geteuid() == 0) {
      BOOST_TEST(trusted);
      BOOST_TEST(report.findings().empty());
    } else {
      BOOST_TEST(!trusted);
      the_finding(report, "the module and the tool refuse to talk to it");
    }
  }
  ::close(fd);
  {
    root.write("/run/plain", "");
    Report report;
    BOOST_TEST(!doctor::check_socket_file(root.real("/run/plain"), report));
    the_finding(report, "is not a socket");
  }
}

BOOST_AUTO_TEST_SUITE_END()
