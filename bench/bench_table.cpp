// The suite's output (bench_table.hpp).
#include "bench/bench_table.hpp"

#include <sys/statfs.h>

#include <array>
#include <cstdarg>
#include <cstdio>
#include <fstream>
#include <thread>

namespace kpanel::bench {

__attribute__((format(printf, 1, 2))) std::string fmt(const char* format, ...) {
  std::array<char, 512> text{};
  va_list args;
  va_start(args, format);
  (void)std::vsnprintf(text.data(), text.size(), format, args);
  va_end(args);
  return text.data();
}

std::string latency_text(const Latencies& l) {
  return fmt("%.0f / %.0f / %.0f µs (%zu of %zu accepted)", l.at(0.5), l.at(0.99), l.max(),
             l.accepted, l.micros.size());
}

std::string throughput_text(const Throughput& run) {
  return fmt(
      "%.0f/s (%zu requests, %zu accepted, %zu replayed, %zu locked, %zu errors; CPU per "
      "verification: daemon %.0f µs, clients %.0f µs)",
      run.per_second, run.total, run.accepted, run.replayed, run.locked, run.errors,
      run.daemon_cpu_us, run.client_cpu_us);
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

}  // namespace kpanel::bench
