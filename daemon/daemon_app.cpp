#include "daemon/daemon_app.hpp"

#include <malloc.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <syslog.h>

#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <exception>
#include <expected>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <string>

#include "common/os_text.hpp"
#include "daemon/config/dsn_rules.hpp"
#include "daemon/daemon.hpp"
#include "daemon/store/fleet_migration.hpp"
#include "daemon/store/secret_box.hpp"
#include "daemon/store/store_postgresql.hpp"
#include "daemon/store/store_sqlite.hpp"
#include "daemon/system/audit.hpp"
#include "daemon/system/state_lock.hpp"

namespace kpanel::daemon {

namespace asio = boost::asio;

namespace {

void print_problems(const ConfigProblems& problems) {
  for (const auto& problem : problems) (void)std::fprintf(stderr, "%s\n", problem.c_str());
}

// The Daemon, with SIGHUP as reload and SIGTERM/SIGINT as a clean stop.
int serve(const DaemonOptions& options) {
  Daemon daemon(options);
  std::optional<asio::signal_set> signals;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signal) {
        if (ec) return;
        if (signal == SIGHUP) {
          (void)daemon.reload();  // logs what it did, or why not
          signals->async_wait(on_signal);
          return;
        }
        daemon.stop();
      };
  auto started = daemon.start([&] {
    // Handled from before the socket exists: a client (or systemd) may see it
    // listening at once, and a SIGTERM then must be a clean stop, not death
    // by the default action. A signal that comes early waits for run().
    signals.emplace(daemon.io_context(), SIGTERM, SIGINT, SIGHUP);
    signals->async_wait(on_signal);
  });
  if (!started) {
    print_problems(started.error().config_problems);
    if (!started.error().message.empty()) log_error(started.error().message);
    return 1;
  }
  return daemon.run();
}

// A core of the daemon would hold the key and the secrets being checked, so
// none is written: core limit 0 (for a dump through a pipe too, which
// systemd-coredump honours), and non-dumpable (no core even where the host
// sets fs.suid_dumpable; also no ptrace or /proc/PID access for other
// processes of the daemon's uid). The unit's LimitCORE=0 sets the same limit
// where its system call filter refuses setrlimit.
void keep_secrets_out_of_core_dumps() noexcept {
  const rlimit none{.rlim_cur = 0, .rlim_max = 0};
  if (setrlimit(RLIMIT_CORE, &none) != 0) {
    const int error = errno;
    rlimit current{};
    if (getrlimit(RLIMIT_CORE, &current) != 0 || current.rlim_cur != 0) {
      log_error("cannot set the core file size limit to 0: " + common::errno_text(error));
    }
  }
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {  // NOLINT(*-vararg)
    log_error("cannot make the process non-dumpable: " + common::errno_text(errno));
  }
}

}  // namespace

bool stdout_written() noexcept { return std::fflush(stdout) == 0 && std::ferror(stdout) == 0; }

int check_config(const DaemonOptions& options) noexcept {
  try {
    const auto config = load_daemon_config(options);
    if (!config) {
      print_problems(config.error());
      return 1;
    }
    // libpq is the judge of a DSN's syntax: asked now, not at the next start.
    if (config->store == StoreBackend::postgresql) {
      if (auto parsed = PostgresqlStore::check_dsn(config->postgresql_dsn); !parsed) {
        (void)std::fprintf(stderr, "%s: postgresql_dsn: %s\n", options.config_path.c_str(),
                           parsed.error().message.c_str());
        return 1;
      }
    }
    (void)std::fprintf(stderr, "%s: ok\n", options.config_path.c_str());
    (void)std::fputs(describe_config(*config).c_str(), stdout);
    return stdout_written() ? 0 : 1;
  } catch (const std::exception& e) {
    (void)std::fprintf(stderr, "kpanel-totpd: %s\n", e.what());
    return 1;
  }
}

namespace {

// The DSN --migrate-to-postgresql was given: "-" reads it from standard
// input, a path (starting with / or ./) from that file, either way its
// first line; anything else is the DSN itself (which `ps` shows to every
// user while it runs, password included).
std::expected<std::string, std::string> migration_dsn(const std::string& argument) {
  if (argument != "-" && !argument.starts_with('/') && !argument.starts_with("./")) {
    return argument;
  }
  std::string line;
  if (argument == "-") {
    if (!std::getline(std::cin, line)) return std::unexpected(std::string("no DSN on stdin"));
  } else {
    struct stat info {};
    if (::stat(argument.c_str(), &info) != 0) {
      return std::unexpected(argument + ": " + common::errno_text(errno));
    }
    if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
      return std::unexpected(argument + " is open to group or others (mode " +
                             common::octal_mode(info.st_mode) +
                             "); it holds the database password: chmod 600 " + argument);
    }
    std::ifstream in(argument);
    if (!in || !std::getline(in, line)) return std::unexpected("cannot read " + argument);
  }
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.empty()) return std::unexpected(std::string("the DSN read is empty"));
  return line;
}

}  // namespace

int migrate_to_postgresql(const DaemonOptions& options, const std::string& argument) noexcept {
  const auto fail = [](const std::string& message) {
    (void)std::fputs(("kpanel-totpd: " + message + "\n").c_str(), stderr);
    return 1;
  };
  try {
    keep_secrets_out_of_core_dumps();
    const auto read_dsn = migration_dsn(argument);
    if (!read_dsn) return fail("--migrate-to-postgresql: " + read_dsn.error());
    const std::string& dsn = *read_dsn;
    const auto config = load_daemon_config(options);
    if (!config) {
      print_problems(config.error());
      return 1;
    }
    // The same rule as the config's postgresql_dsn: the password never goes to
    // another host over a connection that does not verify the server.
    if (!config->postgresql_allow_unverified) {
      if (const auto problem = dsn::transport_problem(dsn)) {
        return fail("--migrate-to-postgresql: the DSN " + *problem +
                    " (postgresql_allow_unverified = yes accepts it, for a lab only)");
      }
    }
    // Read what is there; never make a fresh key or state directory.
    const std::filesystem::path database = config->state_dir / "state.db";
    for (const auto& path : {config->key_file, database}) {
      if (!std::filesystem::exists(path)) {
        return fail(path.string() + " does not exist: nothing to migrate");
      }
    }
    // A daemon still serving this state would change it behind the copy (a
    // code used after it is read would work again on the fleet).
    auto state_lock = StateLock::acquire(config->state_dir);
    if (!state_lock) return fail(state_lock.error() + " (stop kpanel-totpd before migrating)");
    auto source_box = SecretBox::load_or_create(config->key_file);
    if (!source_box) return fail(source_box.error());
    auto target_box = SecretBox::load_or_create(config->key_file);
    if (!target_box) return fail(target_box.error());
    auto source = SqliteStore::open(config->state_dir, std::move(*source_box));
    if (!source) return fail(source.error().message);
    auto target = PostgresqlStore::open(dsn, std::move(*target_box));
    if (!target) return fail(target.error().message);
    const auto report = migrate_store(**source, **target);
    if (!report) return fail(report.error().message);
    for (const auto& user : report->conflicts) {
      std::string line = user;
      line.append(": enrolled in the shared store with another secret; not copied (keep one: ")
          .append("`kpanel-totp admin reset ")
          .append(user)
          .append("` on the side to drop, then run this again)");
      (void)fail(line);
    }
    std::string summary = "migrated " + database.string() + " to postgresql: ";
    summary.append(std::to_string(report->copied))
        .append(" copied, ")
        .append(std::to_string(report->present))
        .append(" already there, ")
        .append(std::to_string(report->conflicts.size()))
        .append(" conflicting, ")
        .append(std::to_string(report->skipped))
        .append(" without an enrollment skipped\n");
    (void)std::fputs(summary.c_str(), stdout);
    return report->conflicts.empty() ? 0 : 1;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

int run_daemon(const DaemonOptions& options) noexcept {
  try {
    (void)std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up is an error code, not a signal
    // glibc gives each busy thread its own malloc arena (up to 8 per core);
    // the workers' short-lived allocations fit in two, at a fraction of the RSS.
    // Before any thread starts, where mallopt is safe.
    (void)mallopt(M_ARENA_MAX, 2);  // NOLINT(concurrency-mt-unsafe)
    openlog("kpanel-totpd", LOG_PID, LOG_AUTHPRIV);
    keep_secrets_out_of_core_dumps();  // before the key is read
    return serve(options);
  } catch (const std::exception& e) {
    log_error(std::string("fatal: ") + e.what());
    return 1;
  }
}

}  // namespace kpanel::daemon
