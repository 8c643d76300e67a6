#include "daemon/daemon_app.hpp"

#include <malloc.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <expected>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <thread>

#include "common/clock.hpp"
#include "daemon/authz/accounts.hpp"
#include "daemon/authz/dispatch.hpp"
#include "daemon/config/config.hpp"
#include "daemon/net/lanes.hpp"
#include "daemon/net/listen_socket.hpp"
#include "daemon/net/server.hpp"
#include "daemon/rules/rules.hpp"
#include "daemon/store/fleet_migration.hpp"
#include "daemon/store/secret_box.hpp"
#include "daemon/store/store_health.hpp"
#include "daemon/store/store_postgresql.hpp"
#include "daemon/store/store_sqlite.hpp"
#include "daemon/system/audit.hpp"
#include "daemon/system/password_check.hpp"
#include "daemon/system/state_lock.hpp"
#include "kpanel/version.hpp"

namespace kpanel::daemon {

namespace asio = boost::asio;

namespace {

std::expected<DaemonConfig, ConfigProblems> load(const DaemonOptions& options) {
  return load_config(
      options.config_path,
      ConfigLoadOptions{.check_permissions = true, .missing_is_default = !options.config_given});
}

void print_problems(const ConfigProblems& problems) {
  for (const auto& problem : problems) (void)std::fprintf(stderr, "%s\n", problem.c_str());
}

// Fast-lane handlers block on fsync; more workers than cores lets the store
// commit the updates of all the workers waiting on one fsync together. Slow
// work (PAM, scrypt) has a lane of its own (lanes.hpp) and never takes these.
unsigned worker_count() { return std::max(16U, 8 * std::thread::hardware_concurrency()); }

// Keys read once at start: changing them needs a restart, and a reload says so.
void warn_about_restart_keys(const DaemonConfig& running, const DaemonConfig& loaded) {
  // The key table says which keys a reload does not apply (daemon/config).
  for (const std::string_view key : keys_needing_restart(running, loaded)) {
    log_error("reload: `" + std::string(key) + "` changed; it takes effect after a restart");
  }
}

// Asked only when key_file is missing: a new key is made on a first start,
// never next to secrets an old key sealed.
SecretBox::SealedProbe sealed_probe(const DaemonConfig& config) {
  return [&config]() -> std::expected<bool, std::string> {
    const auto holds = config.store == StoreBackend::postgresql
                           ? PostgresqlStore::holds_sealed_secrets(config.postgresql_dsn)
                           : SqliteStore::holds_sealed_secrets(config.state_dir);
    if (!holds) return std::unexpected(holds.error().message);
    return *holds;
  };
}

std::expected<std::unique_ptr<Store>, std::string> open_store(const DaemonConfig& config) {
  auto box = SecretBox::load_or_create(config.key_file, sealed_probe(config));
  if (!box) return std::unexpected(box.error());
  if (config.store == StoreBackend::postgresql) {
    // Few connections per host: a fleet of hosts must fit the server's
    // max_connections; a worker beyond them waits for one (never the io thread).
    auto store =
        PostgresqlStore::open(config.postgresql_dsn, std::move(*box),
                              PostgresqlOptions{.max_connections = std::min(worker_count(), 8U),
                                                .start_without_database = true});
    if (!store) {
      return std::unexpected(store.error().message + " (store = postgresql; check postgresql_dsn)");
    }
    return std::unique_ptr<Store>(std::move(*store));
  }
  auto store = SqliteStore::open(config.state_dir, std::move(*box));
  if (!store) return std::unexpected(store.error().message);
  return std::unique_ptr<Store>(std::move(*store));
}

int serve(const DaemonOptions& options) {
  auto config = load(options);
  if (!config) {
    print_problems(config.error());
    return 1;
  }
  // Before the key, the store and the socket are touched: two daemons on one
  // state would overwrite each other's state and each other's socket.
  auto state_lock =
      StateLock::acquire(config->state_dir, {}, [](const std::string& line) { log_notice(line); });
  if (!state_lock) {
    log_error(state_lock.error());
    return 1;
  }
  auto store = open_store(*config);
  if (!store) {
    log_error(store.error());
    return 1;
  }

  const common::SystemClock clock;
  const SystemAccountDirectory accounts;
  PamPasswordChecker passwords(config->password_service);
  SyslogAuditLog syslog_audit;
  // Each unprivileged uid's refused requests are logged within a budget, so
  // one user's flood cannot bury other users' security events.
  RateLimitedAuditLog audit(syslog_audit, clock);
  LoggedStore logged_store(**store, audit);
  Rules rules(config->policy, logged_store, clock, passwords, accounts, audit);
  Dispatcher dispatcher(rules, accounts);
  dispatcher.set_store_name(config->store == StoreBackend::postgresql
                                ? "the PostgreSQL database of postgresql_dsn"
                                : "the SQLite database in " + config->state_dir.string());

  asio::io_context io(1);
  // Handled from before the socket exists: a client (or systemd) may see it
  // listening at once, and a SIGTERM then must be a clean stop, not death
  // by the default action. A signal that comes early waits for async_wait.
  asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  asio::steady_timer audit_timer(io);  // writes the audit summaries that are due
  auto listening = open_listen_socket(io, config->socket);
  if (!listening) {
    log_error(listening.error());
    return 1;
  }
  const bool socket_from_systemd = listening->from_systemd;
  const SocketFileIdentity socket_file = listening->file;

  WorkLanes lanes(LaneLimits{.fast_threads = worker_count()});
  Server server(
      io, std::move(listening->acceptor), lanes,
      [&dispatcher](const PeerCredentials& peer, const common::protocol::Request& request) {
        return dispatcher.handle(peer, request);
      },
      [](const common::protocol::Request& request) { return Dispatcher::lane(request); });

  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signal) {
        if (ec) return;
        if (signal == SIGHUP) {
          sd_notify(0, "RELOADING=1");
          auto reloaded = load(options);
          if (!reloaded) {
            for (const auto& problem : reloaded.error()) log_error("reload: " + problem);
            log_error("reload: keeping the running configuration");
          } else {
            warn_about_restart_keys(*config, *reloaded);
            rules.set_policy(reloaded->policy);
            config->policy = reloaded->policy;
            log_notice("configuration reloaded from " + options.config_path.string());
          }
          sd_notify(0, "READY=1");
          signals.async_wait(on_signal);
          return;
        }
        sd_notify(0, "STOPPING=1");
        state_lock->mark_stopping();  // a successor waits for us instead of refusing
        log_notice("stopping: finishing requests in flight");
        server.stop_accepting();
        signals.cancel();
        audit_timer.cancel();
      };
  signals.async_wait(on_signal);
  std::function<void(const boost::system::error_code&)> on_audit_timer =
      [&](const boost::system::error_code& ec) {
        if (ec) return;
        audit.flush();
        audit_timer.expires_after(std::chrono::seconds(1));
        audit_timer.async_wait(on_audit_timer);
      };
  audit_timer.expires_after(std::chrono::seconds(1));
  audit_timer.async_wait(on_audit_timer);

  server.start();
  log_notice(std::string("kpanel-totpd ") + kVersion + " listening on " + config->socket.string() +
             (socket_from_systemd ? " (from systemd)" : ""));
  sd_notify(0, "READY=1");

  // An exception out of a completion handler is a bug; log it and keep
  // serving rather than dropping every login on the host.
  for (;;) {
    try {
      io.run();
      break;
    } catch (const std::exception& e) {
      log_error(std::string("unexpected error in the event loop: ") + e.what());
    }
  }
  lanes.join();
  audit.flush(true);  // what was counted and not yet summarized
  if (!socket_from_systemd) (void)remove_socket_file(config->socket, socket_file);
  log_notice("stopped");
  return 0;
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
      log_error("cannot set the core file size limit to 0: " +
                std::generic_category().message(error));
    }
  }
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {  // NOLINT(*-vararg)
    log_error("cannot make the process non-dumpable: " + std::generic_category().message(errno));
  }
}

}  // namespace

bool stdout_written() noexcept { return std::fflush(stdout) == 0 && std::ferror(stdout) == 0; }

int check_config(const DaemonOptions& options) noexcept {
  try {
    const auto config = load(options);
    if (!config) {
      print_problems(config.error());
      return 1;
    }
    (void)std::fprintf(stderr, "%s: ok\n", options.config_path.c_str());
    (void)std::fputs(describe_config(*config).c_str(), stdout);
    return stdout_written() ? 0 : 1;
  } catch (const std::exception& e) {
    (void)std::fprintf(stderr, "kpanel-totpd: %s\n", e.what());
    return 1;
  }
}

int migrate_to_postgresql(const DaemonOptions& options, const std::string& dsn) noexcept {
  const auto fail = [](const std::string& message) {
    (void)std::fputs(("kpanel-totpd: " + message + "\n").c_str(), stderr);
    return 1;
  };
  try {
    keep_secrets_out_of_core_dumps();
    const auto config = load(options);
    if (!config) {
      print_problems(config.error());
      return 1;
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
