#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "doctor/doctor_pam.hpp"

// admin doctor: a pam_google_authenticator line left in a stack that asks for
// our code. Hosts switch from google-authenticator-libpam with
// `kpanel-totp admin import-google-authenticator`; its PAM line must go in
// the same edit that adds ours.
namespace kpanel::cli::doctor {
namespace {

// Every rule in the order libpam runs them (substacks in place).
void flatten(const std::vector<PamEntry>& list, std::vector<const PamRule*>& out) {
  for (const PamEntry& entry : list) {
    if (entry.substack) {
      flatten(entry.children, out);
    } else {
      out.push_back(&entry.rule);
    }
  }
}

// Whether a passing google-authenticator code lets libpam end the stack or
// jump ahead: placed before ours, a way around it.
bool may_end_or_jump(const PamRule& rule) {
  const Action action = rule.control.of("success");
  return action.kind == ActionKind::done || action.kind == ActionKind::jump;
}

constexpr std::string_view kRemoveAfterImport =
    "once `kpanel-totp admin import-google-authenticator` has imported the users' files (check "
    "with `kpanel-totp admin list`), delete this line";

}  // namespace

std::string google_authenticator_skipper_advice() {
  return "; a google-authenticator code (or one of its scratch codes) alone is enough here; " +
         std::string(kRemoveAfterImport);
}

void check_google_authenticator(const PamStack& stack, Report& report) {
  std::vector<const PamRule*> rules;
  flatten(stack.auth, rules);
  const auto ours =
      std::ranges::find_if(rules, [](const PamRule* rule) { return rule->is_ours(); });
  if (ours == rules.end()) {
    return;
  }
  for (auto at = rules.begin(); at != rules.end(); ++at) {
    const PamRule& rule = **at;
    if (rule.module_name() != kGoogleAuthenticatorModule || !rule.control.error.empty()) {
      continue;
    }
    const std::string head = std::string(kGoogleAuthenticatorModule) + " " + rule.control.text +
                             " at " + rule.where() + " is still in the " + stack.service +
                             " auth stack next to pam_kpanel_totp.so (" + (*ours)->where() + "): ";
    const std::string fix = "; " + std::string(kRemoveAfterImport);
    const bool nullok = std::ranges::find(rule.args, "nullok") != rule.args.end();
    if (at < ours && may_end_or_jump(rule)) {
      // A way around ours: check_pam_stack's skipper check reports it, with
      // google_authenticator_skipper_advice().
      continue;
    }
    if (!nullok) {
      report.error("pam",
                   head +
                       "without nullok it refuses everyone who has no ~/.google_authenticator "
                       "(users enrolled with kpanel-totp only, and everyone once the files are "
                       "removed), and asks the others for a second code" +
                       fix,
                   rule.file, rule.line);
    } else {
      report.warning("pam",
                     head +
                         "users who still have a ~/.google_authenticator are asked for two "
                         "codes, and a code it accepts does not count as used for ours" +
                         fix,
                     rule.file, rule.line);
    }
  }
}

}  // namespace kpanel::cli::doctor
