#pragma once
// (c) what a PAM login costs: pam_permit, our module and Google
// Authenticator's, each through Linux-PAM in the kpanel_bench_pam harness (C,
// as sshd is: bench/pam_c_harness.c), and what loading each module costs a
// process without libstdc++.

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/bench_daemon.hpp"
#include "bench/bench_users.hpp"

namespace kpanel::bench {

// One line of the harness: logins (or loads), each in a process of its own.
struct PamRow {
  std::string service;  // or the module, for a load row
  std::size_t logins = 0;
  std::size_t succeeded = 0;
  double mean_us = 0;
  double p50_us = 0;
  double p99_us = 0;
  // Samples whose process had libstdc++ mapped before the clock started:
  // anything but 0 would hide the load cost the rows are there to show.
  std::size_t preloaded = 0;
  bool ran = false;
};

struct PamResults {
  PamRow permit, ours, ga_recommended, ga_bare;
  PamRow load_permit, load_ours, load_ga;  // dlopen+dlclose of the module alone
};

// Logins for users [first, first + count) through each service, and
// `loads` loads of each module.
PamResults pam_costs(const fs::path& dir, const Daemon& daemon, const std::vector<BenchUser>& users,
                     std::size_t first, std::size_t count, std::size_t loads);

}  // namespace kpanel::bench
