#include "daemon/store/store_row.hpp"

#include <algorithm>
#include <limits>

namespace kpanel::daemon::store_row {

std::string sealed_secret_aad(std::string_view slot, std::string_view user) {
  return "kpanel-totp/v1/" + std::string(slot) + "/" + std::string(user);
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
