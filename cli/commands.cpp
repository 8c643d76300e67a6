#include "cli/commands.hpp"

#include <array>
#include <ostream>

#include "cli/output.hpp"

namespace kpanel::cli {

namespace protocol = common::protocol;

namespace {

constexpr std::array kEnrollOptions{
    OptionSpec{"png", "FILE", "also write the QR code as a PNG image (mode 0600)"},
    OptionSpec{"svg", "FILE", "also write the QR code as an SVG image (mode 0600)"},
    OptionSpec{"begin", "", "start only: show the QR code and key, then stop"},
    OptionSpec{"confirm", "CODE", "finish a started enrollment with the app's current code"},
    OptionSpec{"replace", "",
               "move to a new phone: asks for a current code or a recovery code first"},
};
constexpr std::array kRecoveryCodesOptions{
    OptionSpec{"regenerate", "",
               "required: replaces every recovery code; the old ones stop working"},
};
constexpr std::array<std::string_view, 1> kUserArgument{"USER"};
constexpr std::array kDoctorOptions{
    OptionSpec{"root", "DIR",
               "read /etc and the PAM modules under DIR (tests, chroots); --socket still "
               "names the daemon"},
    OptionSpec{"strict", "", "exit 1 on warnings too, not only on errors"},
};
constexpr std::array<std::string_view, 1> kFileArgument{"FILE"};
constexpr std::array kListOptions{
    OptionSpec{"all", "",
               "also every account that can log in (uid >= UID_MIN, a login shell), and who is "
               "exempt"},
};
constexpr std::array kStatsOptions{
    OptionSpec{"prometheus", "",
               "the Prometheus text format, for node_exporter's textfile collector"},
};
constexpr std::array kImportOptions{
    OptionSpec{"all", "", "every account NSS knows that has a ~/.google_authenticator"},
    OptionSpec{"remove", "", "delete each imported file once its import is on disk"},
};
constexpr std::array<std::string_view, 1> kUsersArgument{"USER..."};
constexpr std::array kBackupOptions{
    OptionSpec{"config", "FILE",
               "the daemon's configuration (default /etc/kpanel-totp/kpanel-totpd.conf)"},
};

// The command table: name, usage, summary, options, positional arguments, handler.
constexpr std::array kCommands{
    CommandSpec{"enroll",
                "[--png FILE] [--svg FILE] [--begin] [--confirm CODE] [--replace]",
                "set up an authenticator app: QR code, key, a confirming code, recovery codes",
                kEnrollOptions,
                {},
                run_enroll},
    CommandSpec{"status",
                "",
                "enrolled or not, since when, recovery codes left, lockout",
                {},
                {},
                run_status},
    CommandSpec{"forget",
                "",
                "end your remembered logins: the next login asks for a code from everywhere",
                {},
                {},
                run_forget},
    CommandSpec{"disable",
                "",
                "turn the second factor off (asks for the password and a code)",
                {},
                {},
                run_disable},
    CommandSpec{"recovery-codes",
                "--regenerate",
                "replace all recovery codes",
                kRecoveryCodesOptions,
                {},
                run_recovery_codes},
    CommandSpec{"admin list",
                "[--all]",
                "every user's enrollment and lockout state; --all: the rollout at a glance",
                kListOptions,
                {},
                run_admin_list},
    CommandSpec{"admin reset",
                "USER",
                "remove USER's enrollment (check who is asking first)",
                {},
                kUserArgument,
                run_admin_reset},
    CommandSpec{
        "admin unlock", "USER", "clear USER's lockout", {}, kUserArgument, run_admin_unlock},
    CommandSpec{"admin forget",
                "USER",
                "end USER's remembered logins (remember_seconds)",
                {},
                kUserArgument,
                run_admin_forget},
    CommandSpec{"admin doctor",
                "[--root DIR] [--strict]",
                "check the daemon, PAM stacks and sshd settings for ways around the code or "
                "lockouts",
                kDoctorOptions,
                {},
                run_admin_doctor},
    CommandSpec{"admin import-google-authenticator", "[--all] [--remove] [USER...]",
                "root only: each user's ~/.google_authenticator becomes their enrollment",
                kImportOptions, kUsersArgument, run_admin_import},
    CommandSpec{"admin backup", "[--config FILE] FILE",
                "root only: a consistent snapshot of the state (never the key) to FILE, mode 0600",
                kBackupOptions, kFileArgument, run_admin_backup},
    CommandSpec{"admin stats",
                "[--prometheus]",
                "the daemon's counters since it started and its gauges (root and admin_group)",
                kStatsOptions,
                {},
                run_admin_stats},
};

constexpr std::string_view kGlobalUsage = "kpanel-totp [--socket PATH] [--user NAME] [--json]";

void print_command_line(std::ostream& out, const CommandSpec& command) {
  out << command.name;
  if (!command.arguments.empty()) {
    out << ' ' << command.arguments;
  }
}

}  // namespace

std::span<const CommandSpec> command_table() { return kCommands; }

bool Context::colors(const std::ostream& stream) const noexcept {
  if (&stream == &env_.out) {
    return env_.out_colors;
  }
  if (&stream == &env_.err) {
    return env_.err_colors;
  }
  return false;
}

std::string_view Context::subject() const noexcept {
  return global_.user.empty() ? std::string_view(env_.self_name) : std::string_view(global_.user);
}

std::string Context::suggest(std::string_view command) const {
  std::string text = "kpanel-totp ";
  if (!global_.user.empty()) {
    text += "--user " + global_.user + " ";
  }
  text += command;
  return text;
}

std::expected<protocol::Response, Failure> Context::send(const protocol::Request& request,
                                                         std::string_view about) {
  const common::ClientOptions options{global_.socket_path, kDaemonTimeout};
  const std::string user_flag =
      global_.user.empty() ? std::string() : "--user " + global_.user + " ";
  const FailureContext failure_context{about.empty() ? subject() : about, global_.socket_path,
                                       now(), user_flag, env_.service_manager};
  auto response = env_.call_daemon(options, request);
  if (!response) {
    return std::unexpected(describe_client_error(response.error(), failure_context));
  }
  if (response->status != protocol::Status::ok) {
    return std::unexpected(describe_status(*response, failure_context));
  }
  return std::move(*response);
}

std::expected<common::SecureString, Failure> Context::ask(std::string_view prompt,
                                                          std::string_view what,
                                                          std::size_t max_length,
                                                          bool allow_empty) {
  // What was printed so far (the QR code) must be on screen before the question.
  env_.out.flush();
  env_.err.flush();
  auto answer = env_.prompter.ask_secret(prompt);
  const std::string name(what);
  if (!answer) {
    switch (answer.error()) {
      case PromptError::no_input:
        return std::unexpected(Failure{
            kExitUsage, "no " + name + " given: input ended (give one line per prompt on stdin)",
            "no_input"});
      case PromptError::too_long:
        return std::unexpected(Failure{kExitUsage, "the " + name + " is too long", "too_long"});
      case PromptError::io_error:
        break;
    }
    return std::unexpected(
        Failure{kExitRefused, "cannot read the " + name + "; nothing changed", "input_error"});
  }
  if (answer->empty() && !allow_empty) {
    return std::unexpected(
        Failure{kExitUsage, "no " + name + " entered; nothing changed", "no_input"});
  }
  if (answer->size() > max_length) {
    return std::unexpected(Failure{kExitUsage, "the " + name + " is too long", "too_long"});
  }
  return std::move(*answer);
}

int Context::fail(const Failure& failure) {
  env_.err << "kpanel-totp: " << failure.message << '\n';
  if (global_.json) {
    env_.out << error_json(reason_of(failure), failure.message) << '\n';
  }
  return failure.exit_code;
}

int Context::usage(std::string_view message) {
  env_.err << "kpanel-totp: " << message << '\n';
  print_usage(env_.err, &command_);
  if (global_.json) {
    env_.out << error_json("usage", message) << '\n';
  }
  return kExitUsage;
}

void print_usage(std::ostream& out, const CommandSpec* command) {
  out << "usage: " << kGlobalUsage << ' ';
  if (command != nullptr) {
    print_command_line(out, *command);
    out << '\n';
  } else {
    out << "COMMAND [OPTIONS]\ncommands:";
    for (const CommandSpec& spec : kCommands) {
      out << (&spec == kCommands.data() ? " " : ", ") << spec.name;
    }
    out << '\n';
  }
  out << "Run 'kpanel-totp --help' for details.\n";
}

void print_help(std::ostream& out) {
  out << "usage: " << kGlobalUsage << " COMMAND [OPTIONS]\n\n"
      << "Time-based one-time codes (RFC 6238) as a second factor for logins on this host.\n"
      << "Every command asks kpanel-totpd, which keeps the secrets.\n\n"
      << "Commands:\n";
  for (const CommandSpec& spec : kCommands) {
    out << "  ";
    print_command_line(out, spec);
    out << "\n      " << spec.summary << '\n';
    for (const OptionSpec& option : spec.options) {
      std::string flag = "--" + std::string(option.name);
      if (!option.value_name.empty()) {
        flag.append(" ").append(option.value_name);
      }
      out << "      " << flag << std::string(flag.size() < 18 ? 18 - flag.size() : 1, ' ')
          << option.help << '\n';
    }
  }
  out << "\nGlobal options (before or after the command):\n"
      << "  --socket PATH   the daemon's socket (default " << common::kDefaultSocketPath << ")\n"
      << "  --user NAME     act for another user (root or a member of admin_group)\n"
      << "  --json          print one JSON object on stdout\n"
      << "  --help          this text\n"
      << "  --version       the version\n\n"
      << "Answers are read from the terminal; when stdin is not one, one line each from stdin\n"
      << "(disable: password, then code; enroll --replace: current or recovery code first).\n\n"
      << "Exit status: 0 done, 1 refused, 2 usage error, 3 daemon unreachable.\n";
}

}  // namespace kpanel::cli
