#pragma once
// admin doctor: the PAM side. Reads a service's stack (following @include,
// include and substack) the way libpam does, keeps its auth lines, and checks
// where pam_kpanel_totp.so sits in it: anything before it that can end or jump
// over the stack, a control that lets a wrong code through, options that open
// a gap (nullok, unavailable=ignore) or refuse every login (a typo).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "doctor/doctor.hpp"

namespace kpanel::cli::doctor {

inline constexpr std::string_view kPamDir = "/etc/pam.d";
inline constexpr std::string_view kModuleName = "pam_kpanel_totp.so";

// What libpam does with one return value of a module (pam.conf(5)).
enum class ActionKind : std::uint8_t { ignore, bad, die, ok, done, reset, jump };
struct Action {
  ActionKind kind = ActionKind::bad;
  unsigned jump = 0;  // with ActionKind::jump: lines to skip
};

struct Control {
  std::string text;  // as written: "required", "[success=1 default=ignore]"
  std::vector<std::pair<std::string, Action>> actions;  // value -> action, "default" too
  std::string error;                                    // not empty: libpam rejects it

  // The action for a return value ("success", "auth_err"): its own, else
  // default's, else bad (libpam's fallback).
  [[nodiscard]] Action of(std::string_view value) const;
  [[nodiscard]] bool is_keyword() const noexcept { return !text.starts_with('['); }
};
// required, requisite, sufficient, optional or [value=action ...].
[[nodiscard]] Control parse_control(std::string_view text);

struct PamRule {
  std::string file;  // as shown in messages
  std::size_t line = 0;
  bool dash = false;  // "-auth": skipped silently when the module file is missing
  Control control;
  std::string module;  // as written: "pam_unix.so" or an absolute path
  std::vector<std::string> args;

  [[nodiscard]] std::string where() const { return file + ":" + std::to_string(line); }
  [[nodiscard]] std::string module_name() const;  // the file name of `module`
  [[nodiscard]] bool is_ours() const { return module_name() == kModuleName; }
};

// One auth line, or a substack (its rules in `children`). Included files are
// spliced in place, as libpam does.
struct PamEntry {
  PamRule rule;
  bool substack = false;
  std::vector<PamEntry> children;
};

struct PamStack {
  std::string service;
  std::string file;  // as shown
  std::vector<PamEntry> auth;
};

// The tokens of one PAM line: whitespace-separated, "[...]" kept whole.
[[nodiscard]] std::vector<std::string> split_pam_line(std::string_view line);

// The auth stack of /etc/pam.d/SERVICE under the tree. nullopt when the file
// is missing or unreadable (the latter reported as skipped). Broken lines and
// includes are reported as findings.
[[nodiscard]] std::optional<PamStack> load_auth_stack(const Tree& tree, std::string_view service,
                                                      Report& report);

// pam_unix.so and the other modules that check a password (pam_sss, pam_ldap, ...).
[[nodiscard]] bool is_password_module(std::string_view module_name);

// Whether the module file of `rule` is in a PAM module directory of the tree
// (or at its absolute path).
[[nodiscard]] bool module_installed(const Tree& tree, const PamRule& rule);

// Checks pam_kpanel_totp.so's place in the stack. Returns false when the
// module is not in the auth stack at all (the caller decides whether that is
// a finding: it is for sshd).
bool check_pam_stack(const Tree& tree, const PamStack& stack, const DaemonSettings& daemon,
                     Report& report);

// A pam_google_authenticator.so line in a stack that has ours (an error when
// it is a way around ours or refuses users without its file, else a warning:
// codes asked twice). doctor_google_authenticator.cpp; check_pam_stack runs it.
void check_google_authenticator(const PamStack& stack, Report& report);

inline constexpr std::string_view kGoogleAuthenticatorModule = "pam_google_authenticator.so";
// Added to check_pam_stack's finding for a pam_google_authenticator line that
// can end the stack before ours (check_google_authenticator leaves that case
// to it, so the line is flagged once).
[[nodiscard]] std::string google_authenticator_skipper_advice();

}  // namespace kpanel::cli::doctor
