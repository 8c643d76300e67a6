// What an SSH login needs: each sshd and PAM configuration against its
// verdict, and the model of a stack.
#include "doctor_test_support.hpp"

// The shared helpers (doctor_test_support.hpp) by their short names.
using namespace kpanel::doctor_testing;  // NOLINT(google-build-using-namespace)

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

// Long: a table, one entry per sshd x PAM configuration and its verdict.
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
