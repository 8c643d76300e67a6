#pragma once
// What an enrollment's codes are made with. Header only, so the wire protocol
// (which the PAM module links without OpenSSL) can carry it typed.

#include <cstdint>

namespace kpanel::common {

enum class TotpAlgorithm : std::uint8_t { sha1, sha256, sha512 };

struct TotpParams {
  TotpAlgorithm algorithm = TotpAlgorithm::sha1;
  unsigned digits = 6;   // 6..8
  unsigned period = 30;  // seconds, > 0
  friend bool operator==(const TotpParams&, const TotpParams&) = default;
};

}  // namespace kpanel::common
