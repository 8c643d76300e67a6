#pragma once
// The suite's output: one Markdown table (measure, result, target, met) under
// a line naming the machine, and progress lines on stderr.

#include <filesystem>
#include <string>
#include <vector>

#include "bench/bench_load.hpp"

namespace kpanel::bench {

// printf into a string; the attribute keeps the format checks (<format> is
// not in g++ 12).
// NOLINTNEXTLINE(cert-dcl50-cpp)
__attribute__((format(printf, 1, 2))) std::string fmt(const char* format, ...);

struct Row {
  std::string measure;
  std::string result;
  std::string target;
  std::string met;  // "yes", "no" or "-"
};

inline std::string verdict(bool met) { return met ? "yes" : "no"; }

std::string latency_text(const Latencies& l);
std::string throughput_text(const Throughput& run);
std::string machine_line(const fs::path& dir);
void print_table(const std::string& machine, const std::vector<Row>& rows);
void progress(const std::string& what);

}  // namespace kpanel::bench
