#include "cli/google_authenticator_file.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <span>
#include <system_error>
#include <utility>

#include "common/base32.hpp"
#include "common/recovery_code.hpp"

namespace kpanel::cli {
namespace {

constexpr std::size_t kMinSecretBytes = common::protocol::kMinImportedSecretBytes;
constexpr std::size_t kMaxSecretBytes = common::protocol::kMaxImportedSecretBytes;

// Its bounds (google-authenticator-libpam refuses a file outside them).
constexpr std::uint32_t kMaxStepSize = 60;
constexpr std::uint32_t kMaxWindowSize = 100;

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// Space- or tab-separated words.
std::vector<std::string_view> words_of(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t at = 0;
  while (at < text.size()) {
    while (at < text.size() && is_blank(text[at])) ++at;
    std::size_t end = at;
    while (end < text.size() && !is_blank(text[end])) ++end;
    if (end > at) words.push_back(text.substr(at, end - at));
    at = end;
  }
  return words;
}

// A decimal number, optionally signed, nothing else.
std::optional<std::int64_t> number(std::string_view word, bool may_be_negative = false) {
  if (word.empty() || (word.front() == '-' && !may_be_negative) || word.front() == '+') {
    return std::nullopt;
  }
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(word.data(), word.data() + word.size(), value);
  if (error != std::errc{} || end != word.data() + word.size()) {
    return std::nullopt;
  }
  return value;
}

struct Options {
  bool totp = false;
  bool hotp = false;
  std::vector<std::string> seen;
};

// One option line (after `" `): its effect on `file`, or why not.
std::expected<void, std::string> apply_option(std::string_view line, Options& options,
                                              GoogleAuthenticatorFile& file) {
  const auto words = words_of(line);
  if (words.empty()) {
    return std::unexpected("an empty option line");
  }
  const std::string_view key = words.front();
  const std::span<const std::string_view> values(words.begin() + 1, words.end());
  if (std::ranges::find(options.seen, key) != options.seen.end()) {
    return std::unexpected("option " + std::string(key) + " given twice");
  }
  options.seen.emplace_back(key);
  const auto single = [&](std::int64_t low, std::int64_t high,
                          bool negative = false) -> std::expected<std::int64_t, std::string> {
    const auto value = values.size() == 1 ? number(values.front(), negative) : std::nullopt;
    if (!value || *value < low || *value > high) {
      return std::unexpected(std::string(key) + " must be one number from " + std::to_string(low) +
                             " to " + std::to_string(high));
    }
    return *value;
  };

  if (key == "TOTP_AUTH") {
    options.totp = true;
    return {};
  }
  if (key == "HOTP_COUNTER") {
    options.hotp = true;  // refused once the whole file is read
    return {};
  }
  if (key == "STEP_SIZE") {
    auto value = single(1, kMaxStepSize);
    if (!value) return std::unexpected(value.error());
    file.step_size = static_cast<std::uint32_t>(*value);
    return {};
  }
  if (key == "WINDOW_SIZE") {
    auto value = single(1, kMaxWindowSize);
    if (!value) return std::unexpected(value.error());
    file.window_size = static_cast<std::uint32_t>(*value);
    return {};
  }
  if (key == "TIME_SKEW") {
    auto value = single(-kMaxTimeSkewSteps, kMaxTimeSkewSteps, true);
    if (!value) return std::unexpected(value.error());
    file.time_skew = *value;
    return {};
  }
  if (key == "DISALLOW_REUSE") {
    if (values.size() > kMaxDisallowedSteps) {
      return std::unexpected("DISALLOW_REUSE lists more than " +
                             std::to_string(kMaxDisallowedSteps) + " steps");
    }
    for (const std::string_view word : values) {
      const auto step = number(word);
      if (!step || *step > common::protocol::kMaxImportedStep) {
        return std::unexpected("DISALLOW_REUSE must list step numbers");
      }
      file.used_steps.push_back(*step);
    }
    return {};
  }
  // Its rate limit and its half-done skew detection: ours are the daemon's
  // lockout and skew hint, so these have nothing to carry over.
  if (key == "RATE_LIMIT" || key == "RESETTING_TIME_SKEW") {
    return {};
  }
  return std::unexpected("unknown option " + std::string(key.substr(0, 32)));
}

bool is_scratch_code(std::string_view line) {
  return line.size() == common::kScratchCodeDigits && line.front() >= '1' && line.front() <= '9' &&
         std::ranges::all_of(line, [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

// Long: one pass over the lines with their cases side by side reads best.
std::expected<GoogleAuthenticatorFile, std::string> parse_google_authenticator_file(
    std::string_view text) {
  if (text.size() > kMaxGoogleAuthenticatorFileSize) {
    return std::unexpected("larger than " + std::to_string(kMaxGoogleAuthenticatorFileSize) +
                           " bytes");
  }
  if (text.empty()) {
    return std::unexpected("empty");
  }
  GoogleAuthenticatorFile file;
  Options options;
  std::size_t number_of_line = 0;
  bool first = true;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++number_of_line;
    if (line.ends_with('\r')) {
      line.remove_suffix(1);
    }
    const std::string where = "line " + std::to_string(number_of_line) + ": ";
    if (first) {
      first = false;
      const auto secret = common::base32_decode(line);
      if (!secret || secret->size() < kMinSecretBytes || secret->size() > kMaxSecretBytes) {
        return std::unexpected(where + "not a base32 secret of 80 to 512 bits");
      }
      file.secret_base32 = common::base32_encode(secret->view());
      continue;
    }
    if (line.empty()) {
      continue;  // it skips blank lines too
    }
    if (line.front() == '"') {
      if (auto applied = apply_option(line.substr(1), options, file); !applied) {
        return std::unexpected(where + applied.error());
      }
      continue;
    }
    if (!is_scratch_code(line)) {
      return std::unexpected(where + "neither an option nor an 8-digit scratch code");
    }
    if (file.scratch_codes.size() == kMaxScratchCodes) {
      return std::unexpected("more than " + std::to_string(kMaxScratchCodes) + " scratch codes");
    }
    file.scratch_codes.emplace_back(line);
  }
  if (options.hotp || !options.totp) {
    return std::unexpected("counter-based (HOTP) codes cannot be imported, only time-based ones");
  }
  return file;
}

}  // namespace kpanel::cli
