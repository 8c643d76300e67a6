#pragma once
// (a) and (b) again with store = postgresql, in a scratch schema of the
// suite's own on the database a libpq connection string names.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_load.hpp"

namespace kpanel::bench {

struct PostgresqlRuns {
  std::string server;  // version and the settings that decide durability
  double seed_seconds = 0;
  Latencies round_trips;
  std::vector<std::pair<int, Throughput>> throughput;
};

// (a) and (b) again with store = postgresql on `base_dsn`: `user_count` users
// of their own, a daemon (`daemon_binary`) of its own in dir/postgresql.
std::optional<PostgresqlRuns> postgresql_runs(const std::string& base_dsn,
                                              const fs::path& daemon_binary, const fs::path& dir,
                                              std::size_t user_count, std::size_t samples,
                                              double seconds, std::size_t warm_up_writes);

}  // namespace kpanel::bench
