#pragma once
// Talking to the user through the application's conversation function
// (struct pam_conv). Called directly rather than through pam_prompt/pam_info so
// that every copy of a code, key or recovery code the module makes is wiped:
// message texts live in wiping storage, answers are wiped before they are freed.
// Takes the pam_conv itself, not the handle, so tests can pass their own.

#include <security/pam_appl.h>

#include <optional>
#include <string_view>

#include "common/secure_buffer.hpp"

namespace kpanel::pam {

class Conversation {
 public:
  // `conv` may be null (an application without one): every call then fails.
  explicit Conversation(const pam_conv* conv) noexcept : conv_(conv) {}

  // One question; nullopt when the application fails or gives no answer
  // (a null response array or a null string are tolerated, not dereferenced).
  [[nodiscard]] std::optional<common::SecureString> ask(std::string_view prompt, bool echo) const;
  // PAM_TEXT_INFO / PAM_ERROR_MSG; false when the application failed.
  bool info(std::string_view text) const;
  bool error(std::string_view text) const;

 private:
  // Sends one message; the answer (if any) goes to `answer`.
  bool send(int style, std::string_view text, common::SecureString* answer) const;

  const pam_conv* conv_;
};

}  // namespace kpanel::pam
