#pragma once
// The kpanel-totpd under measurement: a child process on a temporary socket,
// with a config of the suite's own.

#include <sys/types.h>

#include <chrono>
#include <expected>
#include <filesystem>
#include <string>

#include "common/daemon_client.hpp"
#include "common/protocol.hpp"

namespace kpanel::bench {

namespace fs = std::filesystem;
namespace protocol = common::protocol;

class Daemon {
 public:
  // `postgresql_dsn` empty: store = sqlite in state_dir().
  Daemon(fs::path binary, fs::path dir, std::string postgresql_dsn = {})
      : binary_(std::move(binary)), dir_(std::move(dir)), dsn_(std::move(postgresql_dsn)) {}
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  Daemon(Daemon&&) = delete;
  Daemon& operator=(Daemon&&) = delete;
  ~Daemon() { stop(); }

  [[nodiscard]] fs::path socket() const { return dir_ / "kpanel-totpd.sock"; }
  [[nodiscard]] fs::path state_dir() const { return dir_ / "state"; }
  [[nodiscard]] fs::path key_file() const { return dir_ / "state.key"; }

  // Writes its config, starts it and waits until it answers.
  bool start();

  void stop();

  // CPU time the daemon has used so far (user + system), microseconds.
  [[nodiscard]] double cpu_micros() const;

  // VmRSS of the daemon, KiB.
  [[nodiscard]] long rss_kib() const;

  [[nodiscard]] std::expected<protocol::Response, common::ClientError> call(
      const protocol::Request& request) const {
    return common::call_daemon(common::ClientOptions{.socket_path = socket().string(),
                                                     .timeout = std::chrono::milliseconds(10'000)},
                               request);
  }

 private:
  fs::path binary_;
  fs::path dir_;
  std::string dsn_;
  pid_t pid_ = -1;
};

}  // namespace kpanel::bench
