#include "doctor/doctor_sshd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <utility>

#include "common/unique_fd.hpp"

namespace kpanel::cli::doctor {

namespace {

constexpr std::string_view kWhitespace = " \t\r\f\v";
constexpr std::string_view kSshDir = "/etc/ssh";
// sshd's own limit (READCONF_MAX_DEPTH): deeper Includes make it refuse to start.
constexpr int kMaxIncludeDepth = 16;
constexpr std::chrono::seconds kSshdTimeout{10};
constexpr std::size_t kMaxDumpBytes = std::size_t{1} << 20U;

// The keywords the checks read, with sshd's built-in defaults (OpenSSH 9.2).
struct Keyword {
  std::string_view name;
  std::string_view fallback;
};
constexpr auto kKeywords = std::to_array<Keyword>({
    {"usepam", "no"},
    {"kbdinteractiveauthentication", "yes"},
    {"passwordauthentication", "yes"},
    {"pubkeyauthentication", "yes"},
    {"authenticationmethods", "any"},
    {"hostbasedauthentication", "no"},
    {"gssapiauthentication", "no"},
    {"permitemptypasswords", "no"},
});

std::string lower(std::string_view text) {
  std::string out(text);
  std::ranges::transform(out, out.begin(), [](char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return out;
}

const Keyword* find_keyword(std::string_view name) {
  const auto* const found = std::ranges::find(kKeywords, name, &Keyword::name);
  return found == kKeywords.end() ? nullptr : &*found;
}

// sshd's argv_split: whitespace-separated, "double quotes" group, backslash
// escapes a quote, a backslash or (outside quotes) a space; an unquoted '#'
// at the start of an argument ends the line.
std::vector<std::string> split_arguments(std::string_view text) {
  std::vector<std::string> args;
  std::size_t i = 0;
  while (i < text.size()) {
    if (kWhitespace.find(text[i]) != std::string_view::npos) {
      ++i;
      continue;
    }
    if (text[i] == '#') {
      break;
    }
    std::string arg;
    bool quoted = false;
    for (; i < text.size(); ++i) {
      const char c = text[i];
      if (c == '\\' && i + 1 < text.size()) {
        const char next = text[i + 1];
        if (next == '"' || next == '\'' || next == '\\' || (!quoted && next == ' ')) {
          arg.push_back(next);
          ++i;
          continue;
        }
      }
      if (c == '"') {
        quoted = !quoted;
        continue;
      }
      if (!quoted && kWhitespace.find(c) != std::string_view::npos) {
        break;
      }
      arg.push_back(c);
    }
    args.push_back(std::move(arg));
  }
  return args;
}

class Loader {
 public:
  Loader(const Tree& tree, Report& report, SshdConfig& config)
      : tree_(tree), report_(report), config_(config) {}

  // `context`: -1 global, else the index of the Match block the lines belong to.
  bool load(std::string_view logical, int depth, int context, const std::string& from) {
    const std::string shown = tree_.shown(logical);
    auto text = tree_.read(logical);
    if (!text) {
      if (depth == 0) {
        if (text.error() != ENOENT) {
          report_.skipped("cannot read " + shown + ": " + errno_text(text.error()) +
                          "; sshd settings not checked (run as root)");
        }
      } else {
        report_.skipped("cannot read " + shown + " (included at " + from +
                        "): " + errno_text(text.error()) + "; its settings are not checked");
      }
      return false;
    }
    int current = context;
    std::size_t number = 0;
    std::string_view rest = *text;
    while (!rest.empty()) {
      const std::size_t end = rest.find('\n');
      const std::string_view raw = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
      ++number;
      line(shown, number, raw, depth, current);
    }
    return true;
  }

 private:
  void line(const std::string& shown, std::size_t number, std::string_view raw, int depth,
            int& current) {
    std::string_view text = raw;
    const std::size_t start = text.find_first_not_of(kWhitespace);
    if (start == std::string_view::npos || text[start] == '#') {
      return;
    }
    text.remove_prefix(start);
    // "Keyword value" or "Keyword=value".
    const std::size_t key_end = std::min(text.find_first_of(" \t\r\f\v="), text.size());
    const std::string keyword = lower(text.substr(0, key_end));
    text.remove_prefix(key_end);
    const std::size_t value_start = text.find_first_not_of(kWhitespace);
    text = value_start == std::string_view::npos ? std::string_view{} : text.substr(value_start);
    if (text.starts_with('=')) {
      text.remove_prefix(1);
    }
    const std::vector<std::string> args = split_arguments(text);
    const std::string where = shown + ":" + std::to_string(number);

    if (keyword == "match") {
      SshdMatch block;
      std::string condition;
      for (const std::string& arg : args) {
        condition += (condition.empty() ? "" : " ") + arg;
      }
      block.condition = condition;
      block.file = shown;
      block.line = number;
      config_.matches.push_back(std::move(block));
      current = static_cast<int>(config_.matches.size()) - 1;
      return;
    }
    if (keyword == "include") {
      if (depth + 1 > kMaxIncludeDepth) {
        report_.error("sshd",
                      "Include at " + where + " nests deeper than " +
                          std::to_string(kMaxIncludeDepth) +
                          " files (a loop?): sshd refuses to start; remove the loop",
                      shown, number);
        return;
      }
      for (const std::string& pattern : args) {
        const std::string logical =
            pattern.starts_with('/') ? pattern : std::string(kSshDir) + "/" + pattern;
        for (const std::string& path : tree_.glob(logical)) {
          // An Include inside a Match block stays in it; a Match in the included
          // file ends with that file (sshd restores the including context).
          load(path, depth + 1, current, where);
        }
      }
      return;
    }
    std::string name = keyword;
    if (name == "challengeresponseauthentication") {
      name = "kbdinteractiveauthentication";  // the same option since OpenSSH 8.7
    }
    if (find_keyword(name) == nullptr || args.empty()) {
      return;
    }
    std::string value;
    if (name == "authenticationmethods") {
      for (const std::string& arg : args) {
        value += (value.empty() ? "" : " ") + arg;
      }
    } else {
      value = lower(args.front());
    }
    SshdSettings& settings =
        current < 0 ? config_.global : config_.matches[static_cast<std::size_t>(current)].settings;
    // sshd keeps the first value it reads for each keyword.
    settings.try_emplace(name, SshdValue{value, shown, number, false});
  }

  const Tree& tree_;
  Report& report_;
  SshdConfig& config_;
};

// ---- checks ------------------------------------------------------------------

class Checker {
 public:
  Checker(const SshdConfig& config, const SshdMatch* block) : config_(config), block_(block) {}

  std::vector<Finding> run() {
    const SshdValue use_pam = get("usepam");
    if (use_pam.value != "yes") {
      error("UsePAM " + use_pam.value + " " + where(use_pam) +
                ": sshd does not run PAM, so SSH logins never ask for a code; set UsePAM yes",
            use_pam);
      return std::move(findings_);  // nothing below matters without PAM
    }
    const SshdValue kbd = get("kbdinteractiveauthentication");
    if (kbd.value != "yes") {
      error("KbdInteractiveAuthentication " + kbd.value + " " + where(kbd) +
                ": codes cannot be asked (keyboard-interactive is the only SSH method that shows "
                "PAM's code prompt); set KbdInteractiveAuthentication yes",
            kbd);
    }
    const SshdValue methods = get("authenticationmethods");
    if (methods.value == "any") {
      check_any();
    } else {
      check_lists(methods);
    }
    return std::move(findings_);
  }

 private:
  SshdValue get(std::string_view name) const { return sshd_setting(config_, block_, name); }

  std::string where(const SshdValue& value) const {
    if (value.file.empty()) {
      return "(not set in " + config_.main_file + " or its Includes: sshd's default)";
    }
    if (value.from_sshd_t) {
      return "(sshd -T's effective value)";
    }
    return "at " + value.file + ":" + std::to_string(value.line);
  }

  void add(Severity severity, std::string message, const SshdValue& value) {
    Finding finding;
    finding.severity = severity;
    finding.check = "sshd";
    finding.message = std::move(message);
    finding.file = value.file.empty() ? config_.main_file : value.file;
    finding.line = value.line;
    findings_.push_back(std::move(finding));
  }
  void error(std::string message, const SshdValue& value) {
    add(Severity::error, std::move(message), value);
  }
  void warning(std::string message, const SshdValue& value) {
    add(Severity::warning, std::move(message), value);
  }

  bool enabled(std::string_view method) const {
    if (method == "publickey") {
      return get("pubkeyauthentication").value == "yes";
    }
    if (method == "password") {
      return get("passwordauthentication").value == "yes";
    }
    if (method == "keyboard-interactive") {
      return get("kbdinteractiveauthentication").value == "yes";
    }
    if (method == "hostbased") {
      return get("hostbasedauthentication").value == "yes";
    }
    if (method == "gssapi-with-mic") {
      return get("gssapiauthentication").value == "yes";
    }
    return false;
  }

  // AuthenticationMethods any: each enabled method is enough on its own. What
  // that lets in is the login model's to say (check_ssh_logins); here only
  // the password method, which cannot answer the code prompt.
  void check_any() {
    if (enabled("password")) {
      const SshdValue password = get("passwordauthentication");
      warning("PasswordAuthentication yes " + where(password) +
                  ": sshd's password method answers every PAM prompt with the password, so it "
                  "cannot answer the code: enrolled users fail it and each try counts as failed "
                  "codes toward a lockout; set PasswordAuthentication no (keyboard-interactive "
                  "asks for the password and the code)",
              password);
    }
  }

  // AuthenticationMethods LIST...: a login must complete one list.
  void check_lists(const SshdValue& methods) {
    std::string_view rest = methods.value;
    while (!rest.empty()) {
      const std::size_t space = rest.find(' ');
      const std::string_view list = rest.substr(0, space);
      rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
      if (list.empty()) {
        continue;
      }
      bool has_kbd = false;
      bool has_password = false;
      std::string_view methods_left = list;
      while (!methods_left.empty()) {
        const std::size_t comma = methods_left.find(',');
        std::string_view method = methods_left.substr(0, comma);
        methods_left =
            comma == std::string_view::npos ? std::string_view{} : methods_left.substr(comma + 1);
        method = method.substr(0, method.find(':'));  // "keyboard-interactive:pam"
        has_kbd = has_kbd || method == "keyboard-interactive";
        has_password = has_password || method == "password";
      }
      if (has_kbd) {
        continue;
      }
      // A list without keyboard-interactive and without password skips the
      // code: the login model reports that as an error (check_ssh_logins).
      if (has_password) {
        warning("AuthenticationMethods list '" + std::string(list) + "' " + where(methods) +
                    " uses password, which answers the code prompt with the password: enrolled "
                    "users cannot pass it and each try counts as failed codes toward a lockout; "
                    "use keyboard-interactive instead of password",
                methods);
      }
    }
  }

  const SshdConfig& config_;
  const SshdMatch* block_;
  std::vector<Finding> findings_;
};

bool same_finding(const Finding& a, const Finding& b) {
  return a.severity == b.severity && a.message == b.message && a.file == b.file && a.line == b.line;
}

}  // namespace

SshdValue sshd_setting(const SshdConfig& config, const SshdMatch* block, std::string_view name) {
  if (block != nullptr) {
    if (const auto found = block->settings.find(name); found != block->settings.end()) {
      return found->second;
    }
  }
  if (const auto found = config.global.find(name); found != config.global.end()) {
    return found->second;
  }
  const Keyword* keyword = find_keyword(name);
  return SshdValue{std::string(keyword != nullptr ? keyword->fallback : ""), {}, 0, false};
}

std::optional<SshdConfig> load_sshd_config(const Tree& tree, Report& report) {
  SshdConfig config;
  config.main_file = tree.shown(kSshdConfigPath);
  Loader loader(tree, report, config);
  if (!loader.load(kSshdConfigPath, 0, -1, config.main_file)) {
    return std::nullopt;
  }
  return config;
}

void apply_sshd_t(SshdConfig& config, std::string_view dump) {
  while (!dump.empty()) {
    const std::size_t end = dump.find('\n');
    const std::string_view line = dump.substr(0, end);
    dump = end == std::string_view::npos ? std::string_view{} : dump.substr(end + 1);
    const std::size_t space = line.find(' ');
    if (space == std::string_view::npos) {
      continue;
    }
    const std::string name = lower(line.substr(0, space));
    if (find_keyword(name) == nullptr) {
      continue;
    }
    std::string value(line.substr(space + 1));
    if (name != "authenticationmethods") {
      value = lower(value);
    }
    const auto found = config.global.find(name);
    if (found != config.global.end() && found->second.value == value) {
      continue;  // the files say the same: keep their file:line
    }
    if (found == config.global.end() && value == find_keyword(name)->fallback) {
      continue;  // the default, as the files imply
    }
    config.global[name] = SshdValue{value, config.main_file, 0, true};
  }
}

std::expected<std::string, std::string> run_sshd_t(const std::string& sshd,
                                                   const std::string& config) {
  std::array<int, 2> out_pipe{-1, -1};
  if (::pipe2(out_pipe.data(), O_CLOEXEC) != 0) {
    return std::unexpected(std::string("pipe: ") + errno_text(errno));
  }
  const common::UniqueFd read_end(out_pipe[0]);
  common::UniqueFd write_end(out_pipe[1]);
  posix_spawn_file_actions_t actions{};
  if (::posix_spawn_file_actions_init(&actions) != 0) {
    return std::unexpected("cannot start sshd");
  }
  ::posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
  ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  std::string program = sshd;
  std::string flag_t = "-T";
  std::string flag_f = "-f";
  std::string config_arg = config;
  std::array<char*, 5> argv{program.data(), flag_t.data(), flag_f.data(), config_arg.data(),
                            nullptr};
  std::string path_env = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  std::array<char*, 2> envp{path_env.data(), nullptr};
  pid_t pid = -1;
  const int spawned =
      ::posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), envp.data());
  ::posix_spawn_file_actions_destroy(&actions);
  write_end.reset();
  if (spawned != 0) {
    return std::unexpected(std::string("cannot run ") + sshd + ": " + errno_text(spawned));
  }
  std::string output;
  bool timed_out = false;
  const auto deadline = std::chrono::steady_clock::now() + kSshdTimeout;
  std::array<char, 8192> buffer{};
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd waiting{read_end.get(), POLLIN, 0};
    const int ready = ::poll(&waiting, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) {
      continue;
    }
    if (ready <= 0) {
      timed_out = ready == 0;
      break;
    }
    const ssize_t got = ::read(read_end.get(), buffer.data(), buffer.size());
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got <= 0) {
      break;
    }
    output.append(buffer.data(), static_cast<std::size_t>(got));
    if (output.size() > kMaxDumpBytes) {
      timed_out = true;  // not sshd -T's output; stop it the same way
      break;
    }
  }
  if (timed_out) {
    ::kill(pid, SIGKILL);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return std::unexpected(sshd + " -T did not finish in time");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return std::unexpected(sshd + " -T failed (exit status " +
                           std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                           "; check it with: " + sshd + " -t)");
  }
  return output;
}

void check_sshd(const SshdConfig& config, Report& report) {
  const std::vector<Finding> global = Checker(config, nullptr).run();
  bool found = !global.empty();
  for (const Finding& finding : global) {
    report.add(finding);
  }
  for (const SshdMatch& block : config.matches) {
    // Only what this block changes: the rest is already reported above.
    for (Finding finding : Checker(config, &block).run()) {
      if (std::ranges::any_of(global,
                              [&finding](const Finding& g) { return same_finding(g, finding); })) {
        continue;
      }
      finding.message = "for connections matching 'Match " + block.condition + "' (" + block.file +
                        ":" + std::to_string(block.line) + "): " + finding.message;
      report.add(std::move(finding));
      found = true;
    }
  }
  if (!found) {
    report.ok(config.main_file + ": sshd runs PAM and offers keyboard-interactive, the " +
              "method that can ask for the code");
  }
}

}  // namespace kpanel::cli::doctor
