#pragma once
// kpanel-totpd's life: load and check the config, open the key and the store,
// listen, serve until SIGTERM, reload on SIGHUP. main.cpp only parses argv.

#include <filesystem>

namespace kpanel::daemon {

struct DaemonOptions {
  std::filesystem::path config_path;
  bool config_given = false;  // --config: then the file must exist
};

// --check-config: 0 when valid, 1 otherwise, every problem on stderr as FILE:LINE: message.
[[nodiscard]] int check_config(const DaemonOptions& options) noexcept;

// Serves until SIGTERM/SIGINT; 0 after a clean stop, 1 when it cannot start.
[[nodiscard]] int run_daemon(const DaemonOptions& options) noexcept;

}  // namespace kpanel::daemon
