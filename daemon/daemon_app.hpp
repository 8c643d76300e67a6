#pragma once
// kpanel-totpd's process: its modes (serve, --check-config,
// --migrate-to-postgresql) around the Daemon (daemon.hpp), with the process
// setup and the signals. main.cpp only parses argv.

#include <string>

#include "daemon/daemon.hpp"

namespace kpanel::daemon {

// --check-config: 0 when valid, 1 otherwise, every problem on stderr as FILE:LINE: message.
[[nodiscard]] int check_config(const DaemonOptions& options) noexcept;

// --migrate-to-postgresql DSN: copies this host's SQLite state (the config's
// state_dir, sealed with its key_file) into the shared PostgreSQL store.
// 0 when every enrolled user is there, 1 on a conflict or an error.
[[nodiscard]] int migrate_to_postgresql(const DaemonOptions& options,
                                        const std::string& dsn) noexcept;

// Whether everything printed to stdout reached it: where the output is the
// answer (--version, --check-config), a full disk or closed pipe is an error.
[[nodiscard]] bool stdout_written() noexcept;

// Serves until SIGTERM/SIGINT; 0 after a clean stop, 1 when it cannot start.
[[nodiscard]] int run_daemon(const DaemonOptions& options) noexcept;

}  // namespace kpanel::daemon
