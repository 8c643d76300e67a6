#pragma once
// The suite's users (names, secrets, the codes they send) and the seeding
// that writes them through the daemon's own store.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "common/secure_buffer.hpp"
#include "common/totp.hpp"

namespace kpanel::bench {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Micros = std::chrono::duration<double, std::micro>;

struct BenchUser {
  std::string name;
  common::SecureBytes secret;
};

inline const common::TotpParams kParams{};

std::string hex(std::span<const std::uint8_t> bytes);
std::int64_t current_step();
std::string code_for(const BenchUser& user, std::int64_t step);
// A code that matches no step near now (an attacker's guess).
std::string wrong_code_for(const BenchUser& user, std::int64_t step);

// Writes users [from, to) through Store::update, the daemon's own path, from
// several threads (so a store that batches commits can batch them). The
// store: SQLite in `state_dir`, or PostgreSQL at `dsn` when it is not empty;
// secrets sealed with the key in `key_file`.
bool seed(const fs::path& state_dir, const fs::path& key_file, const std::string& dsn,
          std::vector<BenchUser>& users, std::size_t from, std::size_t to);

// kpanel-totpd answers no_such_user for a name that is not an account, so the
// suite's users must be accounts for the processes it starts, without
// touching the host's: those run with kNssPreload (nss_wrapper) in
// LD_PRELOAD, and this writes the passwd and group files in `dir` (root and
// our own user, copied from the real ones; the group of the suite's users)
// and sets nss_wrapper's variables in our environment, which they inherit.
// The suite's users themselves come from libnss_kpanelbench (computed, not
// scanned). False, with a message, when that fails. Call it before any
// thread starts (setenv).
inline constexpr const char* kNssPreload = KPANEL_BENCH_NSS_WRAPPER;
bool provide_accounts(const fs::path& dir);

}  // namespace kpanel::bench
