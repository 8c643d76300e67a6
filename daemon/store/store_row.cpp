#include "daemon/store/store_row.hpp"

#include <algorithm>
#include <limits>

namespace kpanel::daemon::store_row {

std::string sealed_secret_aad(std::string_view slot, std::string_view user, std::int64_t at) {
  return "kpanel-totp/v2/" + std::string(slot) + "/" + std::to_string(at) + "/" + std::string(user);
}

std::string legacy_sealed_secret_aad(std::string_view slot, std::string_view user) {
  return "kpanel-totp/v1/" + std::string(slot) + "/" + std::string(user);
}

std::int64_t code_enrollment(const UserRecord& record) {
  return record.active ? common::to_unix(record.active->enrolled_at) : -1;
}

namespace {

constexpr std::string_view kMacMark = "$mac=";

// Every part length-prefixed, so no two (user, hash) pairs read alike.
std::string code_mac_message(std::string_view user, std::int64_t enrollment, std::size_t index,
                             std::string_view hash) {
  std::string message = "kpanel-totp/v2/recovery-code\n";
  message += std::to_string(user.size()) + ":" + std::string(user) + "\n";
  message += std::to_string(enrollment) + "\n" + std::to_string(index) + "\n";
  message += std::to_string(hash.size()) + ":" + std::string(hash);
  return message;
}

}  // namespace

std::string bind_code_hash(const SecretBox& box, std::string_view user, std::int64_t enrollment,
                           std::size_t index, std::string_view hash) {
  const std::vector<std::uint8_t> tag = box.mac(code_mac_message(user, enrollment, index, hash));
  if (tag.empty()) return {};
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string stored(hash);
  stored += kMacMark;
  for (const std::uint8_t byte : tag) {
    stored.push_back(kHex[byte >> 4U]);
    stored.push_back(kHex[byte & 0x0FU]);
  }
  return stored;
}

std::optional<std::string> unbind_code_hash(const SecretBox& box, std::string_view user,
                                            std::int64_t enrollment, std::size_t index,
                                            std::string_view stored) {
  const std::size_t mark = stored.rfind(kMacMark);
  if (mark == std::string_view::npos) return std::nullopt;
  const std::string_view hash = stored.substr(0, mark);
  const std::string_view hex = stored.substr(mark + kMacMark.size());
  if (hex.size() != 2 * SecretBox::kMacBytes) return std::nullopt;
  std::vector<std::uint8_t> tag;
  tag.reserve(SecretBox::kMacBytes);
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int high = nibble(hex[i]);
    const int low = nibble(hex[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    tag.push_back(static_cast<std::uint8_t>((high << 4) | low));
  }
  if (!box.verify_mac(code_mac_message(user, enrollment, index, hash), tag)) return std::nullopt;
  return std::string(hash);
}

std::optional<std::uint32_t> to_u32(std::optional<std::int64_t> value) {
  if (!value || *value < 0 || *value > std::numeric_limits<std::uint32_t>::max()) {
    return std::nullopt;
  }
  return static_cast<std::uint32_t>(*value);
}

std::optional<common::TotpParams> totp_params(const std::optional<std::string>& algorithm,
                                              std::optional<std::int64_t> digits,
                                              std::optional<std::int64_t> period) {
  const auto parsed = algorithm ? common::parse_algorithm(*algorithm) : std::nullopt;
  const auto digit_count = to_u32(digits);
  const auto seconds = to_u32(period);
  if (!parsed || !digit_count || !seconds || *digit_count < 6 || *digit_count > 8 ||
      *seconds == 0) {
    return std::nullopt;
  }
  return common::TotpParams{*parsed, *digit_count, *seconds};
}

std::optional<std::vector<StepRun>> used_steps(std::optional<std::int64_t> last_step,
                                               const std::optional<std::string>& stored) {
  auto runs = stored ? decode_step_runs(*stored) : std::vector<StepRun>{};
  // A daemon that writes used_steps always marks last_step in it. Otherwise
  // the row was last written by one that knew only last_step (before the
  // column existed, or an older host of a fleet sharing the database).
  if (runs && last_step && !step_used(*runs, *last_step)) {
    merge_step_runs(*runs, step_runs_up_to(*last_step));
  }
  return runs;
}

bool is_empty(const UserRecord& record) {
  return !record.active && !record.pending && record.recovery_codes.empty() &&
         record.failures == 0 && record.lockout_level == 0 && !record.locked_until &&
         !record.last_step && record.used_steps.empty();
}

bool same_hashes(const std::vector<RecoveryCodeRecord>& a,
                 const std::vector<RecoveryCodeRecord>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const auto& x, const auto& y) { return x.hash == y.hash; });
}

}  // namespace kpanel::daemon::store_row
