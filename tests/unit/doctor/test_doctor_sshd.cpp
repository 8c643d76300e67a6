// The doctor's sshd_config reader: Include, first value wins, Match blocks,
// sshd -T.
#include "doctor_test_support.hpp"

// The shared helpers (doctor_test_support.hpp) by their short names.
using namespace kpanel::doctor_testing;  // NOLINT(google-build-using-namespace)

// ---- sshd -------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(sshd)

BOOST_AUTO_TEST_CASE(debian_config_with_the_drop_in_is_fine) {
  FakeRoot root;
  write_good_tree(root);
  const Report report = check_sshd_tree(root);
  BOOST_TEST(report.findings().empty());
}

BOOST_AUTO_TEST_CASE(first_value_wins_across_includes) {
  FakeRoot root;
  write_good_tree(root);
  // The main file's "KbdInteractiveAuthentication no" comes after the Include.
  Report report;
  auto config = doctor::load_sshd_config(root.tree(), report);
  BOOST_REQUIRE(config.has_value());
  const auto& kbd = config->global.at("kbdinteractiveauthentication");
  BOOST_TEST(kbd.value == "yes");
  BOOST_TEST(kbd.file == root.shown("/etc/ssh/sshd_config.d/kpanel-totp.conf"));
  BOOST_TEST(kbd.line == 2U);
  // Without the drop-in the "no" counts.
  root.remove("/etc/ssh/sshd_config.d/kpanel-totp.conf");
  const Report without = check_sshd_tree(root);
  const auto finding = the_finding(without, "codes cannot be asked");
  BOOST_TEST((finding.severity == Severity::error));
  BOOST_TEST(finding.file == root.shown("/etc/ssh/sshd_config"));
  BOOST_TEST(finding.line == 2U);
}

BOOST_AUTO_TEST_CASE(use_pam_no_is_an_error_and_enough) {
  FakeRoot root;
  root.write("/etc/ssh/sshd_config", "UsePAM no\nKbdInteractiveAuthentication no\n");
  const Report report = check_sshd_tree(root);
  BOOST_REQUIRE_EQUAL(report.findings().size(), 1U);
  const auto finding = the_finding(report, "UsePAM no at");
  BOOST_TEST(contains(finding.message, "set UsePAM yes"));
  BOOST_TEST(finding.line == 1U);
  // Not set at all: sshd's default is no.
  root.write("/etc/ssh/sshd_config", "KbdInteractiveAuthentication yes\n");
  the_finding(check_sshd_tree(root), "sshd's default");
}

BOOST_AUTO_TEST_CASE(challenge_response_is_the_same_option) {
  FakeRoot root;
  root.write("/etc/ssh/sshd_config",
             "UsePAM=yes\nChallengeResponseAuthentication no\nKbdInteractiveAuthentication yes\n"
             "AuthenticationMethods keyboard-interactive\n");
  the_finding(check_sshd_tree(root), "KbdInteractiveAuthentication no at");
}

BOOST_AUTO_TEST_CASE(any_method_with_password_authentication_warns_of_lockouts) {
  FakeRoot root;
  root.write("/etc/ssh/sshd_config", "UsePAM yes\nKbdInteractiveAuthentication yes\n");
  const Report report = check_sshd_tree(root);
  // What a key alone lets in is the login model's (an error, below).
  BOOST_TEST(report.findings().size() == 1U);
  const auto password = the_finding(report, "PasswordAuthentication yes");
  BOOST_TEST((password.severity == Severity::warning));
  BOOST_TEST(contains(password.message, "toward a lockout"));
  // Keys off and passwords off: nothing left but keyboard-interactive.
  root.write("/etc/ssh/sshd_config",
             "UsePAM yes\nKbdInteractiveAuthentication yes\nPubkeyAuthentication no\n"
             "PasswordAuthentication no\n");
  BOOST_TEST(check_sshd_tree(root).findings().empty());
}

BOOST_AUTO_TEST_CASE(method_lists_without_keyboard_interactive) {
  FakeRoot root;
  root.write("/etc/ssh/sshd_config",
             "UsePAM yes\n"
             "AuthenticationMethods publickey,keyboard-interactive:pam publickey "
             "publickey,password\n");
  const Report report = check_sshd_tree(root);
  BOOST_TEST(report.findings().size() == 1U);
  const auto password = the_finding(report, "list 'publickey,password'");
  BOOST_TEST((password.severity == Severity::warning));
  // The list 'publickey' alone lets a key in without the code: an error.
  write_good_tree(root);
  root.write("/etc/ssh/sshd_config.d/kpanel-totp.conf",
             "UsePAM yes\nKbdInteractiveAuthentication yes\n"
             "AuthenticationMethods publickey,keyboard-interactive:pam publickey\n");
  const auto skip = the_finding(check_logins(root), "list 'publickey' at");
  BOOST_TEST((skip.severity == Severity::error));
  BOOST_TEST(skip.check == "ssh");
  BOOST_TEST(contains(skip.message, "an enrolled user logs in over SSH with a key alone, no code"));
  BOOST_TEST(skip.line == 3U);
}

BOOST_AUTO_TEST_CASE(match_blocks_are_reported_for_what_they_change) {
  FakeRoot root;
  write_good_tree(root);
  root.write("/etc/ssh/sshd_config", kSshdConfig +
                                         "Match User backup\n  AuthenticationMethods publickey\n"
                                         "Match Address 10.0.0.0/8\n  PasswordAuthentication no\n");
  const Report report = check_logins(root);
  BOOST_REQUIRE_EQUAL(report.findings().size(), 1U);
  const auto finding = the_finding(report, "for connections matching 'Match User backup'");
  BOOST_TEST(contains(finding.message, "a key alone, no code"));
  BOOST_TEST(finding.line == 6U);
}

BOOST_AUTO_TEST_CASE(include_inside_a_match_and_relative_paths) {
  FakeRoot root;
  root.write("/etc/ssh/sshd_config",
             "UsePAM yes\nAuthenticationMethods keyboard-interactive\n"
             "Match Group ops\n  Include ops.conf\n");
  root.write("/etc/ssh/ops.conf", "AuthenticationMethods \"publickey\"\n");
  root.write("/etc/pam.d/common-auth", kCommonAuth);
  root.write("/etc/pam.d/sshd", kSshd);
  const Report report = check_logins(root);
  const auto finding = the_finding(report, "Match Group ops");
  BOOST_TEST(finding.file == root.shown("/etc/ssh/ops.conf"));
}

BOOST_AUTO_TEST_CASE(sshd_t_output_wins_over_the_files) {
  FakeRoot root;
  write_good_tree(root);
  Report report;
  auto config = doctor::load_sshd_config(root.tree(), report);
  BOOST_REQUIRE(config.has_value());
  doctor::apply_sshd_t(*config,
                       "usepam yes\nkbdinteractiveauthentication no\npasswordauthentication yes\n"
                       "authenticationmethods keyboard-interactive\nport 22\n");
  // Same as the files: keeps its line.
  BOOST_TEST(config->global.at("usepam").line == 1U);  // the drop-in's, read first
  BOOST_TEST(!config->global.at("usepam").from_sshd_t);
  // Different: sshd -T's value, no line.
  BOOST_TEST(config->global.at("kbdinteractiveauthentication").from_sshd_t);
  doctor::check_sshd(*config, report);
  const auto finding = the_finding(report, "codes cannot be asked");
  BOOST_TEST(contains(finding.message, "sshd -T"));
  BOOST_TEST(finding.line == 0U);
}

BOOST_AUTO_TEST_CASE(runs_the_real_sshd_t_when_it_can) {
  if (::geteuid() != 0 || ::access("/usr/sbin/sshd", X_OK) != 0 ||
      ::access("/etc/ssh/ssh_host_ed25519_key", R_OK) != 0) {
    BOOST_TEST_MESSAGE("needs root, /usr/sbin/sshd and host keys; skipped");
    return;
  }
  FakeRoot root;
  root.write("/sshd_config",
             "UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\n"
             "AuthenticationMethods publickey,keyboard-interactive\n");
  const auto dump = doctor::run_sshd_t("/usr/sbin/sshd", root.shown("/sshd_config"));
  BOOST_REQUIRE_MESSAGE(dump.has_value(), dump.error());
  BOOST_TEST(contains(*dump, "authenticationmethods publickey,keyboard-interactive"));
  BOOST_TEST(contains(*dump, "passwordauthentication no"));
  root.write("/bad_config", "NoSuchKeyword yes\n");
  BOOST_TEST(!doctor::run_sshd_t("/usr/sbin/sshd", root.shown("/bad_config")).has_value());
}

BOOST_AUTO_TEST_SUITE_END()
