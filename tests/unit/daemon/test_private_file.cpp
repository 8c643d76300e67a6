// The private-file checks (daemon/config/private_file.hpp) the config loader,
// key_file, state_dir, the lock file and the doctor share: a link, a wrong
// owner, a mode open to group or others, and the wrong kind of file are each
// told apart.
#define BOOST_TEST_MODULE private_file
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "daemon/config/private_file.hpp"
#include "shared/temp_dir.hpp"

namespace {

using kpanel::daemon::FileKind;
using kpanel::daemon::FileProblem;
using kpanel::daemon::OwnerAndMode;

using TempDir = kpanel::test::TempDir;

}  // namespace

BOOST_AUTO_TEST_CASE(a_private_file_passes) {
  const TempDir dir;
  const auto path = dir.write("key", "x", 0600);
  const auto opened = kpanel::daemon::open_no_follow(path, FileKind::regular);
  BOOST_TEST_REQUIRE(opened.has_value());
  BOOST_TEST(opened->fd.valid());
  BOOST_TEST(
      kpanel::daemon::owner_and_mode_issues(opened->info, path, OwnerAndMode{::geteuid()}).empty());
  BOOST_TEST(kpanel::daemon::lstat_no_follow(path, FileKind::regular).has_value());
  BOOST_TEST(kpanel::daemon::open_no_follow(dir.path(), FileKind::directory).has_value());
}

BOOST_AUTO_TEST_CASE(a_symlink_is_refused) {
  const TempDir dir;
  const auto target = dir.write("key", "x", 0600);
  const auto link = dir.path() / "link";
  std::filesystem::create_symlink(target, link);
  const auto opened = kpanel::daemon::open_no_follow(link, FileKind::regular);
  BOOST_TEST_REQUIRE(!opened.has_value());
  BOOST_TEST((opened.error().problem == FileProblem::symlink));
  BOOST_TEST(opened.error().path == link);
  const auto checked = kpanel::daemon::lstat_no_follow(link, FileKind::regular);
  BOOST_TEST_REQUIRE(!checked.has_value());
  BOOST_TEST((checked.error().problem == FileProblem::symlink));
  // A link to a directory where a directory belongs (Linux says ENOTDIR).
  const auto dir_link = dir.path() / "dir-link";
  std::filesystem::create_directory_symlink(dir.path(), dir_link);
  const auto opened_dir = kpanel::daemon::open_no_follow(dir_link, FileKind::directory);
  BOOST_TEST_REQUIRE(!opened_dir.has_value());
  BOOST_TEST((opened_dir.error().problem == FileProblem::symlink));
}

BOOST_AUTO_TEST_CASE(a_wrong_owner_is_named) {
  const TempDir dir;
  const auto path = dir.write("key", "x", 0600);
  const auto opened = kpanel::daemon::open_no_follow(path, FileKind::regular);
  BOOST_TEST_REQUIRE(opened.has_value());
  // Owned by us, but the rule trusts another uid only.
  const uid_t other = ::geteuid() + 1;
  const auto issues =
      kpanel::daemon::owner_and_mode_issues(opened->info, path, OwnerAndMode{other});
  BOOST_TEST_REQUIRE(issues.size() == 1U);
  BOOST_TEST((issues[0].problem == FileProblem::wrong_owner));
  BOOST_TEST(issues[0].info.st_uid == ::geteuid());
  // Root may be trusted as well: a root-owned file passes such a rule.
  struct stat root_owned = opened->info;
  root_owned.st_uid = 0;
  BOOST_TEST(
      kpanel::daemon::owner_and_mode_issues(root_owned, path, OwnerAndMode{other, true}).empty());
  BOOST_TEST(
      !kpanel::daemon::owner_and_mode_issues(root_owned, path, OwnerAndMode{other, false}).empty());
}

BOOST_AUTO_TEST_CASE(group_or_world_access_is_too_open) {
  const TempDir dir;
  for (const mode_t mode : {0640U, 0604U, 0660U, 0700U}) {
    const auto path = dir.write("key-" + std::to_string(mode), "x", mode);
    const auto info = kpanel::daemon::lstat_no_follow(path, FileKind::regular);
    BOOST_TEST_REQUIRE(info.has_value());
    const auto issues =
        kpanel::daemon::owner_and_mode_issues(*info, path, OwnerAndMode{::geteuid()});
    const bool private_mode = (mode & 077U) == 0;
    BOOST_TEST(issues.empty() == private_mode, "mode " << mode);
    if (!private_mode) {
      BOOST_TEST_REQUIRE(issues.size() == 1U);
      BOOST_TEST((issues[0].problem == FileProblem::too_open));
      BOOST_TEST((issues[0].info.st_mode & 07777U) == mode);
    }
  }
  // The config file's rule: readable by all, writable by its owner only.
  const OwnerAndMode config_rule{::geteuid(), true, S_IWGRP | S_IWOTH};
  const auto readable = dir.write("conf-644", "x", 0644);
  const auto writable = dir.write("conf-664", "x", 0664);
  BOOST_TEST(
      kpanel::daemon::owner_and_mode_issues(
          *kpanel::daemon::lstat_no_follow(readable, FileKind::regular), readable, config_rule)
          .empty());
  BOOST_TEST(
      kpanel::daemon::owner_and_mode_issues(
          *kpanel::daemon::lstat_no_follow(writable, FileKind::regular), writable, config_rule)
          .size() == 1U);
}

BOOST_AUTO_TEST_CASE(the_wrong_kind_of_file) {
  const TempDir dir;
  // A directory where a regular file belongs.
  const auto opened = kpanel::daemon::open_no_follow(dir.path(), FileKind::regular);
  BOOST_TEST_REQUIRE(!opened.has_value());
  BOOST_TEST((opened.error().problem == FileProblem::not_regular));
  // A FIFO: opened without blocking, then refused.
  const auto fifo = dir.path() / "fifo";
  BOOST_TEST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const auto opened_fifo = kpanel::daemon::open_no_follow(fifo, FileKind::regular);
  BOOST_TEST_REQUIRE(!opened_fifo.has_value());
  BOOST_TEST((opened_fifo.error().problem == FileProblem::not_regular));
  const auto fifo_stat = kpanel::daemon::lstat_no_follow(fifo, FileKind::regular);
  BOOST_TEST_REQUIRE(!fifo_stat.has_value());
  BOOST_TEST((fifo_stat.error().problem == FileProblem::not_regular));
  // A file where a directory belongs.
  const auto file = dir.write("plain", "x", 0600);
  const auto as_dir = kpanel::daemon::open_no_follow(file, FileKind::directory);
  BOOST_TEST_REQUIRE(!as_dir.has_value());
  BOOST_TEST((as_dir.error().problem == FileProblem::not_directory));
  // Nothing there.
  const auto missing = kpanel::daemon::open_no_follow(dir.path() / "none", FileKind::regular);
  BOOST_TEST_REQUIRE(!missing.has_value());
  BOOST_TEST((missing.error().problem == FileProblem::missing));
  BOOST_TEST(missing.error().error == ENOENT);
  const auto missing_stat = kpanel::daemon::lstat_no_follow(dir.path() / "none", FileKind::regular);
  BOOST_TEST_REQUIRE(!missing_stat.has_value());
  BOOST_TEST((missing_stat.error().problem == FileProblem::missing));
}
