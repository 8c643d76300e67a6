// build_otpauth_uri with fuzzed issuer, user, host and secret (input split at
// '\n'; the first byte picks algorithm/digits/period). The result must be a
// well-formed URI: the fixed prefix, only unreserved characters plus the
// URI's own delimiters, every '%' followed by two hex digits, and the label
// percent-decoding back to ISSUER:USER[@HOST].

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/otpauth_uri.hpp"
#include "common/totp.hpp"
#include "fuzz/fuzz_util.hpp"

namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes the label: '%XX' only; returns false on a malformed escape.
bool percent_decode(std::string_view in, std::string& out) {
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = hex_value(in[i + 1]);
    const int lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>((hi << 4) | lo));
    i += 2;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace common = kpanel::common;
  if (size == 0) return 0;
  const std::uint8_t selector = data[0];
  const auto fields = kpanel::fuzz::split_fields(kpanel::fuzz::as_text(data + 1, size - 1), 4);
  const std::string_view issuer = fields[0];
  const std::string_view user = fields[1];
  const std::string_view host = fields[2];
  const std::string_view secret = fields[3];

  common::TotpParams params;
  switch (selector % 3U) {
    case 0:
      params.algorithm = common::TotpAlgorithm::sha1;
      break;
    case 1:
      params.algorithm = common::TotpAlgorithm::sha256;
      break;
    default:
      params.algorithm = common::TotpAlgorithm::sha512;
      break;
  }
  params.digits = 6U + (selector >> 2U) % 3U;
  params.period = 15U + (selector >> 4U) * 19U;

  const common::SecureString uri = common::build_otpauth_uri(issuer, user, host, secret, params);
  const std::string_view text = uri.view();
  constexpr std::string_view kPrefix = "otpauth://totp/";
  KPANEL_FUZZ_CHECK(text.starts_with(kPrefix));
  for (const char c : text) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~' || c == '%' || c == ':' ||
                    c == '/' || c == '?' || c == '&' || c == '=';
    KPANEL_FUZZ_CHECK(ok);
  }
  // Exactly one '?', and the label between the prefix and it decodes back.
  const std::size_t query = text.find('?');
  KPANEL_FUZZ_CHECK(query != std::string_view::npos);
  KPANEL_FUZZ_CHECK(text.find('?', query + 1) == std::string_view::npos);
  const std::string_view label = text.substr(kPrefix.size(), query - kPrefix.size());
  // The only literal ':' in the label separates issuer and account.
  const std::size_t colon = label.find(':');
  KPANEL_FUZZ_CHECK(colon != std::string_view::npos);
  KPANEL_FUZZ_CHECK(label.find(':', colon + 1) == std::string_view::npos);
  std::string decoded_issuer;
  std::string decoded_account;
  KPANEL_FUZZ_CHECK(percent_decode(label.substr(0, colon), decoded_issuer));
  KPANEL_FUZZ_CHECK(percent_decode(label.substr(colon + 1), decoded_account));
  KPANEL_FUZZ_CHECK(decoded_issuer == issuer);
  std::string account{user};
  if (!host.empty()) {
    account += '@';
    account += host;
  }
  KPANEL_FUZZ_CHECK(decoded_account == account);
  // The query carries the secret, percent-encoded, as its first parameter.
  std::string query_secret;
  const std::string_view rest = text.substr(query + 1);
  KPANEL_FUZZ_CHECK(rest.starts_with("secret="));
  KPANEL_FUZZ_CHECK(percent_decode(rest.substr(7, rest.find('&') - 7), query_secret));
  KPANEL_FUZZ_CHECK(query_secret == secret);
  (void)common::percent_encode(issuer);
  return 0;
}
