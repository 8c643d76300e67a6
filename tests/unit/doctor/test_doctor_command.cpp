// kpanel-totp admin doctor end to end against a scripted daemon: output,
// JSON, exit codes.
#include <nlohmann/json.hpp>

#include "doctor_test_support.hpp"

// The shared helpers (doctor_test_support.hpp) by their short names.
using namespace kpanel::doctor_testing;  // NOLINT(google-build-using-namespace)

// ---- the command ------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(command)

protocol::StatusResult own_status() {
  protocol::StatusResult result;
  result.status.user = "root";
  return result;
}

protocol::AdminListResult users(bool bob_locked) {
  protocol::AdminListResult result;
  protocol::UserStatus alice;
  alice.user = "alice";
  alice.enrolled = true;
  result.users.push_back(alice);
  protocol::UserStatus bob;
  bob.user = "bob";
  bob.enrolled = true;
  if (bob_locked) {
    bob.locked_until = kNow + 600;
  }
  result.users.push_back(bob);
  return result;
}

// The doctor with a good tree; the socket is a missing path, so the socket
// file check stays quiet and the scripted daemon answers.
struct DoctorRun {
  FakeRoot root;
  FakeWorld world;
  DoctorRun() { write_good_tree(root); }
  int run(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{
        "--socket", root.shown("/run/none.sock"), "admin", "doctor", "--root", root.path.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return world.run(args);
  }
};

BOOST_AUTO_TEST_CASE(all_well_exits_0) {
  if (!running_as_root()) {
    return;
  }
  DoctorRun doctor_run;
  doctor_run.world.reply(own_status());
  doctor_run.world.reply(users(false));
  BOOST_TEST(doctor_run.run() == 0);
  const std::string out = doctor_run.world.out();
  BOOST_TEST(contains(out, "ok: kpanel-totpd answers at"));
  BOOST_TEST(contains(out, "2 users known to kpanel-totpd, none locked out"));
  BOOST_TEST(contains(out, "sshd asks for a code"));
  BOOST_TEST(out.ends_with("summary: no problems found\n"));
  BOOST_TEST(doctor_run.world.err().empty());
  BOOST_REQUIRE_EQUAL(doctor_run.world.requests.size(), 2U);
  BOOST_TEST(std::holds_alternative<protocol::StatusRequest>(doctor_run.world.requests[0]));
  BOOST_TEST(std::holds_alternative<protocol::AdminListRequest>(doctor_run.world.requests[1]));
  BOOST_TEST(doctor_run.world.options[0].socket_path == doctor_run.root.shown("/run/none.sock"));
}

BOOST_AUTO_TEST_CASE(json_all_well) {
  if (!running_as_root()) {
    return;
  }
  DoctorRun doctor_run;
  doctor_run.world.reply(own_status());
  doctor_run.world.reply(users(false));
  BOOST_TEST(doctor_run.run({"--json"}) == 0);
  BOOST_TEST(doctor_run.world.out() == "{\"ok\":true,\"findings\":[]}\n");
}

// A warning alone (nullok while users enroll) exits 0; --strict makes it 1.
BOOST_AUTO_TEST_CASE(nullok_is_a_warning_exit_0_and_1_with_strict) {
  if (!running_as_root()) {
    return;
  }
  DoctorRun doctor_run;
  doctor_run.root.write("/etc/pam.d/common-auth",
                        "auth [success=1 default=ignore] pam_unix.so nullok\n"
                        "auth requisite pam_deny.so\n"
                        "auth required pam_permit.so\n"
                        "auth required pam_kpanel_totp.so nullok\n");
  doctor_run.world.reply(own_status());
  doctor_run.world.reply(users(false));
  BOOST_TEST(doctor_run.run() == 0);
  BOOST_TEST(contains(doctor_run.world.out(), "summary: 0 errors, 1 warning"));
  DoctorRun strict_run;
  strict_run.root.write("/etc/pam.d/common-auth", doctor_run.root.read("/etc/pam.d/common-auth"));
  strict_run.world.reply(own_status());
  strict_run.world.reply(users(false));
  BOOST_TEST(strict_run.run({"--json", "--strict"}) == 1);
  const auto json = nlohmann::json::parse(strict_run.world.out());
  BOOST_TEST(json["ok"] == false);
  BOOST_REQUIRE_EQUAL(json["findings"].size(), 1U);
  const auto& finding = json["findings"][0];
  BOOST_TEST(finding["severity"] == "warning");
  BOOST_TEST(finding["check"] == "pam");
  BOOST_TEST(finding["file"] == strict_run.root.shown("/etc/pam.d/common-auth"));
  BOOST_TEST(finding["line"] == 4);
  BOOST_TEST(contains(finding["message"].get<std::string>(), "remove nullok"));
}

BOOST_AUTO_TEST_CASE(unreachable_daemon_alone_exits_3_with_config_problems_1) {
  if (!running_as_root()) {
    return;
  }
  DoctorRun doctor_run;  // no replies: unreachable
  BOOST_TEST(doctor_run.run() == 3);
  BOOST_TEST(contains(doctor_run.world.out(), "error: cannot reach kpanel-totpd at"));
  BOOST_TEST(contains(doctor_run.world.out(), "summary: 1 error, 0 warnings"));

  DoctorRun broken;
  broken.root.write("/etc/ssh/sshd_config", "UsePAM no\n");
  BOOST_TEST(broken.run() == 1);
  BOOST_TEST(contains(broken.world.out(), "error: UsePAM no at"));
}

BOOST_AUTO_TEST_CASE(lockouts_are_warnings_and_non_admins_skip_them) {
  if (!running_as_root()) {
    return;
  }
  DoctorRun doctor_run;
  doctor_run.world.reply(own_status());
  doctor_run.world.reply(users(true));
  doctor_run.world.reply(own_status());
  doctor_run.world.reply(users(true));
  BOOST_TEST(doctor_run.run() == 0);
  BOOST_TEST(contains(doctor_run.world.out(), "warning: 1 user is locked out (bob until"));
  BOOST_TEST(doctor_run.run({"--strict"}) == 1);

  DoctorRun user_run;
  user_run.world.reply(own_status());
  user_run.world.reply_status(protocol::Status::forbidden);
  BOOST_TEST(user_run.run() == 0);
  BOOST_TEST(contains(user_run.world.out(), "skipped: lockouts: only root or a member"));
}

BOOST_AUTO_TEST_CASE(sshd_without_the_module_is_a_warning_and_sshd_config_is_not_read) {
  if (!running_as_root()) {
    return;
  }
  DoctorRun doctor_run;
  doctor_run.root.write("/etc/pam.d/common-auth", "auth required pam_unix.so\n");
  doctor_run.root.write("/etc/ssh/sshd_config", "UsePAM no\n");
  doctor_run.world.reply(own_status());
  doctor_run.world.reply(users(false));
  BOOST_TEST(doctor_run.run() == 0);
  const std::string out = doctor_run.world.out();
  BOOST_TEST(contains(out, "warning: sshd logins do not ask for a code"));
  BOOST_TEST(!contains(out, "UsePAM"));
  BOOST_TEST(contains(out, "summary: 0 errors, 1 warning"));
}

BOOST_AUTO_TEST_CASE(usage_errors_exit_2) {
  FakeWorld world;
  BOOST_TEST(world.run({"admin", "doctor", "--root", "/nonexistent/dir"}) == 2);
  BOOST_TEST(contains(world.err(), "--root: /nonexistent/dir is not a directory"));
  FakeWorld with_user;
  BOOST_TEST(with_user.run({"--user", "bob", "admin", "doctor"}) == 2);
  BOOST_TEST(world.requests.empty());
}

BOOST_AUTO_TEST_SUITE_END()
