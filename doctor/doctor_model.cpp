#include "doctor/doctor_model.hpp"

#include <algorithm>
#include <bit>
#include <initializer_list>
#include <optional>
#include <string_view>
#include <utility>

#include "common/pam_options.hpp"

namespace kpanel::cli::doctor {

namespace {

// Branches explored per run of the stack: every module whose answer does not
// depend on what the user types (pam_succeed_if, pam_faillock, ...) doubles
// them, so a pathological stack stops here instead of running forever.
constexpr std::size_t kMaxSteps = 200000;
// libpam refuses deeper nesting.
constexpr std::size_t kMaxLevels = 32;

// ---- the PAM stack, run as libpam runs it ---------------------------------------

// The return values that matter here.
enum class Ret : std::uint8_t {
  success,
  auth_err,
  ignore,
  authinfo_unavail,
  module_unknown,
  perm_denied,
};

std::string_view name_of(Ret value) {
  switch (value) {
    case Ret::success:
      return "success";
    case Ret::auth_err:
      return "auth_err";
    case Ret::ignore:
      return "ignore";
    case Ret::authinfo_unavail:
      return "authinfo_unavail";
    case Ret::module_unknown:
      return "module_unknown";
    case Ret::perm_denied:
      return "perm_denied";
  }
  return "auth_err";
}

// Modules whose auth function never says yes nor depends on the user's
// answers: PAM_IGNORE.
constexpr auto kIgnoring = std::to_array<std::string_view>(
    {"pam_env.so", "pam_faildelay.so", "pam_nologin.so", "pam_group.so", "pam_warn.so",
     "pam_echo.so", "pam_motd.so", "pam_keyinit.so", "pam_loginuid.so"});

struct OurOptions {
  bool valid = true;
  bool nullok = false;
  bool enroll = false;
  bool ignore_unavailable = false;
};

OurOptions our_options(const PamRule& rule) {
  std::vector<const char*> argv;
  argv.reserve(rule.args.size());
  for (const std::string& arg : rule.args) {
    argv.push_back(arg.c_str());
  }
  OurOptions out;
  auto parsed = pam::parse_options(argv);
  if (!parsed) {
    out.valid = false;  // the module refuses every login
    return out;
  }
  out.nullok = parsed->nullok;
  out.enroll = parsed->enroll;
  out.ignore_unavailable = parsed->unavailable == pam::Unavailable::ignore;
  return out;
}

// One auth line in libpam's flat list: substacks are inlined one level deeper.
struct Flat {
  const PamRule* rule = nullptr;
  std::size_t level = 0;
  bool substack = false;  // the substack line itself: libpam passes over it
  bool installed = true;  // only known for pam_kpanel_totp.so
  OurOptions ours{};      // for pam_kpanel_totp.so
};

void flatten(const Tree& tree, const std::vector<PamEntry>& list, std::size_t level,
             std::vector<Flat>& out) {
  for (const PamEntry& entry : list) {
    if (entry.substack) {
      out.push_back(Flat{&entry.rule, level, true, true, {}});
      flatten(tree, entry.children, std::min(level + 1, kMaxLevels - 1), out);
      continue;
    }
    Flat flat{&entry.rule, level, false, true, {}};
    if (entry.rule.is_ours()) {
      flat.installed = module_installed(tree, entry.rule);
      if (!flat.installed && entry.rule.dash) {
        continue;  // "-auth": libpam leaves out a line whose module is missing
      }
      flat.ours = our_options(entry.rule);
    }
    out.push_back(flat);
  }
}

enum class Impression : std::uint8_t { undef, positive, negative };

struct State {
  Impression impression = Impression::undef;
  Ret status = Ret::perm_denied;  // libpam's PAM_MUST_FAIL_CODE
  std::size_t prev_level = 0;
  std::array<std::pair<Impression, Ret>, kMaxLevels> saved{};  // at each substack's start
};

class Run {
 public:
  Run(const std::vector<Flat>& flat, UserKind kind, Factors typed, const DaemonSettings& daemon)
      : flat_(flat), kind_(kind), typed_(typed), daemon_(daemon) {}

  // Whether some run of the stack ends in PAM_SUCCESS.
  bool passes() {
    step(0, State{});
    return passed_;
  }
  [[nodiscard]] bool exhausted() const noexcept { return steps_ >= kMaxSteps; }

 private:
  // What the module of `flat` may return to this user.
  std::vector<Ret> outcomes(const Flat& flat) const {
    const PamRule& rule = *flat.rule;
    if (rule.is_ours()) {
      if (!flat.installed) {
        return {Ret::module_unknown};
      }
      if (!flat.ours.valid) {
        return {Ret::auth_err};
      }
      switch (kind_) {
        case UserKind::enrolled:
          return {(typed_ & kCode) != 0 ? Ret::success : Ret::auth_err};
        case UserKind::exempt:
          return {Ret::success};
        case UserKind::daemon_down:
          return {flat.ours.ignore_unavailable ? Ret::ignore : Ret::authinfo_unavail};
        case UserKind::unenrolled:
          // The daemon's order: grace period, then enroll, then nullok.
          if (daemon_.enforcement == Enforcement::grace) {
            return {Ret::ignore};
          }
          if (flat.ours.enroll) {
            return {Ret::success};  // enrolls inside the login: proves nothing
          }
          if (flat.ours.nullok && daemon_.enforcement == Enforcement::none) {
            return {Ret::ignore};
          }
          return {Ret::auth_err};
      }
    }
    const std::string name = rule.module_name();
    if (is_password_module(name)) {
      return {(typed_ & kPassword) != 0 ? Ret::success : Ret::auth_err};
    }
    // pam_rootok checks the caller's uid, and sshd runs PAM as root.
    if (name == "pam_permit.so" || name == "pam_rootok.so") {
      return {Ret::success};
    }
    if (name == "pam_deny.so") {
      return {Ret::auth_err};
    }
    if (std::ranges::find(kIgnoring, std::string_view(name)) != kIgnoring.end()) {
      return {Ret::ignore};
    }
    // Anything else may say yes or no, whatever the user types.
    return {Ret::success, Ret::auth_err};
  }

  // Past the rest of the entries at `level` and deeper.
  [[nodiscard]] std::size_t end_of_level(std::size_t at, std::size_t level) const {
    while (at + 1 < flat_.size() && flat_[at + 1].level >= level) {
      ++at;
    }
    return at + 1;
  }

  // libpam's _pam_dispatch_aux for one module's answer; the next index.
  std::size_t apply(std::size_t at, Ret value, State& state) const {
    const Flat& flat = flat_[at];
    const std::size_t level = flat.level;
    Action action;
    if (!flat.rule->control.error.empty()) {
      value = Ret::perm_denied;  // a line libpam cannot parse fails
      action = Action{ActionKind::bad, 0};
    } else {
      action = flat.rule->control.of(name_of(value));
    }
    switch (action.kind) {
      case ActionKind::reset:
        state.impression = state.saved[level].first;
        state.status = state.saved[level].second;
        return at + 1;
      case ActionKind::ok:
      case ActionKind::done:
        if (state.impression == Impression::undef ||
            (state.impression == Impression::positive && state.status == Ret::success)) {
          if (value != Ret::ignore) {
            state.impression = Impression::positive;
            state.status = value;
          }
        }
        if (state.impression != Impression::negative && action.kind == ActionKind::done) {
          return end_of_level(at, level);
        }
        return at + 1;
      case ActionKind::bad:
      case ActionKind::die:
        if (state.impression != Impression::negative) {
          state.impression = Impression::negative;
          state.status = value == Ret::success ? Ret::perm_denied : value;
        }
        if (action.kind == ActionKind::die) {
          return end_of_level(at, level);
        }
        return at + 1;
      case ActionKind::ignore:
        return at + 1;
      case ActionKind::jump: {
        unsigned left = action.jump;
        std::size_t here = at;
        // A substack counts as one entry; a jump never leaves its own level.
        while (here + 1 < flat_.size() && flat_[here + 1].level >= level && left > 0) {
          do {
            ++here;
          } while (here + 1 < flat_.size() && flat_[here + 1].level > level);
          --left;
        }
        if (left > 0) {  // past the end: libpam's "bad jump in stack"
          state.impression = Impression::negative;
          state.status = Ret::perm_denied;
        }
        return here + 1;
      }
    }
    return at + 1;
  }

  void step(std::size_t at, State state) {
    while (at < flat_.size()) {
      if (passed_ || ++steps_ >= kMaxSteps) {
        return;
      }
      const Flat& flat = flat_[at];
      if (state.prev_level < flat.level) {
        state.saved[flat.level] = {state.impression, state.status};
      }
      state.prev_level = flat.level;
      if (flat.substack) {
        ++at;
        continue;
      }
      const std::vector<Ret> values = outcomes(flat);
      for (std::size_t i = 1; i < values.size(); ++i) {
        State branch = state;
        const std::size_t next = apply(at, values[i], branch);
        step(next, branch);
      }
      at = apply(at, values.front(), state);
    }
    if (state.impression == Impression::positive && state.status == Ret::success) {
      passed_ = true;
    }
  }

  const std::vector<Flat>& flat_;
  UserKind kind_;
  Factors typed_;
  const DaemonSettings& daemon_;
  std::size_t steps_ = 0;
  bool passed_ = false;
};

}  // namespace

std::vector<Factors> minimal_sets(std::vector<Factors> sets) {
  std::ranges::sort(sets, [](Factors a, Factors b) {
    return std::popcount(a) != std::popcount(b) ? std::popcount(a) < std::popcount(b) : a < b;
  });
  std::vector<Factors> out;
  for (const Factors set : sets) {
    if (std::ranges::none_of(out, [set](Factors kept) { return (kept & set) == kept; })) {
      out.push_back(set);
    }
  }
  return out;
}

std::string join_words(const std::vector<std::string>& parts, std::string_view last) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) {
      out += i + 1 == parts.size() ? std::string(last) : std::string(", ");
    }
    out += parts[i];
  }
  return out;
}

std::string factor_names(Factors factors) {
  std::vector<std::string> parts;
  if ((factors & kKey) != 0) {
    parts.emplace_back("a key");
  }
  if ((factors & kPassword) != 0) {
    parts.emplace_back("a password");
  }
  if ((factors & kHostbased) != 0) {
    parts.emplace_back("a trusted client host (hostbased)");
  }
  if ((factors & kGssapi) != 0) {
    parts.emplace_back("a Kerberos ticket (gssapi-with-mic)");
  }
  if ((factors & kCode) != 0) {
    parts.emplace_back("the code");
  }
  return join_words(parts, " and ");
}

std::string describe_factors(Factors factors) {
  return factors == 0 ? std::string("nothing") : factor_names(factors);
}

PamModel model_pam_stack(const Tree& tree, const PamStack& stack, const DaemonSettings& daemon) {
  PamModel model;
  model.file = stack.file;
  model.exempt_group = daemon.exempt_group;
  std::vector<Flat> flat;
  flatten(tree, stack.auth, 0, flat);

  for (const Flat& entry : flat) {
    if (!entry.substack && entry.rule->module_name() == "pam_unix.so" &&
        std::ranges::find(entry.rule->args, "nullok") != entry.rule->args.end() &&
        model.empty_password_how.empty()) {
      model.empty_password_how = "pam_unix.so nullok at " + entry.rule->where();
    }
  }
  for (const Flat& entry : flat) {
    if (entry.substack || !entry.rule->is_ours() || !entry.installed || !entry.ours.valid) {
      continue;
    }
    if (model.unenrolled_how.empty()) {
      if (daemon.enforcement == Enforcement::grace) {
        model.unenrolled_how = "the enforce_after grace period, until " + daemon.enforce_after;
      } else if (entry.ours.enroll) {
        model.unenrolled_how =
            "enroll at " + entry.rule->where() + ": they enroll inside the login";
      } else if (entry.ours.nullok && daemon.enforcement == Enforcement::none) {
        model.unenrolled_how = "nullok at " + entry.rule->where();
      }
    }
    if (entry.ours.ignore_unavailable && model.down_how.empty()) {
      model.down_how = "unavailable=ignore at " + entry.rule->where();
    }
  }
  model.applies[static_cast<std::size_t>(UserKind::enrolled)] = true;
  model.applies[static_cast<std::size_t>(UserKind::unenrolled)] = !model.unenrolled_how.empty();
  model.applies[static_cast<std::size_t>(UserKind::exempt)] = !daemon.exempt_group.empty();
  model.applies[static_cast<std::size_t>(UserKind::daemon_down)] = !model.down_how.empty();

  for (std::size_t kind = 0; kind < kUserKinds; ++kind) {
    if (!model.applies[kind]) {
      continue;
    }
    std::vector<Factors> kbd;
    std::vector<Factors> password;
    for (const Factors typed : {Factors{0}, kPassword, kCode, kPassword | kCode}) {
      Run run(flat, static_cast<UserKind>(kind), typed, daemon);
      // A stack too branchy to finish counts as passable: better a finding to
      // look at than a way in not reported.
      if (run.passes() || run.exhausted()) {
        kbd.push_back(typed);
        if ((typed & kCode) == 0) {
          password.push_back(typed);  // the password method can never give a code
        }
      }
    }
    model.needs[kind].keyboard_interactive = minimal_sets(std::move(kbd));
    model.needs[kind].password_method = minimal_sets(std::move(password));
  }
  return model;
}

}  // namespace kpanel::cli::doctor
