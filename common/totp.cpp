#include "common/totp.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <array>
#include <limits>
#include <memory>

namespace kpanel::common {
namespace {

struct MacDeleter {
  void operator()(EVP_MAC* mac) const noexcept { EVP_MAC_free(mac); }
};

constexpr unsigned kMinDigits = 6;
constexpr unsigned kMaxDigits = 8;
constexpr std::array<std::uint32_t, kMaxDigits + 1> kPowersOfTen{
    1, 10, 100, 1'000, 10'000, 100'000, 1'000'000, 10'000'000, 100'000'000};

// OpenSSL's digest name; the const_cast below is what OSSL_PARAM's C API needs.
const char* digest_name(TotpAlgorithm a) noexcept {
  switch (a) {
    case TotpAlgorithm::sha256:
      return "SHA256";
    case TotpAlgorithm::sha512:
      return "SHA512";
    case TotpAlgorithm::sha1:
      break;
  }
  return "SHA1";
}

// The MAC output, wiped on every path out.
struct MacOutput {
  std::array<std::uint8_t, EVP_MAX_MD_SIZE> bytes{};
  std::size_t size = 0;
  MacOutput() = default;
  MacOutput(const MacOutput&) = delete;
  MacOutput& operator=(const MacOutput&) = delete;
  MacOutput(MacOutput&&) = delete;
  MacOutput& operator=(MacOutput&&) = delete;
  ~MacOutput() { secure_wipe(bytes.data(), bytes.size()); }
};

// The candidate codes of find_matching_step, wiped however the function ends.
struct CodeSlot {
  std::array<char, kMaxDigits> digits{};
  CodeSlot() = default;
  CodeSlot(const CodeSlot&) = delete;
  CodeSlot& operator=(const CodeSlot&) = delete;
  CodeSlot(CodeSlot&&) = delete;
  CodeSlot& operator=(CodeSlot&&) = delete;
  ~CodeSlot() { secure_wipe(digits.data(), digits.size()); }
};

}  // namespace

std::string_view to_string(TotpAlgorithm a) noexcept { return digest_name(a); }

std::optional<TotpAlgorithm> parse_algorithm(std::string_view name) noexcept {
  const auto equals_ignoring_case = [name](std::string_view upper) {
    return std::equal(name.begin(), name.end(), upper.begin(), upper.end(), [](char c, char u) {
      return ((c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c) == u;
    });
  };
  if (equals_ignoring_case("SHA1")) {
    return TotpAlgorithm::sha1;
  }
  if (equals_ignoring_case("SHA256")) {
    return TotpAlgorithm::sha256;
  }
  if (equals_ignoring_case("SHA512")) {
    return TotpAlgorithm::sha512;
  }
  return std::nullopt;
}

void CodeGenerator::ContextDeleter::operator()(evp_mac_ctx_st* ctx) const noexcept {
  EVP_MAC_CTX_free(ctx);
}

std::expected<CodeGenerator, TotpError> CodeGenerator::create(std::span<const std::uint8_t> key,
                                                              TotpAlgorithm algorithm,
                                                              unsigned digits) {
  if (digits < kMinDigits || digits > kMaxDigits) {
    return std::unexpected(TotpError::bad_digits);
  }
  if (key.empty()) {
    return std::unexpected(TotpError::empty_key);
  }
  const std::unique_ptr<EVP_MAC, MacDeleter> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  if (!mac) {
    return std::unexpected(TotpError::crypto_failure);
  }
  std::unique_ptr<evp_mac_ctx_st, ContextDeleter> ctx(EVP_MAC_CTX_new(mac.get()));
  std::array<OSSL_PARAM, 2> params{
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                       const_cast<char*>(digest_name(algorithm)), 0),
      OSSL_PARAM_construct_end()};
  if (!ctx || EVP_MAC_init(ctx.get(), key.data(), key.size(), params.data()) != 1) {
    return std::unexpected(TotpError::crypto_failure);
  }
  return CodeGenerator(std::move(ctx), digits, 0);
}

std::expected<CodeGenerator, TotpError> CodeGenerator::create(std::span<const std::uint8_t> key,
                                                              const TotpParams& params) {
  if (params.period == 0) {
    return std::unexpected(TotpError::bad_period);
  }
  auto generator = create(key, params.algorithm, params.digits);
  if (generator) {
    generator->period_ = params.period;
  }
  return generator;
}

std::expected<SecureString, TotpError> CodeGenerator::hotp(std::uint64_t counter) const {
  std::array<std::uint8_t, 8> message{};  // counter, big endian (RFC 4226 §5.2)
  for (std::size_t i = 0; i < message.size(); ++i) {
    message[message.size() - 1 - i] = static_cast<std::uint8_t>(counter >> (8 * i));
  }
  MacOutput mac;
  // A null key restarts the MAC under the key create() gave it.
  if (EVP_MAC_init(ctx_.get(), nullptr, 0, nullptr) != 1 ||
      EVP_MAC_update(ctx_.get(), message.data(), message.size()) != 1 ||
      EVP_MAC_final(ctx_.get(), mac.bytes.data(), &mac.size, mac.bytes.size()) != 1 ||
      mac.size < 20) {
    return std::unexpected(TotpError::crypto_failure);
  }

  // Dynamic truncation (RFC 4226 §5.3): the low nibble of the last byte picks
  // four bytes; the top bit is dropped so the value is a positive 31-bit int.
  const std::size_t offset = mac.bytes[mac.size - 1] & 0x0FU;
  std::uint32_t value = (static_cast<std::uint32_t>(mac.bytes[offset] & 0x7FU) << 24U) |
                        (static_cast<std::uint32_t>(mac.bytes[offset + 1]) << 16U) |
                        (static_cast<std::uint32_t>(mac.bytes[offset + 2]) << 8U) |
                        static_cast<std::uint32_t>(mac.bytes[offset + 3]);
  value %= kPowersOfTen[digits_];

  CodeSlot slot;
  for (unsigned i = digits_; i > 0; --i) {
    slot.digits[i - 1] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  return SecureString(std::string_view(slot.digits.data(), digits_));
}

std::expected<SecureString, TotpError> CodeGenerator::at_step(std::int64_t step) const {
  if (period_ == 0) {
    return std::unexpected(TotpError::bad_period);
  }
  // RFC 6238 counts steps from T0 = 0 as an unsigned 64-bit value; a negative
  // step (a clock before 1970) is encoded in two's complement, never occurs in use.
  return hotp(static_cast<std::uint64_t>(step));
}

std::expected<SecureString, TotpError> hotp(std::span<const std::uint8_t> key,
                                            std::uint64_t counter, TotpAlgorithm algorithm,
                                            unsigned digits) {
  const auto generator = CodeGenerator::create(key, algorithm, digits);
  if (!generator) {
    return std::unexpected(generator.error());
  }
  return generator->hotp(counter);
}

std::int64_t totp_step(TimePoint t, unsigned period) noexcept {
  if (period == 0) {
    return 0;  // not a valid TotpParams; avoid dividing by zero
  }
  const std::int64_t seconds = to_unix(t);
  const auto p = static_cast<std::int64_t>(period);
  // Floor division, so times before the epoch fall in negative steps.
  std::int64_t step = seconds / p;
  if (seconds % p != 0 && seconds < 0) {
    --step;
  }
  return step;
}

std::expected<SecureString, TotpError> totp_code(std::span<const std::uint8_t> key,
                                                 std::int64_t step, const TotpParams& params) {
  const auto generator = CodeGenerator::create(key, params);
  if (!generator) {
    return std::unexpected(generator.error());
  }
  return generator->at_step(step);
}

std::expected<std::optional<std::int64_t>, TotpError> CodeGenerator::find_step(
    std::string_view code, std::int64_t center, unsigned window) const {
  if (period_ == 0) {
    return std::unexpected(TotpError::bad_period);
  }
  // The code's length is public (it is fixed by the parameters), so rejecting
  // a wrong length or a non-digit early reveals nothing about the secret or
  // the step.
  if (!looks_like_totp_code(code, digits_)) {
    return std::nullopt;
  }
  // Every candidate is computed and compared, with no exit on a match. Should
  // two steps share a code (probability ~window/10^digits), the latest wins:
  // an earlier one may already be spent under the replay rule.
  bool found = false;
  std::int64_t matched = 0;
  const auto span = static_cast<std::int64_t>(window);
  for (std::int64_t offset = -span; offset <= span; ++offset) {
    if ((offset < 0 && center < std::numeric_limits<std::int64_t>::min() - offset) ||
        (offset > 0 && center > std::numeric_limits<std::int64_t>::max() - offset)) {
      continue;  // the step would not be representable
    }
    const std::int64_t step = center + offset;
    const auto candidate = at_step(step);
    if (!candidate) {
      return std::unexpected(candidate.error());  // same for every step: no timing signal
    }
    const bool equal = constant_time_equal(candidate->view(), code);
    // Branch-free select, so which step matched does not show in the timing.
    const auto mask = static_cast<std::uint64_t>(0) - static_cast<std::uint64_t>(equal);
    matched = static_cast<std::int64_t>((static_cast<std::uint64_t>(step) & mask) |
                                        (static_cast<std::uint64_t>(matched) & ~mask));
    found = found || equal;
  }
  if (!found) {
    return std::nullopt;
  }
  return matched;
}

std::optional<std::int64_t> find_matching_step(std::span<const std::uint8_t> key,
                                               std::string_view code, std::int64_t center,
                                               unsigned window, const TotpParams& params) {
  const auto generator = CodeGenerator::create(key, params);
  if (!generator) {
    return std::nullopt;
  }
  return generator->find_step(code, center, window).value_or(std::nullopt);
}

bool looks_like_totp_code(std::string_view code, unsigned digits) noexcept {
  if (code.size() != digits) {
    return false;
  }
  bool all_digits = true;
  for (const char c : code) {
    all_digits = all_digits && c >= '0' && c <= '9';
  }
  return all_digits;
}

}  // namespace kpanel::common
