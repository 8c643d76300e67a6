// Each command against a scripted daemon: the request it sends, the prompts it
// reads (in the documented order), what it prints and the exit code.
#define BOOST_TEST_MODULE cli_commands
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>  // mkdtemp
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "shared/temp_dir.hpp"
#include "support/fake_environment.hpp"

namespace {

namespace protocol = kpanel::common::protocol;
using kpanel::cli::testing::FakeWorld;
using kpanel::cli::testing::kNow;
using kpanel::cli::testing::lines_of;
using kpanel::cli::testing::request_as;
using kpanel::common::SecureString;

const std::string kUri =
    "otpauth://totp/Kapsule:alice%40web01?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    "&issuer=Kapsule&algorithm=SHA1&digits=6&period=30";
const std::string kSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

protocol::EnrollBeginResult begun() {
  protocol::EnrollBeginResult result;
  result.uri = SecureString(kUri);
  result.secret_base32 = SecureString(kSecret);
  result.expires_at = kNow + 600;
  return result;
}

protocol::RecoveryCodesResult codes(const std::vector<std::string>& list = {"ABCD-EFGH",
                                                                            "JKLM-NPQR"}) {
  protocol::RecoveryCodesResult result;
  for (const auto& code : list) {
    result.codes.emplace_back(code);
  }
  return result;
}

protocol::StatusResult alice_status() {
  protocol::StatusResult result;
  result.status.user = "alice";
  result.status.enrolled = true;
  result.status.enrolled_at = kNow - 86400;
  result.status.recovery_codes_left = 10;
  return result;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// One line on stderr, prefixed, and nothing on stdout.
void check_one_line_error(const FakeWorld& world) {
  BOOST_TEST(world.out().empty());
  const auto lines = lines_of(world.err());
  BOOST_REQUIRE_EQUAL(lines.size(), 1U);
  BOOST_TEST(lines.front().starts_with("kpanel-totp: "));
}

using TempDir = kpanel::test::TempDir;

}  // namespace

BOOST_AUTO_TEST_SUITE(status)

BOOST_AUTO_TEST_CASE(asks_about_the_caller_through_the_given_socket) {
  FakeWorld world;
  world.reply(alice_status());
  BOOST_TEST(world.run({"status", "--socket", "/tmp/test.sock"}) == 0);
  BOOST_REQUIRE_EQUAL(world.requests.size(), 1U);
  BOOST_TEST(request_as<protocol::StatusRequest>(world.requests[0]).user.empty());
  BOOST_TEST(world.options[0].socket_path == "/tmp/test.sock");
  BOOST_TEST(world.options[0].timeout.count() == 15000);
  BOOST_TEST(contains(world.out(), "Enrolled:            yes, since 2026-11-27T19:27:28Z"));
  BOOST_TEST(world.err().empty());
}

BOOST_AUTO_TEST_CASE(json_for_another_user) {
  FakeWorld world;
  auto status = alice_status();
  status.status.user = "bob";
  world.reply(status);
  BOOST_TEST(world.run({"--json", "status", "--user", "bob"}) == 0);
  BOOST_TEST(request_as<protocol::StatusRequest>(world.requests[0]).user == "bob");
  BOOST_TEST(world.out() == R"({"user":"bob","enrolled":true,"enrolled_at":"2026-11-27T19:27:28Z",)"
                            R"("recovery_codes_left":10,"locked_until":null,)"
                            R"("clock_offset_seconds":null,"remembered":[]})"
                            "\n");
}

BOOST_AUTO_TEST_CASE(unreachable_daemon_exits_3) {
  FakeWorld world;  // no reply queued: unreachable
  BOOST_TEST(world.run({"status"}) == 3);
  check_one_line_error(world);
  BOOST_TEST(contains(world.err(), "sudo systemctl start kpanel-totpd.socket"));
}

// Without systemd (containers, chroots) systemctl cannot start anything.
BOOST_AUTO_TEST_CASE(unreachable_hint_without_systemd_names_the_ctl_script) {
  FakeWorld world;
  world.service_manager = kpanel::cli::ServiceManager::none;
  BOOST_TEST(world.run({"status"}) == 3);
  check_one_line_error(world);
  BOOST_TEST(contains(world.err(), "sudo kpanel-totpd-ctl start"));
  BOOST_TEST(!contains(world.err(), "systemctl"));
  FakeWorld store;
  store.service_manager = kpanel::cli::ServiceManager::none;
  store.reply_status(protocol::Status::store_unavailable);
  BOOST_TEST(store.run({"status"}) == 1);
  BOOST_TEST(contains(store.err(), "/var/log/kpanel-totpd.log"));
  BOOST_TEST(!contains(store.err(), "journalctl"));
}

BOOST_AUTO_TEST_CASE(timeout_exits_3) {
  FakeWorld world;
  world.reply(std::unexpected(kpanel::common::ClientError::timeout));
  BOOST_TEST(world.run({"status"}) == 3);
  check_one_line_error(world);
}

BOOST_AUTO_TEST_CASE(store_failure_exits_1_naming_the_store) {
  FakeWorld world;
  world.reply_status(protocol::Status::store_unavailable);
  BOOST_TEST(world.run({"status"}) == 1);
  check_one_line_error(world);
  BOOST_TEST(contains(world.err(), "state store"));
}

BOOST_AUTO_TEST_CASE(forbidden_for_another_user_exits_1) {
  FakeWorld world;
  world.reply_status(protocol::Status::forbidden);
  BOOST_TEST(world.run({"status", "--user", "root"}) == 1);
  check_one_line_error(world);
}

BOOST_AUTO_TEST_CASE(answer_of_the_wrong_type_is_refused) {
  FakeWorld world;
  world.reply(protocol::AdminListResult{});
  BOOST_TEST(world.run({"status"}) == 1);
  check_one_line_error(world);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(disable)

BOOST_AUTO_TEST_CASE(reads_password_then_code) {
  FakeWorld world;
  world.prompter.answers = {"hunter2 with spaces", "123456"};
  world.reply(alice_status());
  world.reply(protocol::EmptyResult{});
  BOOST_TEST(world.run({"disable"}) == 0);
  BOOST_REQUIRE_EQUAL(world.prompter.prompts.size(), 2U);
  BOOST_TEST(world.prompter.prompts[0].starts_with("Password"));
  BOOST_TEST(world.prompter.prompts[1].starts_with("Verification code"));
  BOOST_TEST(std::holds_alternative<protocol::StatusRequest>(world.requests.at(0)));
  const auto& request = request_as<protocol::DisableRequest>(world.requests.at(1));
  BOOST_TEST(request.password.view() == "hunter2 with spaces");
  BOOST_TEST(request.code.view() == "123456");
  BOOST_TEST(contains(world.out(), "off for alice"));
}

BOOST_AUTO_TEST_CASE(json_prints_an_empty_object) {
  FakeWorld world;
  world.prompter.answers = {"pw", "123456"};
  world.reply(alice_status());
  world.reply(protocol::EmptyResult{});
  BOOST_TEST(world.run({"disable", "--json"}) == 0);
  BOOST_TEST(world.out() == "{}\n");
}

BOOST_AUTO_TEST_CASE(missing_code_line_is_a_usage_error_and_sends_nothing) {
  FakeWorld world;
  world.prompter.answers = {"pw"};
  world.reply(alice_status());
  BOOST_TEST(world.run({"disable"}) == 2);
  BOOST_TEST(world.requests.size() == 1U);  // the status question only
  check_one_line_error(world);
}

BOOST_AUTO_TEST_CASE(wrong_password_exits_1) {
  FakeWorld world;
  world.prompter.answers = {"pw", "123456"};
  world.reply(alice_status());
  world.reply_status(protocol::Status::wrong_password);
  BOOST_TEST(world.run({"disable"}) == 1);
  check_one_line_error(world);
}

BOOST_AUTO_TEST_CASE(locked_says_when_and_who_unlocks) {
  FakeWorld world;
  world.prompter.answers = {"pw", "123456"};
  protocol::Response locked;
  locked.status = protocol::Status::locked;
  locked.locked_until = kNow + 600;
  world.reply(alice_status());
  world.reply(locked);
  BOOST_TEST(world.run({"disable"}) == 1);
  check_one_line_error(world);
  BOOST_TEST(world.err() ==
             "kpanel-totp: too many failed attempts; try again in 10 minutes (or ask an admin: "
             "kpanel-totp admin unlock alice)\n");
}

BOOST_AUTO_TEST_CASE(no_enrollment_is_refused_before_the_password_prompt) {
  FakeWorld world;
  world.prompter.answers = {"pw", "123456"};
  auto none = alice_status();
  none.status.enrolled = false;
  none.status.enrolled_at.reset();
  world.reply(none);
  BOOST_TEST(world.run({"disable"}) == 1);
  BOOST_TEST(world.prompter.prompts.empty());
  BOOST_TEST(world.requests.size() == 1U);
  check_one_line_error(world);
  BOOST_TEST(contains(world.err(), "alice has no two-factor enrollment; nothing to disable"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(enroll)

BOOST_AUTO_TEST_CASE(shows_qr_uri_and_key_then_confirms_and_prints_codes_once) {
  FakeWorld world;
  world.prompter.answers = {"123456"};
  world.reply(begun());
  world.reply(codes());
  BOOST_TEST(world.run({"enroll"}) == 0);
  BOOST_REQUIRE_EQUAL(world.requests.size(), 2U);
  const auto& begin = request_as<protocol::EnrollBeginRequest>(world.requests[0]);
  BOOST_TEST(!begin.replace);
  BOOST_TEST(begin.proof.empty());
  BOOST_TEST(!begin.want_qr_text);
  BOOST_TEST(request_as<protocol::EnrollConfirmRequest>(world.requests[1]).code.view() == "123456");

  const std::string out = world.out();
  BOOST_TEST(contains(out, "\u2588"));  // the QR code, in half blocks
  BOOST_TEST(!contains(out, "\x1B["));  // stdout is no terminal here: no colour codes
  BOOST_TEST(contains(out, kUri));
  BOOST_TEST(contains(out, "JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP"));
  BOOST_TEST(contains(out, "SHA1, 6 digits, every 30 seconds"));
  BOOST_TEST(contains(out, "store these now"));
  BOOST_TEST(contains(out, "Each works once"));
  BOOST_TEST(contains(out, "    ABCD-EFGH\n    JKLM-NPQR\n"));
  // The QR code comes before the question, the codes after the answer.
  BOOST_TEST(out.find(kUri) < out.find("ABCD-EFGH"));
  BOOST_TEST(world.err().empty());
}

BOOST_AUTO_TEST_CASE(colour_terminal_gets_explicit_colours) {
  FakeWorld world;
  world.out_colors = true;
  world.prompter.answers = {"123456"};
  world.reply(begun());
  world.reply(codes());
  BOOST_TEST(world.run({"enroll"}) == 0);
  BOOST_TEST(contains(world.out(), "\x1B[97;40m"));
}

BOOST_AUTO_TEST_CASE(replace_reads_the_current_code_first_and_keeps_recovery_codes) {
  FakeWorld world;
  world.prompter.answers = {"111111", "222222"};
  world.reply(begun());
  world.reply(codes({}));
  BOOST_TEST(world.run({"enroll", "--replace"}) == 0);
  const auto& begin = request_as<protocol::EnrollBeginRequest>(world.requests.at(0));
  BOOST_TEST(begin.replace);
  BOOST_TEST(begin.proof.view() == "111111");
  BOOST_TEST(request_as<protocol::EnrollConfirmRequest>(world.requests.at(1)).code.view() ==
             "222222");
  BOOST_TEST(contains(world.out(), "recovery codes are unchanged"));
}

BOOST_AUTO_TEST_CASE(replace_with_begin_reads_only_the_current_code) {
  FakeWorld world;
  world.prompter.answers = {"ABCD-EFGH"};
  world.reply(begun());
  BOOST_TEST(world.run({"enroll", "--replace", "--begin"}) == 0);
  BOOST_REQUIRE_EQUAL(world.requests.size(), 1U);
  BOOST_TEST(request_as<protocol::EnrollBeginRequest>(world.requests[0]).proof.view() ==
             "ABCD-EFGH");
  BOOST_TEST(world.prompter.prompts.size() == 1U);
}

BOOST_AUTO_TEST_CASE(replace_without_proof_sends_nothing) {
  FakeWorld world;
  BOOST_TEST(world.run({"enroll", "--replace"}) == 2);
  BOOST_TEST(world.requests.empty());
}

BOOST_AUTO_TEST_CASE(begin_json_prints_uri_and_secret_only) {
  FakeWorld world;
  world.reply(begun());
  BOOST_TEST(world.run({"enroll", "--begin", "--json"}) == 0);
  BOOST_TEST(world.requests.size() == 1U);
  BOOST_TEST(world.out() == R"({"uri":")" + kUri + R"(","secret":")" + kSecret +
                                R"(","expires_at":"2026-11-28T19:37:28Z"})"
                                "\n");
  BOOST_TEST(world.prompter.prompts.empty());
}

BOOST_AUTO_TEST_CASE(begin_shows_how_to_finish) {
  FakeWorld world;
  world.reply(begun());
  BOOST_TEST(world.run({"enroll", "--begin"}) == 0);
  BOOST_TEST(contains(world.out(), kUri));
  BOOST_TEST(contains(world.out(), "kpanel-totp enroll --confirm CODE"));
  BOOST_TEST(world.prompter.prompts.empty());
}

BOOST_AUTO_TEST_CASE(begin_writes_private_images) {
  const TempDir dir;
  const auto png = dir.path() / "qr.png";
  const auto svg = dir.path() / "qr.svg";
  FakeWorld world;
  world.reply(begun());
  BOOST_TEST(world.run({"enroll", "--begin", "--png", png.string(), "--svg", svg.string(),
                        "--json"}) == 0);
  for (const auto& file : {png, svg}) {
    struct stat st {};
    BOOST_REQUIRE_EQUAL(::stat(file.c_str(), &st), 0);
    BOOST_TEST((st.st_mode & 07777) == 0600U);
    BOOST_TEST(st.st_size > 0);
  }
  BOOST_TEST(nlohmann::json::parse(world.out())["uri"] == kUri);
}

// A new file in a directory that does not exist: refused before the daemon
// is asked, so no enrollment is started (or replaced) for nothing.
BOOST_AUTO_TEST_CASE(unwritable_image_exits_1_before_asking) {
  FakeWorld world;
  world.prompter.answers = {"123456"};
  world.reply(begun());
  BOOST_TEST(world.run({"enroll", "--png", "/nonexistent/dir/qr.png"}) == 1);
  BOOST_TEST(world.requests.empty());
  BOOST_TEST(world.prompter.prompts.empty());
  check_one_line_error(world);
  BOOST_TEST(contains(world.err(), "/nonexistent/dir/qr.png"));
  BOOST_TEST(contains(world.err(), "nothing was started"));
}

// In a sticky world-writable directory another user pre-created the file root
// would write bob's QR code (his secret) into: refused, before anything starts.
BOOST_AUTO_TEST_CASE(image_file_of_another_user_is_refused_before_asking) {
  BOOST_REQUIRE_MESSAGE(::geteuid() == 0, "needs root to give a file to another uid");
  const TempDir dir;
  BOOST_REQUIRE_EQUAL(::chmod(dir.path().c_str(), 01777), 0);
  for (const std::string kind : {"--png", "--svg"}) {
    const auto file = dir.path() / ("planted" + kind.substr(1));
    {
      std::ofstream out(file);
      out << "attacker's";
    }
    BOOST_REQUIRE_EQUAL(::chmod(file.c_str(), 0666), 0);
    BOOST_REQUIRE_EQUAL(::chown(file.c_str(), 65534, 65534), 0);
    FakeWorld world;
    world.reply(begun());
    BOOST_TEST(world.run({"--user", "bob", "enroll", "--begin", kind, file.string()}) == 1);
    BOOST_TEST(world.requests.empty());
    check_one_line_error(world);
    BOOST_TEST(contains(world.err(), "owned by another user"));
    std::ifstream in(file);
    BOOST_TEST(std::string(std::istreambuf_iterator<char>(in), {}) == "attacker's");
  }
}

BOOST_AUTO_TEST_CASE(image_path_that_is_a_symlink_is_refused_before_asking) {
  const TempDir dir;
  const auto target = dir.path() / "target";
  {
    std::ofstream out(target);
    out << "keep";
  }
  const auto link = dir.path() / "qr.png";
  std::filesystem::create_symlink(target, link);
  FakeWorld world;
  world.reply(begun());
  BOOST_TEST(world.run({"enroll", "--begin", "--png", link.string()}) == 1);
  BOOST_TEST(world.requests.empty());
  check_one_line_error(world);
  BOOST_TEST(contains(world.err(), "symbolic link"));
  std::ifstream in(target);
  BOOST_TEST(std::string(std::istreambuf_iterator<char>(in), {}) == "keep");
}

// The caller's own file is replaced (a new 0600 file renamed over it).
BOOST_AUTO_TEST_CASE(own_image_file_is_replaced) {
  const TempDir dir;
  const auto file = dir.path() / "qr.svg";
  {
    std::ofstream out(file);
    out << "old";
  }
  BOOST_REQUIRE_EQUAL(::chmod(file.c_str(), 0644), 0);
  FakeWorld world;
  world.reply(begun());
  BOOST_TEST(world.run({"enroll", "--begin", "--svg", file.string()}) == 0);
  struct stat st {};
  BOOST_REQUIRE_EQUAL(::stat(file.c_str(), &st), 0);
  BOOST_TEST((st.st_mode & 07777) == 0600U);
  std::ifstream in(file);
  BOOST_TEST(std::string(std::istreambuf_iterator<char>(in), {}).starts_with("<?xml"));
}

BOOST_AUTO_TEST_CASE(plain_enroll_json_keeps_stdout_for_the_codes) {
  FakeWorld world;
  world.prompter.answers = {"123456"};
  world.reply(begun());
  world.reply(codes());
  BOOST_TEST(world.run({"--json", "enroll"}) == 0);
  BOOST_TEST(world.out() == R"({"recovery_codes":["ABCD-EFGH","JKLM-NPQR"]})"
                            "\n");
  BOOST_TEST(contains(world.err(), kUri));  // what to scan went to stderr
}

BOOST_AUTO_TEST_CASE(confirm_prints_codes) {
  FakeWorld world;
  world.reply(codes());
  BOOST_TEST(world.run({"enroll", "--confirm", "123456", "--json"}) == 0);
  BOOST_TEST(request_as<protocol::EnrollConfirmRequest>(world.requests.at(0)).code.view() ==
             "123456");
  BOOST_TEST(world.out() == R"({"recovery_codes":["ABCD-EFGH","JKLM-NPQR"]})"
                            "\n");
  BOOST_TEST(world.prompter.prompts.empty());
}

BOOST_AUTO_TEST_CASE(confirm_with_nothing_pending_exits_1) {
  FakeWorld world;
  world.reply_status(protocol::Status::no_pending_enrollment);
  BOOST_TEST(world.run({"enroll", "--confirm", "123456"}) == 1);
  check_one_line_error(world);
}

BOOST_AUTO_TEST_CASE(confirm_does_not_combine) {
  for (const auto& other : std::vector<std::vector<std::string>>{
           {"--begin"}, {"--replace"}, {"--png", "x.png"}, {"--svg", "x.svg"}}) {
    FakeWorld world;
    std::vector<std::string> args{"enroll", "--confirm", "123456"};
    args.insert(args.end(), other.begin(), other.end());
    BOOST_TEST(world.run(args) == 2);
    BOOST_TEST(world.requests.empty());
  }
}

BOOST_AUTO_TEST_CASE(already_enrolled_points_to_replace) {
  FakeWorld world;
  world.reply_status(protocol::Status::already_enrolled);
  BOOST_TEST(world.run({"enroll"}) == 1);
  check_one_line_error(world);
  BOOST_TEST(contains(world.err(), "enroll --replace"));
}

BOOST_AUTO_TEST_CASE(wrong_code_from_a_script_is_not_retried) {
  FakeWorld world;
  world.prompter.answers = {"000000", "123456"};
  world.reply(begun());
  world.reply_status(protocol::Status::wrong_code);
  BOOST_TEST(world.run({"enroll"}) == 1);
  BOOST_TEST(world.requests.size() == 2U);
  BOOST_TEST(contains(world.err(), "wrong code"));
}

BOOST_AUTO_TEST_CASE(wrong_code_typed_on_a_terminal_may_be_retyped) {
  FakeWorld world;
  world.prompter.is_interactive = true;
  world.prompter.answers = {"000000", "123456"};
  world.reply(begun());
  world.reply_status(protocol::Status::wrong_code);
  world.reply(codes());
  BOOST_TEST(world.run({"enroll"}) == 0);
  BOOST_TEST(world.requests.size() == 3U);
  BOOST_TEST(contains(world.out(), "ABCD-EFGH"));
  BOOST_TEST(contains(world.err(), "try again"));
}

// Replayed: the step was already used; on a terminal the next code may be typed.
BOOST_AUTO_TEST_CASE(replayed_code_typed_on_a_terminal_may_be_retyped) {
  FakeWorld world;
  world.prompter.is_interactive = true;
  world.prompter.answers = {"123456", "654321"};
  world.reply(begun());
  world.reply_status(protocol::Status::replayed);
  world.reply(codes());
  BOOST_TEST(world.run({"enroll"}) == 0);
  BOOST_TEST(world.requests.size() == 3U);
  BOOST_TEST(contains(world.err(), "That code was already used; wait for the next one."));
}

BOOST_AUTO_TEST_CASE(replayed_or_busy_from_a_script_exits_1_with_one_line) {
  for (const auto status :
       {protocol::Status::replayed, protocol::Status::busy, protocol::Status::no_such_user}) {
    BOOST_TEST_CONTEXT(protocol::to_string(status)) {
      FakeWorld world;
      world.reply_status(status);
      BOOST_TEST(world.run({"enroll", "--confirm", "123456"}) == 1);
      check_one_line_error(world);
    }
  }
  FakeWorld world;
  world.reply_status(protocol::Status::replayed);
  BOOST_TEST(world.run({"enroll", "--confirm", "123456"}) == 1);
  BOOST_TEST(world.err() == "kpanel-totp: That code was already used; wait for the next one.\n");
}

// Five digits: the daemon did not count it; on a terminal it may be retyped.
BOOST_AUTO_TEST_CASE(a_code_of_the_wrong_shape_typed_on_a_terminal_may_be_retyped) {
  FakeWorld world;
  world.prompter.is_interactive = true;
  world.prompter.answers = {"12345", "123456"};
  world.reply(begun());
  world.reply_status(protocol::Status::malformed_code);
  world.reply(codes());
  BOOST_TEST(world.run({"enroll"}) == 0);
  BOOST_TEST(world.requests.size() == 3U);
  BOOST_TEST(contains(world.err(), "not a code"));
}

BOOST_AUTO_TEST_CASE(retyping_stops_after_three_attempts) {
  FakeWorld world;
  world.prompter.is_interactive = true;
  world.prompter.answers = {"1", "2", "3", "4"};
  world.reply(begun());
  for (int i = 0; i < 3; ++i) {
    world.reply_status(protocol::Status::wrong_code);
  }
  BOOST_TEST(world.run({"enroll"}) == 1);
  BOOST_TEST(world.requests.size() == 4U);  // begin + 3 confirms
}

BOOST_AUTO_TEST_CASE(overlong_code_is_refused_locally) {
  FakeWorld world;
  BOOST_TEST(world.run({"enroll", "--confirm", std::string(100, '1')}) == 2);
  BOOST_TEST(world.requests.empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(recovery_codes)

BOOST_AUTO_TEST_CASE(regenerate_reads_a_code_and_prints_new_codes) {
  FakeWorld world;
  world.prompter.answers = {"123456"};
  world.reply(codes());
  BOOST_TEST(world.run({"recovery-codes", "--regenerate", "--json"}) == 0);
  BOOST_TEST(
      request_as<protocol::RegenerateRecoveryCodesRequest>(world.requests.at(0)).code.view() ==
      "123456");
  BOOST_TEST(world.out() == R"({"recovery_codes":["ABCD-EFGH","JKLM-NPQR"]})"
                            "\n");
}

BOOST_AUTO_TEST_CASE(human_output_warns_the_old_codes_are_gone) {
  FakeWorld world;
  world.prompter.answers = {"123456"};
  world.reply(codes());
  BOOST_TEST(world.run({"recovery-codes", "--regenerate"}) == 0);
  BOOST_TEST(contains(world.out(), "old ones no longer work"));
  BOOST_TEST(contains(world.out(), "store these now"));
}

BOOST_AUTO_TEST_CASE(wrong_code_exits_1) {
  FakeWorld world;
  world.prompter.answers = {"000000"};
  protocol::Response wrong;
  wrong.status = protocol::Status::wrong_code;
  wrong.failures_left = 3;
  world.reply(wrong);
  BOOST_TEST(world.run({"recovery-codes", "--regenerate"}) == 1);
  check_one_line_error(world);
  BOOST_TEST(contains(world.err(), "3 attempts left"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(admin)

BOOST_AUTO_TEST_CASE(list_json) {
  FakeWorld world;
  protocol::AdminListResult list;
  list.users.push_back(alice_status().status);
  world.reply(list);
  BOOST_TEST(world.run({"admin", "list", "--json"}) == 0);
  BOOST_TEST(std::holds_alternative<protocol::AdminListRequest>(world.requests.at(0)));
  const auto json = nlohmann::json::parse(world.out());
  BOOST_TEST(json["users"].size() == 1U);
  BOOST_TEST(json["users"][0]["user"] == "alice");
}

BOOST_AUTO_TEST_CASE(list_human) {
  FakeWorld world;
  protocol::AdminListResult list;
  list.users.push_back(alice_status().status);
  world.reply(list);
  BOOST_TEST(world.run({"admin", "list"}) == 0);
  BOOST_TEST(lines_of(world.out()).size() == 2U);
}

// Records the daemon cannot read are named (JSON) and explained on stderr,
// with what clears them; the list itself was delivered, so exit 0.
BOOST_AUTO_TEST_CASE(list_names_unreadable_records) {
  protocol::AdminListResult list;
  list.users.push_back(alice_status().status);
  list.unreadable = {"bob", "carol"};
  FakeWorld json_world;
  json_world.reply(list);
  BOOST_TEST(json_world.run({"admin", "list", "--json"}) == 0);
  const auto json = nlohmann::json::parse(json_world.out());
  BOOST_TEST(json["users"].size() == 1U);
  BOOST_TEST(json["unreadable"] == nlohmann::json::parse(R"(["bob","carol"])"));
  FakeWorld human;
  human.reply(list);
  BOOST_TEST(human.run({"admin", "list"}) == 0);
  BOOST_TEST(lines_of(human.out()).size() == 2U);  // the table as before
  const auto err = lines_of(human.err());
  BOOST_TEST_REQUIRE(err.size() == 2U);
  BOOST_TEST(contains(err[0], "bob cannot be read"));
  BOOST_TEST(contains(err[0], "wrong key_file"));
  BOOST_TEST(contains(err[0], "kpanel-totp admin reset bob"));
  BOOST_TEST(contains(err[1], "kpanel-totp admin reset carol"));
  FakeWorld clean;
  clean.reply(protocol::AdminListResult{.users = {alice_status().status}});
  BOOST_TEST(clean.run({"admin", "list", "--json"}) == 0);
  BOOST_TEST(!contains(clean.out(), "unreadable"));
  BOOST_TEST(clean.err().empty());
}

BOOST_AUTO_TEST_CASE(reset_and_unlock_name_their_user) {
  FakeWorld world;
  world.reply(protocol::EmptyResult{});
  world.reply(alice_status());
  world.reply(protocol::EmptyResult{});
  BOOST_TEST(world.run({"admin", "reset", "carol"}) == 0);
  BOOST_TEST(world.run({"--json", "admin", "unlock", "dave"}) == 0);
  BOOST_TEST(request_as<protocol::AdminResetRequest>(world.requests.at(0)).user == "carol");
  BOOST_TEST(request_as<protocol::StatusRequest>(world.requests.at(1)).user == "dave");
  BOOST_TEST(request_as<protocol::AdminUnlockRequest>(world.requests.at(2)).user == "dave");
  BOOST_TEST(contains(world.out(), "carol"));
  BOOST_TEST(world.out().ends_with("{}\n"));
}

BOOST_AUTO_TEST_CASE(forget_ends_ones_own_or_a_named_users_remembered_logins) {
  FakeWorld world;
  world.reply(protocol::EmptyResult{});
  world.reply(protocol::EmptyResult{});
  world.reply(protocol::EmptyResult{});
  BOOST_TEST(world.run({"forget"}) == 0);
  BOOST_TEST(world.run({"--json", "admin", "forget", "carol"}) == 0);
  BOOST_TEST(world.run({"--user", "dave", "forget"}) == 0);
  BOOST_TEST(request_as<protocol::ForgetRequest>(world.requests.at(0)).user.empty());
  BOOST_TEST(request_as<protocol::ForgetRequest>(world.requests.at(1)).user == "carol");
  BOOST_TEST(request_as<protocol::ForgetRequest>(world.requests.at(2)).user == "dave");
  BOOST_TEST(contains(world.out(), "Ended the remembered logins of"));
  BOOST_TEST(contains(world.out(), "{}\n"));
  FakeWorld refused;
  refused.reply_status(protocol::Status::forbidden);
  BOOST_TEST(refused.run({"admin", "forget", "carol"}) == 1);
  check_one_line_error(refused);
  FakeWorld usage;
  BOOST_TEST(usage.run({"admin", "forget"}) == 2);
  BOOST_TEST(usage.requests.empty());
}

BOOST_AUTO_TEST_CASE(unknown_user_and_forbidden_exit_1) {
  FakeWorld world;
  world.reply_status(protocol::Status::no_such_user);
  BOOST_TEST(world.run({"admin", "reset", "nobody-here"}) == 1);
  BOOST_TEST(contains(world.err(), "nobody-here"));
  FakeWorld other;
  other.reply_status(protocol::Status::forbidden);
  BOOST_TEST(other.run({"admin", "list"}) == 1);
  check_one_line_error(other);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(messages)

BOOST_AUTO_TEST_CASE(unlock_of_a_user_who_is_not_locked_says_so) {
  FakeWorld world;
  auto bob = alice_status();
  bob.status.user = "bob";
  world.reply(bob);
  world.reply(protocol::EmptyResult{});
  BOOST_TEST(world.run({"admin", "unlock", "bob"}) == 0);
  BOOST_TEST(world.requests.size() == 2U);
  BOOST_TEST(contains(world.out(), "bob is not locked; nothing to unlock"));
  BOOST_TEST(!contains(world.out(), "Cleared the lockout"));
}

BOOST_AUTO_TEST_CASE(unlock_of_a_locked_user_says_it_cleared_the_lockout) {
  FakeWorld world;
  auto bob = alice_status();
  bob.status.user = "bob";
  bob.status.locked_until = kNow + 300;
  world.reply(bob);
  world.reply(protocol::EmptyResult{});
  BOOST_TEST(world.run({"admin", "unlock", "bob"}) == 0);
  BOOST_TEST(contains(world.out(), "Cleared the lockout of bob"));
}

BOOST_AUTO_TEST_CASE(unlock_of_a_name_nss_forgot_still_asks_the_daemon) {
  FakeWorld world;
  world.reply_status(protocol::Status::no_such_user);
  world.reply(protocol::EmptyResult{});
  BOOST_TEST(world.run({"admin", "unlock", "gone"}) == 0);
  BOOST_TEST(world.requests.size() == 2U);
  BOOST_TEST(request_as<protocol::AdminUnlockRequest>(world.requests.at(1)).user == "gone");
}

BOOST_AUTO_TEST_CASE(reset_of_a_user_with_no_enrollment_says_so) {
  FakeWorld world;
  world.reply_status(protocol::Status::not_enrolled);
  BOOST_TEST(world.run({"admin", "reset", "bob"}) == 1);
  check_one_line_error(world);
  BOOST_TEST(contains(world.err(), "bob has no enrollment"));
  BOOST_TEST(contains(world.err(), "nothing to reset"));
  BOOST_TEST(!contains(world.err(), "set one up"));
}

BOOST_AUTO_TEST_CASE(begin_for_another_user_ends_with_a_confirm_for_that_user) {
  FakeWorld world;
  world.reply(begun());
  BOOST_TEST(world.run({"--user", "ben", "enroll", "--begin"}) == 0);
  BOOST_TEST(contains(world.out(), "Finish with: kpanel-totp --user ben enroll --confirm CODE\n"));
}

BOOST_AUTO_TEST_CASE(suggestions_for_another_user_keep_the_user) {
  FakeWorld world;
  world.reply_status(protocol::Status::already_enrolled);
  BOOST_TEST(world.run({"--user", "ben", "enroll"}) == 1);
  BOOST_TEST(contains(world.err(), "kpanel-totp --user ben enroll --replace"));
  FakeWorld status;
  auto pending = alice_status();
  pending.status.user = "ben";
  pending.status.enrolled = false;
  pending.status.enrollment_pending = true;
  status.reply(pending);
  BOOST_TEST(status.run({"status", "--user", "ben"}) == 0);
  BOOST_TEST(contains(status.out(), "(kpanel-totp --user ben enroll --confirm CODE)"));
  BOOST_TEST(contains(status.out(), "Set up a code app with: kpanel-totp --user ben enroll\n"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(json_errors)

// One object on stdout, the same line on stderr, the same exit code.
void check_json_error(const FakeWorld& world, const std::string& reason) {
  const auto lines = lines_of(world.out());
  BOOST_REQUIRE_EQUAL(lines.size(), 1U);
  const auto json = nlohmann::json::parse(lines.front());
  BOOST_TEST(json.size() == 2U);
  BOOST_TEST(json["error"] == reason);
  const auto err = lines_of(world.err());
  BOOST_REQUIRE(!err.empty());
  BOOST_TEST(err.front() == "kpanel-totp: " + json["message"].get<std::string>());
}

BOOST_AUTO_TEST_CASE(refusals_from_the_daemon) {
  for (const auto status : {protocol::Status::wrong_code, protocol::Status::locked,
                            protocol::Status::store_unavailable, protocol::Status::forbidden,
                            protocol::Status::no_pending_enrollment, protocol::Status::replayed}) {
    BOOST_TEST_CONTEXT(protocol::to_string(status)) {
      FakeWorld world;
      world.reply_status(status);
      BOOST_TEST(world.run({"--json", "enroll", "--confirm", "123456"}) == 1);
      check_json_error(world, std::string(protocol::to_string(status)));
    }
  }
}

BOOST_AUTO_TEST_CASE(unreachable_exits_3_with_an_object) {
  FakeWorld world;
  BOOST_TEST(world.run({"status", "--json"}) == 3);
  check_json_error(world, "unreachable");
  FakeWorld slow;
  slow.reply(std::unexpected(kpanel::common::ClientError::timeout));
  BOOST_TEST(slow.run({"--json", "status"}) == 3);
  check_json_error(slow, "timeout");
}

BOOST_AUTO_TEST_CASE(usage_errors_exit_2_with_an_object) {
  FakeWorld unknown;
  BOOST_TEST(unknown.run({"--json", "frobnicate"}) == 2);
  check_json_error(unknown, "usage");
  FakeWorld missing;
  BOOST_TEST(missing.run({"recovery-codes", "--json"}) == 2);
  check_json_error(missing, "usage");
  FakeWorld no_input;
  BOOST_TEST(no_input.run({"--json", "recovery-codes", "--regenerate"}) == 2);
  check_json_error(no_input, "no_input");
  FakeWorld bad_option;
  BOOST_TEST(bad_option.run({"--json", "status", "--bogus"}) == 2);
  check_json_error(bad_option, "usage");
}

BOOST_AUTO_TEST_CASE(tool_side_refusals) {
  FakeWorld world;
  auto none = alice_status();
  none.status.enrolled = false;
  world.reply(none);
  BOOST_TEST(world.run({"--json", "disable"}) == 1);
  check_json_error(world, "not_enrolled");
  FakeWorld image;
  BOOST_TEST(image.run({"--json", "enroll", "--begin", "--png", "/nonexistent-dir/qr.png"}) == 1);
  check_json_error(image, "file_error");
}

BOOST_AUTO_TEST_CASE(without_json_stdout_stays_empty) {
  FakeWorld world;
  world.reply_status(protocol::Status::wrong_code);
  BOOST_TEST(world.run({"enroll", "--confirm", "123456"}) == 1);
  check_one_line_error(world);
}

BOOST_AUTO_TEST_SUITE_END()
