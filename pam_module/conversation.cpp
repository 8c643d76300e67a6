#include "pam_module/conversation.hpp"

#include <array>
#include <cstdlib>
#include <cstring>

namespace kpanel::pam {
namespace {

// Frees what a conversation function returned, wiping every answer first.
void release(pam_response* responses, int count) noexcept {
  if (responses == nullptr) return;
  for (int i = 0; i < count; ++i) {
    char* const text = responses[i].resp;
    if (text != nullptr) {
      common::secure_wipe(text, std::strlen(text));
      std::free(text);  // NOLINT(cppcoreguidelines-no-malloc): PAM's allocation contract
    }
  }
  std::free(responses);  // NOLINT(cppcoreguidelines-no-malloc)
}

}  // namespace

bool Conversation::send(int style, std::string_view text, common::SecureString* answer) const {
  if (conv_ == nullptr || conv_->conv == nullptr) return false;
  // A NUL-terminated copy in wiping storage: the text may be a key or codes.
  const common::SecureString message_text(text);
  const pam_message message{.msg_style = style, .msg = message_text.c_str()};
  std::array<const pam_message*, 1> messages{&message};
  pam_response* responses = nullptr;
  const int rc = conv_->conv(1, messages.data(), &responses, conv_->appdata_ptr);
  bool ok = rc == PAM_SUCCESS;
  if (ok && answer != nullptr) {
    if (responses != nullptr && responses[0].resp != nullptr) {
      try {
        answer->append(responses[0].resp);
      } catch (...) {  // out of memory: the answer must still be wiped and freed
        ok = false;
      }
    } else {
      ok = false;  // a prompt with no answer at all
    }
  }
  release(responses, 1);
  return ok;
}

std::optional<common::SecureString> Conversation::ask(std::string_view prompt, bool echo) const {
  common::SecureString answer;
  if (!send(echo ? PAM_PROMPT_ECHO_ON : PAM_PROMPT_ECHO_OFF, prompt, &answer)) {
    return std::nullopt;
  }
  return answer;
}

bool Conversation::info(std::string_view text) const { return send(PAM_TEXT_INFO, text, nullptr); }

bool Conversation::error(std::string_view text) const { return send(PAM_ERROR_MSG, text, nullptr); }

}  // namespace kpanel::pam
