// (c) what a PAM login costs (bench_pam.hpp).
#include "bench/bench_pam.hpp"

#include <sys/stat.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "common/base32.hpp"

namespace kpanel::bench {
namespace {

bool write_file(const fs::path& path, const std::string& text, mode_t mode = 0600) {
  std::ofstream out(path);
  out << text;
  out.close();
  return out.good() && ::chmod(path.c_str(), mode) == 0;
}

// Runs the harness with `arguments`, parses its one line.
PamRow run_harness(const std::string& environment, const std::string& arguments) {
  PamRow row;
  const std::string command = environment + " " KPANEL_BENCH_PAM_HARNESS " " + arguments;
  FILE* pipe = ::popen(command.c_str(), "r");  // NOLINT(cert-env33-c)
  if (pipe == nullptr) return row;
  std::array<char, 512> line{};
  if (std::fgets(line.data(), line.size(), pipe) != nullptr) {
    std::istringstream fields(line.data());
    row.ran = static_cast<bool>(fields >> row.service >> row.logins >> row.succeeded >>
                                row.mean_us >> row.p50_us >> row.p99_us >> row.preloaded);
  }
  row.ran = ::pclose(pipe) == 0 && row.ran;
  return row;
}

PamRow run_pam(const fs::path& service_dir, const std::string& service, const fs::path& users) {
  // nss_wrapper's variables come from our environment (provide_accounts):
  // Google Authenticator's module looks the users up.
  return run_harness("env LD_PRELOAD=" KPANEL_BENCH_NSS_WRAPPER,
                     "login " + service_dir.string() + " " + service + " " + users.string());
}

// No wrapper: the module is loaded as Linux-PAM loads it, nothing else.
PamRow run_load(const std::string& module, std::size_t samples) {
  return run_harness("env -u LD_PRELOAD", "load " + module + " " + std::to_string(samples));
}

}  // namespace

PamResults pam_costs(const fs::path& dir, const Daemon& daemon, const std::vector<BenchUser>& users,
                     std::size_t first, std::size_t count, std::size_t loads) {
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
      std::string text = std::string(common::base32_encode(users[i].secret.view()).view()) + "\n";
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
  results.load_permit = run_load(KPANEL_BENCH_PERMIT_MODULE, loads);
  results.load_ours = run_load(KPANEL_BENCH_PAM_MODULE, loads);
  if (have_ga) results.load_ga = run_load(ga, loads);
  return results;
}

}  // namespace kpanel::bench
