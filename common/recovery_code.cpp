#include "common/recovery_code.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "common/protocol.hpp"
#include "common/random.hpp"

namespace kpanel::common {
namespace {

// 32 symbols, so 5 random bits pick one with no modulo bias: the digits 2-9 and
// every letter but I, L and O (31 symbols), plus the digit 0. Its look-alike O
// is folded into 0 when a code is typed, so the pair cannot be misread; 1/I/L
// are left out altogether. 10 symbols = 50 bits.
constexpr std::string_view kAlphabet = "023456789ABCDEFGHJKMNPQRSTUVWXYZ";
static_assert(kAlphabet.size() == 32);
// Display groups: "7KQ2-9MXD-4T".
constexpr std::array<std::size_t, 2> kDashAfter{4, 8};

// Stored hash: scrypt (RFC 7914) rather than PBKDF2. A recovery code has only
// 50 bits, so a stolen database is attacked offline by guessing; scrypt's
// memory hardness makes each guess cost GPUs/ASICs far more than PBKDF2 at the
// same CPU time here. N=2^12, r=8, p=1 uses 4 MiB and measured ~11 ms per hash
// on the 2-core build host (OpenSSL 3.0): the daemon may check up to ~10
// stored hashes per recovery attempt, ~0.1 s worst case, which also throttles
// online guessing.
constexpr unsigned kScryptLogN = 12;
constexpr unsigned kScryptR = 8;
constexpr unsigned kScryptP = 1;
constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kHashBytes = 32;
constexpr std::string_view kScheme = "scrypt";
// What verify accepts from a stored value, so a corrupt or hostile row cannot
// make one check take gigabytes or minutes.
constexpr unsigned kMinLogN = 10;
constexpr unsigned kMaxLogN = 16;
constexpr unsigned kMaxR = 16;
constexpr unsigned kMaxP = 4;

constexpr char fold_symbol(char c) noexcept {
  if (c >= 'a' && c <= 'z') {
    c = static_cast<char>(c - 'a' + 'A');
  }
  return c == 'O' ? '0' : c;
}

constexpr bool in_alphabet(char c) noexcept { return kAlphabet.find(c) != std::string_view::npos; }

constexpr bool is_separator(char c) noexcept { return c == '-' || c == ' '; }

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// An imported google-authenticator scratch code: 8 digits, the first not 0.
bool is_scratch_code(std::string_view code) noexcept {
  return code.size() == kScratchCodeDigits && code.front() != '0' &&
         std::ranges::all_of(code, is_digit);
}

// A normalized recovery code, or an imported scratch code (which is stored
// and checked exactly like one).
bool is_normalized(std::string_view code) noexcept {
  if (is_scratch_code(code)) {
    return true;
  }
  if (code.size() != kRecoveryCodeSymbols) {
    return false;
  }
  bool ok = true;
  for (const char c : code) {
    ok = ok && in_alphabet(c);
  }
  return ok;
}

// ---- base64 (RFC 4648 §4, no padding, as in PHC strings) ----
constexpr std::string_view kB64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(std::span<const std::uint8_t> data) {
  std::string out;
  std::uint32_t buffer = 0;
  unsigned bits = 0;
  for (const std::uint8_t byte : data) {
    buffer = ((buffer << 8U) | byte) & 0xFFFFU;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kB64[(buffer >> bits) & 0x3FU]);
    }
  }
  if (bits > 0) {
    out.push_back(kB64[(buffer << (6 - bits)) & 0x3FU]);
  }
  return out;
}

// Decodes exactly out.size() bytes from canonical unpadded base64, else false.
bool base64_decode_exact(std::string_view text, std::span<std::uint8_t> out) noexcept {
  if (text.size() != (out.size() * 8 + 5) / 6) {
    return false;
  }
  std::uint32_t buffer = 0;
  unsigned bits = 0;
  std::size_t written = 0;
  for (const char c : text) {
    const std::size_t v = kB64.find(c);
    if (v == std::string_view::npos) {
      return false;
    }
    buffer = ((buffer << 6U) | static_cast<std::uint32_t>(v)) & 0xFFFFU;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[written++] = static_cast<std::uint8_t>(buffer >> bits);
    }
  }
  return written == out.size() && (buffer & ((1U << bits) - 1U)) == 0;
}

// Key derivation into `out`; false on an OpenSSL failure.
bool scrypt(std::string_view code, std::span<const std::uint8_t> salt, unsigned log_n, unsigned r,
            unsigned p, std::span<std::uint8_t> out) noexcept {
  const std::uint64_t n = std::uint64_t{1} << log_n;
  // OpenSSL's own bound is 128*r*(N+2+p) bytes; give it exactly what these parameters need.
  const std::uint64_t max_mem = 128ULL * r * (n + 2 + p) + 4096;
  return EVP_PBE_scrypt(code.data(), code.size(), salt.data(), salt.size(), n, r, p, max_mem,
                        out.data(), out.size()) == 1;
}

// A small decimal with no sign and no leading zero, within [low, high].
std::optional<unsigned> parse_bounded(std::string_view text, unsigned low, unsigned high) noexcept {
  if (text.empty() || text.size() > 3 || (text.size() > 1 && text.front() == '0')) {
    return std::nullopt;
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < low || value > high) {
    return std::nullopt;
  }
  return value;
}

// Splits off the text before the first `sep`; nullopt when there is none.
std::optional<std::string_view> take_until(std::string_view& rest, char sep) noexcept {
  const std::size_t at = rest.find(sep);
  if (at == std::string_view::npos) {
    return std::nullopt;
  }
  const std::string_view head = rest.substr(0, at);
  rest.remove_prefix(at + 1);
  return head;
}

// Parses "key=value" with the expected key.
std::optional<unsigned> parse_param(std::string_view field, std::string_view key, unsigned low,
                                    unsigned high) noexcept {
  if (field.size() <= key.size() + 1 || field.substr(0, key.size()) != key ||
      field[key.size()] != '=') {
    return std::nullopt;
  }
  return parse_bounded(field.substr(key.size() + 1), low, high);
}

template <std::size_t N>
struct WipedArray {
  std::array<std::uint8_t, N> bytes{};
  WipedArray() = default;
  WipedArray(const WipedArray&) = delete;
  WipedArray& operator=(const WipedArray&) = delete;
  WipedArray(WipedArray&&) = delete;
  WipedArray& operator=(WipedArray&&) = delete;
  ~WipedArray() { secure_wipe(bytes.data(), bytes.size()); }
};

}  // namespace

std::expected<SecureString, RecoveryCodeError> generate_recovery_code() {
  auto random = random_bytes(kRecoveryCodeSymbols);
  if (!random) {
    return std::unexpected(RecoveryCodeError::rng_failure);
  }
  SecureString code;
  for (std::size_t i = 0; i < kRecoveryCodeSymbols; ++i) {
    if (i == kDashAfter[0] || i == kDashAfter[1]) {
      code.push_back('-');
    }
    // 256 is a multiple of 32, so the low 5 bits of a uniform byte are uniform.
    code.push_back(kAlphabet[random->view()[i] & 0x1FU]);
  }
  return code;
}

std::expected<std::vector<SecureString>, RecoveryCodeError> generate_recovery_codes(
    std::size_t count) {
  std::vector<SecureString> codes;
  codes.reserve(count);
  while (codes.size() < count) {
    auto code = generate_recovery_code();
    if (!code) {
      return std::unexpected(code.error());
    }
    // A repeat within one set (odds ~count^2 / 2^51) would leave the user one code short.
    bool repeated = false;
    for (const auto& existing : codes) {
      repeated = repeated || existing == *code;
    }
    if (!repeated) {
      codes.push_back(std::move(*code));
    }
  }
  return codes;
}

std::expected<SecureString, RecoveryCodeError> normalize_recovery_code(std::string_view typed) {
  std::size_t symbols = 0;
  for (const char c : typed) {
    if (is_separator(c)) {
      continue;
    }
    if (!in_alphabet(fold_symbol(c))) {
      return std::unexpected(RecoveryCodeError::bad_character);
    }
    ++symbols;
  }
  if (symbols != kRecoveryCodeSymbols) {
    return std::unexpected(RecoveryCodeError::bad_length);
  }
  SecureString code;
  for (const char c : typed) {
    if (!is_separator(c)) {
      code.push_back(fold_symbol(c));
    }
  }
  return code;
}

std::expected<SecureString, RecoveryCodeError> normalize_scratch_code(std::string_view typed) {
  SecureString code;
  for (const char c : typed) {
    if (is_separator(c)) {
      continue;
    }
    if (!is_digit(c)) {
      return std::unexpected(RecoveryCodeError::bad_character);
    }
    if (code.size() == kScratchCodeDigits) {
      return std::unexpected(RecoveryCodeError::bad_length);
    }
    code.push_back(c);
  }
  if (code.size() != kScratchCodeDigits) {
    return std::unexpected(RecoveryCodeError::bad_length);
  }
  if (!is_scratch_code(code.view())) {
    return std::unexpected(RecoveryCodeError::bad_character);  // a leading 0
  }
  return code;
}

bool looks_like_recovery_code(std::string_view typed) noexcept {
  try {  // the protocol's typed code is the one place that classifies what was typed
    return protocol::Code(SecureString(typed)).kind() == protocol::Code::Kind::recovery;
  } catch (...) {  // out of memory copying it
    return false;
  }
}

std::expected<std::string, RecoveryCodeError> hash_recovery_code(std::string_view normalized) {
  if (normalized.size() != kRecoveryCodeSymbols && normalized.size() != kScratchCodeDigits) {
    return std::unexpected(RecoveryCodeError::bad_length);
  }
  if (!is_normalized(normalized)) {
    return std::unexpected(RecoveryCodeError::bad_character);
  }
  const auto salt = random_bytes(kSaltBytes);
  if (!salt) {
    return std::unexpected(RecoveryCodeError::rng_failure);
  }
  WipedArray<kHashBytes> hash;
  if (!scrypt(normalized, salt->view(), kScryptLogN, kScryptR, kScryptP, hash.bytes)) {
    return std::unexpected(RecoveryCodeError::hash_failure);
  }
  // "scrypt$ln=12,r=8,p=1$<salt>$<hash>", PHC-like: the parameters travel with
  // the hash, so the cost can be raised later without breaking stored codes.
  std::string out(kScheme);
  out.append("$ln=")
      .append(std::to_string(kScryptLogN))
      .append(",r=")
      .append(std::to_string(kScryptR))
      .append(",p=")
      .append(std::to_string(kScryptP))
      .append("$")
      .append(base64_encode(salt->view()))
      .append("$")
      .append(base64_encode(hash.bytes));
  return out;
}

bool verify_recovery_code(std::string_view normalized, std::string_view stored_hash) noexcept {
  // Nothing here allocates, so nothing can throw.
  if (!is_normalized(normalized)) {
    return false;
  }
  std::string_view rest = stored_hash;
  const auto scheme = take_until(rest, '$');
  const auto params = take_until(rest, '$');
  const auto salt_b64 = take_until(rest, '$');
  const std::string_view hash_b64 = rest;
  if (!scheme || *scheme != kScheme || !params || !salt_b64) {
    return false;
  }

  std::string_view p_rest = *params;
  const auto ln_field = take_until(p_rest, ',');
  const auto r_field = take_until(p_rest, ',');
  if (!ln_field || !r_field) {
    return false;
  }
  const auto log_n = parse_param(*ln_field, "ln", kMinLogN, kMaxLogN);
  const auto r = parse_param(*r_field, "r", 1, kMaxR);
  const auto p = parse_param(p_rest, "p", 1, kMaxP);
  if (!log_n || !r || !p) {
    return false;
  }

  std::array<std::uint8_t, kSaltBytes> salt{};
  WipedArray<kHashBytes> expected;
  if (!base64_decode_exact(*salt_b64, salt) || !base64_decode_exact(hash_b64, expected.bytes)) {
    return false;
  }
  WipedArray<kHashBytes> actual;
  if (!scrypt(normalized, salt, *log_n, *r, *p, actual.bytes)) {
    return false;
  }
  return constant_time_equal(actual.bytes, expected.bytes);
}

}  // namespace kpanel::common
