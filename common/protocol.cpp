#include "common/protocol.hpp"

#include <cstddef>
#include <utility>

#include "common/protocol_schema.hpp"
#include "common/recovery_code.hpp"

// The protocol's names and its one classification of a typed code; the JSON
// codec is protocol_codec.cpp, the message tables protocol_schema.hpp.
namespace kpanel::common::protocol {

using namespace detail;

std::string_view to_string(DecodeError e) noexcept {
  const std::string_view name = name_of(kDecodeErrorNames, e);
  return name.empty() ? "unknown" : name;
}

std::string_view to_string(Status s) noexcept {
  const std::string_view name = name_of(kStatusNames, s);
  return name.empty() ? "unknown" : name;
}

std::string_view to_string(LoginDecision d) noexcept {
  const std::string_view name = name_of(kDecisionNames, d);
  return name.empty() ? "unknown" : name;
}

Op op_of(const Request& request) noexcept { return static_cast<Op>(request.index()); }

std::string_view op_name(const Request& request) noexcept { return op_name(op_of(request)); }

// The only place that looks at what was typed to say what it is. The kinds
// cannot overlap: a TOTP code has 6 to 8 digits, a recovery code 10 symbols.
Code::Code(SecureString typed) : typed_(std::move(typed)) {
  std::size_t symbols = 0;  // dashes and spaces are not symbols
  bool digits_only = true;  // ignoring spaces
  for (const char c : typed_.view()) {
    if (c != ' ' && c != '-') {
      ++symbols;
    }
    if (c != ' ') {
      digits_only = digits_only && c >= '0' && c <= '9';
      digits_.push_back(c);
    }
  }
  if (symbols == kRecoveryCodeSymbols) {
    kind_ = Kind::recovery;
  } else if (digits_only && !digits_.empty()) {
    kind_ = Kind::totp;
  }
  if (kind_ != Kind::totp) {
    digits_.clear();
  }
}

bool Code::may_be_scratch_code() const noexcept {
  return kind_ == Kind::totp && digits_.size() == kScratchCodeDigits;
}

std::expected<FrameHeader, DecodeError> parse_header(std::span<const std::uint8_t> header,
                                                     std::size_t max_body) noexcept {
  if (header.size() < kHeaderSize) {
    return std::unexpected(DecodeError::truncated);
  }
  if (header[0] != kMagic[0] || header[1] != kMagic[1]) {
    return std::unexpected(DecodeError::bad_magic);
  }
  // The reserved byte is 0 in every version so far; anything else is an
  // extension we do not speak.
  if (header[2] < kOldestVersion || header[2] > kVersion || header[3] != 0) {
    return std::unexpected(DecodeError::unsupported_version);
  }
  std::uint32_t length = 0;
  for (std::size_t i = 4; i < kHeaderSize; ++i) {
    length = (length << 8U) | header[i];
  }
  if (length > max_body) {
    return std::unexpected(DecodeError::oversized);
  }
  return FrameHeader{.version = header[2], .body_length = length};
}

}  // namespace kpanel::common::protocol
