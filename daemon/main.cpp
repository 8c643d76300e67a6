// kpanel-totpd [--config FILE] [--check-config] [--migrate-to-postgresql DSN]
//              [--restore FILE [--audit-log PATH]... [--yes]] [--version]
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config/config.hpp"
#include "daemon/daemon_app.hpp"
#include "daemon/restore.hpp"
#include "kpanel/version.hpp"

namespace {

constexpr const char* kUsage =
    "usage: kpanel-totpd [--config FILE] [--check-config] [--migrate-to-postgresql DSN] "
    "[--restore FILE [--audit-log PATH]... [--yes]] [--version]\n"
    "  --config FILE    configuration file (default /etc/kpanel-totp/kpanel-totpd.conf)\n"
    "  --check-config   check the configuration, print it, and exit (0 valid, 1 not)\n"
    "  --migrate-to-postgresql DSN|-|FILE\n"
    "                   copy this host's state (state_dir, key_file) into the shared\n"
    "                   PostgreSQL store at DSN, then exit (0 done, 1 conflicts or errors);\n"
    "                   - reads the DSN from stdin, a path (/… or ./…) from that file\n"
    "                   (mode 600), so its password is not on the command line\n"
    "  --restore FILE   with the daemon stopped: replace this host's state with a snapshot\n"
    "                   made by `kpanel-totp admin backup`, after listing what the audit\n"
    "                   log shows changed since it (0 done, 1 refused)\n"
    "  --audit-log PATH with --restore: a syslog file to read (default /var/log/auth.log;\n"
    "                   may be given more than once)\n"
    "  --yes            with --restore: do not ask (needed when stdin is not a terminal)\n"
    "  --version        print the version and exit\n";

int usage_error(std::string_view message) {
  (void)std::fprintf(stderr, "kpanel-totpd: %.*s\n%s", static_cast<int>(message.size()),
                     message.data(), kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  kpanel::daemon::DaemonOptions options{.config_path = kpanel::daemon::kDefaultConfigPath};
  bool check = false;
  std::optional<std::string> migrate_dsn;
  std::optional<kpanel::daemon::RestoreOptions> restore;
  std::vector<std::string> audit_logs;
  bool yes = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];  // NOLINT(*-pointer-arithmetic)
    if (arg == "--version") {
      (void)std::printf("kpanel-totpd %s\n", kpanel::kVersion);
      return kpanel::daemon::stdout_written() ? 0 : 1;
    }
    if (arg == "--help" || arg == "-h") {
      (void)std::fputs(kUsage, stdout);
      return kpanel::daemon::stdout_written() ? 0 : 1;
    }
    if (arg == "--check-config") {
      check = true;
    } else if (arg == "--migrate-to-postgresql") {
      if (i + 1 >= argc || std::string_view(argv[i + 1]).empty()) {  // NOLINT(*-pointer-arithmetic)
        return usage_error("--migrate-to-postgresql needs a libpq connection string");
      }
      migrate_dsn = argv[++i];  // NOLINT(*-pointer-arithmetic)
    } else if (arg == "--restore" || arg == "--audit-log") {
      if (i + 1 >= argc || std::string_view(argv[i + 1]).empty()) {  // NOLINT(*-pointer-arithmetic)
        return usage_error(std::string(arg).append(" needs a file name"));
      }
      const std::string value = argv[++i];  // NOLINT(*-pointer-arithmetic)
      if (arg == "--audit-log") {
        audit_logs.push_back(value);
      } else if (restore) {
        return usage_error("--restore given twice");
      } else {
        restore.emplace().file = value;
      }
    } else if (arg == "--yes") {
      yes = true;
    } else if (arg == "--config" || arg.starts_with("--config=")) {
      std::string_view value;
      if (arg == "--config") {
        if (i + 1 >= argc) return usage_error("--config needs a file name");
        value = argv[++i];  // NOLINT(*-pointer-arithmetic)
      } else {
        value = arg.substr(std::string_view("--config=").size());
      }
      if (value.empty()) return usage_error("--config needs a file name");
      options.config_path = value;
      options.config_given = true;
    } else {
      return usage_error(std::string("unknown argument: ").append(arg));
    }
  }
  if (check && migrate_dsn) {
    return usage_error("--check-config and --migrate-to-postgresql do not combine");
  }
  if (!restore && (yes || !audit_logs.empty())) {
    return usage_error("--audit-log and --yes go with --restore");
  }
  if (restore && (check || migrate_dsn)) {
    return usage_error("--restore does not combine with --check-config or --migrate-to-postgresql");
  }
  if (restore) {
    restore->audit_logs.assign(audit_logs.begin(), audit_logs.end());
    restore->yes = yes;
    return kpanel::daemon::restore_snapshot(options, *restore);
  }
  if (migrate_dsn) return kpanel::daemon::migrate_to_postgresql(options, *migrate_dsn);
  return check ? kpanel::daemon::check_config(options) : kpanel::daemon::run_daemon(options);
}
