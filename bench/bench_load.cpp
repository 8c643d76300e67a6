// The load the suite puts on the daemon (bench_load.hpp).
#include "bench/bench_load.hpp"

#include <sys/resource.h>

#include <chrono>
#include <thread>

#include "common/protocol.hpp"
#include "common/secure_buffer.hpp"

namespace kpanel::bench {
namespace {

double process_cpu_micros() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto micros = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_usec);
  };
  return micros(usage.ru_utime) + micros(usage.ru_stime);
}

}  // namespace

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
    case protocol::Status::replayed:
      return Outcome::replayed;
    case protocol::Status::busy:
    case protocol::Status::store_unavailable:
    case protocol::Status::internal_error:
      return Outcome::error;
    default:
      return Outcome::unverified;
  }
}

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

Latencies round_trips(const Daemon& daemon, const RightCodes& codes, std::size_t samples) {
  Latencies result;
  result.micros.reserve(samples);
  for (std::size_t n = 0; n < samples; ++n) {
    const auto [user, code, step] = codes.at(n);
    const auto start = Clock::now();
    const Outcome outcome = verify(daemon, user->name, code);
    result.micros.push_back(Micros(Clock::now() - start).count());
    if (outcome == Outcome::accepted) ++result.accepted;
    if (is_error(outcome)) ++result.errors;
    if (outcome == Outcome::unverified) ++result.unverified;
    if (step && outcome != Outcome::accepted && still_valid(*step)) ++result.missed;
  }
  return result;
}

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

Throughput throughput(const Daemon& daemon, const std::vector<BenchUser>& users,
                      ReplayState& replay, std::size_t first, std::size_t count, int clients,
                      double seconds) {
  const RightCodes right(users, replay, first, count);
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> accepted{0};
  std::atomic<std::size_t> locked{0};
  std::atomic<std::size_t> replayed{0};
  std::atomic<std::size_t> errors{0};
  std::atomic<std::size_t> unverified{0};
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
          const auto attempt = right.at(n / 2);
          outcome = verify(daemon, attempt.user->name, attempt.code);
        } else {
          const BenchUser& user = users[first + (n / 2 + count / 2) % count];
          outcome = verify(daemon, user.name, wrong_code_for(user, current_step()));
        }
        if (outcome == Outcome::accepted) ++accepted;
        if (outcome == Outcome::locked) ++locked;
        if (outcome == Outcome::replayed) ++replayed;
        if (is_error(outcome)) ++errors;
        if (outcome == Outcome::unverified) ++unverified;
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
  result.replayed = replayed;
  result.errors = errors;
  result.unverified = unverified;
  return result;
}

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
    const auto [user, code, step] = legit_codes.at(n);
    const auto begin = Clock::now();
    const Outcome outcome = verify(daemon, user->name, code);
    result.legit.micros.push_back(Micros(Clock::now() - begin).count());
    if (outcome == Outcome::accepted) ++result.legit.accepted;
    if (is_error(outcome)) ++result.legit.errors;
    if (outcome == Outcome::unverified) ++result.legit.unverified;
    if (step && outcome != Outcome::accepted && still_valid(*step)) ++result.legit.missed;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // a login now and then
  }
  stop = true;
  for (auto& thread : threads) thread.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  result.failed_per_second = static_cast<double>(sent.load()) / elapsed;
  return result;
}

}  // namespace kpanel::bench
