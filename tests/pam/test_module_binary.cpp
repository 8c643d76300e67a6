// The built pam_kpanel_totp.so as sshd sees it: it loads with RTLD_NOW (every
// symbol resolves), exports only the pam_sm_* entry points and pulls none of
// the heavy libraries the daemon and the tool use, nor the shared C++
// runtime, into the login process.
#define BOOST_TEST_MODULE pam_module_binary
#include <dlfcn.h>
#include <security/pam_modules.h>

#include <algorithm>
#include <array>
#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr const char* kModule = KPANEL_PAM_MODULE_PATH;

// Runs a command, returns its stdout lines; fails the test on a non-zero exit.
std::vector<std::string> output_of(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  BOOST_REQUIRE_MESSAGE(pipe != nullptr, "cannot run " << command);
  std::vector<std::string> lines;
  std::array<char, 4096> buffer{};
  std::string line;
  while (std::fgets(buffer.data(), static_cast<int>(buffer.size()), pipe.get()) != nullptr) {
    line += buffer.data();
    if (!line.empty() && line.back() == '\n') {
      line.pop_back();
      lines.push_back(line);
      line.clear();
    }
  }
  if (!line.empty()) lines.push_back(line);
  BOOST_REQUIRE_EQUAL(::pclose(pipe.release()), 0);
  return lines;
}

std::string last_word(const std::string& line) {
  const auto space = line.find_last_of(' ');
  return space == std::string::npos ? line : line.substr(space + 1);
}

}  // namespace

BOOST_AUTO_TEST_CASE(loads_with_rtld_now_and_resolves_the_entry_points) {
  void* handle = ::dlopen(kModule, RTLD_NOW | RTLD_LOCAL);
  BOOST_REQUIRE_MESSAGE(handle != nullptr, "dlopen: " << ::dlerror());
  using Entry = int (*)(pam_handle_t*, int, int, const char**);
  auto* authenticate = reinterpret_cast<Entry>(::dlsym(handle, "pam_sm_authenticate"));
  auto* setcred = reinterpret_cast<Entry>(::dlsym(handle, "pam_sm_setcred"));
  BOOST_TEST(authenticate != nullptr);
  BOOST_REQUIRE(setcred != nullptr);
  BOOST_TEST(setcred(nullptr, 0, 0, nullptr) == PAM_SUCCESS);
  BOOST_TEST(::dlsym(handle, "pam_sm_open_session") == nullptr);  // auth only
  BOOST_TEST(::dlclose(handle) == 0);
}

BOOST_AUTO_TEST_CASE(exports_only_the_pam_entry_points) {
  std::set<std::string> exported;
  for (const auto& line : output_of(std::string(KPANEL_NM) + " -D --defined-only " + kModule)) {
    // "ADDRESS TYPE NAME"; type A is a version node (none with an anonymous script).
    std::istringstream fields(line);
    std::string address;
    std::string type;
    std::string name;
    fields >> address >> type >> name;
    if (type == "A") continue;
    exported.insert(name);
  }
  BOOST_TEST(exported == (std::set<std::string>{"pam_sm_authenticate", "pam_sm_setcred"}));
}

BOOST_AUTO_TEST_CASE(needs_only_libpam_and_the_c_runtime) {
  std::vector<std::string> needed;
  for (const auto& line : output_of(std::string(KPANEL_READELF) + " -d " + kModule)) {
    if (line.find("(NEEDED)") != std::string::npos) {
      std::string library = last_word(line);  // "[libpam.so.0]"
      library = library.substr(1, library.size() - 2);
      needed.push_back(library);
    }
  }
  BOOST_TEST_MESSAGE("NEEDED: " << needed.size() << " libraries");
  BOOST_TEST((std::ranges::find(needed, "libpam.so.0") != needed.end()));
  for (const auto& library : needed) {
    BOOST_TEST_CONTEXT("NEEDED " << library) {
      for (const char* forbidden : {"libcrypto", "libssl", "libboost", "libsqlite3", "libqrencode",
                                    "libpng", "libsystemd", "libpq"}) {
        BOOST_TEST(library.find(forbidden) == std::string::npos);
      }
      // Everything else is the C runtime, and in sanitizer builds the shared
      // C++ runtime their sanitizers expect. Elsewhere the C++ runtime is
      // linked in: sshd is C, and loading a shared libstdc++ on every login
      // (~550 µs) was most of what the module cost it.
      const bool cxx_runtime =
          library.starts_with("libstdc++.so.") || library.starts_with("libgcc_s.so.");
      const bool allowed =
          library == "libpam.so.0" || library.starts_with("libc.so.") ||
          library.starts_with("libm.so.") || library.starts_with("ld-linux") ||
          (KPANEL_SANITIZE_BUILD && (cxx_runtime || library.starts_with("libasan.so.") ||
                                     library.starts_with("libubsan.so.")));
      BOOST_TEST(allowed);
    }
  }
}
