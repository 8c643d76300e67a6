#pragma once
// otpauth:// URIs (Google Authenticator Key Uri Format), as kpanel-totp(1)
// documents them:
// otpauth://totp/ISSUER:USER%40HOST?secret=B32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30

#include <string>
#include <string_view>

#include "common/secure_buffer.hpp"
#include "common/totp.hpp"

namespace kpanel::common {

// RFC 3986 percent-encoding of everything but unreserved characters
// (ALPHA / DIGIT / "-" / "." / "_" / "~"); UTF-8 bytes are encoded one by one.
[[nodiscard]] std::string percent_encode(std::string_view text);

// The URI carries the secret, hence SecureString. An empty host gives the label
// "ISSUER:USER" (no "%40").
[[nodiscard]] SecureString build_otpauth_uri(std::string_view issuer, std::string_view user,
                                             std::string_view host, std::string_view secret_base32,
                                             const TotpParams& params);

// The short host name for labels: gethostname() up to the first dot; empty if it fails.
[[nodiscard]] std::string short_host_name();

}  // namespace kpanel::common
