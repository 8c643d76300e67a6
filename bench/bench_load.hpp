#pragma once
// The load the suite puts on the daemon: verifications and login checks the
// way the PAM module sends them (one connection per request), timed one by
// one (a), from many clients at once (b), and under an attack (f).

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_daemon.hpp"
#include "bench/bench_users.hpp"

namespace kpanel::bench {

// replayed and unverified are errors in the table, as every other answer
// that is neither accepted, refused nor locked; unverified: answered without
// looking at the code (no_such_user, not_enrolled, forbidden, …), so no
// verification happened at all.
enum class Outcome : std::uint8_t { accepted, refused, locked, replayed, unverified, error };

// A replayed right code is an answer, not an error: clients that claimed two
// steps of one user can arrive in the other order.
inline bool is_error(Outcome outcome) {
  return outcome != Outcome::accepted && outcome != Outcome::refused &&
         outcome != Outcome::locked && outcome != Outcome::replayed;
}

Outcome verify(const Daemon& daemon, const std::string& user, const std::string& code);

struct Latencies {
  std::vector<double> micros;
  std::size_t accepted = 0;
  std::size_t errors = 0;
  // Unused right codes (in now±1 when answered) that were not accepted: the
  // figures would then time refusals, not verifications.
  std::size_t missed = 0;
  std::size_t unverified = 0;

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

// One attempt of RightCodes: `step` is the unused step its code is for, none
// when it is a replayed code.
struct Attempt {
  const BenchUser* user;
  std::string code;
  std::optional<std::int64_t> step;
};

// Whether a right code for unused `step` should have been accepted: false
// when the step left the window (now±1) while the request was under way.
inline bool still_valid(std::int64_t step) { return step >= current_step() - 1; }

// Right codes for users [first, first + count), round robin. When every user
// of the range has used its three steps, an attempt goes out with a replayed
// code (a failure, durable like any other); the table counts acceptances.
class RightCodes {
 public:
  RightCodes(const std::vector<BenchUser>& users, ReplayState& replay, std::size_t first,
             std::size_t count)
      : users_(users), replay_(replay), first_(first), count_(std::max<std::size_t>(count, 1)) {}
  Attempt at(std::size_t n) const {
    for (std::size_t tried = 0; tried < count_; ++tried) {
      const std::size_t index = first_ + (n + tried) % count_;
      if (const auto step = replay_.claim(index)) {
        return {&users_[index], code_for(users_[index], *step), step};
      }
      if (tried >= 64) break;  // the range is spent for this step
    }
    const BenchUser& user = users_[first_ + n % count_];
    return {&user, code_for(user, current_step()), std::nullopt};
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
             std::size_t count, std::size_t writes);

// (a) one client, one verification after another, each durable.
Latencies round_trips(const Daemon& daemon, const RightCodes& codes, std::size_t samples);

// The other half of a PAM login: login_check (read only, no durable write),
// one client, over users [first, first + count).
Latencies login_checks(const Daemon& daemon, const std::vector<BenchUser>& users, std::size_t first,
                       std::size_t count, std::size_t samples);

struct Throughput {
  double per_second = 0;
  std::size_t total = 0;
  std::size_t accepted = 0;
  std::size_t locked = 0;
  std::size_t replayed = 0;
  std::size_t errors = 0;
  // No `missed` as in Latencies: two clients may claim steps of one user and
  // the later step arrive first, which makes the earlier one a replay.
  std::size_t unverified = 0;
  long peak_rss_kib = 0;
  double daemon_cpu_us = 0;  // per verification
  double client_cpu_us = 0;  // per verification, the whole bench process
};

// (b) `clients` threads, each verification on its own connection, for
// `seconds`: every other attempt a right code, the rest wrong.
Throughput throughput(const Daemon& daemon, const std::vector<BenchUser>& users,
                      ReplayState& replay, std::size_t first, std::size_t count, int clients,
                      double seconds);

struct UnderAttack {
  Latencies legit;
  double failed_per_second = 0;
};

// (f) a legitimate user's verify latency while `attackers` threads send
// wrong codes at `attack_rate` per second in all, spread over other users.
UnderAttack under_attack(const Daemon& daemon, const std::vector<BenchUser>& users,
                         std::size_t attacked_first, std::size_t attacked_count,
                         const RightCodes& legit_codes, std::size_t legit_samples,
                         double attack_rate);

}  // namespace kpanel::bench
