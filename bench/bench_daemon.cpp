// The kpanel-totpd under measurement (bench_daemon.hpp).
#include "bench/bench_daemon.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/bench_users.hpp"

namespace kpanel::bench {

using Clock = std::chrono::steady_clock;

bool Daemon::start() {
  const fs::path config = dir_ / "kpanel-totpd.conf";
  {
    std::ofstream out(config);
    // max_failures at its cap: the suite sends many wrong codes spread over
    // the users, and a locked user is refused without a durable write.
    out << "socket = " << socket().string() << "\nstate_dir = " << state_dir().string()
        << "\nkey_file = " << key_file().string() << "\nmax_failures = 100\n"
        << "lockout_seconds = 1\nlockout_max_seconds = 1\n";
    if (!dsn_.empty()) out << "store = postgresql\npostgresql_dsn = " << dsn_ << "\n";
  }
  ::chmod(config.c_str(), 0600);
  const std::string log = (dir_ / "daemon.log").string();
  // Our environment minus systemd's variables, made before fork: the child
  // of a threaded process may only call async-signal-safe functions.
  std::vector<std::string> env_text;
  // nss_wrapper first in LD_PRELOAD: the suite's users are accounts for the
  // daemon (provide_accounts).
  std::string preload = std::string("LD_PRELOAD=") + kNssPreload;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    if (text.starts_with("LD_PRELOAD=")) {
      preload += ":" + std::string(text.substr(11));
    } else if (!text.starts_with("NOTIFY_SOCKET=") && !text.starts_with("LISTEN_FDS=")) {
      env_text.emplace_back(text);
    }
  }
  env_text.push_back(preload);
  std::vector<char*> env;
  env.reserve(env_text.size() + 1);
  for (auto& text : env_text) env.push_back(text.data());
  env.push_back(nullptr);
  std::string binary = binary_.string();
  std::string config_flag = "--config";
  std::string config_path = config.string();
  std::array<char*, 4> argv{binary.data(), config_flag.data(), config_path.data(), nullptr};
  pid_ = ::fork();
  if (pid_ < 0) return false;
  if (pid_ == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) ::dup2(fd, STDERR_FILENO);
    ::execve(binary.c_str(), argv.data(), env.data());
    ::_exit(127);
  }
  // Ready when a request gets an answer.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline) {
    const auto reply = call(protocol::Request{protocol::StatusRequest{"bench000000"}});
    if (reply) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      (void)std::fprintf(stderr, "kpanel_bench: kpanel-totpd exited; see %s\n", log.c_str());
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// CPU time the daemon has used so far (user + system), microseconds.
void Daemon::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

double Daemon::cpu_micros() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
  const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto end_of_name = stat.rfind(')');
  if (end_of_name == std::string::npos) return 0;
  std::istringstream fields(stat.substr(end_of_name + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::strtod(field.c_str(), nullptr);  // utime, stime
  }
  return ticks * 1e6 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// VmRSS of the daemon, KiB.
long Daemon::rss_kib() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

}  // namespace kpanel::bench
