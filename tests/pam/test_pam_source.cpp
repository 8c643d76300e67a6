#define BOOST_TEST_MODULE pam login source
// Where a login comes from, for remembered logins (pam_module/login_source.hpp):
// PAM_RHOST, else the remote host utmp names for PAM_TTY, else the terminal
// and PAM_RUSER; read from a utmp file the test writes.
#include <utmpx.h>

#include <boost/test/unit_test.hpp>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>

#include "pam_module/login_source.hpp"
#include "shared/temp_dir.hpp"

namespace {

using kpanel::pam::login_source;
using kpanel::pam::utmp_remote_host;

struct Entry {
  short type;
  std::string_view line, host;
};

// A utmp file of `entries`, as glibc writes it: struct utmpx records back to back.
std::string write_utmp(const kpanel::test::TempDir& dir, std::initializer_list<Entry> entries) {
  const std::string path = (dir.path() / "utmp").string();
  std::ofstream out(path, std::ios::binary);
  for (const Entry& entry : entries) {
    struct utmpx record {};
    record.ut_type = entry.type;
    std::memcpy(record.ut_line, entry.line.data(),
                std::min(entry.line.size(), sizeof record.ut_line));
    std::memcpy(record.ut_host, entry.host.data(),
                std::min(entry.host.size(), sizeof record.ut_host));
    out.write(reinterpret_cast<const char*>(&record), sizeof record);
  }
  return path;
}

}  // namespace

BOOST_AUTO_TEST_CASE(rhost_comes_first) {
  const kpanel::test::TempDir dir;
  const std::string utmp = write_utmp(dir, {{USER_PROCESS, "pts/3", "198.51.100.4"}});
  BOOST_TEST(login_source("192.0.2.7", "/dev/pts/3", "alice", utmp) == "192.0.2.7");
  BOOST_TEST(login_source("host.example", "", "", utmp) == "host.example");
}

BOOST_AUTO_TEST_CASE(a_terminal_of_a_remote_login_has_its_remote_host) {
  const kpanel::test::TempDir dir;
  const std::string utmp = write_utmp(dir, {{USER_PROCESS, "pts/1", ""},
                                            {DEAD_PROCESS, "pts/3", "203.0.113.9"},
                                            {USER_PROCESS, "pts/3", "198.51.100.4"},
                                            {LOGIN_PROCESS, "pts/4", "203.0.113.9"}});
  // sudo sets PAM_TTY to "/dev/pts/3"; some programs to "pts/3".
  BOOST_TEST(login_source("", "/dev/pts/3", "alice", utmp) == "198.51.100.4");
  BOOST_TEST(login_source("", "pts/3", "", utmp) == "198.51.100.4");
  BOOST_TEST(utmp_remote_host(utmp, "pts/3") == "198.51.100.4");
  // A local session, an entry that is not a user's session, no entry: the
  // terminal and the invoking user.
  BOOST_TEST(login_source("", "/dev/pts/1", "alice", utmp) == "tty=pts/1 ruser=alice");
  BOOST_TEST(login_source("", "/dev/pts/4", "alice", utmp) == "tty=pts/4 ruser=alice");
  BOOST_TEST(login_source("", "tty1", "", utmp) == "tty=tty1 ruser=");
}

BOOST_AUTO_TEST_CASE(the_last_entry_of_a_line_is_its_current_session) {
  const kpanel::test::TempDir dir;
  const std::string utmp = write_utmp(
      dir, {{USER_PROCESS, "pts/3", "203.0.113.9"}, {USER_PROCESS, "pts/3", "198.51.100.4"}});
  BOOST_TEST(utmp_remote_host(utmp, "pts/3") == "198.51.100.4");
}

BOOST_AUTO_TEST_CASE(no_utmp_file_means_the_local_form) {
  const kpanel::test::TempDir dir;
  const std::string missing = (dir.path() / "none").string();
  BOOST_TEST(utmp_remote_host(missing, "pts/3").empty());
  BOOST_TEST(login_source("", "/dev/pts/3", "bob", missing) == "tty=pts/3 ruser=bob");
}

BOOST_AUTO_TEST_CASE(no_rhost_and_no_tty_is_no_source) {
  BOOST_TEST(login_source("", "", "alice", "/nonexistent").empty());
}

BOOST_AUTO_TEST_CASE(anything_unprintable_or_too_long_is_no_source) {
  const kpanel::test::TempDir dir;
  const std::string utmp = write_utmp(dir, {{USER_PROCESS, "pts/5", "bad\thost"}});
  BOOST_TEST(login_source("a\nb", "", "", utmp).empty());
  BOOST_TEST(login_source(std::string(301, 'h'), "", "", utmp).empty());
  BOOST_TEST(login_source("", "/dev/pts/5", "alice", utmp).empty());
  BOOST_TEST(login_source("", "/dev/pts/6", "al\x01ice", utmp).empty());
  // A host that fills ut_host (no NUL) is read to the field's end.
  const std::string full(sizeof(utmpx{}.ut_host), 'x');
  const std::string padded = write_utmp(dir, {{USER_PROCESS, "pts/7", full}});
  BOOST_TEST(utmp_remote_host(padded, "pts/7") == full);
}
