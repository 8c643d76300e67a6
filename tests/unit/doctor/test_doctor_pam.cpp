// The doctor's PAM side: the control and line parsers, and the stack checks
// (what can skip the module, what lets a wrong code through, options).
#include "doctor_test_support.hpp"

// The shared helpers (doctor_test_support.hpp) by their short names.
using namespace kpanel::doctor_testing;  // NOLINT(google-build-using-namespace)

// ---- parsers --------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(pam_control)

BOOST_AUTO_TEST_CASE(keywords_mean_their_bracket_forms) {
  const auto required = doctor::parse_control("required");
  BOOST_TEST(required.error.empty());
  BOOST_TEST((required.of("success").kind == ActionKind::ok));
  BOOST_TEST((required.of("auth_err").kind == ActionKind::bad));
  BOOST_TEST((required.of("ignore").kind == ActionKind::ignore));
  BOOST_TEST((doctor::parse_control("Requisite").of("auth_err").kind == ActionKind::die));
  BOOST_TEST((doctor::parse_control("sufficient").of("success").kind == ActionKind::done));
  BOOST_TEST((doctor::parse_control("sufficient").of("auth_err").kind == ActionKind::ignore));
  BOOST_TEST((doctor::parse_control("optional").of("auth_err").kind == ActionKind::ignore));
}

BOOST_AUTO_TEST_CASE(brackets_with_jumps_default_and_fallback) {
  const auto control = doctor::parse_control("[success=2 new_authtok_reqd=done default=ignore]");
  BOOST_TEST(control.error.empty());
  BOOST_TEST((control.of("success").kind == ActionKind::jump));
  BOOST_TEST(control.of("success").jump == 2U);
  BOOST_TEST((control.of("new_authtok_reqd").kind == ActionKind::done));
  BOOST_TEST((control.of("auth_err").kind == ActionKind::ignore));
  // No default: libpam treats every value not named as bad.
  BOOST_TEST((doctor::parse_control("[success=ok]").of("auth_err").kind == ActionKind::bad));
}

BOOST_AUTO_TEST_CASE(bad_controls_are_errors) {
  BOOST_TEST(!doctor::parse_control("requird").error.empty());
  BOOST_TEST(!doctor::parse_control("[success=maybe]").error.empty());
  BOOST_TEST(!doctor::parse_control("[sucess=ok]").error.empty());
  BOOST_TEST(!doctor::parse_control("[success=0]").error.empty());
  BOOST_TEST(!doctor::parse_control("[success]").error.empty());
}

BOOST_AUTO_TEST_CASE(line_tokens_keep_brackets_whole) {
  const auto tokens = doctor::split_pam_line(
      "auth [success=1 default=ignore]  pam_kpanel_totp.so [prompt=Code: ] nullok");
  BOOST_REQUIRE_EQUAL(tokens.size(), 5U);
  BOOST_TEST(tokens[1] == "[success=1 default=ignore]");
  BOOST_TEST(tokens[3] == "[prompt=Code: ]");
  BOOST_TEST(tokens[4] == "nullok");
}

BOOST_AUTO_TEST_SUITE_END()

// ---- PAM stacks -----------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(pam_stacks)

BOOST_AUTO_TEST_CASE(debian_common_auth_with_the_profile_is_fine) {
  FakeRoot root;
  write_good_tree(root);
  const Report report = check_service(root, "sshd");
  BOOST_TEST(report.findings().empty());
  BOOST_REQUIRE_EQUAL(report.entries().size(), 1U);
  BOOST_TEST(contains(report.entries()[0].finding.message, "sshd asks for a code"));
  BOOST_TEST(contains(report.entries()[0].finding.message, "common-auth:5"));
}

BOOST_AUTO_TEST_CASE(the_pam_auth_update_profile_line_only_warns_about_nullok) {
  FakeRoot root;
  write_good_tree(root);
  // What config/pam-configs/kpanel-totp puts into common-auth.
  root.write("/etc/pam.d/common-auth",
             "auth\t[success=1 default=ignore]\tpam_unix.so nullok\n"
             "auth\trequisite\t\t\tpam_deny.so\n"
             "auth\trequired\t\t\tpam_permit.so\n"
             "auth\t[success=ok ignore=ignore default=die]\tpam_kpanel_totp.so nullok\n");
  const Report report = check_service(root, "sshd");
  BOOST_REQUIRE_EQUAL(report.findings().size(), 1U);
  the_finding(report, "remove nullok once everyone is enrolled");
}

BOOST_AUTO_TEST_CASE(module_missing_from_the_stack_is_reported_by_the_return_value) {
  FakeRoot root;
  root.write("/etc/pam.d/sshd", "auth required pam_unix.so\n");
  Report report;
  auto stack = doctor::load_auth_stack(root.tree(), "sshd", report);
  BOOST_REQUIRE(stack.has_value());
  BOOST_TEST(!doctor::check_pam_stack(root.tree(), *stack, {}, report));
  BOOST_TEST(report.entries().empty());
  BOOST_TEST(!doctor::load_auth_stack(root.tree(), "login", report).has_value());
}

BOOST_AUTO_TEST_CASE(sufficient_password_module_before_the_module_lets_a_password_log_in) {
  FakeRoot root;
  root.write("/etc/pam.d/common-auth",
             "auth sufficient pam_unix.so nullok\n"
             "auth requisite pam_deny.so\n");
  root.write("/etc/pam.d/sshd", "@include common-auth\nauth required pam_kpanel_totp.so\n");
  const Report report = check_service(root, "sshd");
  const auto finding = the_finding(report, "lets a password alone log in");
  BOOST_TEST((finding.severity == Severity::error));
  BOOST_TEST(finding.check == "pam");
  BOOST_TEST(finding.file == root.shown("/etc/pam.d/common-auth"));
  BOOST_TEST(finding.line == 1U);
  BOOST_TEST(contains(finding.message,
                      "pam_unix.so sufficient at " + root.shown("/etc/pam.d/common-auth") + ":1"));
  BOOST_TEST(contains(finding.message, root.shown("/etc/pam.d/sshd") + ":2"));
  BOOST_TEST(report.findings().size() == 1U);
}

BOOST_AUTO_TEST_CASE(success_done_before_the_module_skips_it) {
  FakeRoot root;
  root.write("/etc/pam.d/sshd",
             "auth [success=done default=ignore] pam_unix.so\n"
             "auth required pam_kpanel_totp.so\n");
  const auto finding = the_finding(check_service(root, "sshd"), "lets a password alone log in");
  BOOST_TEST(contains(finding.message, "[success=done default=ignore]"));
}

BOOST_AUTO_TEST_CASE(a_jump_over_the_module_skips_it_a_shorter_one_does_not) {
  FakeRoot root;
  root.write("/etc/pam.d/sshd",
             "auth [success=2 default=ignore] pam_unix.so\n"
             "auth requisite pam_deny.so\n"
             "auth required pam_kpanel_totp.so\n"
             "auth required pam_permit.so\n");
  const auto finding = the_finding(check_service(root, "sshd"), "jumps over pam_kpanel_totp.so");
  BOOST_TEST(finding.line == 1U);
  BOOST_TEST(contains(finding.message, "success=2"));

  root.write("/etc/pam.d/sshd",
             "auth [success=1 default=ignore] pam_unix.so\n"
             "auth requisite pam_deny.so\n"
             "auth required pam_kpanel_totp.so\n"
             "auth required pam_permit.so\n");
  BOOST_TEST(check_service(root, "sshd").findings().empty());
}

BOOST_AUTO_TEST_CASE(other_modules_that_skip_get_the_exempt_group_hint) {
  FakeRoot root;
  root.write("/etc/pam.d/sshd",
             "auth required pam_unix.so\n"
             "auth [success=1 default=ignore] pam_succeed_if.so user ingroup nototp\n"
             "auth required pam_kpanel_totp.so\n");
  const auto finding = the_finding(check_service(root, "sshd"), "pam_succeed_if.so");
  BOOST_TEST(contains(finding.message, "skip the code"));
  BOOST_TEST(contains(finding.message, "exempt_group"));
}

BOOST_AUTO_TEST_CASE(pam_rootok_in_su_is_not_a_way_around) {
  FakeRoot root;
  root.write("/etc/pam.d/common-auth", kCommonAuth);
  root.write("/etc/pam.d/su", "auth sufficient pam_rootok.so\n@include common-auth\n");
  BOOST_TEST(check_service(root, "su").findings().empty());
}

BOOST_AUTO_TEST_CASE(sufficient_inside_a_substack_ends_only_the_substack) {
  FakeRoot root;
  root.write("/etc/pam.d/password-auth",
             "auth sufficient pam_unix.so\nauth requisite pam_deny.so\n");
  root.write("/etc/pam.d/sshd",
             "auth substack password-auth\n"
             "auth required pam_kpanel_totp.so\n");
  BOOST_TEST(check_service(root, "sshd").findings().empty());
  // Included instead, the same line ends the whole stack.
  root.write("/etc/pam.d/sshd",
             "auth include password-auth\n"
             "auth required pam_kpanel_totp.so\n");
  the_finding(check_service(root, "sshd"), "lets a password alone log in");
}

BOOST_AUTO_TEST_CASE(a_skipper_before_a_substack_that_holds_the_module) {
  FakeRoot root;
  root.write("/etc/pam.d/totp", "auth required pam_kpanel_totp.so\n");
  root.write("/etc/pam.d/sshd",
             "auth sufficient pam_unix.so\n"
             "auth substack totp\n");
  const auto finding = the_finding(check_service(root, "sshd"), "lets a password alone log in");
  BOOST_TEST(finding.file == root.shown("/etc/pam.d/sshd"));
}

BOOST_AUTO_TEST_CASE(optional_or_sufficient_module_lets_a_wrong_code_through) {
  FakeRoot root;
  root.write("/etc/pam.d/sshd",
             "auth required pam_unix.so\n"
             "auth optional pam_kpanel_totp.so\n");
  auto finding = the_finding(check_service(root, "sshd"), "a wrong code would not fail the login");
  BOOST_TEST((finding.severity == Severity::error));
  BOOST_TEST(contains(finding.message, "is optional at"));
  BOOST_TEST(finding.line == 2U);

  root.write("/etc/pam.d/sshd",
             "auth required pam_unix.so\n"
             "auth sufficient pam_kpanel_totp.so\n");
  the_finding(check_service(root, "sshd"), "a wrong code would not fail the login");

  root.write("/etc/pam.d/sshd",
             "auth required pam_unix.so\n"
             "auth [success=ok auth_err=ignore default=bad] pam_kpanel_totp.so\n");
  finding = the_finding(check_service(root, "sshd"), "a wrong code would not fail the login");
  BOOST_TEST(contains(finding.message, "auth_err=ignore"));

  root.write("/etc/pam.d/sshd",
             "auth required pam_unix.so\n"
             "auth [success=ok default=die] pam_kpanel_totp.so\n");
  BOOST_TEST(check_service(root, "sshd").findings().empty());
}

BOOST_AUTO_TEST_CASE(nullok_and_unavailable_ignore_are_warnings) {
  FakeRoot root;
  root.write("/etc/pam.d/sshd",
             "auth required pam_unix.so\n"
             "auth required pam_kpanel_totp.so nullok unavailable=ignore\n");
  const Report report = check_service(root, "sshd");
  BOOST_TEST(report.findings().size() == 2U);
  const auto nullok = the_finding(report, "users without enrollment log in without a code");
  BOOST_TEST((nullok.severity == Severity::warning));
  BOOST_TEST(contains(nullok.message, "remove nullok once everyone is enrolled"));
  BOOST_TEST(nullok.line == 2U);
  const auto ignore = the_finding(report, "unavailable=ignore at");
  BOOST_TEST((ignore.severity == Severity::warning));
}

BOOST_AUTO_TEST_CASE(remember_says_whether_it_skips_anything) {
  FakeRoot root;
  root.write("/etc/pam.d/sshd",
             "auth required pam_unix.so\n"
             "auth required pam_kpanel_totp.so remember\n");
  // remember_seconds 0 (the default): the option opens nothing.
  Report report = check_service(root, "sshd");
  BOOST_TEST(report.findings().empty());
  const auto said = [&report](const std::string& part) {
    return std::ranges::any_of(report.entries(), [&part](const Report::Entry& entry) {
      return entry.kind == Report::Kind::ok && contains(entry.finding.message, part);
    });
  };
  BOOST_TEST(said("sshd:2 skips nothing: remember_seconds is 0 in "));

  doctor::DaemonSettings daemon = daemon_settings();
  daemon.remember_seconds = 3600;
  report = check_service(root, "sshd", daemon);
  const auto finding = the_finding(report, "remember at");
  BOOST_TEST((finding.severity == Severity::warning));
  BOOST_TEST(contains(finding.message, "for 3600 s (remember_seconds)"));
  BOOST_TEST(finding.line == 2U);

  // A window set in the daemon but no stack with the option: nothing to say.
  root.write("/etc/pam.d/sshd",
             "auth required pam_unix.so\n"
             "auth required pam_kpanel_totp.so\n");
  BOOST_TEST(check_service(root, "sshd", daemon).findings().empty());
}

BOOST_AUTO_TEST_CASE(the_daemon_config_gives_remember_seconds) {
  BOOST_TEST(doctor::parse_daemon_config("remember_seconds = 900\n").remember_seconds == 900);
  BOOST_TEST(doctor::parse_daemon_config("").remember_seconds == 0);
}

BOOST_AUTO_TEST_CASE(unknown_or_bad_options_refuse_every_login) {
  FakeRoot root;
  root.write("/etc/pam.d/sshd",
             "auth required pam_unix.so\n"
             "auth required pam_kpanel_totp.so nulok timeout=1O [prompt=Code please: ]\n");
  const Report report = check_service(root, "sshd");
  const auto errors = findings_of(report, Severity::error);
  BOOST_REQUIRE_EQUAL(errors.size(), 2U);
  BOOST_TEST(contains(errors[0].message, "'nulok'"));
  BOOST_TEST(contains(errors[0].message, "unknown option"));
  BOOST_TEST(contains(errors[0].message, "refuses every login"));
  BOOST_TEST(contains(errors[1].message, "'timeout=1O'"));
}

BOOST_AUTO_TEST_CASE(socket_option_must_match_the_daemon) {
  FakeRoot root;
  root.write("/etc/pam.d/sshd",
             "auth required pam_unix.so\n"
             "auth required pam_kpanel_totp.so socket=/run/other.sock\n");
  const auto finding =
      the_finding(check_service(root, "sshd"), "asks the daemon at /run/other.sock");
  BOOST_TEST((finding.severity == Severity::error));
  doctor::DaemonSettings daemon = daemon_settings("/run/other.sock");
  BOOST_TEST(check_service(root, "sshd", daemon).findings().empty());
  // Daemon config unreadable: nothing to compare with.
  daemon = doctor::DaemonSettings{};
  BOOST_TEST(check_service(root, "sshd", daemon).findings().empty());
}

BOOST_AUTO_TEST_CASE(module_alone_in_the_stack_refuses_those_it_lets_through) {
  FakeRoot root;
  // config/pam.d/sshd-publickey-and-code.example's shape: only the module.
  root.write("/etc/pam.d/sshd", "auth required pam_kpanel_totp.so nullok\n");
  const auto finding = the_finding(check_service(root, "sshd"), "is the only module");
  BOOST_TEST((finding.severity == Severity::error));
  BOOST_TEST(contains(finding.message, "pam_permit.so"));
  // pam_permit after it fixes it.
  root.write("/etc/pam.d/sshd",
             "auth required pam_kpanel_totp.so nullok\nauth required pam_permit.so\n");
  BOOST_TEST(findings_of(check_service(root, "sshd"), Severity::error).empty());
  // Without nullok (and no grace period) the module never returns PAM_IGNORE.
  root.write("/etc/pam.d/sshd", "auth required pam_kpanel_totp.so\n");
  BOOST_TEST(check_service(root, "sshd").findings().empty());
  // ... unless the daemon has an enforce_after date.
  const doctor::DaemonSettings daemon =
      daemon_settings({}, "2030-01-01", doctor::Enforcement::grace);
  the_finding(check_service(root, "sshd", daemon), "enforce_after grace period");
  // Once the date has passed nobody is let through without a code.
  BOOST_TEST(
      check_service(root, "sshd", daemon_settings({}, "2020-01-01", doctor::Enforcement::enforced))
          .findings()
          .empty());
}

BOOST_AUTO_TEST_CASE(module_not_installed) {
  FakeRoot root;
  root.remove("/lib/x86_64-linux-gnu/security/pam_kpanel_totp.so");
  root.write("/etc/pam.d/sshd", "auth required pam_unix.so\nauth required pam_kpanel_totp.so\n");
  the_finding(check_service(root, "sshd"), "is not installed in the PAM module directory");
  root.write("/etc/pam.d/sshd", "auth required pam_unix.so\n-auth required pam_kpanel_totp.so\n");
  the_finding(check_service(root, "sshd"), "makes PAM skip the line silently");
  // Installed under /usr/lib (merged /usr) or named by absolute path: fine.
  root.write("/usr/lib/x86_64-linux-gnu/security/pam_kpanel_totp.so", "");
  root.write("/etc/pam.d/sshd", "auth required pam_unix.so\nauth required pam_kpanel_totp.so\n");
  BOOST_TEST(check_service(root, "sshd").findings().empty());
  root.write("/opt/pam_kpanel_totp.so", "");
  root.write("/etc/pam.d/sshd",
             "auth required pam_unix.so\nauth required /opt/pam_kpanel_totp.so\n");
  BOOST_TEST(check_service(root, "sshd").findings().empty());
}

BOOST_AUTO_TEST_CASE(dash_auth_is_a_warning_when_installed) {
  FakeRoot root;
  root.write("/etc/pam.d/sshd", "auth required pam_unix.so\n-auth required pam_kpanel_totp.so\n");
  const auto finding = the_finding(check_service(root, "sshd"), "'-auth'");
  BOOST_TEST((finding.severity == Severity::warning));
}

BOOST_AUTO_TEST_CASE(missing_include_and_bad_control_are_errors) {
  FakeRoot root;
  root.write("/etc/pam.d/sshd",
             "@include common-auth\n"
             "auth requird pam_unix.so\n"
             "auth required pam_kpanel_totp.so\n");
  const Report report = check_service(root, "sshd");
  const auto include = the_finding(report, "does not exist");
  BOOST_TEST(include.file == root.shown("/etc/pam.d/common-auth"));
  BOOST_TEST(contains(include.message, root.shown("/etc/pam.d/sshd") + ":1"));
  const auto control = the_finding(report, "control 'requird'");
  BOOST_TEST(control.line == 2U);
}

BOOST_AUTO_TEST_CASE(include_loops_end) {
  FakeRoot root;
  root.write("/etc/pam.d/sshd", "@include sshd\nauth required pam_kpanel_totp.so\n");
  Report report;
  auto stack = doctor::load_auth_stack(root.tree(), "sshd", report);
  BOOST_REQUIRE(stack.has_value());
  the_finding(report, "nest deeper than");
}

BOOST_AUTO_TEST_CASE(comments_continuations_and_other_types) {
  FakeRoot root;
  root.write("/etc/pam.d/sshd",
             "# auth sufficient pam_permit.so\n"
             "account sufficient pam_permit.so\n"
             "auth required pam_unix.so # sufficient\n"
             "auth \\\n  required pam_kpanel_totp.so \\\n  debug\n"
             "AUTH required pam_permit.so\n");
  Report report;
  auto stack = doctor::load_auth_stack(root.tree(), "sshd", report);
  BOOST_REQUIRE(stack.has_value());
  BOOST_REQUIRE_EQUAL(stack->auth.size(), 3U);
  BOOST_TEST(stack->auth[1].rule.line == 4U);
  BOOST_TEST(stack->auth[1].rule.args == std::vector<std::string>{"debug"});
  BOOST_TEST(doctor::check_pam_stack(root.tree(), *stack, {}, report));
  BOOST_TEST(report.findings().empty());
}

BOOST_AUTO_TEST_CASE(twice_in_one_stack_is_a_warning) {
  FakeRoot root;
  root.write("/etc/pam.d/common-auth", kCommonAuth);
  root.write("/etc/pam.d/sshd", "@include common-auth\nauth required pam_kpanel_totp.so\n");
  const auto finding = the_finding(check_service(root, "sshd"), "twice");
  BOOST_TEST((finding.severity == Severity::warning));
}

// A pam_google_authenticator line left next to ours after the switch.
BOOST_AUTO_TEST_CASE(a_google_authenticator_line_next_to_ours_is_flagged) {
  FakeRoot root;
  write_good_tree(root);
  // With nullok, after ours: users asked twice, no way around, no lockout.
  root.write("/etc/pam.d/sshd",
             "@include common-auth\nauth required pam_google_authenticator.so nullok\n");
  Report report = check_service(root, "sshd");
  BOOST_REQUIRE_EQUAL(report.findings().size(), 1U);
  auto finding = the_finding(report, "pam_google_authenticator.so required at");
  BOOST_TEST((finding.severity == Severity::warning));
  BOOST_TEST(contains(finding.message, "asked for two codes"));
  BOOST_TEST(contains(finding.message, "import-google-authenticator"));
  BOOST_TEST(finding.line == 2U);

  // Without nullok: everyone without a file is refused.
  root.write("/etc/pam.d/sshd",
             "@include common-auth\nauth required pam_google_authenticator.so\n");
  report = check_service(root, "sshd");
  finding = the_finding(report, "pam_google_authenticator.so");
  BOOST_TEST((finding.severity == Severity::error));
  BOOST_TEST(contains(finding.message, "refuses everyone who has no ~/.google_authenticator"));

  // sufficient before ours: its code alone logs in.
  root.write("/etc/pam.d/sshd",
             "auth sufficient pam_google_authenticator.so nullok\n@include common-auth\n");
  report = check_service(root, "sshd");
  BOOST_REQUIRE_EQUAL(report.findings().size(), 1U);  // once, not by two checks
  finding = the_finding(report, "pam_google_authenticator.so sufficient at");
  BOOST_TEST((finding.severity == Severity::error));
  BOOST_TEST(contains(finding.message, "sshd:1"));
  BOOST_TEST(contains(finding.message, "ends the auth stack before pam_kpanel_totp.so"));
  BOOST_TEST(contains(finding.message, "scratch codes) alone is enough here"));
  BOOST_TEST(contains(finding.message, "import-google-authenticator"));

  // A stack without ours (before the switch) is not this check's business.
  root.write("/etc/pam.d/common-auth", "auth required pam_unix.so\n");
  root.write("/etc/pam.d/sshd",
             "@include common-auth\nauth required pam_google_authenticator.so\n");
  report = check_service(root, "sshd");
  BOOST_TEST(report.findings().empty());
}

BOOST_AUTO_TEST_SUITE_END()
