// errno and file-mode text: one spelling for every message that shows them.
#define BOOST_TEST_MODULE common_os_text
#include <sys/stat.h>

#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <cstring>
#include <string>

#include "common/os_text.hpp"

using namespace kpanel::common;

BOOST_AUTO_TEST_CASE(errno_text_is_strerror) {
  BOOST_TEST(errno_text(ENOENT) == "No such file or directory");
  BOOST_TEST(errno_text(EACCES) == "Permission denied");
  BOOST_TEST(errno_text(ELOOP) == std::string(std::strerror(ELOOP)));
  BOOST_TEST(!errno_text(123456).empty());  // unknown numbers are still some text
}

BOOST_AUTO_TEST_CASE(octal_mode_is_four_digits_of_permission_bits) {
  BOOST_TEST(octal_mode(0) == "0000");
  BOOST_TEST(octal_mode(0600) == "0600");
  BOOST_TEST(octal_mode(0755) == "0755");
  BOOST_TEST(octal_mode(04755) == "4755");
  BOOST_TEST(octal_mode(07777) == "7777");
  // The file type is not part of it.
  BOOST_TEST(octal_mode(S_IFREG | 0640) == "0640");
  BOOST_TEST(octal_mode(S_IFDIR | 01777) == "1777");
  BOOST_TEST(octal_mode(S_IFSOCK | 0666) == "0666");
}
