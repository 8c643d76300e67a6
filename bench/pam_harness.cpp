// kpanel_bench_pam: the in-process PAM cost of one auth stack. Runs
// pam_start / pam_authenticate / pam_end through real Linux-PAM (under
// pam_wrapper, so the service file comes from PAM_WRAPPER_SERVICE_DIR) once
// per user with that user's current TOTP code, and prints one line:
//   <service> <logins> <succeeded> <mean_us> <p50_us> <p99_us>
// Usage: kpanel_bench_pam SERVICE USERS_FILE
// USERS_FILE: one "user hex_secret" per line (SHA1, 6 digits, 30 s).

#include <security/pam_appl.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/secure_buffer.hpp"
#include "common/totp.hpp"

namespace {

using namespace kpanel;

struct BenchUser {
  std::string name;
  common::SecureBytes secret;
};

std::optional<common::SecureBytes> from_hex(const std::string& hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  common::SecureBytes bytes(hex.size() / 2);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const char* first = hex.data() + 2 * i;
    std::uint8_t value = 0;
    const auto [end, error] = std::from_chars(first, first + 2, value, 16);
    if (error != std::errc{} || end != first + 2) return std::nullopt;
    bytes.data()[i] = value;
  }
  return bytes;
}

std::vector<BenchUser> read_users(const char* path) {
  std::vector<BenchUser> users;
  std::ifstream in(path);
  std::string name;
  std::string hex;
  while (in >> name >> hex) {
    if (auto secret = from_hex(hex)) users.push_back({name, std::move(*secret)});
  }
  return users;
}

// Answers every hidden prompt with the code; messages need no answer.
int answer_with_code(int count, const pam_message** messages, pam_response** responses,
                     void* code) {
  auto* replies = static_cast<pam_response*>(
      std::calloc(static_cast<std::size_t>(count), sizeof(pam_response)));
  if (replies == nullptr) return PAM_BUF_ERR;
  for (int i = 0; i < count; ++i) {
    const int style = messages[i]->msg_style;
    if (style == PAM_PROMPT_ECHO_OFF || style == PAM_PROMPT_ECHO_ON) {
      replies[i].resp = ::strdup(static_cast<const char*>(code));
    }
  }
  *responses = replies;
  return PAM_SUCCESS;
}

double percentile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto index = static_cast<std::size_t>(fraction * static_cast<double>(values.size() - 1));
  return values[index];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    (void)std::fprintf(stderr, "usage: kpanel_bench_pam SERVICE USERS_FILE\n");
    return 2;
  }
  const char* service = argv[1];
  const auto users = read_users(argv[2]);
  const common::TotpParams params;
  std::vector<double> micros;
  micros.reserve(users.size());
  std::size_t succeeded = 0;
  for (const BenchUser& user : users) {
    // Computed outside the timed part: the user types it, PAM does not.
    const auto step = common::totp_step(common::SystemClock().now(), params.period);
    const auto code = common::totp_code(user.secret.view(), step, params);
    if (!code) return 1;
    std::string typed(code->view());
    const pam_conv conversation{answer_with_code, typed.data()};
    const auto start = std::chrono::steady_clock::now();
    pam_handle_t* pamh = nullptr;
    int rc = pam_start(service, user.name.c_str(), &conversation, &pamh);
    if (rc == PAM_SUCCESS) rc = pam_authenticate(pamh, PAM_SILENT);
    pam_end(pamh, rc);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    micros.push_back(std::chrono::duration<double, std::micro>(elapsed).count());
    if (rc == PAM_SUCCESS) ++succeeded;
  }
  double total = 0;
  for (const double m : micros) total += m;
  const double mean = micros.empty() ? 0 : total / static_cast<double>(micros.size());
  (void)std::printf("%s %zu %zu %.1f %.1f %.1f\n", service, micros.size(), succeeded, mean,
                    percentile(micros, 0.5), percentile(micros, 0.99));
  return 0;
}
