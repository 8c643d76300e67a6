#pragma once
// kpanel-totpd's life as one object: start (config, state lock, key, store,
// socket), serve until stopped, reload the policy, stop cleanly. The
// executable (daemon_app.cpp) adds the process setup and turns signals into
// reload() and stop(); the unit tests drive the same object.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <condition_variable>
#include <expected>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "daemon/config/config.hpp"
#include "daemon/net/lanes.hpp"
#include "daemon/net/listen_socket.hpp"
#include "daemon/net/server.hpp"
#include "daemon/rules/fence.hpp"
#include "daemon/rules/policy.hpp"

namespace kpanel::daemon {

class SqliteStore;

struct DaemonOptions {
  std::filesystem::path config_path;
  bool config_given = false;  // --config: then the file must exist
};

// The config as kpanel-totpd reads it: permissions checked; a missing file
// means the defaults unless it was named with --config.
[[nodiscard]] std::expected<DaemonConfig, ConfigProblems> load_daemon_config(
    const DaemonOptions& options);

// Keys read once at start: changing them needs a restart, and a reload says so.
void warn_about_restart_keys(const DaemonConfig& running, const DaemonConfig& loaded);

// Why start() failed: the config's problems (FILE:LINE: message each, for
// stderr), or else one line about the state lock, the key, the store or the socket.
struct StartError {
  ConfigProblems config_problems{};
  std::string message{};
};

class Daemon {
 public:
  explicit Daemon(DaemonOptions options);
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  Daemon(Daemon&&) = delete;
  Daemon& operator=(Daemon&&) = delete;
  ~Daemon();

  // The loop everything runs on; run() runs it.
  [[nodiscard]] boost::asio::io_context& io_context() noexcept { return io_; }

  // Loads the config, takes the state lock, opens the key and the store, then
  // calls `before_listening` (where kpanel-totpd attaches its signal handling,
  // so that a signal sent as soon as the socket exists is a clean stop) and
  // opens the socket. Once; on an error nothing is left listening.
  [[nodiscard]] std::expected<void, StartError> start(
      const std::function<void()>& before_listening = {});

  // Threads the loop runs on: root's logins are answered on them (server.hpp),
  // so one login waiting on NSS or the disk leaves the others served. Few:
  // other users' work never runs on them, and every thread beyond one costs
  // a login wake-ups between them (measured on 2 cores, verify p50: 1 thread
  // 116 µs, 2 threads 131 µs, 4 threads 142 µs; docs/benchmark.md).
  static constexpr unsigned kIoThreads = 2;

  // Serves on the calling thread and kIoThreads - 1 more until stop(), then
  // finishes the requests in flight, removes the socket file (unless
  // systemd's) and returns 0.
  int run();

  // Re-reads the config and applies its policy; with a problem, the running
  // config stays and the log says why. After start(), from any thread.
  std::expected<void, ConfigProblems> reload();

  // Stops accepting; run() returns once the requests in flight are answered.
  // From any thread; inside the loop (a signal handler) at once.
  void stop();

  // The policy requests are decided by now (after start()).
  [[nodiscard]] std::shared_ptr<const Policy> policy() const;

 private:
  struct Core;  // what serves: the store and everything built on it

  void begin_stop();
  void flush_audit_every_second();
  // The crash fence (rules/fence.hpp), SQLite only: records this run and
  // applies a fence after an unclean host stop or a restore. A state that
  // cannot be written yet does not stop the start: record_run() is tried
  // again with each high-water refresh.
  [[nodiscard]] SqliteStore* sqlite_store() const noexcept;
  void start_run();
  bool record_run();
  void announce_fence(LastStop last_stop, const Fence& fence,
                      std::optional<std::int64_t> snapshot_taken_at, std::int64_t now);
  // Off the login path: the store's high-water time and WAL sync, every
  // kHighWaterInterval until stop_high_water().
  void refresh_high_water(const std::stop_token& stop);
  void stop_high_water() noexcept;

  DaemonOptions options_;
  boost::asio::io_context io_{static_cast<int>(kIoThreads)};
  // The daemon's own handlers (the audit timer, stopping) run here, one at a time.
  boost::asio::strand<boost::asio::io_context::executor_type> strand_{
      boost::asio::make_strand(io_)};
  mutable std::mutex config_mutex_;  // reload() against reload()
  DaemonConfig config_;
  std::unique_ptr<Core> core_;
  boost::asio::steady_timer audit_timer_{strand_};  // writes the audit summaries that are due
  std::optional<WorkLanes> lanes_;
  std::optional<Server> server_;
  bool socket_from_systemd_ = false;
  SocketFileIdentity socket_file_;
  bool stopping_ = false;  // on strand_ only
  std::string boot_id_;    // the kernel's, read at start
  // Written at start, then only by the high-water thread, read after it is joined.
  bool run_recorded_ = false;
  bool run_record_failed_ = false;
  bool fence_announced_ = false;
  std::mutex high_water_mutex_;
  std::condition_variable_any high_water_wake_;
  std::jthread high_water_thread_;  // last: joined before the store goes
};

}  // namespace kpanel::daemon
