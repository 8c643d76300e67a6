#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "doctor/doctor_model.hpp"

// What SSH logins need: sshd's AuthenticationMethods against the model of the
// PAM stack (doctor_model.cpp), and the command's run over every service.

namespace kpanel::cli::doctor {

namespace {

// The PAM services a login goes through on Debian; sshd first, as the one
// the tool is mostly for.
constexpr std::array<std::string_view, 4> kServices{"sshd", "login", "su", "sudo"};

// ---- sshd's methods -----------------------------------------------------------------

struct Method {
  std::string_view name;
  std::string_view setting;  // the keyword that enables it
  Factors factor = 0;        // what it proves itself (0: it runs PAM)
};
// In the order OpenSSH's client tries them, which the messages follow.
constexpr auto kMethods = std::to_array<Method>({
    {"gssapi-with-mic", "gssapiauthentication", kGssapi},
    {"hostbased", "hostbasedauthentication", kHostbased},
    {"publickey", "pubkeyauthentication", kKey},
    {"keyboard-interactive", "kbdinteractiveauthentication", 0},
    {"password", "passwordauthentication", 0},
});

const Method* find_method(std::string_view name) {
  const auto* const found = std::ranges::find(kMethods, name, &Method::name);
  return found == kMethods.end() ? nullptr : &*found;
}

struct MethodList {
  std::string text;  // as written
  std::vector<const Method*> methods;
  bool usable = true;  // every method known and enabled
};

// One way through a list: what it proves, and what PAM was given.
struct Way {
  Factors factors = 0;
  Factors typed = 0;  // the answers PAM got (kPassword, kCode)
};

class SshChecker {
 public:
  SshChecker(const SshdConfig& config, const PamModel& model) : config_(config), model_(model) {}

  // The findings for connections that match `block` (nullptr: the global
  // settings); `ok` gets the line to print when there are none.
  std::vector<Finding> run(const SshdMatch* block, std::string& ok) {
    block_ = block;
    findings_.clear();
    if (get("usepam").value != "yes") {
      return {};  // the sshd check reports it; nothing asks for a code
    }
    const SshdValue methods = get("authenticationmethods");
    const std::vector<MethodList> lists = lists_of(methods);
    const bool empty_passwords =
        get("permitemptypasswords").value == "yes" && !model_.empty_password_how.empty();
    std::vector<std::string> enrolled_ways;
    bool usable = false;
    for (const MethodList& list : lists) {
      if (!list.usable) {
        continue;
      }
      usable = true;
      for (std::size_t kind = 0; kind < kUserKinds; ++kind) {
        if (!model_.applies[kind]) {
          continue;
        }
        const std::vector<Way> ways = ways_through(list, static_cast<UserKind>(kind));
        if (static_cast<UserKind>(kind) == UserKind::enrolled) {
          for (const Way& way : ways) {
            const std::string text = factor_names(way.factors);
            if (std::ranges::find(enrolled_ways, text) == enrolled_ways.end()) {
              enrolled_ways.push_back(text);
            }
          }
        }
        if (const auto weak = weakest(static_cast<UserKind>(kind), ways, false)) {
          report(static_cast<UserKind>(kind), *weak, list, methods, {});
        } else if (empty_passwords) {
          // sshd passes an empty password on to PAM only with PermitEmptyPasswords
          // yes, and pam_unix's nullok then accepts it: the password proves nothing.
          if (const auto weak_empty = weakest(static_cast<UserKind>(kind), ways, true)) {
            report(static_cast<UserKind>(kind), *weak_empty, list, methods,
                   " with an empty password (PermitEmptyPasswords yes " +
                       where(get("permitemptypasswords")) + ", " + model_.empty_password_how + ")");
          }
        }
      }
    }
    if (get("kbdinteractiveauthentication").value == "yes" && enrolled_ways.empty()) {
      error(std::string("no AuthenticationMethods list lets an enrolled user log in over SSH (") +
                "AuthenticationMethods " + methods.value + " " + where(methods) +
                (usable ? ", with " + model_.file + " as it is"
                        : ": none has all its methods "
                          "enabled") +
                "): enrolled users are locked out; give them a list with keyboard-interactive "
                "(publickey,keyboard-interactive or keyboard-interactive) whose methods are all "
                "enabled",
            methods);
    }
    if (findings_.empty() && !enrolled_ways.empty()) {
      ok = "every SSH login (AuthenticationMethods " + methods.value + " " + where(methods) + ", " +
           model_.file + ") needs the code and a password or a key from an enrolled user: " +
           join_words(enrolled_ways, " or ");
    }
    return std::move(findings_);
  }

 private:
  [[nodiscard]] SshdValue get(std::string_view name) const {
    return sshd_setting(config_, block_, name);
  }

  [[nodiscard]] std::string where(const SshdValue& value) const {
    if (value.file.empty()) {
      return "(sshd's default)";
    }
    if (value.from_sshd_t) {
      return "(sshd -T's effective value)";
    }
    return "at " + value.file + ":" + std::to_string(value.line);
  }

  [[nodiscard]] bool enabled(const Method& method) const {
    return get(method.setting).value == "yes";
  }

  [[nodiscard]] std::vector<MethodList> lists_of(const SshdValue& methods) const {
    std::vector<MethodList> lists;
    if (methods.value == "any") {
      // Any one enabled method is enough on its own.
      for (const Method& method : kMethods) {
        if (enabled(method)) {
          lists.push_back(MethodList{std::string(method.name), {&method}, true});
        }
      }
      return lists;
    }
    std::string_view rest = methods.value;
    while (!rest.empty()) {
      const std::size_t space = rest.find(' ');
      const std::string_view text = rest.substr(0, space);
      rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
      if (text.empty()) {
        continue;
      }
      MethodList list{std::string(text), {}, true};
      std::string_view left = text;
      while (!left.empty()) {
        const std::size_t comma = left.find(',');
        std::string_view name = left.substr(0, comma);
        left = comma == std::string_view::npos ? std::string_view{} : left.substr(comma + 1);
        name = name.substr(0, name.find(':'));  // "keyboard-interactive:pam"
        const Method* method = find_method(name);
        if (method == nullptr || !enabled(*method)) {
          list.usable = false;  // sshd never completes this list
          break;
        }
        list.methods.push_back(method);
      }
      lists.push_back(std::move(list));
    }
    return lists;
  }

  // The smallest sets of factors that complete `list` for this kind of user.
  [[nodiscard]] std::vector<Way> ways_through(const MethodList& list, UserKind kind) const {
    std::vector<Way> ways{Way{}};
    const StackNeeds& needs = model_.needs[static_cast<std::size_t>(kind)];
    for (const Method* method : list.methods) {
      if (method->factor != 0) {
        for (Way& way : ways) {
          way.factors |= method->factor;
        }
        continue;
      }
      const std::vector<Factors>& stack =
          method->name == "password" ? needs.password_method : needs.keyboard_interactive;
      std::vector<Way> next;
      for (const Way& way : ways) {
        for (const Factors typed : stack) {
          next.push_back(Way{way.factors | typed, way.typed | typed});
        }
      }
      ways = std::move(next);
    }
    std::vector<Factors> sets;
    sets.reserve(ways.size());
    for (const Way& way : ways) {
      sets.push_back(way.factors);
    }
    std::vector<Way> out;
    for (const Factors set : minimal_sets(std::move(sets))) {
      const auto found = std::ranges::find(ways, set, &Way::factors);
      out.push_back(*found);
    }
    return out;
  }

  // The first way (smallest first) with fewer factors than intended; with
  // `empty_password`, a password counts for nothing.
  static std::optional<Way> weakest(UserKind kind, const std::vector<Way>& ways,
                                    bool empty_password) {
    for (Way way : ways) {
      if (empty_password) {
        way.factors &= ~kPassword;
        way.typed &= ~kPassword;
      }
      if (!intended(kind, way.factors)) {
        return way;
      }
    }
    return std::nullopt;
  }

  static bool intended(UserKind kind, Factors factors) {
    const bool first = (factors & kFirstFactors) != 0;
    if (kind == UserKind::enrolled) {
      return first && (factors & kCode) != 0;
    }
    return first;  // the module lets them through without a code on purpose
  }

  [[nodiscard]] std::string who(UserKind kind) const {
    switch (kind) {
      case UserKind::enrolled:
        return "an enrolled user";
      case UserKind::unenrolled:
        return "a user with no enrollment (" + model_.unenrolled_how + ")";
      case UserKind::exempt:
        return "a member of exempt_group " + model_.exempt_group;
      case UserKind::daemon_down:
        return "anyone, while kpanel-totpd is down (" + model_.down_how + "),";
    }
    return "a user";
  }

  static std::string what(UserKind kind, Factors factors) {
    if (factors == 0) {
      return "nothing at all (no password, no key, no code)";
    }
    if (factors == kCode) {
      return "the code alone (no password, no key)";
    }
    std::string text = factor_names(factors);
    if (std::popcount(factors) == 1) {
      text += " alone";
    }
    if (kind == UserKind::enrolled && (factors & kCode) == 0) {
      text += ", no code";
    }
    return text;
  }

  void report(UserKind kind, const Way& way, const MethodList& list, const SshdValue& methods,
              const std::string& account) {
    bool kbd = false;
    bool password = false;
    for (const Method* method : list.methods) {
      kbd = kbd || method->name == "keyboard-interactive";
      password = password || method->name == "password";
    }
    const bool any = methods.value == "any";
    std::string message =
        who(kind) + account + " logs in over SSH with " + what(kind, way.factors) + ": ";
    if (any) {
      message += "AuthenticationMethods is any " + where(methods) + ", so the " + list.text +
                 " method alone is enough";
    } else {
      message += "AuthenticationMethods list '" + list.text + "' " + where(methods);
    }
    if (kbd || password) {
      message += std::string(", and ") + (kbd ? "keyboard-interactive" : "the password method") +
                 " runs " + model_.file + ", whose auth stack lets them through with " +
                 (way.typed == 0 ? std::string("nothing typed") : factor_names(way.typed)) +
                 (password && !kbd ? " (it answers every prompt with the password)" : "");
    }
    message += "; " + (account.empty() ? fix(kind, way.factors, kbd, password, any)
                                       : std::string("set PermitEmptyPasswords no (the default)"));
    error(std::move(message), methods);
  }

  [[nodiscard]] std::string fix(UserKind kind, Factors factors, bool kbd, bool password,
                                bool any) const {
    constexpr std::string_view kBoth =
        "AuthenticationMethods publickey,keyboard-interactive (a key and the code, safe with "
        "either PAM recipe)";
    if (kind == UserKind::enrolled && (factors & kCode) == 0) {
      if (kbd) {
        return "in " + model_.file +
               " nothing before pam_kpanel_totp.so may end the auth stack or jump over it, and "
               "the module must be required (see the pam findings)";
      }
      if (password) {
        return any ? "set PasswordAuthentication no and " + std::string(kBoth)
                   : std::string("use keyboard-interactive instead of password in this list");
      }
      return any ? "set " + std::string(kBoth)
                 : std::string(
                       "add keyboard-interactive to this list (e.g. "
                       "publickey,keyboard-interactive)");
    }
    std::string text = "require a key too: " + std::string(kBoth) + "; or keep " +
                       "AuthenticationMethods keyboard-interactive and have " + model_.file +
                       " ask for the password first ('@include common-auth' before "
                       "pam_kpanel_totp.so)";
    if (password && any) {
      text += ", and set PasswordAuthentication no";
    }
    if (kind == UserKind::daemon_down) {
      text += "; or drop unavailable=ignore";
    }
    return text;
  }

  void error(std::string message, const SshdValue& value) {
    Finding finding;
    finding.severity = Severity::error;
    finding.check = "ssh";
    finding.message = std::move(message);
    finding.file = value.file.empty() ? config_.main_file : value.file;
    finding.line = value.line;
    findings_.push_back(std::move(finding));
  }

  const SshdConfig& config_;
  const PamModel& model_;
  const SshdMatch* block_ = nullptr;
  std::vector<Finding> findings_;
};

}  // namespace

void check_ssh_logins(const SshdConfig& config, const PamModel& model, Report& report) {
  SshChecker checker(config, model);
  std::string ok;
  const std::vector<Finding> global = checker.run(nullptr, ok);
  bool found = !global.empty();
  for (const Finding& finding : global) {
    report.add(finding);
  }
  for (const SshdMatch& block : config.matches) {
    std::string ignored;
    for (Finding finding : checker.run(&block, ignored)) {
      // What the block inherits is reported above already.
      if (std::ranges::any_of(global, [&finding](const Finding& g) {
            return g.message == finding.message && g.file == finding.file && g.line == finding.line;
          })) {
        continue;
      }
      finding.message = "for connections matching 'Match " + block.condition + "' (" + block.file +
                        ":" + std::to_string(block.line) + "): " + finding.message;
      report.add(std::move(finding));
      found = true;
    }
  }
  if (!ok.empty() && !found) {
    report.ok(ok);
  }
}

void check_pam_and_sshd(const Tree& tree, const DaemonSettings& daemon, bool sshd_t,
                        Report& report) {
  std::optional<PamStack> sshd_stack;
  for (const std::string_view service : kServices) {
    auto stack = load_auth_stack(tree, service, report);
    if (!stack) {
      if (service == "sshd") {
        report.skipped(tree.shown("/etc/pam.d/sshd") + " does not exist: SSH not checked");
      }
      continue;
    }
    const bool asks = check_pam_stack(tree, *stack, daemon, report);
    if (service == "sshd") {
      if (asks) {
        sshd_stack = std::move(stack);
      } else {
        report.warning(
            "pam",
            "sshd logins do not ask for a code: pam_kpanel_totp.so is not in the auth stack of " +
                stack->file +
                " (nor in the files it includes); add 'auth required pam_kpanel_totp.so' after "
                "'@include common-auth', or enable the profile: pam-auth-update --enable "
                "kpanel-totp",
            stack->file);
      }
    } else if (!asks) {
      report.skipped(stack->file + ": " + std::string(service) +
                     " does not ask for a code (pam_kpanel_totp.so is not in its auth stack)");
    }
  }
  if (!sshd_stack) {
    report.skipped("sshd settings: not checked, as sshd's PAM stack does not ask for a code");
    return;
  }
  auto config = load_sshd_config(tree, report);
  if (!config) {
    if (!tree.exists(kSshdConfigPath)) {
      report.skipped(tree.shown(kSshdConfigPath) + " does not exist: sshd not checked");
    }
    return;
  }
  if (sshd_t) {
    auto dump = run_sshd_t(std::string(kSshdBinary), std::string(kSshdConfigPath));
    if (dump) {
      apply_sshd_t(*config, *dump);
    } else {
      report.skipped(dump.error() + "; read the files instead");
    }
  }
  check_sshd(*config, report);
  check_ssh_logins(*config, model_pam_stack(tree, *sshd_stack, daemon), report);
}

}  // namespace kpanel::cli::doctor
