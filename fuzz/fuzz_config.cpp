// kpanel-totpd.conf text. DaemonConfig has no operator==, so the property is
// on describe_config(): what it prints for a parsed config must parse again
// and describe identically (a fixed point).

#include <cstddef>
#include <cstdint>
#include <string>

#include "daemon/config/config.hpp"
#include "fuzz/fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto config = kpanel::daemon::parse_config(kpanel::fuzz::as_text(data, size), "fuzz.conf");
  if (!config) {
    KPANEL_FUZZ_CHECK(!config.error().empty());
    return 0;
  }
  const std::string described = kpanel::daemon::describe_config(*config);
  const auto again = kpanel::daemon::parse_config(described, "described.conf");
  KPANEL_FUZZ_CHECK(again.has_value());
  KPANEL_FUZZ_CHECK(kpanel::daemon::describe_config(*again) == described);
  return 0;
}
