#include "daemon/daemon.hpp"

#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/dispatch.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "daemon/authz/accounts.hpp"
#include "daemon/authz/dispatch.hpp"
#include "daemon/rules/fence.hpp"
#include "daemon/rules/rules.hpp"
#include "daemon/store/secret_box.hpp"
#include "daemon/store/store_health.hpp"
#include "daemon/store/store_postgresql.hpp"
#include "daemon/store/store_sqlite.hpp"
#include "daemon/system/audit.hpp"
#include "daemon/system/audit_counts.hpp"
#include "daemon/system/password_check.hpp"
#include "daemon/system/state_lock.hpp"
#include "kpanel/version.hpp"

namespace kpanel::daemon {

namespace asio = boost::asio;

namespace {

// The fast lane serves other users' requests and root's durable ones (admin
// reset, unlock), which block on fsync; more workers than cores lets the
// store commit the updates of all the workers waiting on one fsync together.
// Slow work (PAM, scrypt) has a lane of its own (lanes.hpp) and never takes these.
unsigned worker_count() { return std::max(16U, 8 * std::thread::hardware_concurrency()); }

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

// The first line of a small system file (an id), without its trailing
// newline and blanks; empty when it cannot be read.
std::string first_line_of(const char* path) {
  std::string line;
  if (std::FILE* file = std::fopen(path, "re"); file != nullptr) {
    std::array<char, 128> buffer{};
    if (std::fgets(buffer.data(), static_cast<int>(buffer.size()), file) != nullptr) {
      line = buffer.data();
    }
    (void)std::fclose(file);
  }
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  return line;
}

// The kernel's id of this boot: the same after the daemon alone restarts,
// new after the host restarts. Unreadable: a name no other start will have,
// so an unclean stop is then always taken for the host's (a needless fence,
// never a missing one).
std::string kernel_boot_id() {
  std::string id = first_line_of("/proc/sys/kernel/random/boot_id");
  if (id.empty()) {
    log_error(
        "cannot read /proc/sys/kernel/random/boot_id: an unclean stop of this run will "
        "count as the host's (codes fenced after it)");
    id = "unknown-" + std::to_string(::getpid()) + "-" +
         std::to_string(common::to_unix(common::SystemClock{}.now()));
  }
  return id;
}

// What tags this host's remembered-login windows (daemon/rules/remember.hpp):
// /etc/machine-id, which every host of a fleet has its own of (and which a
// restored backup on another host does not match), else the host name.
std::string this_host_id() {
  if (std::string id = first_line_of("/etc/machine-id"); !id.empty()) return "machine-id:" + id;
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) == 0 && name.front() != '\0') {
    return "host:" + std::string(name.data());
  }
  return "host:localhost";
}

}  // namespace

std::expected<DaemonConfig, ConfigProblems> load_daemon_config(const DaemonOptions& options) {
  return load_config(
      options.config_path,
      ConfigLoadOptions{.check_permissions = true, .missing_is_default = !options.config_given});
}

void warn_about_restart_keys(const DaemonConfig& running, const DaemonConfig& loaded) {
  // The key table says which keys a reload does not apply (daemon/config).
  for (const std::string_view key : keys_needing_restart(running, loaded)) {
    log_error("reload: `" + std::string(key) + "` changed; it takes effect after a restart");
  }
}

struct Daemon::Core {
  Core(const DaemonConfig& config, StateLock lock, std::unique_ptr<Store> opened)
      : state_lock(std::move(lock)),
        store(std::move(opened)),
        passwords(config.password_service),
        logged_store(*store, audit),
        rules(config.policy, logged_store, clock, passwords, accounts, counted_audit),
        dispatcher(rules, accounts) {
    dispatcher.set_store_name(config.store == StoreBackend::postgresql
                                  ? "the PostgreSQL database of postgresql_dsn"
                                  : "the SQLite database in " + config.state_dir.string());
  }

  StateLock state_lock;
  std::unique_ptr<Store> store;
  const common::SystemClock clock;
  const SystemAccountDirectory accounts;
  PamPasswordChecker passwords;
  SyslogAuditLog syslog_audit;
  // Each unprivileged uid's refused requests are logged within a budget, so
  // one user's flood cannot bury other users' security events.
  RateLimitedAuditLog audit{syslog_audit, clock};
  // Counts every event the rules record (admin stats), before the rate
  // limit, so a suppressed line still counts.
  CountingAuditLog counted_audit{audit};
  LoggedStore logged_store;
  Rules rules;
  Dispatcher dispatcher;
};

Daemon::Daemon(DaemonOptions options) : options_(std::move(options)) {}

Daemon::~Daemon() = default;

std::expected<void, StartError> Daemon::start(const std::function<void()>& before_listening) {
  auto config = load_daemon_config(options_);
  if (!config) return std::unexpected(StartError{.config_problems = std::move(config.error())});
  // Before the key, the store and the socket are touched: two daemons on one
  // state would overwrite each other's state and each other's socket.
  auto state_lock =
      StateLock::acquire(config->state_dir, {}, [](const std::string& line) { log_notice(line); });
  if (!state_lock) return std::unexpected(StartError{.message = std::move(state_lock.error())});
  auto store = open_store(*config);
  if (!store) return std::unexpected(StartError{.message = std::move(store.error())});
  {
    const std::lock_guard lock(config_mutex_);
    config_ = std::move(*config);
  }
  core_ = std::make_unique<Core>(config_, std::move(*state_lock), std::move(*store));
  core_->rules.set_host_id(this_host_id());
  start_run();

  if (before_listening) before_listening();
  auto listening = open_listen_socket(io_, config_.socket);
  if (!listening) {
    core_.reset();
    return std::unexpected(StartError{.message = std::move(listening.error())});
  }
  socket_from_systemd_ = listening->from_systemd;
  socket_file_ = listening->file;
  lanes_.emplace(LaneLimits{.fast_threads = worker_count()});
  core_->rules.set_stats_sources(StatsSources{
      .counts = &core_->counted_audit, .runtime = [this]() noexcept {
        RuntimeGauges gauges;
        gauges.in_flight_fast = static_cast<std::int64_t>(lanes_->in_flight(Lane::fast));
        gauges.in_flight_slow = static_cast<std::int64_t>(lanes_->in_flight(Lane::slow));
        gauges.connections = server_ ? static_cast<std::int64_t>(server_->connection_count()) : 0;
        return gauges;
      }});
  Dispatcher& dispatcher = core_->dispatcher;
  server_.emplace(
      io_, std::move(listening->acceptor), *lanes_,
      [&dispatcher](const PeerCredentials& peer, const common::protocol::Request& request) {
        return dispatcher.handle(peer, request);
      },
      [](const common::protocol::Request& request) { return Dispatcher::lane(request); },
      ServerLimits{.answer_root_fast_requests_inline = config_.store == StoreBackend::sqlite});
  flush_audit_every_second();
  if (sqlite_store() != nullptr) {
    high_water_thread_ =
        std::jthread([this](const std::stop_token& stop) { refresh_high_water(stop); });
  }

  server_->start();
  log_notice(std::string("kpanel-totpd ") + kVersion + " listening on " + config_.socket.string() +
             (socket_from_systemd_ ? " (from systemd)" : ""));
  sd_notify(0, "READY=1");
  return {};
}

void Daemon::flush_audit_every_second() {
  audit_timer_.expires_after(std::chrono::seconds(1));
  audit_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    core_->audit.flush();
    flush_audit_every_second();
  });
}

int Daemon::run() {
  // An exception out of a completion handler is a bug; log it and keep
  // serving rather than dropping every login on the host.
  const auto serve = [this] {
    for (;;) {
      try {
        io_.run();
        break;
      } catch (const std::exception& e) {
        log_error(std::string("unexpected error in the event loop: ") + e.what());
      }
    }
  };
  {
    std::vector<std::jthread> more;
    for (unsigned i = 1; i < kIoThreads; ++i) more.emplace_back(serve);
    serve();
  }  // joined: the loop ran out of work on every thread
  if (lanes_) lanes_->join();
  stop_high_water();
  // After the last request: the clean mark says nothing was left unsynced.
  if (SqliteStore* sqlite = sqlite_store(); sqlite != nullptr && run_recorded_) {
    if (auto marked = sqlite->mark_clean_stop(common::to_unix(core_->clock.now())); !marked) {
      log_error(
          "cannot record the clean stop (the next start will fence codes as after a "
          "crash): " +
          marked.error().message);
    }
  }
  if (core_) core_->audit.flush(true);  // what was counted and not yet summarized
  if (server_ && !socket_from_systemd_) (void)remove_socket_file(config_.socket, socket_file_);
  log_notice("stopped");
  return 0;
}

std::expected<void, ConfigProblems> Daemon::reload() {
  const std::lock_guard lock(config_mutex_);
  if (!core_) return std::unexpected(ConfigProblems{"reload: the daemon is not running"});
  sd_notify(0, "RELOADING=1");
  auto reloaded = load_daemon_config(options_);
  if (!reloaded) {
    for (const auto& problem : reloaded.error()) log_error("reload: " + problem);
    log_error("reload: keeping the running configuration");
  } else {
    warn_about_restart_keys(config_, *reloaded);
    core_->rules.set_policy(reloaded->policy);
    config_.policy = reloaded->policy;
    log_notice("configuration reloaded from " + options_.config_path.string());
  }
  sd_notify(0, "READY=1");
  if (!reloaded) return std::unexpected(std::move(reloaded.error()));
  return {};
}

void Daemon::stop() {
  asio::dispatch(strand_, [this] { begin_stop(); });
}

void Daemon::begin_stop() {
  if (stopping_ || !server_) return;
  stopping_ = true;
  sd_notify(0, "STOPPING=1");
  core_->state_lock.mark_stopping();  // a successor waits for us instead of refusing
  log_notice("stopping: finishing requests in flight");
  server_->stop_accepting();
  audit_timer_.cancel();
}

SqliteStore* Daemon::sqlite_store() const noexcept {
  return core_ ? dynamic_cast<SqliteStore*>(core_->store.get()) : nullptr;
}

void Daemon::start_run() {
  SqliteStore* sqlite = sqlite_store();
  if (sqlite == nullptr) return;  // PostgreSQL: every change is durable, nothing to fence
  boot_id_ = kernel_boot_id();
  if (record_run()) return;
  // The state cannot be written (a mount not yet writable): nothing can be
  // accepted until it can, and the run is recorded then (refresh_high_water
  // tries again). Meanwhile, the fence the state on record calls for.
  const auto stored = sqlite->run_state();
  if (!stored || classify_last_stop(*stored, boot_id_, false) != LastStop::host_crash) return;
  const std::int64_t now = common::to_unix(core_->clock.now());
  const RunState next =
      start_state(*stored, LastStop::host_crash, boot_id_, now, config_.policy.window);
  if (const std::optional<Fence>& fence = next.fence) {
    core_->rules.set_fence(fence);
    announce_fence(LastStop::host_crash, *fence, std::nullopt, now);
  }
}

bool Daemon::record_run() {
  SqliteStore* sqlite = sqlite_store();
  const std::int64_t now = common::to_unix(core_->clock.now());
  auto started = sqlite->start_run(boot_id_, now, config_.policy.window);
  if (!started) {
    if (!run_record_failed_) {
      log_error("cannot record this run in the state (trying again every " +
                std::to_string(kHighWaterInterval.count()) +
                " s; every change is fsync'd until then): " + started.error().message);
    }
    run_record_failed_ = true;
    return false;
  }
  run_recorded_ = true;
  const std::optional<Fence>& fence = started->fence;
  core_->rules.set_fence(fence);
  if (started->new_fence && fence) {
    announce_fence(started->last_stop, *fence, started->snapshot_taken_at, now);
  } else if (started->last_stop == LastStop::daemon_crash) {
    log_notice("the last run did not stop cleanly, but the host did not restart: nothing lost");
  }
  return true;
}

// One audit line and one log line per start, however the fence was reached.
void Daemon::announce_fence(LastStop last_stop, const Fence& fence,
                            std::optional<std::int64_t> snapshot_taken_at, std::int64_t now) {
  if (std::exchange(fence_announced_, true)) return;
  AuditEvent event;
  event.kind = AuditEventKind::fence;
  event.outcome = common::protocol::Status::ok;
  event.cause = last_stop == LastStop::restored ? "restored_backup" : "unclean_host_stop";
  event.fence_time = fence.time;
  event.snapshot_taken_at = snapshot_taken_at;
  core_->audit.record(event);
  const auto period = static_cast<std::int64_t>(config_.policy.totp.period);
  const std::int64_t wait = std::max<std::int64_t>(
      0, fence.time - now + (static_cast<std::int64_t>(fence.window) + 1) * period);
  log_notice("after a " + std::string(to_string(last_stop)) +
             ", codes accepted just before it may not be on disk: TOTP codes up to " +
             std::to_string(fence.window) + " step(s) after " +
             common::format_iso8601(common::from_unix(fence.time)) +
             " are refused; users must wait for their next code (at most about " +
             std::to_string(wait) + " s for " + std::to_string(period) +
             "-second codes); recovery codes work meanwhile");
}

// Runs on its own thread: a fsync here holds no request.
void Daemon::refresh_high_water(const std::stop_token& stop) {
  SqliteStore* sqlite = sqlite_store();
  bool failing = false;
  std::unique_lock lock(high_water_mutex_);
  while (!high_water_wake_.wait_for(lock, stop, kHighWaterInterval,
                                    [&stop] { return stop.stop_requested(); })) {
    lock.unlock();
    if (!run_recorded_) (void)record_run();
    const auto refreshed = sqlite->refresh_high_water(common::to_unix(core_->clock.now()));
    // Once per change, not every few seconds: a failing disk is reported by
    // the requests too.
    if (!refreshed && !failing) {
      log_error("cannot sync the state (high-water time, WAL): " + refreshed.error().message);
    } else if (refreshed && failing) {
      log_notice("syncing the state works again");
    }
    failing = !refreshed;
    lock.lock();
  }
}

void Daemon::stop_high_water() noexcept {
  if (!high_water_thread_.joinable()) return;
  high_water_thread_.request_stop();
  high_water_wake_.notify_all();
  high_water_thread_.join();
}

std::shared_ptr<const Policy> Daemon::policy() const {
  return core_ ? core_->rules.policy() : nullptr;
}

}  // namespace kpanel::daemon
