#define BOOST_TEST_MODULE daemon login accounts
// Which accounts can log in (admin list --all): UID_MIN from login.defs, the
// login shells of /etc/shells, and the NSS enumeration itself.
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "daemon/authz/accounts.hpp"
#include "daemon/authz/login_accounts.hpp"
#include "shared/temp_dir.hpp"

namespace kpanel::daemon {
namespace {

BOOST_AUTO_TEST_CASE(uid_min_comes_from_its_line) {
  BOOST_TEST(uid_min_from("UID_MIN\t\t\t 2000\n") == 2000U);
  BOOST_TEST(uid_min_from("# UID_MIN 5\nMAIL_DIR /var/mail\nUID_MIN 1500\nUID_MAX 60000\n") ==
             1500U);
  BOOST_TEST(uid_min_from("  UID_MIN   1200  # local policy\r\n") == 1200U);
  BOOST_TEST(uid_min_from("UID_MIN 0x3e8\n") == 1000U);
  BOOST_TEST(uid_min_from("UID_MIN 01750\n") == 1000U);
  BOOST_TEST(uid_min_from("UID_MIN \"1100\"\n") == 1100U);
  BOOST_TEST(uid_min_from("UID_MIN 500\nUID_MIN 600") == 600U, "the last line wins, no newline");
}

BOOST_AUTO_TEST_CASE(uid_min_defaults_to_1000_when_absent_or_malformed) {
  BOOST_TEST(uid_min_from("") == kDefaultUidMin);
  BOOST_TEST(uid_min_from("UID_MAX 60000\nSYS_UID_MIN 100\n") == kDefaultUidMin);
  BOOST_TEST(uid_min_from("UID_MINIMUM 5\n") == kDefaultUidMin, "another key");
  BOOST_TEST(uid_min_from("#UID_MIN 5\n") == kDefaultUidMin, "a comment");
  BOOST_TEST(uid_min_from("UID_MIN\n") == kDefaultUidMin);
  BOOST_TEST(uid_min_from("UID_MIN abc\n") == kDefaultUidMin);
  BOOST_TEST(uid_min_from("UID_MIN 12x\n") == kDefaultUidMin);
  BOOST_TEST(uid_min_from("UID_MIN -5\n") == kDefaultUidMin);
  BOOST_TEST(uid_min_from("UID_MIN 99999999999999999999\n") == kDefaultUidMin);
  BOOST_TEST(uid_min_from("UID_MIN 4294967295\n") == kDefaultUidMin, "uid -1 is no uid");
  BOOST_TEST(uid_min_from("UID_MIN 0x\n") == kDefaultUidMin);
  BOOST_TEST(uid_min_from("UID_MIN 09\n") == kDefaultUidMin, "not octal");
  BOOST_TEST(uid_min_from("UID_MIN 700\nUID_MIN junk\n") == kDefaultUidMin,
             "a malformed last line is not the earlier value");
  const std::string binary("UID_MIN \0 1\n", 12);
  BOOST_TEST(uid_min_from(binary) == kDefaultUidMin);
}

BOOST_AUTO_TEST_CASE(shells_are_the_listed_absolute_paths) {
  const auto shells = shells_from(
      "# /etc/shells: valid login shells\n/bin/sh\n  /bin/bash \n"
      "\nbash\n/usr/bin/zsh\r\n");
  BOOST_TEST(shells == (std::vector<std::string>{"/bin/sh", "/bin/bash", "/usr/bin/zsh"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_login_shell_is_listed_and_not_nologin_or_false) {
  const std::optional<std::vector<std::string>> shells =
      std::vector<std::string>{"/bin/sh", "/bin/bash", "/usr/sbin/nologin", "/bin/false"};
  BOOST_TEST(is_login_shell("/bin/bash", shells));
  BOOST_TEST(is_login_shell("", shells), "empty means /bin/sh");
  BOOST_TEST(!is_login_shell("/usr/bin/fish", shells), "not listed");
  BOOST_TEST(!is_login_shell("/usr/sbin/nologin", shells), "listed, still no login");
  BOOST_TEST(!is_login_shell("/bin/false", shells));
  BOOST_TEST(!is_login_shell("/sbin/nologin", std::nullopt));
  BOOST_TEST(!is_login_shell("/usr/bin/false", std::nullopt));
  BOOST_TEST(is_login_shell("/usr/bin/fish", std::nullopt),
             "without /etc/shells, listing an account too many is the safe side");
  const std::optional<std::vector<std::string>> none = std::vector<std::string>{};
  BOOST_TEST(!is_login_shell("/bin/bash", none), "an empty /etc/shells lists nothing");
}

BOOST_AUTO_TEST_CASE(can_log_in_needs_both) {
  const LoginAccountRules rules{.uid_min = 1000, .shells = std::vector<std::string>{"/bin/bash"}};
  BOOST_TEST(can_log_in(rules, 1000, "/bin/bash"));
  BOOST_TEST(!can_log_in(rules, 999, "/bin/bash"));
  BOOST_TEST(!can_log_in(rules, 1001, "/usr/sbin/nologin"));
}

BOOST_AUTO_TEST_CASE(the_files_are_read_and_missing_ones_give_the_defaults) {
  const kpanel::test::TempDir dir;
  const auto defs = dir.path() / "login.defs";
  const auto shells = dir.path() / "shells";
  std::ofstream(defs) << "UID_MIN 3000\n";
  std::ofstream(shells) << "/bin/bash\n";
  const LoginAccountRules rules = read_login_account_rules(defs, shells);
  BOOST_TEST(rules.uid_min == 3000U);
  BOOST_TEST_REQUIRE(rules.shells.has_value());
  BOOST_TEST(rules.shells->size() == 1U);

  const LoginAccountRules missing =
      read_login_account_rules(dir.path() / "none", dir.path() / "none");
  BOOST_TEST(missing.uid_min == kDefaultUidMin);
  BOOST_TEST(!missing.shells.has_value());
  BOOST_TEST(!read_system_file(dir.path()).has_value(), "a directory is not a file");
}

// The real enumeration, with rules that admit every account with a shell:
// root (uid 0) and nobody (nologin) prove both filters.
BOOST_AUTO_TEST_CASE(the_system_directory_enumerates_nss) {
  const kpanel::test::TempDir dir;
  std::ofstream(dir.path() / "login.defs") << "UID_MIN 0\n";
  std::ofstream(dir.path() / "shells") << "/bin/sh\n/bin/bash\n/usr/bin/bash\n";
  const SystemAccountDirectory everyone(
      LoginAccountFiles{dir.path() / "login.defs", dir.path() / "shells"});
  const auto all = everyone.login_accounts();
  BOOST_TEST(!all.truncated);
  BOOST_TEST((std::ranges::find(all.names, "root") != all.names.end()));
  BOOST_TEST((std::ranges::find(all.names, "nobody") == all.names.end()), "nologin");

  std::ofstream(dir.path() / "login.defs") << "UID_MIN 1\n";
  const auto above_root = everyone.login_accounts();
  BOOST_TEST((std::ranges::find(above_root.names, "root") == above_root.names.end()), "uid 0 < 1");
}

}  // namespace
}  // namespace kpanel::daemon
