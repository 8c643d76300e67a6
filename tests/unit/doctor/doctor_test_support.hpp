#pragma once
// What the doctor's unit tests share: a fake root to write /etc trees in, a
// good tree, the checks run on it, and the findings picked out of a report.
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>  // mkdtemp
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "doctor/doctor.hpp"
#include "doctor/doctor_model.hpp"
#include "doctor/doctor_pam.hpp"
#include "doctor/doctor_sshd.hpp"
#include "support/fake_environment.hpp"

namespace kpanel::doctor_testing {

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
inline bool as_root() { return ::geteuid() == 0; }

// For the tests that need root: false (and a note) otherwise.
inline bool running_as_root() {
  if (!as_root()) {
    BOOST_TEST_MESSAGE("skipped: needs root (files owned by root)");
  }
  return as_root();
}

inline bool contains(const std::string& text, const std::string& part) {
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
inline const std::string kCommonAuth =
    "# here are the per-package modules (the \"Primary\" block)\n"
    "auth\t[success=1 default=ignore]\tpam_unix.so nullok\n"
    "auth\trequisite\t\t\tpam_deny.so\n"
    "auth\trequired\t\t\tpam_permit.so\n"
    "auth\trequired\tpam_kpanel_totp.so\n";
inline const std::string kSshd =
    "# PAM configuration for the Secure Shell service\n"
    "@include common-auth\n"
    "account    required     pam_nologin.so\n"
    "@include common-account\n";
inline const std::string kSshdConfig =
    "Include /etc/ssh/sshd_config.d/*.conf\n"
    "KbdInteractiveAuthentication no\n"
    "UsePAM yes\n"
    "X11Forwarding yes\n";
inline const std::string kSshdDropIn =
    "UsePAM yes\n"
    "KbdInteractiveAuthentication yes\n"
    "AuthenticationMethods keyboard-interactive\n";

inline void write_good_tree(const FakeRoot& root) {
  root.write("/etc/pam.d/common-auth", kCommonAuth);
  root.write("/etc/pam.d/common-account", "account required pam_unix.so\n");
  root.write("/etc/pam.d/sshd", kSshd);
  root.write("/etc/ssh/sshd_config", kSshdConfig);
  root.write("/etc/ssh/sshd_config.d/kpanel-totp.conf", kSshdDropIn);
}

// A daemon config that was read, with these values.
inline doctor::DaemonSettings daemon_settings(
    const std::string& socket = {}, const std::string& enforce_after = {},
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
inline Report check_service(const FakeRoot& root, const std::string& service,
                            const doctor::DaemonSettings& daemon = daemon_settings()) {
  Report report;
  const doctor::Tree tree = root.tree();
  auto stack = doctor::load_auth_stack(tree, service, report);
  BOOST_REQUIRE(stack.has_value());
  doctor::check_pam_stack(tree, *stack, daemon, report);
  return report;
}

// The PAM stacks, the sshd settings and what SSH logins need, as the command runs them.
inline Report check_logins(const FakeRoot& root,
                           const doctor::DaemonSettings& daemon = daemon_settings()) {
  Report report;
  doctor::check_pam_and_sshd(root.tree(), daemon, false, report);
  return report;
}

// The sshd checks alone.
inline Report check_sshd_tree(const FakeRoot& root) {
  Report report;
  auto config = doctor::load_sshd_config(root.tree(), report);
  BOOST_REQUIRE(config.has_value());
  doctor::check_sshd(*config, report);
  return report;
}

inline std::vector<doctor::Finding> findings_of(const Report& report, Severity severity) {
  std::vector<doctor::Finding> out;
  for (const auto& finding : report.findings()) {
    if (finding.severity == severity) {
      out.push_back(finding);
    }
  }
  return out;
}

// The one finding whose message has `part`; fails the test when there is not exactly one.
inline doctor::Finding the_finding(const Report& report, const std::string& part) {
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

}  // namespace kpanel::doctor_testing
