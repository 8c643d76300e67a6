// base32: decoding arbitrary text never crashes; whatever decodes re-encodes to
// something that decodes to the same bytes; any bytes round-trip through
// encode/decode, also in the grouped form shown to users.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/base32.hpp"
#include "fuzz/fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace common = kpanel::common;
  const auto decoded = common::base32_decode(kpanel::fuzz::as_text(data, size));
  if (decoded) {
    const common::SecureString encoded = common::base32_encode(decoded->view());
    const auto again = common::base32_decode(encoded.view());
    KPANEL_FUZZ_CHECK(again.has_value());
    KPANEL_FUZZ_CHECK(*again == *decoded);
  }

  const std::span<const std::uint8_t> bytes(data, size);
  const common::SecureString encoded = common::base32_encode(bytes);
  for (const char c : encoded.view()) {
    KPANEL_FUZZ_CHECK((c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7'));
  }
  const auto back = common::base32_decode(encoded.view());
  KPANEL_FUZZ_CHECK(back.has_value());
  KPANEL_FUZZ_CHECK(back->view().size() == size);
  KPANEL_FUZZ_CHECK(size == 0 || std::equal(bytes.begin(), bytes.end(), back->view().begin()));
  const auto grouped = common::base32_decode(common::group_in_fours(encoded.view()).view());
  KPANEL_FUZZ_CHECK(grouped.has_value());
  KPANEL_FUZZ_CHECK(*grouped == *back);
  return 0;
}
