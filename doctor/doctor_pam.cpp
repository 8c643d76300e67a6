#include "doctor/doctor_pam.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <initializer_list>
#include <string>

#include "common/daemon_client.hpp"
#include "common/pam_options.hpp"

namespace kpanel::cli::doctor {

namespace {

constexpr std::string_view kWhitespace = " \t\r\f\v";
// libpam refuses deeper nesting; a loop of includes ends here too.
constexpr int kMaxIncludeDepth = 16;

std::string lower(std::string_view text) {
  std::string out(text);
  std::ranges::transform(out, out.begin(), [](char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return out;
}

// Every return value libpam knows by name (pam.conf(5)), plus "default".
constexpr auto kReturnValues = std::to_array<std::string_view>({"success",
                                                                "open_err",
                                                                "symbol_err",
                                                                "service_err",
                                                                "system_err",
                                                                "buf_err",
                                                                "perm_denied",
                                                                "auth_err",
                                                                "cred_insufficient",
                                                                "authinfo_unavail",
                                                                "user_unknown",
                                                                "maxtries",
                                                                "new_authtok_reqd",
                                                                "acct_expired",
                                                                "session_err",
                                                                "cred_unavail",
                                                                "cred_expired",
                                                                "cred_err",
                                                                "no_module_data",
                                                                "conv_err",
                                                                "authtok_err",
                                                                "authtok_recover_err",
                                                                "authtok_lock_busy",
                                                                "authtok_disable_aging",
                                                                "try_again",
                                                                "ignore",
                                                                "abort",
                                                                "authtok_expired",
                                                                "module_unknown",
                                                                "bad_item",
                                                                "conv_again",
                                                                "incomplete",
                                                                "default"});

// What pam_kpanel_totp.so returns when it does not let the login through
// (pam_module/outcome.cpp and pam_get_user's failures).
constexpr auto kOurFailures =
    std::to_array<std::string_view>({"auth_err", "authinfo_unavail", "conv_err", "user_unknown",
                                     "system_err", "buf_err", "perm_denied"});

// Return values that mean "let through": `done` on these ends the stack in success.
constexpr auto kPassingValues =
    std::to_array<std::string_view>({"success", "new_authtok_reqd", "ignore"});

// Modules whose auth function never says yes (they return PAM_IGNORE or fail),
// so they cannot stand in for a password module.
constexpr auto kNeverSucceed = std::to_array<std::string_view>(
    {"pam_deny.so", "pam_env.so", "pam_faildelay.so", "pam_nologin.so", "pam_group.so",
     "pam_warn.so", "pam_echo.so", "pam_kpanel_totp.so"});

// Password modules: when one of them skips the code, "a password alone logs in".
constexpr auto kPasswordModules =
    std::to_array<std::string_view>({"pam_unix.so", "pam_sss.so", "pam_ldap.so", "pam_krb5.so",
                                     "pam_winbind.so", "pam_userdb.so", "pam_pwdb.so"});

template <std::size_t N>
bool one_of(std::string_view value, const std::array<std::string_view, N>& list) {
  return std::ranges::find(list, value) != list.end();
}

std::string describe_action(const Action& action) {
  switch (action.kind) {
    case ActionKind::ignore:
      return "ignore";
    case ActionKind::bad:
      return "bad";
    case ActionKind::die:
      return "die";
    case ActionKind::ok:
      return "ok";
    case ActionKind::done:
      return "done";
    case ActionKind::reset:
      return "reset";
    case ActionKind::jump:
      return std::to_string(action.jump);
  }
  return "?";
}

// ---- reading files --------------------------------------------------------------

struct RawLine {
  std::size_t number = 0;  // of its first physical line
  std::string text;
};

// libpam's reading: '#' starts a comment anywhere, a backslash at the end of
// a line continues it on the next one.
std::vector<RawLine> logical_lines(std::string_view text) {
  std::vector<RawLine> lines;
  bool continuing = false;
  std::size_t number = 0;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    std::string_view physical = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++number;
    if (const std::size_t hash = physical.find('#'); hash != std::string_view::npos) {
      physical = physical.substr(0, hash);
    }
    while (!physical.empty() && kWhitespace.find(physical.back()) != std::string_view::npos) {
      physical.remove_suffix(1);
    }
    if (!continuing) {
      lines.push_back(RawLine{number, {}});
    }
    continuing = physical.ends_with('\\');
    if (continuing) {
      physical.remove_suffix(1);
    }
    lines.back().text.append(physical);
    lines.back().text.push_back(' ');
  }
  return lines;
}

// "[text\]more]" -> "text]more": libpam's quoting of arguments with spaces.
std::string unbracket(std::string_view token) {
  if (token.size() < 2 || !token.starts_with('[') || !token.ends_with(']')) {
    return std::string(token);
  }
  const std::string_view inner = token.substr(1, token.size() - 2);
  std::string out;
  for (std::size_t i = 0; i < inner.size(); ++i) {
    if (inner[i] == '\\' && i + 1 < inner.size() && inner[i + 1] == ']') {
      continue;
    }
    out.push_back(inner[i]);
  }
  return out;
}

class Loader {
 public:
  Loader(const Tree& tree, Report& report) : tree_(tree), report_(report) {}

  // Appends the auth lines of `logical` to `out`. `from` is the line that
  // included it (for messages); empty for the service file itself.
  // Returns false when the file could not be read.
  bool load(std::string_view logical, std::vector<PamEntry>& out, int depth,
            const std::string& from) {
    const std::string shown = tree_.shown(logical);
    if (depth > kMaxIncludeDepth) {
      report_.error("pam",
                    "includes nest deeper than " + std::to_string(kMaxIncludeDepth) + " at " +
                        from +
                        " (a loop?): PAM refuses every login through this service; "
                        "remove the loop",
                    shown);
      return false;
    }
    auto text = tree_.read(logical);
    if (!text) {
      if (depth == 0) {
        if (text.error() != ENOENT) {
          report_.skipped("cannot read " + shown + ": " + errno_text(text.error()));
        }
        return false;
      }
      // libpam cannot build the stack without it and fails every request.
      report_.error("pam",
                    "the file included at " + from + " (" + shown + ") " +
                        (text.error() == ENOENT ? std::string("does not exist")
                                                : "cannot be read: " + errno_text(text.error())) +
                        ": PAM refuses every login through this service; fix the include",
                    shown);
      return false;
    }
    for (const RawLine& line : logical_lines(*text)) {
      parse_line(shown, line, out, depth);
    }
    return true;
  }

 private:
  static std::string resolve(std::string_view name) {
    if (name.starts_with('/')) {
      return std::string(name);
    }
    return std::string(kPamDir) + "/" + std::string(name);
  }

  void parse_line(const std::string& shown, const RawLine& line, std::vector<PamEntry>& out,
                  int depth) {
    const std::vector<std::string> tokens = split_pam_line(line.text);
    if (tokens.empty()) {
      return;
    }
    const std::string where = shown + ":" + std::to_string(line.number);
    if (tokens[0] == "@include") {
      if (tokens.size() < 2) {
        report_.error("pam",
                      "@include without a file at " + where +
                          ": PAM refuses every login through this service; name the file",
                      shown, line.number);
        return;
      }
      load(resolve(tokens[1]), out, depth + 1, where);
      return;
    }
    std::string type = lower(tokens[0]);
    const bool dash = type.starts_with('-');
    if (dash) {
      type.erase(0, 1);
    }
    if (type != "auth") {
      return;  // account, session, password: not about asking for the code
    }
    if (tokens.size() < 3) {
      report_.error("pam",
                    "auth line without a control or module at " + where +
                        ": PAM fails every login through this stack; complete or remove it",
                    shown, line.number);
      return;
    }
    const std::string control_text = lower(tokens[1]);
    if (control_text == "include" || control_text == "substack") {
      if (control_text == "include") {
        load(resolve(tokens[2]), out, depth + 1, where);
        return;
      }
      PamEntry entry;
      entry.substack = true;
      entry.rule.file = shown;
      entry.rule.line = line.number;
      entry.rule.control.text = control_text;
      entry.rule.module = tokens[2];
      load(resolve(tokens[2]), entry.children, depth + 1, where);
      out.push_back(std::move(entry));
      return;
    }
    PamEntry entry;
    entry.rule.file = shown;
    entry.rule.line = line.number;
    entry.rule.dash = dash;
    entry.rule.control = parse_control(tokens[1]);
    entry.rule.module = tokens[2];
    for (std::size_t i = 3; i < tokens.size(); ++i) {
      entry.rule.args.push_back(unbracket(tokens[i]));
    }
    if (!entry.rule.control.error.empty()) {
      report_.error("pam",
                    "control '" + tokens[1] + "' at " + where + " " + entry.rule.control.error +
                        ": PAM fails every login through this stack; use required, requisite, "
                        "sufficient, optional or [value=action ...]",
                    shown, line.number);
    }
    out.push_back(std::move(entry));
  }

  const Tree& tree_;
  Report& report_;
};

// ---- checking ----------------------------------------------------------------------

// A position in the tree of entries: the list and the index in it, outermost first.
struct Step {
  const std::vector<PamEntry>* list = nullptr;
  std::size_t index = 0;
};
using Path = std::vector<Step>;

void find_ours(const std::vector<PamEntry>& list, Path& path, std::vector<Path>& found) {
  for (std::size_t i = 0; i < list.size(); ++i) {
    path.push_back(Step{&list, i});
    if (list[i].substack) {
      find_ours(list[i].children, path, found);
    } else if (list[i].rule.is_ours()) {
      found.push_back(path);
    }
    path.pop_back();
  }
}

void collect_rules(const std::vector<PamEntry>& list, std::vector<const PamRule*>& out) {
  for (const PamEntry& entry : list) {
    if (entry.substack) {
      collect_rules(entry.children, out);
    } else {
      out.push_back(&entry.rule);
    }
  }
}

// The values of `control` worth trying: the ones it names and those that let through.
std::vector<std::string> values_to_try(const Control& control) {
  std::vector<std::string> values(kPassingValues.begin(), kPassingValues.end());
  for (const auto& [value, action] : control.actions) {
    if (std::ranges::find(values, value) == values.end()) {
      values.push_back(value);
    }
  }
  return values;
}

struct Skip {
  std::string value;  // the return value that skips
  Action action;
};

// Can `rule`, at `index` in its list, make libpam pass over the entry at
// `target` in the same list? Yes when one of its return values ends the
// stack in success (done) or jumps past `target`.
std::optional<Skip> skips_over(const PamRule& rule, std::size_t index, std::size_t target) {
  for (const std::string& value : values_to_try(rule.control)) {
    const Action action = rule.control.of(value);
    if (action.kind == ActionKind::jump && index + action.jump >= target) {
      return Skip{value, action};
    }
    if (action.kind == ActionKind::done && one_of(value, kPassingValues)) {
      return Skip{value, action};
    }
  }
  return std::nullopt;
}

}  // namespace

bool is_password_module(std::string_view module_name) {
  return one_of(module_name, kPasswordModules);
}

bool module_installed(const Tree& tree, const PamRule& rule) {
  if (rule.module.starts_with('/')) {
    return tree.exists(rule.module);
  }
  // Debian: /lib/<multiarch>/security (= /usr/lib/... with merged /usr).
  return std::ranges::any_of(
      std::initializer_list<std::string_view>{
          "/lib/*-linux-gnu*/security/", "/usr/lib/*-linux-gnu*/security/", "/lib/security/",
          "/usr/lib/security/", "/lib64/security/", "/usr/lib64/security/"},
      [&](std::string_view dir) { return !tree.glob(std::string(dir) + rule.module).empty(); });
}

namespace {

class StackChecker {
 public:
  StackChecker(const Tree& tree, const PamStack& stack, const DaemonSettings& daemon,
               Report& report)
      : tree_(tree), stack_(stack), daemon_(daemon), report_(report) {}

  bool run() {
    std::vector<Path> ours;
    Path path;
    find_ours(stack_.auth, path, ours);
    if (ours.empty()) {
      return false;
    }
    for (const Path& at : ours) {
      const PamRule& rule = rule_at(at);
      check_installed(rule);
      check_own_control(rule);
      check_options(rule);
      check_skippers(at, rule);
    }
    check_alone(ours);
    if (ours.size() > 1) {
      const PamRule& first = rule_at(ours[0]);
      const PamRule& second = rule_at(ours[1]);
      warning("pam_kpanel_totp.so is in the " + stack_.service + " auth stack twice (" +
                  first.where() + " and " + second.where() +
                  "): users are asked for two codes, and as a code works only once the second "
                  "must wait for the next one; keep one",
              second);
    }
    if (!problem_) {
      const PamRule& rule = rule_at(ours.front());
      report_.ok(stack_.file + ": " + stack_.service + " asks for a code (" +
                 std::string(kModuleName) + " at " + rule.where() + ", " + rule.control.text + ")");
    }
    return true;
  }

 private:
  static const PamRule& rule_at(const Path& path) {
    return (*path.back().list)[path.back().index].rule;
  }

  void error(std::string message, const PamRule& rule) {
    problem_ = true;
    report_.error("pam", std::move(message), rule.file, rule.line);
  }
  void warning(std::string message, const PamRule& rule) {
    problem_ = true;
    report_.warning("pam", std::move(message), rule.file, rule.line);
  }

  void check_installed(const PamRule& rule) {
    if (module_installed(tree_, rule)) {
      return;
    }
    if (rule.dash) {
      error(rule.module + " at " + rule.where() +
                " is not installed, and '-auth' makes PAM skip the line silently: logins go on "
                "without a code; install it (sudo scripts/install.sh) and write 'auth'",
            rule);
    } else {
      error(rule.module + " at " + rule.where() +
                " is not installed in the PAM module directory (/lib/<arch>/security): PAM "
                "refuses every login through this stack; install it (sudo scripts/install.sh)",
            rule);
    }
  }

  void check_own_control(const PamRule& rule) {
    if (rule.dash && module_installed(tree_, rule)) {
      warning("'-auth' at " + rule.where() +
                  " makes PAM skip pam_kpanel_totp.so silently if the module file is ever "
                  "missing, and logins then go on without a code; write 'auth'",
              rule);
    }
    const Control& control = rule.control;
    if (!control.error.empty()) {
      return;  // reported while reading
    }
    for (const std::string_view value : kOurFailures) {
      const Action action = control.of(value);
      if (action.kind != ActionKind::ignore && action.kind != ActionKind::jump &&
          action.kind != ActionKind::reset) {
        continue;
      }
      std::string why;
      if (control.is_keyword()) {
        why = "pam_kpanel_totp.so is " + control.text + " at " + rule.where();
      } else {
        why = "pam_kpanel_totp.so with " + control.text + " at " + rule.where() + " (" +
              std::string(value) + "=" + describe_action(action) + ")";
      }
      error(why + ": a wrong code would not fail the login; make it required", rule);
      return;
    }
  }

  void check_options(const PamRule& rule) {
    std::vector<const char*> argv;
    argv.reserve(rule.args.size());
    for (const std::string& arg : rule.args) {
      argv.push_back(arg.c_str());
    }
    bool nullok = false;
    bool ignore_unavailable = false;
    bool remember = false;
    std::string socket(common::kDefaultSocketPath);
    auto parsed = pam::parse_options(argv);
    if (parsed) {
      nullok = parsed->nullok;
      ignore_unavailable = parsed->unavailable == pam::Unavailable::ignore;
      remember = parsed->remember;
      socket = parsed->socket_path;
    } else {
      for (const pam::OptionError& problem : parsed.error()) {
        error("pam_kpanel_totp.so option '" + problem.argument + "' at " + rule.where() + ": " +
                  problem.reason +
                  "; the module refuses every login while an option is wrong (options: "
                  "socket=PATH nullok timeout=SECONDS unavailable=deny|ignore prompt=TEXT debug "
                  "enroll remember)",
              rule);
      }
      // Still say what the valid ones would do once the typo is fixed.
      for (const std::string& arg : rule.args) {
        nullok = nullok || arg == "nullok";
        remember = remember || arg == "remember";
        if (arg.starts_with("unavailable=")) {
          ignore_unavailable = arg == "unavailable=ignore";
        }
      }
    }
    // Once enforce_after has passed the daemon no longer lets anyone through
    // under nullok, so the option then opens nothing.
    const bool enforced = daemon_.known && daemon_.enforcement == Enforcement::enforced;
    nullok_ = nullok_ || (nullok && !enforced);
    ignore_unavailable_ = ignore_unavailable_ || ignore_unavailable;
    if (nullok && enforced) {
      report_.ok("nullok at " + rule.where() + " lets nobody through: enforce_after (" +
                 daemon_.enforce_after + ") has passed, so users with no enrollment are " +
                 "refused (or enrolled in the login with enroll); the option can go");
    } else if (nullok) {
      warning("nullok at " + rule.where() +
                  ": users without enrollment log in without a code; remove nullok once "
                  "everyone is enrolled (kpanel-totp admin list)",
              rule);
    }
    if (ignore_unavailable) {
      warning("unavailable=ignore at " + rule.where() +
                  ": while kpanel-totpd is down or unreachable, logins skip the code; remove it "
                  "(unavailable=deny is the default) once the daemon runs reliably",
              rule);
    }
    if (remember) {
      check_remember(rule);
    }
    if (parsed && daemon_.known) {
      const std::string daemon_socket =
          daemon_.socket.empty() ? std::string(common::kDefaultSocketPath) : daemon_.socket;
      if (std::filesystem::path(socket).lexically_normal() !=
          std::filesystem::path(daemon_socket).lexically_normal()) {
        error("pam_kpanel_totp.so at " + rule.where() + " asks the daemon at " + socket +
                  ", but kpanel-totpd listens on " + daemon_socket + " (" +
                  tree_.shown(kDaemonConfigPath) +
                  "): logins fail (or skip the code with unavailable=ignore); make socket= and "
                  "the daemon's socket the same",
              rule);
      }
    }
  }

  // `remember` skips the code only while the daemon's remember_seconds is
  // set: say which of the two this stack gets.
  void check_remember(const PamRule& rule) {
    if (!daemon_.known) {
      return;
    }
    if (daemon_.remember_seconds <= 0) {
      report_.ok("remember at " + rule.where() + " skips nothing: remember_seconds is 0 in " +
                 tree_.shown(kDaemonConfigPath) + ", so every login asks for a code");
      return;
    }
    warning("remember at " + rule.where() + ": after a login with a code, the same user from " +
                "the same source logs in without one for " +
                std::to_string(daemon_.remember_seconds) +
                " s (remember_seconds); kpanel-totp forget ends it early",
            rule);
  }

  void check_skippers(const Path& path, const PamRule& ours) {
    // Every level from the outermost list down to the one holding the module:
    // an entry before the path can skip it, whatever is nested below.
    for (const Step& step : path) {
      const std::vector<PamEntry>& list = *step.list;
      for (std::size_t i = 0; i < step.index; ++i) {
        const PamEntry& entry = list[i];
        // A substack's done and jumps end at its own end: it cannot skip what follows.
        if (entry.substack || !entry.rule.control.error.empty()) {
          continue;
        }
        const PamRule& rule = entry.rule;
        // pam_rootok lets only root through, who can do anything anyway (su from root).
        if (rule.module_name() == "pam_rootok.so" || rule.is_ours()) {
          continue;
        }
        const auto skip = skips_over(rule, i, step.index);
        if (!skip) {
          continue;
        }
        report_skipper(rule, *skip, ours);
      }
    }
  }

  void report_skipper(const PamRule& rule, const Skip& skip, const PamRule& ours) {
    const std::string name = rule.module_name();
    const bool password = one_of(std::string_view(name), kPasswordModules);
    std::string message = name + " " + rule.control.text + " at " + rule.where() + " lets " +
                          (password ? std::string("a password alone log in")
                                    : "a login that passes " + name + " skip the code") +
                          ": ";
    if (skip.action.kind == ActionKind::done) {
      message += "on " + skip.value + " it ends the auth stack before pam_kpanel_totp.so (" +
                 ours.where() + ") asks for the code";
    } else {
      message += "its " + skip.value + "=" + describe_action(skip.action) +
                 " jumps over pam_kpanel_totp.so (" + ours.where() + ")";
    }
    message += "; make it required (or [success=ok ...]), or put pam_kpanel_totp.so before it";
    if (name == kGoogleAuthenticatorModule) {
      message += google_authenticator_skipper_advice();
    } else if (!password) {
      message +=
          "; to exempt accounts on purpose use exempt_group in kpanel-totpd.conf, "
          "which logs each such login";
    }
    error(std::move(message), rule);
  }

  // When the module lets someone through without a code (nullok, the
  // enforce_after grace period, unavailable=ignore) it returns PAM_IGNORE; a
  // stack in which nothing else says yes then ends in PAM_PERM_DENIED.
  void check_alone(const std::vector<Path>& ours) {
    const bool grace = daemon_.enforcement == Enforcement::grace;
    if (!nullok_ && !ignore_unavailable_ && !grace) {
      return;
    }
    std::vector<const PamRule*> rules;
    collect_rules(stack_.auth, rules);
    const bool other_can_pass = std::ranges::any_of(rules, [](const PamRule* rule) {
      if (one_of(std::string_view(rule->module_name()), kNeverSucceed) ||
          !rule->control.error.empty()) {
        return false;
      }
      const ActionKind kind = rule->control.of("success").kind;
      return kind == ActionKind::ok || kind == ActionKind::done;
    });
    if (other_can_pass) {
      return;
    }
    std::string why;
    if (nullok_) {
      why = "nullok";
    } else if (ignore_unavailable_) {
      why = "unavailable=ignore";
    } else {
      why = "the enforce_after grace period";
    }
    const PamRule& rule = rule_at(ours.front());
    error("pam_kpanel_totp.so at " + rule.where() + " is the only module in the " + stack_.service +
              " auth stack that can let a login through: when it passes a user without a code (" +
              why +
              ") it returns PAM_IGNORE and PAM then refuses the login; add 'auth required "
              "pam_permit.so' after it",
          rule);
  }

  const Tree& tree_;
  const PamStack& stack_;
  const DaemonSettings& daemon_;
  Report& report_;
  bool problem_ = false;
  bool nullok_ = false;
  bool ignore_unavailable_ = false;
};

}  // namespace

// ---- Control ------------------------------------------------------------------------

Action Control::of(std::string_view value) const {
  for (const auto& [name, action] : actions) {
    if (name == value) {
      return action;
    }
  }
  for (const auto& [name, action] : actions) {
    if (name == "default") {
      return action;
    }
  }
  return Action{ActionKind::bad, 0};
}

namespace {

// One action of a bracket control (pam.conf(5)): a keyword or a jump N > 0.
std::optional<Action> parse_action(std::string_view text) {
  Action action;
  if (text == "ignore") {
    action.kind = ActionKind::ignore;
  } else if (text == "bad") {
    action.kind = ActionKind::bad;
  } else if (text == "die") {
    action.kind = ActionKind::die;
  } else if (text == "ok") {
    action.kind = ActionKind::ok;
  } else if (text == "done") {
    action.kind = ActionKind::done;
  } else if (text == "reset") {
    action.kind = ActionKind::reset;
  } else {
    unsigned jump = 0;
    const char* const first = text.data();
    const char* const last = first + text.size();
    const auto [stop, problem] = std::from_chars(first, last, jump);
    if (text.empty() || problem != std::errc{} || stop != last || jump == 0) {
      return std::nullopt;
    }
    action.kind = ActionKind::jump;
    action.jump = jump;
  }
  return action;
}

}  // namespace

Control parse_control(std::string_view text) {
  Control control;
  control.text = std::string(text);
  const auto set = [&control](std::string_view value, ActionKind kind) {
    control.actions.emplace_back(std::string(value), Action{kind, 0});
  };
  // pam.conf(5): the keywords as their bracket equivalents.
  const std::string keyword = lower(text);
  if (keyword == "required" || keyword == "requisite") {
    control.text = keyword;
    set("success", ActionKind::ok);
    set("new_authtok_reqd", ActionKind::ok);
    set("ignore", ActionKind::ignore);
    set("default", keyword == "required" ? ActionKind::bad : ActionKind::die);
    return control;
  }
  if (keyword == "sufficient") {
    control.text = keyword;
    set("success", ActionKind::done);
    set("new_authtok_reqd", ActionKind::done);
    set("default", ActionKind::ignore);
    return control;
  }
  if (keyword == "optional") {
    control.text = keyword;
    set("success", ActionKind::ok);
    set("new_authtok_reqd", ActionKind::ok);
    set("default", ActionKind::ignore);
    return control;
  }
  if (!text.starts_with('[') || !text.ends_with(']')) {
    control.error = "is not a known control";
    return control;
  }
  std::string_view rest = text.substr(1, text.size() - 2);
  while (true) {
    const std::size_t start = rest.find_first_not_of(kWhitespace);
    if (start == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(start);
    const std::size_t end = std::min(rest.find_first_of(kWhitespace), rest.size());
    const std::string_view pair = rest.substr(0, end);
    rest.remove_prefix(end);
    const std::size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      control.error = "has '" + std::string(pair) + "' without '=action'";
      continue;
    }
    const std::string value = lower(pair.substr(0, eq));
    const std::string action_text = lower(pair.substr(eq + 1));
    if (!one_of(std::string_view(value), kReturnValues)) {
      control.error = "names an unknown return value '" + value + "'";
      continue;
    }
    const std::optional<Action> action = parse_action(action_text);
    if (!action) {
      control.error = "has an unknown action '" + action_text + "'";
      continue;
    }
    // A later value for the same return code wins, as in libpam.
    std::erase_if(control.actions, [&value](const auto& pair_) { return pair_.first == value; });
    control.actions.emplace_back(value, *action);
  }
  return control;
}

std::string PamRule::module_name() const {
  const std::size_t slash = module.rfind('/');
  return slash == std::string::npos ? module : module.substr(slash + 1);
}

std::vector<std::string> split_pam_line(std::string_view line) {
  std::vector<std::string> tokens;
  std::size_t i = 0;
  while (i < line.size()) {
    if (kWhitespace.find(line[i]) != std::string_view::npos || line[i] == '\n') {
      ++i;
      continue;
    }
    const std::size_t start = i;
    if (line[i] == '[') {
      // Up to the first ']' that is not escaped; unterminated: the rest of the line.
      ++i;
      while (i < line.size() && (line[i] != ']' || line[i - 1] == '\\')) {
        ++i;
      }
      i = std::min(i + 1, line.size());
    } else {
      while (i < line.size() && kWhitespace.find(line[i]) == std::string_view::npos &&
             line[i] != '\n') {
        ++i;
      }
    }
    tokens.emplace_back(line.substr(start, i - start));
  }
  return tokens;
}

std::optional<PamStack> load_auth_stack(const Tree& tree, std::string_view service,
                                        Report& report) {
  const std::string logical = std::string(kPamDir) + "/" + std::string(service);
  PamStack stack;
  stack.service = std::string(service);
  stack.file = tree.shown(logical);
  Loader loader(tree, report);
  if (!loader.load(logical, stack.auth, 0, stack.file)) {
    return std::nullopt;
  }
  return stack;
}

bool check_pam_stack(const Tree& tree, const PamStack& stack, const DaemonSettings& daemon,
                     Report& report) {
  const bool asks = StackChecker(tree, stack, daemon, report).run();
  check_google_authenticator(stack, report);  // nothing to say unless it asks
  return asks;
}

}  // namespace kpanel::cli::doctor
