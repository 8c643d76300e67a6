// The command line: global flags before or after the command, every command
// and its options, and every kind of usage error (exit 2).
#define BOOST_TEST_MODULE cli_arguments
#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "cli/arguments.hpp"
#include "cli/commands.hpp"
#include "support/fake_environment.hpp"

namespace {

using kpanel::cli::command_table;
using kpanel::cli::Invocation;
using kpanel::cli::parse_arguments;
using kpanel::cli::UsageError;

std::expected<Invocation, UsageError> parse(const std::vector<std::string>& args) {
  return parse_arguments(args, command_table());
}

Invocation parse_ok(const std::vector<std::string>& args) {
  auto parsed = parse(args);
  BOOST_REQUIRE_MESSAGE(parsed.has_value(), "usage error: " << parsed.error().message);
  return std::move(*parsed);
}

std::string parse_error(const std::vector<std::string>& args) {
  auto parsed = parse(args);
  BOOST_REQUIRE_MESSAGE(!parsed.has_value(), "parsed, but should not have");
  return parsed.error().message;
}

std::string command_of(const Invocation& invocation) {
  BOOST_REQUIRE(invocation.line.command != nullptr);
  return std::string(invocation.line.command->name);
}

}  // namespace

BOOST_AUTO_TEST_CASE(defaults) {
  const auto invocation = parse_ok({"status"});
  BOOST_TEST(command_of(invocation) == "status");
  BOOST_TEST(invocation.global.socket_path == "/run/kpanel-totp/kpanel-totpd.sock");
  BOOST_TEST(invocation.global.user.empty());
  BOOST_TEST(!invocation.global.json);
}

BOOST_AUTO_TEST_CASE(global_flags_before_the_command) {
  const auto invocation =
      parse_ok({"--json", "--socket", "/tmp/s.sock", "--user", "bob", "status"});
  BOOST_TEST(command_of(invocation) == "status");
  BOOST_TEST(invocation.global.json);
  BOOST_TEST(invocation.global.socket_path == "/tmp/s.sock");
  BOOST_TEST(invocation.global.user == "bob");
}

BOOST_AUTO_TEST_CASE(global_flags_after_the_command) {
  const auto invocation = parse_ok({"status", "--socket=/tmp/s.sock", "--user=bob", "--json"});
  BOOST_TEST(command_of(invocation) == "status");
  BOOST_TEST(invocation.global.json);
  BOOST_TEST(invocation.global.socket_path == "/tmp/s.sock");
  BOOST_TEST(invocation.global.user == "bob");
}

BOOST_AUTO_TEST_CASE(global_flags_mixed_with_command_options) {
  const auto invocation =
      parse_ok({"--json", "enroll", "--begin", "--socket", "/s", "--png", "qr.png", "--user", "u"});
  BOOST_TEST(command_of(invocation) == "enroll");
  BOOST_TEST(invocation.line.has("begin"));
  BOOST_TEST(*invocation.line.value("png") == "qr.png");
  BOOST_TEST(invocation.global.socket_path == "/s");
  BOOST_TEST(invocation.global.user == "u");
}

BOOST_AUTO_TEST_CASE(every_command) {
  BOOST_TEST(command_of(parse_ok({"enroll"})) == "enroll");
  BOOST_TEST(command_of(parse_ok({"status"})) == "status");
  BOOST_TEST(command_of(parse_ok({"disable"})) == "disable");
  BOOST_TEST(command_of(parse_ok({"recovery-codes", "--regenerate"})) == "recovery-codes");
  BOOST_TEST(command_of(parse_ok({"admin", "list"})) == "admin list");
  const auto reset = parse_ok({"admin", "reset", "carol"});
  BOOST_TEST(command_of(reset) == "admin reset");
  BOOST_TEST(reset.line.positionals == std::vector<std::string>{"carol"});
  const auto unlock = parse_ok({"--json", "admin", "--socket", "/s", "unlock", "carol"});
  BOOST_TEST(command_of(unlock) == "admin unlock");
  BOOST_TEST(unlock.line.positionals == std::vector<std::string>{"carol"});
  BOOST_TEST(unlock.global.socket_path == "/s");
}

BOOST_AUTO_TEST_CASE(enroll_options) {
  const auto all = parse_ok({"enroll", "--png", "a.png", "--svg=b.svg", "--begin", "--replace"});
  BOOST_TEST(*all.line.value("png") == "a.png");
  BOOST_TEST(*all.line.value("svg") == "b.svg");
  BOOST_TEST(all.line.has("begin"));
  BOOST_TEST(all.line.has("replace"));
  BOOST_TEST(!all.line.has("confirm"));
  BOOST_TEST(*parse_ok({"enroll", "--confirm", "123456"}).line.value("confirm") == "123456");
  BOOST_TEST(*parse_ok({"enroll", "--confirm=123456"}).line.value("confirm") == "123456");
}

BOOST_AUTO_TEST_CASE(double_dash_ends_options) {
  const auto invocation = parse_ok({"admin", "reset", "--", "carol"});
  BOOST_TEST(invocation.line.positionals == std::vector<std::string>{"carol"});
}

BOOST_AUTO_TEST_CASE(help_and_version_win) {
  BOOST_TEST(parse_ok({"--help"}).help);
  BOOST_TEST(parse_ok({"-h"}).help);
  BOOST_TEST(parse_ok({"enroll", "--help"}).help);
  BOOST_TEST(parse_ok({"--version"}).version);
  BOOST_TEST(parse_ok({"bogus", "--version"}).version);
}

BOOST_AUTO_TEST_CASE(usage_errors) {
  BOOST_TEST(parse_error({}) == "no command given");
  BOOST_TEST(parse_error({"bogus"}) == "unknown command 'bogus'");
  BOOST_TEST(parse_error({"--bogus", "status"}) == "unknown option '--bogus'");
  BOOST_TEST(parse_error({"status", "--png", "x"}) == "status has no option '--png'");
  BOOST_TEST(parse_error({"status", "extra"}) == "unexpected argument 'extra'");
  BOOST_TEST(parse_error({"enroll", "--png"}) == "--png needs FILE");
  BOOST_TEST(parse_error({"enroll", "--png", "--json"}) == "--png needs FILE");
  BOOST_TEST(parse_error({"enroll", "--png="}) == "--png needs FILE");
  BOOST_TEST(parse_error({"enroll", "--begin=yes"}) == "--begin takes no value");
  BOOST_TEST(parse_error({"enroll", "--png", "a", "--png", "b"}) == "--png given twice");
  BOOST_TEST(parse_error({"--socket", "/a", "status", "--socket", "/b"}) == "--socket given twice");
  BOOST_TEST(parse_error({"--socket"}) == "--socket needs PATH");
  BOOST_TEST(parse_error({"--user", "status"}) == "no command given");  // "status" is the NAME
  BOOST_TEST(parse_error({"--json=1", "status"}) == "--json takes no value");
  BOOST_TEST(parse_error({"--user", "a:b", "status"}).starts_with("--user: "));
  BOOST_TEST(parse_error({"--user=", "status"}) == "--user needs NAME");
  BOOST_TEST(parse_error({"admin"}) ==
             "admin needs one of: list, reset USER, unlock USER, forget USER, doctor, "
             "import-google-authenticator USER..., backup FILE, stats");
  BOOST_TEST(parse_error({"admin", "bogus"}).starts_with("unknown command 'admin bogus'"));
  BOOST_TEST(parse_error({"admin", "reset"}) == "admin reset needs USER");
  BOOST_TEST(parse_error({"admin", "reset", "a", "b"}) == "unexpected argument 'b'");
  BOOST_TEST(parse_error({"-x"}) == "unknown option '-x'");
}

BOOST_AUTO_TEST_CASE(usage_error_names_the_command_for_its_usage_line) {
  auto parsed = parse({"enroll", "--bogus"});
  BOOST_REQUIRE(!parsed.has_value());
  BOOST_REQUIRE(parsed.error().command != nullptr);
  BOOST_TEST(parsed.error().command->name == "enroll");
}

BOOST_AUTO_TEST_CASE(usage_errors_exit_2_with_a_short_usage_block) {
  using kpanel::cli::testing::FakeWorld;
  using kpanel::cli::testing::lines_of;
  for (const std::vector<std::string>& args : {std::vector<std::string>{},
                                               {"bogus"},
                                               {"status", "--png", "x"},
                                               {"admin"},
                                               {"enroll", "--confirm", "1", "--begin"},
                                               {"recovery-codes"},
                                               {"--user", "bob", "admin", "list"},
                                               {"admin", "unlock", "a/b"},
                                               // a C1 control the codec would refuse to send
                                               {"admin", "unlock", "a\xc2\x9b"},
                                               {"--user", "\xff", "status"}}) {
    FakeWorld world;
    BOOST_TEST(world.run(args) == 2);
    BOOST_TEST(world.requests.empty());  // nothing reached the daemon
    BOOST_TEST(world.out().empty());
    const auto lines = lines_of(world.err());
    BOOST_REQUIRE(!lines.empty());
    BOOST_TEST(lines.front().starts_with("kpanel-totp: "));
    BOOST_TEST(lines.size() <= 4U);
    BOOST_TEST(world.err().find("usage: kpanel-totp") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(help_and_version_print_on_stdout) {
  using kpanel::cli::testing::FakeWorld;
  FakeWorld help;
  BOOST_TEST(help.run({"--help"}) == 0);
  for (const auto& command : command_table()) {
    BOOST_TEST(help.out().find(std::string(command.name)) != std::string::npos);
  }
  BOOST_TEST(help.out().find("admin doctor") != std::string::npos);
  FakeWorld version;
  BOOST_TEST(version.run({"--version"}) == 0);
  BOOST_TEST(version.out().starts_with("kpanel-totp "));
  BOOST_TEST(version.err().empty());
}

BOOST_AUTO_TEST_CASE(user_names_are_checked_like_the_protocol_does) {
  using kpanel::cli::check_user_name;
  BOOST_TEST(check_user_name("alice").has_value());
  BOOST_TEST(check_user_name("first.last-2_x").has_value());
  BOOST_TEST(!check_user_name("").has_value());
  BOOST_TEST(!check_user_name("a/b").has_value());
  BOOST_TEST(!check_user_name("a:b").has_value());
  BOOST_TEST(!check_user_name("a\nb").has_value());
  BOOST_TEST(!check_user_name(std::string(300, 'a')).has_value());
  // The codec also refuses C1 controls and text that is not UTF-8.
  BOOST_TEST(check_user_name("j\xc3\xb6rg").has_value());  // "jörg"
  BOOST_TEST(!check_user_name("a\xc2\x9b").has_value());   // U+009B, a CSI
  BOOST_TEST(!check_user_name("a\xc2").has_value());       // cut sequence
  BOOST_TEST(!check_user_name("\xc0\xaf").has_value());    // overlong '/'
  BOOST_TEST(!check_user_name("\xff").has_value());
}

// "USER...": any number of names, none included (the command wants names or --all).
BOOST_AUTO_TEST_CASE(import_takes_any_number_of_users) {
  const auto some = parse_ok({"admin", "import-google-authenticator", "alice", "bob", "--remove"});
  BOOST_TEST(command_of(some) == "admin import-google-authenticator");
  BOOST_TEST((some.line.positionals == std::vector<std::string>{"alice", "bob"}));
  BOOST_TEST(some.line.has("remove"));
  const auto all = parse_ok({"--json", "admin", "import-google-authenticator", "--all"});
  BOOST_TEST(all.line.positionals.empty());
  BOOST_TEST(all.line.has("all"));
  BOOST_TEST(parse_error({"admin", "import-google-authenticator", "--bogus"}).find("--bogus") !=
             std::string::npos);
}
