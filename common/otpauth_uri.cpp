#include "common/otpauth_uri.hpp"

#include <unistd.h>

#include <array>
#include <climits>  // HOST_NAME_MAX

namespace kpanel::common {
namespace {

constexpr bool is_unreserved(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// Appends `text` percent-encoded to `out` (std::string or SecureString).
template <typename Out>
void append_percent_encoded(Out& out, std::string_view text) {
  constexpr std::string_view kHex = "0123456789ABCDEF";
  for (const char c : text) {
    if (is_unreserved(c)) {
      out.push_back(c);
    } else {
      const auto byte = static_cast<unsigned char>(c);  // UTF-8 byte by byte
      out.push_back('%');
      out.push_back(kHex[byte >> 4U]);
      out.push_back(kHex[byte & 0x0FU]);
    }
  }
}

void append_number(SecureString& out, unsigned value) {
  std::array<char, 16> digits{};
  std::size_t n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0 && n < digits.size());
  while (n > 0) {
    out.push_back(digits[--n]);
  }
}

}  // namespace

std::string percent_encode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  append_percent_encoded(out, text);
  return out;
}

SecureString build_otpauth_uri(std::string_view issuer, std::string_view user,
                               std::string_view host, std::string_view secret_base32,
                               const TotpParams& params) {
  // Label "ISSUER:USER@HOST": the ':' separates issuer and account, so it stays
  // literal while every ':' inside the issuer or user is encoded.
  SecureString uri;
  uri.append("otpauth://totp/");
  append_percent_encoded(uri, issuer);
  uri.push_back(':');
  append_percent_encoded(uri, user);
  if (!host.empty()) {
    uri.append("%40");
    append_percent_encoded(uri, host);
  }
  uri.append("?secret=");
  append_percent_encoded(uri, secret_base32);
  uri.append("&issuer=");
  append_percent_encoded(uri, issuer);
  uri.append("&algorithm=");
  uri.append(to_string(params.algorithm));
  uri.append("&digits=");
  append_number(uri, params.digits);
  uri.append("&period=");
  append_number(uri, params.period);
  return uri;
}

std::string short_host_name() {
  std::array<char, HOST_NAME_MAX + 1> name{};
  if (gethostname(name.data(), name.size() - 1) != 0) {
    return {};
  }
  std::string_view host(name.data());  // NUL-terminated: the last byte is never written
  host = host.substr(0, host.find('.'));
  return std::string(host);
}

}  // namespace kpanel::common
