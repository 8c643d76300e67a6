// kpanel-totpd [--config FILE] [--check-config] [--migrate-to-postgresql DSN] [--version]
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/config/config.hpp"
#include "daemon/daemon_app.hpp"
#include "kpanel/version.hpp"

namespace {

constexpr const char* kUsage =
    "usage: kpanel-totpd [--config FILE] [--check-config] [--migrate-to-postgresql DSN] "
    "[--version]\n"
    "  --config FILE    configuration file (default /etc/kpanel-totp/kpanel-totpd.conf)\n"
    "  --check-config   check the configuration, print it, and exit (0 valid, 1 not)\n"
    "  --migrate-to-postgresql DSN\n"
    "                   copy this host's state (state_dir, key_file) into the shared\n"
    "                   PostgreSQL store at DSN, then exit (0 done, 1 conflicts or errors)\n"
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
  if (migrate_dsn) return kpanel::daemon::migrate_to_postgresql(options, *migrate_dsn);
  return check ? kpanel::daemon::check_config(options) : kpanel::daemon::run_daemon(options);
}
