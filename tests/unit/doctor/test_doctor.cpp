// kpanel-totp admin doctor on fake /etc trees: the PAM control and line
// parsers, the stack checks (what can skip the module, what lets a wrong code
// through, options), the sshd_config reader (Include, first value wins,
// Match), the key and socket file checks, and the command end to end against
// a scripted daemon (output, JSON, exit codes).
#define BOOST_TEST_MODULE cli_doctor
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdlib>  // mkdtemp
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "doctor/doctor.hpp"
#include "doctor/doctor_model.hpp"
#include "doctor/doctor_pam.hpp"
#include "doctor/doctor_sshd.hpp"
#include "support/fake_environment.hpp"

namespace {

namespace doctor = kpanel::cli::doctor;
namespace protocol = kpanel::common::protocol;
using doctor::ActionKind;
using doctor::Report;
using doctor::Severity;
using kpanel::cli::testing::FakeWorld;
using kpanel::cli::testing::kNow;

// Files made by the test belong to its user; the doctor accepts only root (or
// kpanel-totp) as the owner of the key and the socket. Checks that need a
// clean tree therefore need root, as CI runs them.
bool as_root() { return ::geteuid() == 0; }

// For the tests that need root: false (and a note) otherwise.
bool running_as_root() {
  if (!as_root()) {
    BOOST_TEST_MESSAGE("skipped: needs root (files owned by root)");
  }
  return as_root();
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A fake root: write("/etc/pam.d/sshd", ...) lands under it.
struct FakeRoot {
  std::filesystem::path path;
  FakeRoot() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "kpanel-doctor-XXXXXX").string();
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
    // What every good tree has: the module installed and a key.
    write("/lib/x86_64-linux-gnu/security/pam_kpanel_totp.so", "");
    write("/etc/kpanel-totp/state.key", std::string(32, 'k'), 0600);
  }
  ~FakeRoot() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  FakeRoot(const FakeRoot&) = delete;
  FakeRoot& operator=(const FakeRoot&) = delete;

  [[nodiscard]] std::filesystem::path real(const std::string& logical) const {
    return path / std::filesystem::path(logical).relative_path();
  }
  [[nodiscard]] std::string shown(const std::string& logical) const {
    return real(logical).string();
  }
  void write(const std::string& logical, const std::string& text, mode_t mode = 0644) const {
    const auto file = real(logical);
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file, std::ios::trunc) << text;
    BOOST_REQUIRE(::chmod(file.c_str(), mode) == 0);
  }
  void remove(const std::string& logical) const { std::filesystem::remove(real(logical)); }
  [[nodiscard]] std::string read(const std::string& logical) const {
    std::ifstream in(real(logical));
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  [[nodiscard]] doctor::Tree tree() const { return doctor::Tree(path); }
};

// Debian 12's common-auth with the pam-auth-update profile enabled: the
// module in the "Additional" block, after pam_permit.
const std::string kCommonAuth =
    "# here are the per-package modules (the \"Primary\" block)\n"
    "auth\t[success=1 default=ignore]\tpam_unix.so nullok\n"
    "auth\trequisite\t\t\tpam_deny.so\n"
    "auth\trequired\t\t\tpam_permit.so\n"
    "auth\trequired\tpam_kpanel_totp.so\n";
const std::string kSshd =
    "# PAM configuration for the Secure Shell service\n"
    "@include common-auth\n"
    "account    required     pam_nologin.so\n"
    "@include common-account\n";
const std::string kSshdConfig =
    "Include /etc/ssh/sshd_config.d/*.conf\n"
    "KbdInteractiveAuthentication no\n"
    "UsePAM yes\n"
    "X11Forwarding yes\n";
const std::string kSshdDropIn =
    "UsePAM yes\n"
    "KbdInteractiveAuthentication yes\n"
    "AuthenticationMethods keyboard-interactive\n";

void write_good_tree(const FakeRoot& root) {
  root.write("/etc/pam.d/common-auth", kCommonAuth);
  root.write("/etc/pam.d/common-account", "account required pam_unix.so\n");
  root.write("/etc/pam.d/sshd", kSshd);
  root.write("/etc/ssh/sshd_config", kSshdConfig);
  root.write("/etc/ssh/sshd_config.d/kpanel-totp.conf", kSshdDropIn);
}

// A daemon config that was read, with these values.
doctor::DaemonSettings daemon_settings(const std::string& socket = {},
                                       const std::string& enforce_after = {},
                                       doctor::Enforcement enforcement = doctor::Enforcement::none,
                                       const std::string& exempt_group = {}) {
  doctor::DaemonSettings settings;
  settings.known = true;
  settings.socket = socket;
  settings.enforce_after = enforce_after;
  settings.enforcement = enforcement;
  settings.exempt_group = exempt_group;
  return settings;
}

// The PAM checks of one service.
Report check_service(const FakeRoot& root, const std::string& service,
                     const doctor::DaemonSettings& daemon = daemon_settings()) {
  Report report;
  const doctor::Tree tree = root.tree();
  auto stack = doctor::load_auth_stack(tree, service, report);
  BOOST_REQUIRE(stack.has_value());
  doctor::check_pam_stack(tree, *stack, daemon, report);
  return report;
}

// The PAM stacks, the sshd settings and what SSH logins need, as the command runs them.
Report check_logins(const FakeRoot& root,
                    const doctor::DaemonSettings& daemon = daemon_settings()) {
  Report report;
  doctor::check_pam_and_sshd(root.tree(), daemon, false, report);
  return report;
}

// The sshd checks alone.
Report check_sshd_tree(const FakeRoot& root) {
  Report report;
  auto config = doctor::load_sshd_config(root.tree(), report);
  BOOST_REQUIRE(config.has_value());
  doctor::check_sshd(*config, report);
  return report;
}

std::vector<doctor::Finding> findings_of(const Report& report, Severity severity) {
  std::vector<doctor::Finding> out;
  for (const auto& finding : report.findings()) {
    if (finding.severity == severity) {
      out.push_back(finding);
    }
  }
  return out;
}

// The one finding whose message has `part`; fails the test when there is not exactly one.
doctor::Finding the_finding(const Report& report, const std::string& part) {
  std::vector<doctor::Finding> matching;
  for (const auto& finding : report.findings()) {
    if (contains(finding.message, part)) {
      matching.push_back(finding);
    }
  }
  std::string all;
  for (const auto& finding : report.findings()) {
    all += "\n  " + finding.message;
  }
  BOOST_REQUIRE_MESSAGE(matching.size() == 1,
                        "expected one finding with '" + part + "', got" + all);
  return matching.front();
}

}  // namespace

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

BOOST_AUTO_TEST_SUITE_END()

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

// ---- what an SSH login needs: sshd x PAM -------------------------------------------

BOOST_AUTO_TEST_SUITE(ssh_logins)

// Debian 12's common-auth without the module.
const std::string kDebianCommonAuth =
    "auth\t[success=1 default=ignore]\tpam_unix.so nullok\n"
    "auth\trequisite\t\t\tpam_deny.so\n"
    "auth\trequired\t\t\tpam_permit.so\n";
// Debian 12's sshd_config: the drop-ins first, then its own (later) values.
const std::string kDebianSshdConfig =
    "Include /etc/ssh/sshd_config.d/*.conf\n"
    "KbdInteractiveAuthentication no\n"
    "UsePAM yes\n"
    "X11Forwarding yes\n";

// The two PAM recipes (config/pam.d/*.example).
const std::string kPasswordRecipe =
    "@include common-auth\n"
    "auth  required  pam_kpanel_totp.so nullok\n"
    "account required pam_nologin.so\n";
const std::string kKeyRecipe =
    "#@include common-auth\n"
    "auth  required  pam_kpanel_totp.so nullok\n"
    "auth  required  pam_permit.so\n"
    "account required pam_nologin.so\n";

// sshd drop-ins: the one shipped before (password + code active), and key + code.
const std::string kDropInCodeOnly =
    "UsePAM yes\n"
    "KbdInteractiveAuthentication yes\n"
    "AuthenticationMethods keyboard-interactive\n"
    "#AuthenticationMethods publickey,keyboard-interactive\n";
const std::string kDropInKeyAndCode =
    "UsePAM yes\n"
    "KbdInteractiveAuthentication yes\n"
    "AuthenticationMethods publickey,keyboard-interactive\n";
const std::string kDropInAny =
    "UsePAM yes\n"
    "KbdInteractiveAuthentication yes\n";

struct LoginCase {
  std::string name;
  std::string sshd_pam;    // /etc/pam.d/sshd
  std::string drop_in;     // /etc/ssh/sshd_config.d/kpanel-totp.conf
  std::string sshd_extra;  // appended to sshd_config (Match blocks)
  doctor::DaemonSettings daemon;
  std::vector<std::string> errors;  // each: exactly one error says this; no other error
  std::vector<std::string> no_finding_with = {};  // nothing says these
};

std::vector<LoginCase> login_cases() {
  using doctor::Enforcement;
  return {
      // The finding of issue 16: the key recipe's PAM stack with the drop-in's
      // password + code line left active.
      {"half-followed key recipe",
       kKeyRecipe,
       kDropInCodeOnly,
       "",
       daemon_settings(),
       {"an enrolled user logs in over SSH with the code alone (no password, no key): "
        "AuthenticationMethods list 'keyboard-interactive'",
        "a user with no enrollment (nullok at "}},
      {"half-followed, the unenrolled one gets in with nothing",
       kKeyRecipe,
       kDropInCodeOnly,
       "",
       daemon_settings(),
       {"with the code alone",
        "logs in over SSH with nothing at all (no password, no key, no "
        "code)"}},
      {"password + code recipe", kPasswordRecipe, kDropInCodeOnly, "", daemon_settings(), {}},
      {"key + code recipe", kKeyRecipe, kDropInKeyAndCode, "", daemon_settings(), {}},
      {"password recipe with key + code sshd: three factors",
       kPasswordRecipe,
       kDropInKeyAndCode,
       "",
       daemon_settings(),
       {}},
      {"AuthenticationMethods any with keys and passwords on",
       kPasswordRecipe,
       kDropInAny,
       "",
       daemon_settings(),
       {"an enrolled user logs in over SSH with a key alone, no code: AuthenticationMethods is "
        "any (sshd's default), so the publickey method alone is enough"}},
      {"PasswordAuthentication yes with the key recipe: sshd's password method runs PAM",
       kKeyRecipe,
       kDropInAny + "PubkeyAuthentication no\nPasswordAuthentication yes\n",
       "",
       daemon_settings(),
       {"an enrolled user logs in over SSH with the code alone",
        "so the keyboard-interactive method alone is enough",
        "so the password method alone is enough, and the password method runs"}},
      {"PasswordAuthentication yes, keys off, password recipe: only the lockout warning",
       kPasswordRecipe,
       kDropInAny + "PubkeyAuthentication no\n",
       "",
       daemon_settings(),
       {}},
      {"sufficient pam_unix before the module",
       "auth sufficient pam_unix.so\nauth requisite pam_deny.so\n"
       "auth required pam_kpanel_totp.so\n",
       kDropInCodeOnly,
       "",
       daemon_settings(),
       {"an enrolled user logs in over SSH with a password alone, no code",
        "pam_unix.so sufficient at"}},
      {"[success=2 default=ignore] jumps over the module",
       "auth [success=2 default=ignore] pam_unix.so\nauth requisite pam_deny.so\n"
       "auth required pam_kpanel_totp.so\nauth required pam_permit.so\n",
       kDropInCodeOnly,
       "",
       daemon_settings(),
       {"an enrolled user logs in over SSH with a password alone, no code",
        "jumps over pam_kpanel_totp.so"}},
      {"[success=1 default=ignore] as Debian writes it",
       "auth [success=1 default=ignore] pam_unix.so\nauth requisite pam_deny.so\n"
       "auth required pam_permit.so\nauth required pam_kpanel_totp.so\n",
       kDropInCodeOnly,
       "",
       daemon_settings(),
       {}},
      {"sufficient pam_permit: nothing at all",
       "auth sufficient pam_permit.so\n@include common-auth\nauth required pam_kpanel_totp.so\n",
       kDropInKeyAndCode,
       "",
       daemon_settings(),
       {"an enrolled user logs in over SSH with a key alone, no code",
        "pam_permit.so sufficient at"}},
      {"pam_rootok in sshd's stack: sshd runs PAM as root",
       "auth sufficient pam_rootok.so\n@include common-auth\nauth required pam_kpanel_totp.so\n",
       kDropInCodeOnly,
       "",
       daemon_settings(),
       {"an enrolled user logs in over SSH with nothing at all"}},
      {"a Match block relaxes AuthenticationMethods for a group and an address",
       kKeyRecipe,
       kDropInKeyAndCode,
       "Match Group backup\n  AuthenticationMethods publickey\n"
       "Match Address 10.0.0.0/8\n  AuthenticationMethods keyboard-interactive\n"
       "Match User carol\n  PasswordAuthentication no\n",
       daemon_settings(),
       {"for connections matching 'Match Group backup' (", "'Match Address 10.0.0.0/8' (",
        "'Match Address 10.0.0.0/8' ("},
       {"'Match User carol'"}},
      {"nullok with pam_permit before the module",
       "auth required pam_permit.so\nauth required pam_kpanel_totp.so nullok\n",
       kDropInCodeOnly,
       "",
       daemon_settings(),
       {"with the code alone", "a user with no enrollment (nullok at "}},
      {"enforce_after passed: nullok lets nobody in, no nullok warning",
       kPasswordRecipe,
       kDropInCodeOnly,
       "",
       daemon_settings({}, "2026-01-01", Enforcement::enforced),
       {},
       {"users without enrollment log in without a code"}},
      {"enforce_after passed with the half-followed recipe: only the enrolled finding",
       kKeyRecipe,
       kDropInCodeOnly,
       "",
       daemon_settings({}, "2026-01-01", Enforcement::enforced),
       {"an enrolled user logs in over SSH with the code alone"},
       {"users without enrollment log in without a code", "a user with no enrollment"}},
      {"grace period with the key recipe: a key is still needed",
       kKeyRecipe,
       kDropInKeyAndCode,
       "",
       daemon_settings({}, "2030-01-01", Enforcement::grace),
       {}},
      {"grace period with the half-followed recipe",
       kKeyRecipe,
       kDropInCodeOnly,
       "",
       daemon_settings({}, "2030-01-01", Enforcement::grace),
       {"with the code alone",
        "(the enforce_after grace period, until 2030-01-01) logs in over "
        "SSH with nothing at all"}},
      {"enroll in the login with no other factor: anyone who knows a name",
       "auth required pam_kpanel_totp.so enroll\nauth required pam_permit.so\n",
       kDropInCodeOnly,
       "",
       daemon_settings(),
       {"with the code alone", ": they enroll inside the login) logs in over SSH with nothing"}},
      {"exempt_group with the key recipe needs the key",
       kKeyRecipe,
       kDropInKeyAndCode,
       "",
       daemon_settings({}, {}, Enforcement::none, "breakglass"),
       {}},
      {"exempt_group with the half-followed recipe",
       kKeyRecipe,
       kDropInCodeOnly,
       "",
       daemon_settings({}, {}, Enforcement::none, "breakglass"),
       {"with the code alone", "a user with no enrollment (nullok",
        "a member of exempt_group breakglass logs in over SSH with nothing at all"}},
      {"unavailable=ignore with the key recipe's stack and no key",
       "auth required pam_kpanel_totp.so unavailable=ignore\nauth required pam_permit.so\n",
       kDropInCodeOnly,
       "",
       daemon_settings(),
       {"with the code alone", "anyone, while kpanel-totpd is down (unavailable=ignore at "}},
      {"a substack's sufficient ends only the substack",
       "auth substack password-auth\nauth required pam_kpanel_totp.so\n",
       kDropInCodeOnly,
       "",
       daemon_settings(),
       {}},
      {"'-auth' with the module missing: libpam leaves the line out",
       "@include common-auth\n-auth required /nowhere/pam_kpanel_totp.so\n",
       kDropInCodeOnly,
       "",
       daemon_settings(),
       {"an enrolled user logs in over SSH with a password alone, no code",
        "makes PAM skip the line silently"}},
      {"PermitEmptyPasswords yes with pam_unix nullok: an empty password proves nothing",
       kPasswordRecipe,
       kDropInCodeOnly + "PermitEmptyPasswords yes\n",
       "",
       daemon_settings(),
       {"an enrolled user with an empty password (PermitEmptyPasswords yes at ",
        ") with an empty password (PermitEmptyPasswords yes at "}},
      {"PermitEmptyPasswords yes, pam_unix without nullok",
       "auth [success=1 default=ignore] pam_unix.so\nauth requisite pam_deny.so\n"
       "auth required pam_permit.so\nauth required pam_kpanel_totp.so nullok\n",
       kDropInCodeOnly + "PermitEmptyPasswords yes\n",
       "",
       daemon_settings(),
       {}},
      {"PermitEmptyPasswords no (the default) with pam_unix nullok",
       kPasswordRecipe,
       kDropInCodeOnly,
       "",
       daemon_settings(),
       {},
       {"empty password"}},
      {"only password lists: enrolled users are locked out",
       kPasswordRecipe,
       kDropInAny + "PasswordAuthentication yes\nAuthenticationMethods publickey,password\n",
       "",
       daemon_settings(),
       {"no AuthenticationMethods list lets an enrolled user log in over SSH"}},
      {"a list whose method is disabled never completes",
       kPasswordRecipe,
       kDropInAny + "PubkeyAuthentication no\n"
                    "AuthenticationMethods publickey,keyboard-interactive\n",
       "",
       daemon_settings(),
       {"none has all its methods enabled"}},
  };
}

BOOST_AUTO_TEST_CASE(each_sshd_and_pam_configuration_gets_its_verdict) {
  for (const LoginCase& login : login_cases()) {
    BOOST_TEST_CONTEXT(login.name) {
      FakeRoot root;
      root.write("/etc/pam.d/common-auth", kDebianCommonAuth);
      root.write("/etc/pam.d/password-auth",
                 "auth sufficient pam_unix.so\nauth requisite pam_deny.so\n");
      root.write("/etc/pam.d/sshd", login.sshd_pam);
      root.write("/etc/ssh/sshd_config", kDebianSshdConfig + login.sshd_extra);
      root.write("/etc/ssh/sshd_config.d/kpanel-totp.conf", login.drop_in);
      const Report report = check_logins(root, login.daemon);
      const auto errors = findings_of(report, Severity::error);
      std::string all;
      for (const auto& finding : report.findings()) {
        all += "\n  " + std::string(doctor::to_string(finding.severity)) + ": " + finding.message;
      }
      // Each expected text names its own error; together they are all the errors.
      std::vector<bool> used(errors.size(), false);
      for (const std::string& part : login.errors) {
        bool found = false;
        for (std::size_t i = 0; i < errors.size() && !found; ++i) {
          if (!used[i] && contains(errors[i].message, part)) {
            used[i] = true;
            found = true;
          }
        }
        BOOST_TEST(found, "no error with '" << part << "'; findings:" << all);
      }
      BOOST_TEST(errors.size() == login.errors.size(), "findings:" << all);
      for (const std::string& part : login.no_finding_with) {
        for (const auto& finding : report.findings()) {
          BOOST_TEST(!contains(finding.message, part), "unexpected: " << finding.message);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(an_ok_line_says_what_a_login_needs) {
  FakeRoot root;
  root.write("/etc/pam.d/common-auth", kDebianCommonAuth);
  root.write("/etc/pam.d/sshd", kKeyRecipe);
  root.write("/etc/ssh/sshd_config", kDebianSshdConfig);
  root.write("/etc/ssh/sshd_config.d/kpanel-totp.conf", kDropInKeyAndCode);
  const Report report = check_logins(root);
  BOOST_TEST(findings_of(report, Severity::error).empty());
  bool said = false;
  for (const auto& entry : report.entries()) {
    said = said || (entry.kind == Report::Kind::ok &&
                    contains(entry.finding.message, "from an enrolled user: a key and the code"));
    // The old line claimed safety from the lists alone.
    BOOST_TEST(!contains(entry.finding.message, "every AuthenticationMethods list includes it"));
  }
  BOOST_TEST(said);
}

BOOST_AUTO_TEST_CASE(the_model_of_a_stack) {
  FakeRoot root;
  root.write("/etc/pam.d/common-auth", kDebianCommonAuth);
  root.write("/etc/pam.d/sshd", kKeyRecipe);
  Report report;
  const auto stack = doctor::load_auth_stack(root.tree(), "sshd", report);
  BOOST_REQUIRE(stack.has_value());
  auto model = doctor::model_pam_stack(root.tree(), *stack, daemon_settings());
  using doctor::kCode;
  using doctor::kPassword;
  const auto& enrolled = model.needs[static_cast<std::size_t>(doctor::UserKind::enrolled)];
  BOOST_TEST(enrolled.keyboard_interactive == std::vector<doctor::Factors>{kCode});
  BOOST_TEST(enrolled.password_method.empty());  // it cannot give a code
  const auto& unenrolled = model.needs[static_cast<std::size_t>(doctor::UserKind::unenrolled)];
  BOOST_TEST(unenrolled.keyboard_interactive == std::vector<doctor::Factors>{0U});

  root.write("/etc/pam.d/sshd", kPasswordRecipe);
  const auto password = doctor::load_auth_stack(root.tree(), "sshd", report);
  BOOST_REQUIRE(password.has_value());
  model = doctor::model_pam_stack(root.tree(), *password, daemon_settings());
  BOOST_TEST(model.needs[0].keyboard_interactive ==
             std::vector<doctor::Factors>{kPassword | kCode});
  BOOST_TEST(model.needs[1].keyboard_interactive == std::vector<doctor::Factors>{kPassword});
  BOOST_TEST(model.needs[1].password_method == std::vector<doctor::Factors>{kPassword});
}

BOOST_AUTO_TEST_CASE(enforce_after_against_the_clock) {
  using doctor::Enforcement;
  // 2026-12-04 00:00:00 UTC
  constexpr std::int64_t kDay = 1796342400;
  BOOST_TEST((doctor::enforcement_at("", kDay) == Enforcement::none));
  BOOST_TEST((doctor::enforcement_at("2026-12-04", kDay - 1) == Enforcement::grace));
  BOOST_TEST((doctor::enforcement_at("2026-12-04", kDay) == Enforcement::enforced));
  BOOST_TEST((doctor::enforcement_at("2026-13-04", kDay) == Enforcement::none));
  BOOST_TEST((doctor::enforcement_at("soon", kDay) == Enforcement::none));
  const auto settings =
      doctor::parse_daemon_config("enforce_after = 2026-12-04\nexempt_group = ops\n", kDay);
  BOOST_TEST((settings.enforcement == Enforcement::enforced));
  BOOST_TEST(settings.exempt_group == "ops");
}

BOOST_AUTO_TEST_SUITE_END()

// ---- files --------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(files)

BOOST_AUTO_TEST_CASE(key_file) {
  FakeRoot root;
  const std::string key = "/etc/kpanel-totp/state.key";
  {
    Report report;
    doctor::check_key_file(root.tree(), key, report);
    if (as_root()) {
      BOOST_TEST(report.findings().empty());
      BOOST_TEST(contains(report.entries().at(0).finding.message, "mode 0600, owner root"));
    } else {
      the_finding(report, "kpanel-totpd refuses a key it does not own");
    }
  }
  {
    root.write(key, std::string(32, 'k'), 0640);
    Report report;
    doctor::check_key_file(root.tree(), key, report);
    the_finding(report, "has mode 0640");
  }
  {
    root.write(key, std::string(31, 'k'), 0600);
    Report report;
    doctor::check_key_file(root.tree(), key, report);
    the_finding(report, "holds 31 bytes");
  }
  {
    root.remove(key);
    Report report;
    doctor::check_key_file(root.tree(), key, report);
    const auto finding = the_finding(report, "does not exist");
    BOOST_TEST(finding.file == root.shown(key));
  }
}

BOOST_AUTO_TEST_CASE(daemon_config_keys) {
  const auto settings = doctor::parse_daemon_config(
      "# socket = /nope\n socket = /run/x.sock \nkey_file=/k\nenforce_after = 2030-01-01\n");
  BOOST_TEST(settings.known);
  BOOST_TEST(settings.socket == "/run/x.sock");
  BOOST_TEST(settings.key_file == "/k");
  BOOST_TEST(settings.enforce_after == "2030-01-01");
}

BOOST_AUTO_TEST_CASE(socket_file_mode) {
  FakeRoot root;
  const auto path = root.real("/run/kpanel-totpd.sock");
  std::filesystem::create_directories(path.parent_path());
  ::chmod(path.parent_path().c_str(), 0755);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  BOOST_REQUIRE(fd >= 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string text = path.string();
  BOOST_REQUIRE(text.size() < sizeof address.sun_path);
  std::copy(text.begin(), text.end(), std::begin(address.sun_path));
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address),  // NOLINT: the socket API
                       sizeof address) == 0);
  BOOST_REQUIRE(::chmod(path.c_str(), 0660) == 0);
  {
    Report report;
    doctor::check_socket_file(path, report);
    the_finding(report, "has mode 0660");
  }
  BOOST_REQUIRE(::chmod(path.c_str(), 0666) == 0);
  {
    Report report;
    const bool trusted = doctor::check_socket_file(path, report);
    if (::geteuid() == 0) {
      BOOST_TEST(trusted);
      BOOST_TEST(report.findings().empty());
    } else {
      BOOST_TEST(!trusted);
      the_finding(report, "the module and the tool refuse to talk to it");
    }
  }
  ::close(fd);
  {
    root.write("/run/plain", "");
    Report report;
    BOOST_TEST(!doctor::check_socket_file(root.real("/run/plain"), report));
    the_finding(report, "is not a socket");
  }
}

BOOST_AUTO_TEST_SUITE_END()

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
