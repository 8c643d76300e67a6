#pragma once
// What the kernel says about this process's own memory, for tests of where
// secrets live: /proc/self/smaps.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

namespace kpanel::test {

// The VmFlags line of the mapping that holds `address`; empty if none does.
inline std::string vm_flags_of(const void* address) {
  const auto where = reinterpret_cast<std::uintptr_t>(address);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    unsigned long start = 0;
    unsigned long end = 0;
    // A mapping's header: "start-end perms ...", both in hex.
    if (std::sscanf(line.c_str(), "%lx-%lx ", &start, &end) == 2 &&
        line.find('-') < line.find(' ')) {
      inside = start <= where && where < end;
      continue;
    }
    if (inside && line.starts_with("VmFlags:")) return line;
  }
  return "";
}

// Whether that line has `flag` ("dd": excluded from core dumps, "wf": wiped on fork).
inline bool has_vm_flag(const std::string& flags, const std::string& flag) {
  return (flags + " ").find(" " + flag + " ") != std::string::npos;
}

}  // namespace kpanel::test
