#include "common/random.hpp"

#include <openssl/rand.h>

#include <limits>

namespace kpanel::common {

std::expected<SecureBytes, RandomError> random_bytes(std::size_t count) {
  SecureBytes out(count);
  if (count == 0) {
    return out;
  }
  // RAND_priv_bytes: OpenSSL's separate DRBG instance for long-term secrets.
  if (count > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      RAND_priv_bytes(out.data(), static_cast<int>(count)) != 1) {
    return std::unexpected(RandomError::rng_failure);
  }
  return out;
}

std::expected<SecureBytes, RandomError> generate_totp_secret() {
  return random_bytes(kTotpSecretBytes);
}

}  // namespace kpanel::common
