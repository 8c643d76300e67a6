// kpanel-totp admin doctor: checks this host's daemon, PAM stacks and sshd
// settings for anything that lets a login skip the code or locks users out.
//
// Exit status: 1 when it finds an error (a way to log in with fewer factors
// than intended, or to lock users out); 0 when it finds only warnings (things
// to finish, such as nullok during a rollout), or with --strict 1 on those
// too; 3 when the only error is that kpanel-totpd cannot be reached, so that
// 3 keeps meaning "daemon unreachable" as for every other command, while a
// broken config still wins (1) because fixing it does not wait for the daemon.
//
// The file checks need only read access; the daemon part asks for status
// (anyone) and admin_list (root or admin_group, for the lockouts).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <ostream>
#include <system_error>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "doctor/doctor.hpp"
#include "doctor/doctor_model.hpp"
#include "doctor/doctor_sshd.hpp"

namespace kpanel::cli {

namespace protocol = common::protocol;
using doctor::Report;
using doctor::Severity;

namespace {

using Json = nlohmann::ordered_json;

struct DaemonOutcome {
  bool unreachable = false;  // the one finding that may map to exit 3
};

DaemonOutcome check_daemon(Context& context, const doctor::DaemonSettings& daemon, Report& report) {
  DaemonOutcome outcome;
  const std::string& socket = context.global().socket_path;
  const bool file_trusted = doctor::check_socket_file(socket, report);

  auto status = context.request<protocol::StatusResult>(protocol::StatusRequest{});
  if (!status) {
    const Failure& failure = status.error();
    if (failure.exit_code == kExitUnreachable) {
      outcome.unreachable = true;
      if (!file_trusted) {
        return outcome;  // the socket file finding already says why
      }
      std::string message = failure.message + "; until then logins that need a code fail";
      if (!daemon.socket.empty() && daemon.socket != socket) {
        message += " (kpanel-totpd.conf sets socket = " + daemon.socket +
                   ": check it there with --socket " + daemon.socket + ")";
      }
      report.error("daemon", message, socket);
    } else {
      report.error("daemon", failure.message, socket);
    }
    return outcome;
  }
  report.ok("kpanel-totpd answers at " + socket);

  auto list = context.request<protocol::AdminListResult>(protocol::AdminListRequest{});
  if (!list) {
    if (list.error().status == protocol::Status::forbidden) {
      report.skipped("lockouts: only root or a member of the daemon's admin_group may list users");
    } else {
      report.error("daemon", list.error().message, socket);
    }
    return outcome;
  }
  const std::int64_t now = common::to_unix(context.now());
  std::size_t locked = 0;
  std::string names;
  for (const protocol::UserStatus& user : list->users) {
    if (user.locked_until && *user.locked_until > now) {
      ++locked;
      names += (names.empty() ? "" : ", ") + user.user + " until " + iso8601(*user.locked_until);
    }
  }
  if (locked == 0) {
    report.ok(std::to_string(list->users.size()) + (list->users.size() == 1 ? " user" : " users") +
              " known to kpanel-totpd, none locked out");
  } else {
    report.warning("lockout", std::to_string(locked) + (locked == 1 ? " user is" : " users are") +
                                  " locked out (" + names +
                                  "): they cannot log in until then; after checking who they are: "
                                  "kpanel-totp admin unlock USER");
  }
  return outcome;
}

std::string finding_json(const Report& report) {
  Json findings = Json::array();
  for (const doctor::Finding& finding : report.findings()) {
    Json item;
    item["severity"] = doctor::to_string(finding.severity);
    item["check"] = finding.check;
    item["message"] = finding.message;
    item["file"] = finding.file.empty() ? Json(nullptr) : Json(finding.file);
    item["line"] = finding.line == 0 ? Json(nullptr) : Json(finding.line);
    findings.push_back(std::move(item));
  }
  Json object;
  object["ok"] = findings.empty();
  object["findings"] = std::move(findings);
  // replace: a path that is not UTF-8 must not throw.
  return object.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void print_human(std::ostream& out, const Report& report) {
  for (const Report::Entry& entry : report.entries()) {
    switch (entry.kind) {
      case Report::Kind::ok:
        out << "ok: ";
        break;
      case Report::Kind::skipped:
        out << "skipped: ";
        break;
      case Report::Kind::finding:
        out << doctor::to_string(entry.finding.severity) << ": ";
        break;
    }
    out << entry.finding.message << '\n';
  }
  const std::size_t errors = report.count(Severity::error);
  const std::size_t warnings = report.count(Severity::warning);
  if (errors == 0 && warnings == 0) {
    out << "summary: no problems found\n";
    return;
  }
  out << "summary: " << errors << (errors == 1 ? " error, " : " errors, ") << warnings
      << (warnings == 1 ? " warning" : " warnings") << '\n';
}

}  // namespace

int run_admin_doctor(Context& context, const CommandLine& line) {
  if (!context.global().user.empty()) {
    return context.usage("--user does not apply to admin commands");
  }
  std::filesystem::path root = "/";
  if (const std::string* given = line.value("root")) {
    std::error_code error;
    root = std::filesystem::absolute(*given, error);
    struct stat info {};
    if (error || ::stat(root.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
      return context.usage("--root: " + *given + " is not a directory");
    }
  }
  const doctor::Tree tree(root);
  Report report;
  const doctor::DaemonSettings daemon =
      doctor::load_daemon_config(tree, common::to_unix(context.now()), report);
  const DaemonOutcome daemon_outcome = check_daemon(context, daemon, report);
  doctor::check_key_file(tree, daemon.key_file, report);
  // sshd -T resolves everything the way sshd will; it reads the host's
  // Includes and needs root (host keys), so only for this host, as root.
  const bool sshd_t = tree.is_host() && ::geteuid() == 0 &&
                      ::access(std::string(doctor::kSshdBinary).c_str(), X_OK) == 0;
  doctor::check_pam_and_sshd(tree, daemon, sshd_t, report);
  if (tree.is_host()) {
    doctor::check_time_sync(report);
  } else {
    report.skipped("time sync: not checked under --root (the tree has no clock)");
  }

  if (context.global().json) {
    context.out() << finding_json(report) << '\n';
  } else {
    print_human(context.out(), report);
  }
  const bool strict = line.has("strict");
  const std::size_t warnings = report.count(Severity::warning);
  std::vector<doctor::Finding> errors = report.findings();
  std::erase_if(errors, [](const doctor::Finding& f) { return f.severity != Severity::error; });
  if (errors.empty()) {
    return strict && warnings > 0 ? kExitRefused : kExitOk;
  }
  const bool only_unreachable = daemon_outcome.unreachable && (!strict || warnings == 0) &&
                                std::ranges::all_of(errors, [](const doctor::Finding& f) {
                                  return f.check == "daemon" || f.check == "socket";
                                });
  return only_unreachable ? kExitUnreachable : kExitRefused;
}

}  // namespace kpanel::cli
