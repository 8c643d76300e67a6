// Recovery-code normalization of whatever a user types: never crashes, is
// idempotent, and its output is 10 symbols of the code alphabet.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/recovery_code.hpp"
#include "fuzz/fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace common = kpanel::common;
  const std::string_view typed = kpanel::fuzz::as_text(data, size);
  (void)common::looks_like_recovery_code(typed);
  const auto normalized = common::normalize_recovery_code(typed);
  if (!normalized) return 0;
  constexpr std::string_view kAlphabet = "023456789ABCDEFGHJKMNPQRSTUVWXYZ";
  KPANEL_FUZZ_CHECK(normalized->size() == common::kRecoveryCodeSymbols);
  for (const char c : normalized->view()) {
    KPANEL_FUZZ_CHECK(kAlphabet.find(c) != std::string_view::npos);
  }
  KPANEL_FUZZ_CHECK(common::looks_like_recovery_code(typed));
  const auto again = common::normalize_recovery_code(normalized->view());
  KPANEL_FUZZ_CHECK(again.has_value());
  KPANEL_FUZZ_CHECK(*again == *normalized);
  return 0;
}
