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

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <expected>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "bench/bench_daemon.hpp"
#include "bench/bench_load.hpp"
#include "bench/bench_pam.hpp"
#include "bench/bench_postgresql.hpp"
#include "bench/bench_table.hpp"
#include "bench/bench_users.hpp"
#include "bench/syslog_sink.hpp"

namespace kpanel::bench {
namespace {

struct Options {
  bool smoke = false;
  fs::path parent = "/var/tmp";
  double duration = 3.0;  // seconds per throughput run
  fs::path daemon = KPANEL_BENCH_DAEMON;
  std::string postgresql_dsn;  // empty: SQLite only
};

// ---- the suite -----------------------------------------------------------------------

// Everything the table reports. Users come in three scales (few, the (b),
// (c), (f) population, many).
struct Results {
  std::size_t small = 100;
  std::size_t medium = 0;
  std::size_t large = 0;
  Latencies a_small, a_medium, a_large, checks;
  std::vector<std::pair<int, Throughput>> b_runs;
  UnderAttack f;
  PamResults c;
  long idle_rss = 0;
  long after_rss = 0;
  double seed_seconds = 0;
  std::optional<PostgresqlRuns> pg;
};

// Runs every measurement in `dir`; on failure, what failed.
std::expected<Results, const char*> measure(const Options& options, const fs::path& dir) {
  Results r;
  const std::size_t small = r.small;
  const std::size_t medium = r.medium = options.smoke ? 1'000 : 10'000;
  const std::size_t large = r.large = options.smoke ? 2'000 : 100'000;
  const std::size_t samples = options.smoke ? 100 : 2'000;
  const double seconds = options.smoke ? 0.5 : options.duration;
  const std::size_t pam_users = options.smoke ? 20 : 300;
  const std::size_t module_loads = options.smoke ? 20 : 300;
  const std::size_t legit_users = options.smoke ? 50 : 500;
  const std::size_t legit_samples = options.smoke ? 20 : 300;
  // SQLite checkpoints (and then reuses) the WAL after 1000 pages.
  const std::size_t warm_up_writes = options.smoke ? 50 : 1'500;

  std::vector<BenchUser> users;
  ReplayState replay(large);
  Daemon daemon(options.daemon, dir);

  // Scale 1: few users.
  progress(fmt("seeding %zu users", small));
  if (!seed(daemon.state_dir(), daemon.key_file(), {}, users, 0, small))
    return std::unexpected("seeding");
  if (!daemon.start()) return std::unexpected("starting kpanel-totpd");
  warm_up(daemon, users, 0, small, warm_up_writes);
  r.a_small = round_trips(daemon, RightCodes(users, replay, 0, small), samples);
  daemon.stop();

  // Scale 2: the (b), (c), (f) population. Users split in three ranges: PAM
  // logins, the legitimate user of (f), and everyone else; a code works once,
  // so no range reuses another's.
  progress(fmt("seeding up to %zu users", medium));
  const auto seed_start = Clock::now();
  if (!seed(daemon.state_dir(), daemon.key_file(), {}, users, small, medium))
    return std::unexpected("seeding");
  r.seed_seconds = std::chrono::duration<double>(Clock::now() - seed_start).count();
  if (!daemon.start()) return std::unexpected("starting kpanel-totpd");
  const std::size_t pam_first = medium - pam_users;
  const std::size_t legit_first = pam_first - legit_users;
  const std::size_t general = legit_first;
  warm_up(daemon, users, 0, general, warm_up_writes);
  progress("(a) round trips");
  r.a_medium = round_trips(daemon, RightCodes(users, replay, 0, general), samples);
  r.checks = login_checks(daemon, users, 0, general, samples);
  progress("(f) under attack");
  r.f = under_attack(daemon, users, 0, general, RightCodes(users, replay, legit_first, legit_users),
                     legit_samples, 5'000.0);
  progress("(c) PAM");
  r.c = pam_costs(dir, daemon, users, pam_first, pam_users, module_loads);
  daemon.stop();

  // Scale 3: many users.
  progress(fmt("seeding up to %zu users", large));
  if (!seed(daemon.state_dir(), daemon.key_file(), {}, users, medium, large))
    return std::unexpected("seeding");
  if (!daemon.start()) return std::unexpected("starting kpanel-totpd");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  r.idle_rss = daemon.rss_kib();
  warm_up(daemon, users, medium, large - medium, warm_up_writes);
  progress("(a) at the largest scale");
  r.a_large = round_trips(daemon, RightCodes(users, replay, medium, large - medium), samples);
  // (b) here: a right code works once per user and step, and a fast daemon
  // spends the right codes of 10,000 users (three steps each) within seconds.
  // (e) is the daemon's peak RSS during the 64-client run.
  for (const int clients : {1, 8, 64}) {
    progress(fmt("(b) %d clients", clients));
    r.b_runs.emplace_back(clients, throughput(daemon, users, replay, 0, large, clients, seconds));
  }
  r.after_rss = daemon.rss_kib();
  daemon.stop();

  // The same (a) and (b) on the fleet store, when there is a database.
  if (!options.postgresql_dsn.empty()) {
    r.pg = postgresql_runs(options.postgresql_dsn, options.daemon, dir, medium, samples, seconds,
                           warm_up_writes / 10);
    if (!r.pg) return std::unexpected("the PostgreSQL runs");
  }
  return r;
}

// What did not happen that the figures would claim: right codes refused
// (or answered with an error) in (a), (b), (f); PAM logins with a right code
// failed in (c); enrolled users not prompted by login_check. Empty when the
// figures measure the work they name.
std::vector<std::string> work_not_done(const Results& r) {
  std::vector<std::string> out;
  const auto latencies = [&](const std::string& what, const Latencies& l) {
    if (l.missed != 0 || l.unverified != 0 || l.accepted == 0) {
      out.push_back(
          fmt("%s: %zu unused right codes not accepted, %zu requests not verified (no "
              "such user, not enrolled, …), %zu of %zu accepted",
              what.c_str(), l.missed, l.unverified, l.accepted, l.micros.size()));
    }
  };
  const auto runs = [&](const std::string& what, const Throughput& t) {
    if (t.unverified != 0 || t.accepted == 0) {
      out.push_back(
          fmt("%s: %zu requests not verified (no such user, not enrolled, …), %zu of "
              "%zu accepted",
              what.c_str(), t.unverified, t.accepted, t.total));
    }
  };
  const auto logins = [&](const std::string& what, const PamRow& row) {
    if (!row.ran || row.logins == 0 || row.succeeded != row.logins) {
      out.push_back(fmt("%s: %zu of %zu %s succeeded%s", what.c_str(), row.succeeded, row.logins,
                        what.find("load") == std::string::npos ? "PAM logins with a right code"
                                                               : "dlopen+dlclose",
                        row.ran ? "" : " (the harness did not run)"));
    }
    // sshd's child has no libstdc++ before pam_start; a harness that had it
    // would hide what loading the module costs.
    if (row.preloaded != 0) {
      out.push_back(fmt("%s: libstdc++ was already mapped in %zu of %zu samples", what.c_str(),
                        row.preloaded, row.logins));
    }
  };
  latencies(fmt("(a) at %zu users", r.small), r.a_small);
  latencies(fmt("(a) at %zu users", r.medium), r.a_medium);
  latencies(fmt("(a) at %zu users", r.large), r.a_large);
  for (const auto& [clients, run] : r.b_runs) runs(fmt("(b) %d clients", clients), run);
  latencies("(f) the legitimate user", r.f.legit);
  if (r.checks.accepted != r.checks.micros.size() || r.checks.micros.empty()) {
    out.push_back(fmt("login_check: %zu of %zu enrolled users prompted", r.checks.accepted,
                      r.checks.micros.size()));
  }
  logins("(c) pam_permit.so", r.c.permit);
  logins("(c) pam_kpanel_totp.so", r.c.ours);
  if (r.c.ga_recommended.ran || r.c.ga_bare.ran) {
    logins("(c) pam_google_authenticator.so, recommended", r.c.ga_recommended);
    logins("(c) pam_google_authenticator.so, bare", r.c.ga_bare);
  }
  logins("(c) module load, pam_permit.so", r.c.load_permit);
  logins("(c) module load, pam_kpanel_totp.so", r.c.load_ours);
  if (r.c.ga_recommended.ran) logins("(c) module load, pam_google_authenticator.so", r.c.load_ga);
  if (r.pg) {
    latencies("PostgreSQL (a)", r.pg->round_trips);
    for (const auto& [clients, run] : r.pg->throughput) {
      runs(fmt("PostgreSQL (b) %d clients", clients), run);
    }
  }
  return out;
}

// The table's rows, in the order of issue #9's targets; `syslog` says where
// syslog lines went.
std::vector<Row> table_rows(const Results& r, const std::string& syslog) {
  std::vector<Row> rows;
  rows.push_back({fmt("(a) verify round trip, 1 client, %zu users: p50 / p99 / max", r.medium),
                  latency_text(r.a_medium), "p50 ≤ 80 µs, p99 ≤ 400 µs",
                  verdict(r.a_medium.at(0.5) <= 80 && r.a_medium.at(0.99) <= 400)});
  for (const auto& [clients, run] : r.b_runs) {
    const bool has_target = clients == 64;
    rows.push_back({fmt("(b) verifications/s, %d client%s, %zu users", clients,
                        clients == 1 ? "" : "s", r.large),
                    throughput_text(run), has_target ? "≥ 25000/s" : "-",
                    has_target ? verdict(run.per_second >= 25'000) : "-"});
  }
  if (r.pg) {
    rows.push_back({"PostgreSQL store (store = postgresql): the server", r.pg->server, "-", "-"});
    rows.push_back({fmt("(a) PostgreSQL store, verify round trip, 1 client, %zu users: p50 / p99 "
                        "/ max",
                        r.medium),
                    latency_text(r.pg->round_trips), "-", "-"});
    for (const auto& [clients, run] : r.pg->throughput) {
      rows.push_back({fmt("(b) PostgreSQL store, verifications/s, %d client%s, %zu users", clients,
                          clients == 1 ? "" : "s", r.medium),
                      throughput_text(run), "-", "-"});
    }
  }
  const auto pam_text = [](const PamRow& row, const char* done) {
    if (!row.ran) return std::string("not run");
    return fmt("%.0f µs mean, p50 %.0f, p99 %.0f (%zu/%zu %s)", row.mean_us, row.p50_us, row.p99_us,
               row.succeeded, row.logins, done);
  };
  const auto login_text = [&](const PamRow& row) { return pam_text(row, "logins succeeded"); };
  // Each login and each load in a process of its own, forked for it by a C
  // harness (bench/pam_c_harness.c): sshd's per-connection child.
  rows.push_back({"(c) pam_permit.so (baseline): pam_start+authenticate+end, C harness",
                  login_text(r.c.permit), "-", "-"});
  const double ours_cost = r.c.ours.mean_us - r.c.permit.mean_us;
  rows.push_back({"(c) pam_kpanel_totp.so", login_text(r.c.ours) + fmt("; cost %.0f µs", ours_cost),
                  "-", "-"});
  rows.push_back({"(c) of which: login_check round trip (read only), 1 client",
                  fmt("%.0f / %.0f / %.0f µs (%zu of %zu prompted)", r.checks.at(0.5),
                      r.checks.at(0.99), r.checks.max(), r.checks.accepted, r.checks.micros.size()),
                  "-", "-"});
  const auto load_text = [&](const PamRow& row) { return pam_text(row, "loaded"); };
  std::string loads =
      "ours " + load_text(r.c.load_ours) + "; pam_permit.so " + load_text(r.c.load_permit);
  if (r.c.load_ga.ran) loads += "; pam_google_authenticator.so " + load_text(r.c.load_ga);
  rows.push_back(
      {"(c) of which: module load (dlopen+dlclose of pam_kpanel_totp.so in a process "
       "without libstdc++)",
       loads, "-", "-"});
  if (r.c.ga_recommended.ran && r.c.ga_bare.ran) {
    const double rec_cost = r.c.ga_recommended.mean_us - r.c.permit.mean_us;
    const double bare_cost = r.c.ga_bare.mean_us - r.c.permit.mean_us;
    rows.push_back({"(c) pam_google_authenticator.so, recommended (RATE_LIMIT, DISALLOW_REUSE)",
                    login_text(r.c.ga_recommended) + fmt("; cost %.0f µs", rec_cost), "-", "-"});
    rows.push_back({"(c) pam_google_authenticator.so, bare (TOTP_AUTH)",
                    login_text(r.c.ga_bare) + fmt("; cost %.0f µs", bare_cost), "-", "-"});
    rows.push_back({"(c) our cost / GA recommended cost", fmt("%.2f×", ours_cost / rec_cost),
                    "≤ 0.25×", verdict(ours_cost <= 0.25 * rec_cost)});
    rows.push_back({"(c) our cost / GA bare cost", fmt("%.2f×", ours_cost / bare_cost), "≤ 3×",
                    verdict(ours_cost <= 3 * bare_cost)});
  } else {
    rows.push_back({"(c) pam_google_authenticator.so",
                    "not installed (apt-get install libpam-google-authenticator)", "-", "-"});
  }
  rows.push_back({fmt("(d) (a) at %zu users", r.small), latency_text(r.a_small), "-", "-"});
  rows.push_back({fmt("(d) (a) at %zu users", r.large), latency_text(r.a_large), "-", "-"});
  const double scale_ratio = r.a_large.at(0.5) / r.a_small.at(0.5);
  rows.push_back({fmt("(d) p50 at %zu users / p50 at %zu users", r.large, r.small),
                  fmt("%.2f×", scale_ratio), "≤ 1.2×", verdict(scale_ratio <= 1.2)});
  const Throughput& busiest = r.b_runs.back().second;
  rows.push_back({fmt("(e) daemon RSS at %zu users: idle / peak under (b) %d clients", r.large,
                      r.b_runs.back().first),
                  fmt("%.1f / %.1f MiB (after: %.1f MiB)", static_cast<double>(r.idle_rss) / 1024,
                      static_cast<double>(busiest.peak_rss_kib) / 1024,
                      static_cast<double>(r.after_rss) / 1024),
                  "≤ 16 MiB", verdict(std::max(r.idle_rss, busiest.peak_rss_kib) <= 16L * 1024)});
  rows.push_back(
      {fmt("(f) legitimate verify p99 under %.0f failed attempts/s", r.f.failed_per_second),
       latency_text(r.f.legit), "p99 ≤ 10 ms", verdict(r.f.legit.at(0.99) <= 10'000)});
  rows.push_back(
      {"syslog (the daemon's audit lines, the PAM modules' messages)", syslog, "-", "-"});
  rows.push_back({"seeding (SqliteStore::update, 8 threads)",
                  fmt("%zu users in %.1f s", r.medium - r.small, r.seed_seconds), "-", "-"});
  if (r.pg) {
    rows.push_back({"seeding (PostgresqlStore::update, 8 threads)",
                    fmt("%zu users in %.1f s", r.medium, r.pg->seed_seconds), "-", "-"});
  }
  return rows;
}

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
  // Before any thread starts (it sets environment variables).
  if (!provide_accounts(dir)) return 1;
  // Before anything logs: the daemon's audit lines and both PAM modules' go there.
  const SyslogSink syslog_sink;
  const auto results = measure(options, dir);
  if (!results) {
    (void)std::fprintf(stderr, "kpanel_bench: %s failed; files kept in %s\n", results.error(),
                       dir.c_str());
    return 1;
  }
  // No table of figures for work that did not happen (the daemon refusing
  // every user, say): a fast refusal would look like a fast verification.
  if (const auto missing = work_not_done(*results); !missing.empty()) {
    for (const auto& what : missing) (void)std::fprintf(stderr, "kpanel_bench: %s\n", what.c_str());
    (void)std::fprintf(stderr,
                       "kpanel_bench: the figures would not measure what they name; no table. "
                       "Files kept in %s (daemon.log)\n",
                       dir.c_str());
    return 1;
  }
  print_table(machine_line(dir), table_rows(*results, syslog_sink.description()));
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
