// The built kpanel-totp (KPANEL_TOTP_BINARY) as a script sees it: exit codes,
// one-line errors on stderr, nothing on stdout when it fails.
#define BOOST_TEST_MODULE cli_binary
#include <sys/wait.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>  // mkdtemp, system
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

struct Outcome {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string slurp(const std::filesystem::path& file) {
  std::ifstream in(file);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs the binary with `args` (single-quoted for the shell) and stdin from `input`.
Outcome run(const std::string& args, const std::string& input = "/dev/null") {
  const char* binary = std::getenv("KPANEL_TOTP_BINARY");  // NOLINT(concurrency-mt-unsafe)
  BOOST_REQUIRE_MESSAGE(binary != nullptr, "KPANEL_TOTP_BINARY is not set (run through ctest)");
  std::string dir = (std::filesystem::temp_directory_path() / "kpanel-bin-XXXXXX").string();
  BOOST_REQUIRE(::mkdtemp(dir.data()) != nullptr);
  const std::filesystem::path out = std::filesystem::path(dir) / "out";
  const std::filesystem::path err = std::filesystem::path(dir) / "err";
  // Appended piece by piece: g++ 12 -O3 warns (-Wrestrict) on "'" + std::string.
  std::string command;
  command.append("'").append(binary).append("' ").append(args).append(" <'").append(input);
  command.append("' >'").append(out.string()).append("' 2>'").append(err.string()).append("'");
  const int status =
      std::system(command.c_str());  // NOLINT(cert-env33-c,concurrency-mt-unsafe): test harness
  Outcome outcome;
  BOOST_REQUIRE(WIFEXITED(status));
  outcome.exit_code = WEXITSTATUS(status);
  outcome.out = slurp(out);
  outcome.err = slurp(err);
  std::filesystem::remove_all(dir);
  return outcome;
}

void check_one_line(const std::string& err) {
  BOOST_TEST(err.starts_with("kpanel-totp: "));
  BOOST_TEST(err.ends_with("\n"));
  BOOST_TEST(err.find('\n') == err.size() - 1);
}

}  // namespace

BOOST_AUTO_TEST_CASE(missing_daemon_exits_3_with_one_line_saying_how_to_start_it) {
  const auto outcome = run("--socket /nonexistent/sock status");
  BOOST_TEST(outcome.exit_code == 3);
  BOOST_TEST(outcome.out.empty());
  check_one_line(outcome.err);
  BOOST_TEST(outcome.err.find("/nonexistent/sock") != std::string::npos);
  // The command that works on this host: systemd's when it was booted with it.
  const bool systemd = std::filesystem::is_directory("/run/systemd/system");
  BOOST_TEST(outcome.err.find(systemd ? "sudo systemctl start kpanel-totpd.socket"
                                      : "sudo kpanel-totpd-ctl start") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(json_with_flags_after_the_command_too) {
  const auto outcome = run("status --json --socket /nonexistent/sock");
  BOOST_TEST(outcome.exit_code == 3);
  BOOST_TEST(outcome.out.starts_with(R"({"error":"unreachable","message":"cannot reach )"));
  BOOST_TEST(outcome.out.find('\n') == outcome.out.size() - 1);
  check_one_line(outcome.err);
}

BOOST_AUTO_TEST_CASE(every_command_reaches_for_the_daemon) {
  // With answers on stdin where a command asks, each one gets as far as the socket.
  const std::filesystem::path answers =
      std::filesystem::temp_directory_path() / "kpanel-bin-answers";
  {
    std::ofstream out(answers);
    out << "password\n123456\n654321\n";
  }
  for (const std::string command : {"status", "enroll", "enroll --begin", "enroll --confirm 123456",
                                    "enroll --replace", "disable", "recovery-codes --regenerate",
                                    "admin list", "admin reset bob", "admin unlock bob"}) {
    BOOST_TEST_INFO("kpanel-totp " << command);
    const auto outcome = run("--socket /nonexistent/sock " + command, answers.string());
    BOOST_TEST(outcome.exit_code == 3);
    check_one_line(outcome.err);
  }
  std::filesystem::remove(answers);
}

BOOST_AUTO_TEST_CASE(prompts_without_answers_on_stdin_are_usage_errors) {
  const auto outcome = run("--socket /nonexistent/sock recovery-codes --regenerate");  // /dev/null
  BOOST_TEST(outcome.exit_code == 2);
  check_one_line(outcome.err);
}

BOOST_AUTO_TEST_CASE(usage_error_exits_2) {
  const auto outcome = run("--bogus status");
  BOOST_TEST(outcome.exit_code == 2);
  BOOST_TEST(outcome.out.empty());
  BOOST_TEST(outcome.err.starts_with("kpanel-totp: unknown option '--bogus'\n"));
  BOOST_TEST(run("admin bogus").exit_code == 2);
}

BOOST_AUTO_TEST_CASE(version_and_help) {
  const auto version = run("--version");
  BOOST_TEST(version.exit_code == 0);
  BOOST_TEST(version.out.starts_with("kpanel-totp "));
  const auto help = run("--help");
  BOOST_TEST(help.exit_code == 0);
  BOOST_TEST(help.out.find("recovery-codes --regenerate") != std::string::npos);
  BOOST_TEST(help.err.empty());
}
