// kpanel_bench: the performance suite of issue #9. Seeds users into a
// throwaway state dir through the real SqliteStore, runs the real
// kpanel-totpd on a temporary socket, drives it the way the PAM module does
// (one connection per request, common/daemon_client) and prints one table.
// It measures; it asserts nothing about speed.
//
// Usage: kpanel_bench [--smoke] [--dir PARENT] [--duration SECONDS]
//                     [--daemon KPANEL_TOTPD] [--postgresql-dsn-file FILE]
//   --smoke     a few seconds, small user counts (CTest label "bench")
//   --dir       where the throwaway directory goes (default /var/tmp: on disk,
//               like /var/lib/kpanel-totp; /tmp may be tmpfs)
//   --daemon    another kpanel-totpd build to measure (before/after comparisons)
//   --postgresql-dsn-file  also measure (a) and (b) with store = postgresql on
//               the database this libpq connection string names (read from a
//               file: a DSN may hold a password, which argv would show to
//               every user). The suite works in a schema of its own there and
//               drops it afterwards.

#include <fcntl.h>
#include <libpq-fe.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/syslog_sink.hpp"
#include "common/clock.hpp"
#include "common/daemon_client.hpp"
#include "common/protocol.hpp"
#include "common/random.hpp"
#include "common/totp.hpp"
#include "daemon/store/secret_box.hpp"
#include "daemon/store/store_postgresql.hpp"
#include "daemon/store/store_sqlite.hpp"

namespace kpanel::bench {
namespace {

namespace fs = std::filesystem;
namespace protocol = common::protocol;
using Clock = std::chrono::steady_clock;
using Micros = std::chrono::duration<double, std::micro>;

struct Options {
  bool smoke = false;
  fs::path parent = "/var/tmp";
  double duration = 3.0;  // seconds per throughput run
  fs::path daemon = KPANEL_BENCH_DAEMON;
  std::string postgresql_dsn;  // empty: SQLite only
};

// ---- users ------------------------------------------------------------------------

struct BenchUser {
  std::string name;
  common::SecureBytes secret;
};

std::string user_name(std::size_t index) {
  std::array<char, 32> text{};
  (void)std::snprintf(text.data(), text.size(), "bench%06zu", index);
  return text.data();
}

std::string hex(std::span<const std::uint8_t> bytes) {
  std::string out;
  for (const std::uint8_t b : bytes) {
    std::array<char, 3> pair{};
    (void)std::snprintf(pair.data(), pair.size(), "%02x", b);
    out += pair.data();
  }
  return out;
}

const common::TotpParams kParams{};

std::int64_t current_step() {
  return common::totp_step(common::SystemClock().now(), kParams.period);
}

std::string code_for(const BenchUser& user, std::int64_t step) {
  auto code = common::totp_code(user.secret.view(), step, kParams);
  return code ? std::string(code->view()) : std::string("000000");
}

// A code that matches no step near now (an attacker's guess).
std::string wrong_code_for(const BenchUser& user, std::int64_t step) {
  const std::string right = code_for(user, step);
  std::string wrong = right;
  wrong[0] = static_cast<char>('0' + ((right[0] - '0' + 5) % 10));
  wrong[3] = static_cast<char>('0' + ((right[3] - '0' + 3) % 10));
  return wrong;
}

// The store kpanel-totpd will open: SQLite in `state_dir`, or PostgreSQL at
// `dsn` when it is not empty; secrets sealed with the key in `key_file`.
std::unique_ptr<daemon::Store> open_store(const fs::path& state_dir, const fs::path& key_file,
                                          const std::string& dsn) {
  auto box = daemon::SecretBox::load_or_create(key_file);
  if (!box) {
    (void)std::fprintf(stderr, "kpanel_bench: key: %s\n", box.error().c_str());
    return nullptr;
  }
  const auto opened = [](auto store) -> std::unique_ptr<daemon::Store> {
    if (!store) {
      (void)std::fprintf(stderr, "kpanel_bench: store: %s\n", store.error().message.c_str());
      return nullptr;
    }
    return std::move(*store);
  };
  if (dsn.empty()) return opened(daemon::SqliteStore::open(state_dir, std::move(*box)));
  return opened(daemon::PostgresqlStore::open(dsn, std::move(*box)));
}

// Writes users [from, to) through Store::update, the daemon's own path, from
// several threads (so a store that batches commits can batch them).
bool seed(const fs::path& state_dir, const fs::path& key_file, const std::string& dsn,
          std::vector<BenchUser>& users, std::size_t from, std::size_t to) {
  const auto store = open_store(state_dir, key_file, dsn);
  if (!store) return false;
  for (std::size_t i = users.size(); i < to; ++i) {
    auto secret = common::random_bytes(20);
    if (!secret) return false;
    users.push_back({user_name(i), std::move(*secret)});
  }
  const common::TimePoint now = common::SystemClock().now();
  std::atomic<std::size_t> next{from};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  threads.reserve(64);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (std::size_t i = next++; i < to && !failed; i = next++) {
        const BenchUser& user = users[i];
        auto done = store->update(user.name, [&](daemon::UserRecord& record) {
          record.active = daemon::Enrollment{user.secret, kParams, now};
          return true;
        });
        if (!done) {
          (void)std::fprintf(stderr, "kpanel_bench: seeding: %s\n", done.error().message.c_str());
          failed = true;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  return !failed;
}

// ---- the daemon ------------------------------------------------------------------

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

  bool start() {
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
    for (char** entry = environ; *entry != nullptr; ++entry) {
      const std::string_view text(*entry);
      if (!text.starts_with("NOTIFY_SOCKET=") && !text.starts_with("LISTEN_FDS=")) {
        env_text.emplace_back(text);
      }
    }
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

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  // CPU time the daemon has used so far (user + system), microseconds.
  [[nodiscard]] double cpu_micros() const {
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
  [[nodiscard]] long rss_kib() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    }
    return -1;
  }

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

// ---- requests --------------------------------------------------------------------

enum class Outcome : std::uint8_t { accepted, refused, locked, error };

Outcome verify(const Daemon& daemon, const std::string& user, const std::string& code) {
  protocol::VerifyRequest request{.user = user,
                                  .service = "kpanel-bench",
                                  .rhost = "127.0.0.1",
                                  .tty = "ssh",
                                  .code = common::SecureString(code)};
  const auto reply = daemon.call(protocol::Request{std::move(request)});
  if (!reply) return Outcome::error;
  switch (reply->status) {
    case protocol::Status::ok:
      return Outcome::accepted;
    case protocol::Status::wrong_code:
      return Outcome::refused;
    case protocol::Status::locked:
      return Outcome::locked;
    default:
      return Outcome::error;
  }
}

struct Latencies {
  std::vector<double> micros;
  std::size_t accepted = 0;
  std::size_t errors = 0;

  [[nodiscard]] double at(double fraction) const {
    if (micros.empty()) return 0;
    std::vector<double> sorted = micros;
    std::sort(sorted.begin(), sorted.end());
    return sorted[static_cast<std::size_t>(fraction * static_cast<double>(sorted.size() - 1))];
  }
  [[nodiscard]] double max() const {
    return micros.empty() ? 0 : *std::max_element(micros.begin(), micros.end());
  }
};

// The bench's copy of each user's replay state: the last step it sent a right
// code for. A code works once (RFC 6238 §5.2), and window = 1 lets a user
// pass at most three times per step (steps now-1, now, now+1, in that order).
class ReplayState {
 public:
  explicit ReplayState(std::size_t users) : last_(users) {
    for (auto& step : last_) step = std::numeric_limits<std::int64_t>::min();
  }
  // Claims the next unused step of `user` in now±1, if any.
  std::optional<std::int64_t> claim(std::size_t user) {
    const std::int64_t now = current_step();
    std::int64_t last = last_[user].load();
    for (;;) {
      const std::int64_t step = std::max(now - 1, last + 1);
      if (step > now + 1) return std::nullopt;
      if (last_[user].compare_exchange_weak(last, step)) return step;
    }
  }

 private:
  std::vector<std::atomic<std::int64_t>> last_;
};

// Right codes for users [first, first + count), round robin. When every user
// of the range has used its three steps, an attempt goes out with a replayed
// code (a failure, durable like any other); the table counts acceptances.
class RightCodes {
 public:
  RightCodes(const std::vector<BenchUser>& users, ReplayState& replay, std::size_t first,
             std::size_t count)
      : users_(users), replay_(replay), first_(first), count_(std::max<std::size_t>(count, 1)) {}
  std::pair<const BenchUser*, std::string> at(std::size_t n) const {
    for (std::size_t tried = 0; tried < count_; ++tried) {
      const std::size_t index = first_ + (n + tried) % count_;
      if (const auto step = replay_.claim(index)) {
        return {&users_[index], code_for(users_[index], *step)};
      }
      if (tried >= 64) break;  // the range is spent for this step
    }
    const BenchUser& user = users_[first_ + n % count_];
    return {&user, code_for(user, current_step())};
  }

 private:
  const std::vector<BenchUser>& users_;
  ReplayState& replay_;
  std::size_t first_;
  std::size_t count_;
};

// Durable writes (wrong codes, spread over users [first, first + count)) until
// SQLite's -wal file has reached its steady size, as on a host whose daemon
// has been running: commits then overwrite its blocks instead of growing it.
void warm_up(const Daemon& daemon, const std::vector<BenchUser>& users, std::size_t first,
             std::size_t count, std::size_t writes) {
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> threads;
  threads.reserve(64);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (std::size_t n = next++; n < writes; n = next++) {
        const BenchUser& user = users[first + n % count];
        (void)verify(daemon, user.name, wrong_code_for(user, current_step()));
      }
    });
  }
  for (auto& thread : threads) thread.join();
}

// (a) one client, one verification after another, each durable.
Latencies round_trips(const Daemon& daemon, const RightCodes& codes, std::size_t samples) {
  Latencies result;
  result.micros.reserve(samples);
  for (std::size_t n = 0; n < samples; ++n) {
    const auto [user, code] = codes.at(n);
    const auto start = Clock::now();
    const Outcome outcome = verify(daemon, user->name, code);
    result.micros.push_back(Micros(Clock::now() - start).count());
    if (outcome == Outcome::accepted) ++result.accepted;
    if (outcome == Outcome::error) ++result.errors;
  }
  return result;
}

// The other half of a PAM login: login_check (read only, no durable write),
// one client, over users [first, first + count).
Latencies login_checks(const Daemon& daemon, const std::vector<BenchUser>& users, std::size_t first,
                       std::size_t count, std::size_t samples) {
  Latencies result;
  result.micros.reserve(samples);
  for (std::size_t n = 0; n < samples; ++n) {
    protocol::LoginCheckRequest request{
        .user = users[first + n % count].name, .service = "kpanel-bench", .tty = "ssh"};
    const auto start = Clock::now();
    const auto reply = daemon.call(protocol::Request{std::move(request)});
    result.micros.push_back(Micros(Clock::now() - start).count());
    const bool prompted = reply && reply->status == protocol::Status::ok &&
                          std::get<protocol::LoginCheckResult>(reply->result).decision ==
                              protocol::LoginDecision::prompt;
    if (prompted) ++result.accepted;
    if (!reply) ++result.errors;
  }
  return result;
}

struct Throughput {
  double per_second = 0;
  std::size_t total = 0;
  std::size_t accepted = 0;
  std::size_t locked = 0;
  std::size_t errors = 0;
  long peak_rss_kib = 0;
  double daemon_cpu_us = 0;  // per verification
  double client_cpu_us = 0;  // per verification, the whole bench process
};

double process_cpu_micros() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto micros = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_usec);
  };
  return micros(usage.ru_utime) + micros(usage.ru_stime);
}

// (b) `clients` threads, each verification on its own connection, for
// `seconds`: every other attempt a right code, the rest wrong.
Throughput throughput(const Daemon& daemon, const std::vector<BenchUser>& users,
                      ReplayState& replay, std::size_t first, std::size_t count, int clients,
                      double seconds) {
  const RightCodes right(users, replay, first, count);
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> accepted{0};
  std::atomic<std::size_t> locked{0};
  std::atomic<std::size_t> errors{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  threads.reserve(64);
  const double daemon_cpu_before = daemon.cpu_micros();
  const double client_cpu_before = process_cpu_micros();
  const auto start = Clock::now();
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&] {
      while (!stop) {
        const std::size_t n = next++;
        Outcome outcome = Outcome::error;
        if (n % 2 == 0) {
          const auto [user, code] = right.at(n / 2);
          outcome = verify(daemon, user->name, code);
        } else {
          const BenchUser& user = users[first + (n / 2 + count / 2) % count];
          outcome = verify(daemon, user.name, wrong_code_for(user, current_step()));
        }
        if (outcome == Outcome::accepted) ++accepted;
        if (outcome == Outcome::locked) ++locked;
        if (outcome == Outcome::error) ++errors;
      }
    });
  }
  Throughput result;
  const auto end = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    result.peak_rss_kib = std::max(result.peak_rss_kib, daemon.rss_kib());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  stop = true;
  for (auto& thread : threads) thread.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  result.total = next.load();
  result.per_second = static_cast<double>(result.total) / elapsed;
  const double requests = static_cast<double>(std::max<std::size_t>(result.total, 1));
  result.daemon_cpu_us = (daemon.cpu_micros() - daemon_cpu_before) / requests;
  result.client_cpu_us = (process_cpu_micros() - client_cpu_before) / requests;
  result.accepted = accepted;
  result.locked = locked;
  result.errors = errors;
  return result;
}

struct UnderAttack {
  Latencies legit;
  double failed_per_second = 0;
};

// (f) a legitimate user's verify latency while `attackers` threads send
// wrong codes at `attack_rate` per second in all, spread over other users.
UnderAttack under_attack(const Daemon& daemon, const std::vector<BenchUser>& users,
                         std::size_t attacked_first, std::size_t attacked_count,
                         const RightCodes& legit_codes, std::size_t legit_samples,
                         double attack_rate) {
  constexpr int kAttackers = 8;
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> sent{0};
  std::vector<std::thread> threads;
  threads.reserve(64);
  const auto start = Clock::now();
  const auto interval = std::chrono::duration<double>(kAttackers / attack_rate);
  for (int t = 0; t < kAttackers; ++t) {
    threads.emplace_back([&, t] {
      auto due = start + std::chrono::duration_cast<Clock::duration>(interval * t / kAttackers);
      for (auto n = static_cast<std::size_t>(t); !stop; n += kAttackers) {
        std::this_thread::sleep_until(due);
        due += std::chrono::duration_cast<Clock::duration>(interval);
        const BenchUser& user = users[attacked_first + n % attacked_count];
        (void)verify(daemon, user.name, wrong_code_for(user, current_step()));
        ++sent;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the attack settle
  UnderAttack result;
  for (std::size_t n = 0; n < legit_samples; ++n) {
    const auto [user, code] = legit_codes.at(n);
    const auto begin = Clock::now();
    const Outcome outcome = verify(daemon, user->name, code);
    result.legit.micros.push_back(Micros(Clock::now() - begin).count());
    if (outcome == Outcome::accepted) ++result.legit.accepted;
    if (outcome == Outcome::error) ++result.legit.errors;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // a login now and then
  }
  stop = true;
  for (auto& thread : threads) thread.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  result.failed_per_second = static_cast<double>(sent.load()) / elapsed;
  return result;
}

// ---- (c) PAM -----------------------------------------------------------------------

struct PamRow {
  std::string service;
  std::size_t logins = 0;
  std::size_t succeeded = 0;
  double mean_us = 0;
  double p50_us = 0;
  double p99_us = 0;
  bool ran = false;
};

bool write_file(const fs::path& path, const std::string& text, mode_t mode = 0600) {
  std::ofstream out(path);
  out << text;
  out.close();
  return out.good() && ::chmod(path.c_str(), mode) == 0;
}

std::string base32(std::span<const std::uint8_t> bytes) {
  static constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (const std::uint8_t b : bytes) {
    buffer = (buffer << 8U) | b;
    bits += 8;
    while (bits >= 5) {
      out += kAlphabet[(buffer >> static_cast<unsigned>(bits - 5)) & 31U];
      bits -= 5;
    }
  }
  if (bits > 0) out += kAlphabet[(buffer << static_cast<unsigned>(5 - bits)) & 31U];
  return out;
}

PamRow run_pam(const fs::path& service_dir, const std::string& service, const fs::path& users) {
  PamRow row{.service = service};
  const std::string command =
      "env LD_PRELOAD=" KPANEL_BENCH_PAM_WRAPPER " PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR=" +
      service_dir.string() + " " KPANEL_BENCH_PAM_HARNESS " " + service + " " + users.string();
  // The shell sets pam_wrapper's variables for the harness alone.
  FILE* pipe = ::popen(command.c_str(), "r");  // NOLINT(cert-env33-c)
  if (pipe == nullptr) return row;
  std::array<char, 256> line{};
  if (std::fgets(line.data(), line.size(), pipe) != nullptr) {
    std::istringstream fields(line.data());
    std::string name;
    row.ran = static_cast<bool>(fields >> name >> row.logins >> row.succeeded >> row.mean_us >>
                                row.p50_us >> row.p99_us);
  }
  ::pclose(pipe);
  return row;
}

struct PamResults {
  PamRow permit, ours, ga_recommended, ga_bare;
};

PamResults pam_costs(const fs::path& dir, const Daemon& daemon, const std::vector<BenchUser>& users,
                     std::size_t first, std::size_t count) {
  const fs::path service_dir = dir / "pam.d";
  fs::create_directories(service_dir);
  std::string list;
  for (std::size_t i = first; i < first + count; ++i) {
    list += users[i].name + " " + hex(users[i].secret.view()) + "\n";
  }
  (void)write_file(dir / "pam-users", list);
  const std::string ga = KPANEL_BENCH_GA_MODULE;
  const bool have_ga = fs::exists(ga);
  // GA's state files: one per user and configuration (DISALLOW_REUSE and
  // RATE_LIMIT make it rewrite the file on every login).
  for (const char* config : {"ga-recommended", "ga-bare"}) {
    fs::create_directories(dir / config);
    const bool recommended = std::strcmp(config, "ga-recommended") == 0;
    for (std::size_t i = first; i < first + count; ++i) {
      std::string text = base32(users[i].secret.view()) + "\n";
      if (recommended) text += "\" RATE_LIMIT 3 30\n\" DISALLOW_REUSE\n";
      text += "\" TOTP_AUTH\n";
      (void)write_file(dir / config / users[i].name, text, 0400);
    }
  }
  (void)write_file(service_dir / "other", "auth required pam_deny.so\n", 0644);
  (void)write_file(service_dir / "bench-permit", "auth required pam_permit.so\n", 0644);
  (void)write_file(
      service_dir / "bench-ours",
      "auth required " KPANEL_BENCH_PAM_MODULE " socket=" + daemon.socket().string() + "\n", 0644);
  for (const char* config : {"ga-recommended", "ga-bare"}) {
    (void)write_file(
        service_dir / (std::string("bench-") + config),
        "auth required " + ga + " secret=" + (dir / config).string() + "/${USER} user=root\n",
        0644);
  }
  PamResults results;
  results.permit = run_pam(service_dir, "bench-permit", dir / "pam-users");
  results.ours = run_pam(service_dir, "bench-ours", dir / "pam-users");
  if (have_ga) {
    results.ga_recommended = run_pam(service_dir, "bench-ga-recommended", dir / "pam-users");
    results.ga_bare = run_pam(service_dir, "bench-ga-bare", dir / "pam-users");
  }
  return results;
}

// ---- the table ----------------------------------------------------------------------

// printf into a string; the attribute keeps the format checks (<format> is
// not in g++ 12).
// NOLINTNEXTLINE(cert-dcl50-cpp)
__attribute__((format(printf, 1, 2))) std::string fmt(const char* format, ...) {
  std::array<char, 512> text{};
  va_list args;
  va_start(args, format);
  (void)std::vsnprintf(text.data(), text.size(), format, args);
  va_end(args);
  return text.data();
}

struct Row {
  std::string measure;
  std::string result;
  std::string target;
  std::string met;  // "yes", "no" or "-"
};

std::string verdict(bool met) { return met ? "yes" : "no"; }

std::string latency_text(const Latencies& l) {
  return fmt("%.0f / %.0f / %.0f µs (%zu of %zu accepted)", l.at(0.5), l.at(0.99), l.max(),
             l.accepted, l.micros.size());
}

std::string throughput_text(const Throughput& run) {
  return fmt(
      "%.0f/s (%zu requests, %zu accepted, %zu locked, %zu errors; CPU per verification: "
      "daemon %.0f µs, clients %.0f µs)",
      run.per_second, run.total, run.accepted, run.locked, run.errors, run.daemon_cpu_us,
      run.client_cpu_us);
}

std::string machine_line(const fs::path& dir) {
  std::string cpu = "unknown CPU";
  std::ifstream info("/proc/cpuinfo");
  std::string line;
  while (std::getline(info, line)) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  std::string fs_type = "?";
  struct statfs stats {};
  if (::statfs(dir.c_str(), &stats) == 0) {
    switch (stats.f_type) {
      case 0xEF53:
        fs_type = "ext4";
        break;
      case 0x58465342:
        fs_type = "xfs";
        break;
      case 0x9123683E:
        fs_type = "btrfs";
        break;
      case 0x01021994:
        fs_type = "tmpfs (not durable: numbers flatter fsync)";
        break;
      case 0x794c7630:
        fs_type = "overlayfs";
        break;
      default:
        fs_type = fmt("fs 0x%lx", static_cast<unsigned long>(stats.f_type));
    }
  }
  return fmt("%u CPUs (%s), state dir %s on %s", std::thread::hardware_concurrency(), cpu.c_str(),
             dir.c_str(), fs_type.c_str());
}

void print_table(const std::string& machine, const std::vector<Row>& rows) {
  (void)std::printf("\nkpanel-totp benchmark: %s\n\n", machine.c_str());
  (void)std::printf("| measure | result | target | met |\n|---|---|---|---|\n");
  for (const Row& row : rows) {
    (void)std::printf("| %s | %s | %s | %s |\n", row.measure.c_str(), row.result.c_str(),
                      row.target.c_str(), row.met.c_str());
  }
  (void)std::fflush(stdout);
}

void progress(const std::string& what) {
  (void)std::fprintf(stderr, "kpanel_bench: %s\n", what.c_str());
}

// ---- PostgreSQL ----------------------------------------------------------------

// Runs one statement on `dsn`: its first value ("" if none), or nullopt with
// the server's message on stderr.
std::optional<std::string> postgresql_exec(const std::string& dsn, const std::string& sql) {
  const std::unique_ptr<PGconn, decltype(&PQfinish)> connection(PQconnectdb(dsn.c_str()),
                                                                &PQfinish);
  if (PQstatus(connection.get()) != CONNECTION_OK) {
    (void)std::fprintf(stderr, "kpanel_bench: postgresql: %s", PQerrorMessage(connection.get()));
    return std::nullopt;
  }
  // NOTICEs ("drop cascades to table …") are not the table's business.
  PQsetNoticeProcessor(
      connection.get(), [](void*, const char*) {}, nullptr);
  const std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(connection.get(), sql.c_str()),
                                                             &PQclear);
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    (void)std::fprintf(stderr, "kpanel_bench: postgresql: %s: %s", sql.c_str(),
                       PQresultErrorMessage(result.get()));
    return std::nullopt;
  }
  if (status == PGRES_TUPLES_OK && PQntuples(result.get()) > 0 && PQnfields(result.get()) > 0) {
    return std::string(PQgetvalue(result.get(), 0, 0));
  }
  return std::string{};
}

// `dsn` with search_path set to `schema`, in either form libpq takes.
std::string with_search_path(const std::string& dsn, const std::string& schema) {
  if (dsn.starts_with("postgresql://") || dsn.starts_with("postgres://")) {
    return dsn + (dsn.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" +
           schema;
  }
  return dsn + " options='-csearch_path=" + schema + "'";
}

// A schema of the suite's own, dropped (with everything the daemon made in
// it) when the suite is done with it.
class ScratchSchema {
 public:
  explicit ScratchSchema(std::string dsn) : dsn_(std::move(dsn)) {
    auto suffix = common::random_bytes(6);
    if (!suffix) return;
    const std::string name = "kpanel_bench_" + hex(suffix->view());
    if (postgresql_exec(dsn_, "CREATE SCHEMA " + name)) name_ = name;
  }
  ScratchSchema(const ScratchSchema&) = delete;
  ScratchSchema& operator=(const ScratchSchema&) = delete;
  ScratchSchema(ScratchSchema&&) = delete;
  ScratchSchema& operator=(ScratchSchema&&) = delete;
  ~ScratchSchema() {
    if (!name_.empty()) (void)postgresql_exec(dsn_, "DROP SCHEMA " + name_ + " CASCADE");
  }
  [[nodiscard]] bool made() const { return !name_.empty(); }
  [[nodiscard]] std::string dsn() const { return with_search_path(dsn_, name_); }

 private:
  std::string dsn_;
  std::string name_;
};

struct PostgresqlRuns {
  std::string server;  // version and the settings that decide durability
  double seed_seconds = 0;
  Latencies round_trips;
  std::vector<std::pair<int, Throughput>> throughput;
};

// (a) and (b) again with store = postgresql: `users` users of their own, a
// daemon of its own (dir/postgresql).
std::optional<PostgresqlRuns> postgresql_runs(const Options& options, const fs::path& dir,
                                              std::size_t user_count, std::size_t samples,
                                              double seconds, std::size_t warm_up_writes) {
  const ScratchSchema schema(options.postgresql_dsn);
  if (!schema.made()) return std::nullopt;
  const std::string dsn = schema.dsn();
  PostgresqlRuns out;
  const auto setting = [&](const char* name) {
    return postgresql_exec(dsn, std::string("SHOW ") + name).value_or("?");
  };
  out.server = "PostgreSQL " + setting("server_version") + ", fsync " + setting("fsync") +
               ", synchronous_commit " + setting("synchronous_commit");
  std::vector<BenchUser> users;
  ReplayState replay(user_count);
  Daemon daemon(options.daemon, dir / "postgresql", dsn);
  fs::create_directories(daemon.state_dir());
  fs::permissions(dir / "postgresql", fs::perms::owner_all);
  fs::permissions(daemon.state_dir(), fs::perms::owner_all);
  progress(fmt("PostgreSQL: seeding %zu users", user_count));
  const auto seed_start = Clock::now();
  if (!seed(daemon.state_dir(), daemon.key_file(), dsn, users, 0, user_count)) return std::nullopt;
  out.seed_seconds = std::chrono::duration<double>(Clock::now() - seed_start).count();
  if (!daemon.start()) return std::nullopt;
  warm_up(daemon, users, 0, user_count, warm_up_writes);
  progress("PostgreSQL: (a) round trips");
  out.round_trips = round_trips(daemon, RightCodes(users, replay, 0, user_count), samples);
  for (const int clients : {1, 8, 64}) {
    progress(fmt("PostgreSQL: (b) %d clients", clients));
    out.throughput.emplace_back(clients,
                                throughput(daemon, users, replay, 0, user_count, clients, seconds));
  }
  daemon.stop();
  return out;
}

// ---- the suite -----------------------------------------------------------------------

int run(const Options& options) {
  if (::geteuid() != 0) {
    (void)std::fprintf(stderr, "kpanel_bench: run as root (the daemon trusts root clients only)\n");
    return 77;
  }
  std::string pattern = (options.parent / "kpanel-bench.XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    (void)std::fprintf(stderr, "kpanel_bench: cannot make a directory in %s: %s\n",
                       options.parent.c_str(), std::generic_category().message(errno).c_str());
    return 1;
  }
  const fs::path dir = pattern;
  // Before anything logs: the daemon's audit lines and both PAM modules' go there.
  const SyslogSink syslog_sink;
  const std::size_t small = 100;
  const std::size_t medium = options.smoke ? 1'000 : 10'000;
  const std::size_t large = options.smoke ? 2'000 : 100'000;
  const std::size_t samples = options.smoke ? 100 : 2'000;
  const double seconds = options.smoke ? 0.5 : options.duration;
  const std::size_t pam_users = options.smoke ? 20 : 300;
  const std::size_t legit_users = options.smoke ? 50 : 500;
  const std::size_t legit_samples = options.smoke ? 20 : 300;
  // SQLite checkpoints (and then reuses) the WAL after 1000 pages.
  const std::size_t warm_up_writes = options.smoke ? 50 : 1'500;

  std::vector<BenchUser> users;
  ReplayState replay(large);
  Daemon daemon(options.daemon, dir);
  std::vector<Row> rows;
  const auto fail = [&](const char* what) {
    (void)std::fprintf(stderr, "kpanel_bench: %s failed; files kept in %s\n", what, dir.c_str());
    return 1;
  };

  // Scale 1: few users.
  progress(fmt("seeding %zu users", small));
  if (!seed(daemon.state_dir(), daemon.key_file(), {}, users, 0, small)) return fail("seeding");
  if (!daemon.start()) return fail("starting kpanel-totpd");
  warm_up(daemon, users, 0, small, warm_up_writes);
  const Latencies a_small = round_trips(daemon, RightCodes(users, replay, 0, small), samples);
  daemon.stop();

  // Scale 2: the (b), (c), (f) population. Users split in three ranges: PAM
  // logins, the legitimate user of (f), and everyone else; a code works once,
  // so no range reuses another's.
  progress(fmt("seeding up to %zu users", medium));
  const auto seed_start = Clock::now();
  if (!seed(daemon.state_dir(), daemon.key_file(), {}, users, small, medium))
    return fail("seeding");
  const double seed_seconds = std::chrono::duration<double>(Clock::now() - seed_start).count();
  if (!daemon.start()) return fail("starting kpanel-totpd");
  const std::size_t pam_first = medium - pam_users;
  const std::size_t legit_first = pam_first - legit_users;
  const std::size_t general = legit_first;
  warm_up(daemon, users, 0, general, warm_up_writes);
  progress("(a) round trips");
  const Latencies a_medium = round_trips(daemon, RightCodes(users, replay, 0, general), samples);
  const Latencies checks = login_checks(daemon, users, 0, general, samples);
  std::vector<std::pair<int, Throughput>> b_runs;
  for (const int clients : {1, 8, 64}) {
    progress(fmt("(b) %d clients", clients));
    b_runs.emplace_back(clients, throughput(daemon, users, replay, 0, general, clients, seconds));
  }
  progress("(f) under attack");
  const UnderAttack f =
      under_attack(daemon, users, 0, general, RightCodes(users, replay, legit_first, legit_users),
                   legit_samples, 5'000.0);
  progress("(c) PAM");
  const PamResults c = pam_costs(dir, daemon, users, pam_first, pam_users);
  daemon.stop();

  // Scale 3: many users.
  progress(fmt("seeding up to %zu users", large));
  if (!seed(daemon.state_dir(), daemon.key_file(), {}, users, medium, large))
    return fail("seeding");
  if (!daemon.start()) return fail("starting kpanel-totpd");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const long idle_rss = daemon.rss_kib();
  warm_up(daemon, users, medium, large - medium, warm_up_writes);
  progress("(a) at the largest scale");
  const Latencies a_large =
      round_trips(daemon, RightCodes(users, replay, medium, large - medium), samples);
  progress("(e) RSS under (b)");
  const Throughput e_run = throughput(daemon, users, replay, 0, large, 64, seconds);
  const long after_rss = daemon.rss_kib();
  daemon.stop();

  // The same (a) and (b) on the fleet store, when there is a database.
  std::optional<PostgresqlRuns> pg;
  if (!options.postgresql_dsn.empty()) {
    pg = postgresql_runs(options, dir, medium, samples, seconds, warm_up_writes / 10);
    if (!pg) return fail("the PostgreSQL runs");
  }

  // ---- rows
  rows.push_back({fmt("(a) verify round trip, 1 client, %zu users: p50 / p99 / max", medium),
                  latency_text(a_medium), "p50 ≤ 250 µs, p99 ≤ 1000 µs",
                  verdict(a_medium.at(0.5) <= 250 && a_medium.at(0.99) <= 1000)});
  for (const auto& [clients, run] : b_runs) {
    const bool has_target = clients == 64;
    rows.push_back({fmt("(b) durable verifications/s, %d client%s, %zu users", clients,
                        clients == 1 ? "" : "s", medium),
                    throughput_text(run), has_target ? "≥ 20000/s" : "-",
                    has_target ? verdict(run.per_second >= 20'000) : "-"});
  }
  if (pg) {
    rows.push_back({"PostgreSQL store (store = postgresql): the server", pg->server, "-", "-"});
    rows.push_back({fmt("(a) PostgreSQL store, verify round trip, 1 client, %zu users: p50 / p99 "
                        "/ max",
                        medium),
                    latency_text(pg->round_trips), "-", "-"});
    for (const auto& [clients, run] : pg->throughput) {
      rows.push_back({fmt("(b) PostgreSQL store, durable verifications/s, %d client%s, %zu users",
                          clients, clients == 1 ? "" : "s", medium),
                      throughput_text(run), "-", "-"});
    }
  }
  const auto pam_text = [](const PamRow& row) {
    if (!row.ran) return std::string("not run");
    return fmt("%.0f µs mean, p50 %.0f, p99 %.0f (%zu/%zu logins succeeded)", row.mean_us,
               row.p50_us, row.p99_us, row.succeeded, row.logins);
  };
  rows.push_back(
      {"(c) pam_permit.so (baseline): pam_start+authenticate+end", pam_text(c.permit), "-", "-"});
  const double ours_cost = c.ours.mean_us - c.permit.mean_us;
  rows.push_back(
      {"(c) pam_kpanel_totp.so", pam_text(c.ours) + fmt("; cost %.0f µs", ours_cost), "-", "-"});
  rows.push_back({"(c) of which: login_check round trip (read only), 1 client",
                  fmt("%.0f / %.0f / %.0f µs (%zu of %zu prompted)", checks.at(0.5),
                      checks.at(0.99), checks.max(), checks.accepted, checks.micros.size()),
                  "-", "-"});
  if (c.ga_recommended.ran && c.ga_bare.ran) {
    const double rec_cost = c.ga_recommended.mean_us - c.permit.mean_us;
    const double bare_cost = c.ga_bare.mean_us - c.permit.mean_us;
    rows.push_back({"(c) pam_google_authenticator.so, recommended (RATE_LIMIT, DISALLOW_REUSE)",
                    pam_text(c.ga_recommended) + fmt("; cost %.0f µs", rec_cost), "-", "-"});
    rows.push_back({"(c) pam_google_authenticator.so, bare (TOTP_AUTH)",
                    pam_text(c.ga_bare) + fmt("; cost %.0f µs", bare_cost), "-", "-"});
    rows.push_back({"(c) our cost / GA recommended cost", fmt("%.2f×", ours_cost / rec_cost),
                    "≤ 0.2×", verdict(ours_cost <= 0.2 * rec_cost)});
    rows.push_back({"(c) our cost / GA bare cost", fmt("%.2f×", ours_cost / bare_cost), "≤ 1.5×",
                    verdict(ours_cost <= 1.5 * bare_cost)});
  } else {
    rows.push_back({"(c) pam_google_authenticator.so",
                    "not installed (apt-get install libpam-google-authenticator)", "-", "-"});
  }
  rows.push_back({fmt("(d) (a) at %zu users", small), latency_text(a_small), "-", "-"});
  rows.push_back({fmt("(d) (a) at %zu users", large), latency_text(a_large), "-", "-"});
  const double scale_ratio = a_large.at(0.5) / a_small.at(0.5);
  rows.push_back({fmt("(d) p50 at %zu users / p50 at %zu users", large, small),
                  fmt("%.2f×", scale_ratio), "≤ 1.2×", verdict(scale_ratio <= 1.2)});
  rows.push_back(
      {fmt("(e) daemon RSS at %zu users: idle / peak under (b) 64 clients", large),
       fmt("%.1f / %.1f MiB (after: %.1f MiB; %.0f verifications/s)",
           static_cast<double>(idle_rss) / 1024, static_cast<double>(e_run.peak_rss_kib) / 1024,
           static_cast<double>(after_rss) / 1024, e_run.per_second),
       "≤ 16 MiB", verdict(std::max(idle_rss, e_run.peak_rss_kib) <= 16L * 1024)});
  rows.push_back(
      {fmt("(f) legitimate verify p99 under %.0f failed attempts/s", f.failed_per_second),
       latency_text(f.legit), "p99 ≤ 10 ms", verdict(f.legit.at(0.99) <= 10'000)});
  rows.push_back({"syslog (the daemon's audit lines, the PAM modules' messages)",
                  syslog_sink.description(), "-", "-"});
  rows.push_back({"seeding (SqliteStore::update, 8 threads)",
                  fmt("%zu users in %.1f s", medium - small, seed_seconds), "-", "-"});
  if (pg) {
    rows.push_back({"seeding (PostgresqlStore::update, 8 threads)",
                    fmt("%zu users in %.1f s", medium, pg->seed_seconds), "-", "-"});
  }

  print_table(machine_line(dir), rows);
  std::error_code ignored;
  fs::remove_all(dir, ignored);
  return 0;
}

}  // namespace
}  // namespace kpanel::bench

int main(int argc, char** argv) {
  kpanel::bench::Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--smoke") {
      options.smoke = true;
    } else if (arg == "--dir" && i + 1 < argc) {
      options.parent = argv[++i];
    } else if (arg == "--daemon" && i + 1 < argc) {
      options.daemon = argv[++i];
    } else if (arg == "--duration" && i + 1 < argc) {
      options.duration = std::strtod(argv[++i], nullptr);
    } else if (arg == "--postgresql-dsn-file" && i + 1 < argc) {
      std::ifstream in(argv[++i]);
      if (!std::getline(in, options.postgresql_dsn) || options.postgresql_dsn.empty()) {
        (void)std::fprintf(stderr, "kpanel_bench: no DSN in %s\n", argv[i]);
        return 2;
      }
    } else {
      (void)std::fprintf(stderr,
                         "usage: kpanel_bench [--smoke] [--dir PARENT] [--duration SECONDS] "
                         "[--daemon KPANEL_TOTPD] [--postgresql-dsn-file FILE]\n");
      return 2;
    }
  }
  try {
    return kpanel::bench::run(options);
  } catch (const std::exception& e) {
    (void)std::fprintf(stderr, "kpanel_bench: %s\n", e.what());
    return 1;
  }
}
