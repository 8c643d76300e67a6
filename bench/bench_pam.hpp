#pragma once
// (c) what a PAM login costs: pam_permit, our module and Google
// Authenticator's, each through pam_wrapper in the kpanel_bench_pam harness.

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/bench_daemon.hpp"
#include "bench/bench_users.hpp"

namespace kpanel::bench {

struct PamRow {
  std::string service;
  std::size_t logins = 0;
  std::size_t succeeded = 0;
  double mean_us = 0;
  double p50_us = 0;
  double p99_us = 0;
  bool ran = false;
};

struct PamResults {
  PamRow permit, ours, ga_recommended, ga_bare;
};

// Logins for users [first, first + count) through each service.
PamResults pam_costs(const fs::path& dir, const Daemon& daemon, const std::vector<BenchUser>& users,
                     std::size_t first, std::size_t count);

}  // namespace kpanel::bench
