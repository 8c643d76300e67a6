#include "daemon/system/password_check.hpp"

#include <security/pam_appl.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <span>

namespace kpanel::daemon {
namespace {

// A malloc'd copy of `text`: PAM takes ownership of responses and free()s them.
char* malloc_copy(std::string_view text) noexcept {
  auto* copy =
      static_cast<char*>(std::malloc(text.size() + 1));  // NOLINT(*-no-malloc,*-owning-memory)
  if (copy == nullptr) {
    return nullptr;
  }
  if (!text.empty()) {
    std::memcpy(copy, text.data(), text.size());
  }
  copy[text.size()] = '\0';
  return copy;
}

void free_responses(std::span<pam_response> responses) noexcept {
  for (const pam_response& r : responses) {
    if (r.resp != nullptr) {
      common::secure_wipe(r.resp, std::strlen(r.resp));
      std::free(r.resp);  // NOLINT(*-no-malloc,*-owning-memory)
    }
  }
  std::free(responses.data());  // NOLINT(*-no-malloc,*-owning-memory)
}

// The conversation: every echo-off prompt gets the password (whatever its text:
// modules word it differently), an echo-on prompt an empty answer, messages
// are dropped. Tolerates resp == NULL (some modules pass it with messages only).
int converse(int count, const pam_message** messages, pam_response** resp, void* appdata) noexcept {
  if (count <= 0 || count > PAM_MAX_NUM_MSG || messages == nullptr || appdata == nullptr) {
    return PAM_CONV_ERR;
  }
  const auto n = static_cast<std::size_t>(count);
  const std::span<const pam_message*> items(messages, n);
  bool any_prompt = false;
  for (const pam_message* m : items) {
    if (m != nullptr &&
        (m->msg_style == PAM_PROMPT_ECHO_OFF || m->msg_style == PAM_PROMPT_ECHO_ON)) {
      any_prompt = true;
    }
  }
  if (resp == nullptr) {
    return any_prompt ? PAM_CONV_ERR : PAM_SUCCESS;
  }
  *resp = nullptr;

  const auto* password = static_cast<const common::SecureString*>(appdata);
  auto* raw = static_cast<pam_response*>(
      std::calloc(n, sizeof(pam_response)));  // NOLINT(*-no-malloc,*-owning-memory)
  if (raw == nullptr) {
    return PAM_BUF_ERR;
  }
  const std::span<pam_response> replies(raw, n);
  for (std::size_t i = 0; i < n; ++i) {
    const pam_message* m = items[i];
    if (m == nullptr) {
      continue;
    }
    if (m->msg_style == PAM_PROMPT_ECHO_OFF || m->msg_style == PAM_PROMPT_ECHO_ON) {
      // Never answer a visible prompt with the password: it may be echoed or logged.
      replies[i].resp =
          malloc_copy(m->msg_style == PAM_PROMPT_ECHO_OFF ? password->view() : std::string_view{});
      if (replies[i].resp == nullptr) {
        free_responses(replies);
        return PAM_BUF_ERR;
      }
    }
  }
  *resp = raw;
  return PAM_SUCCESS;
}

bool is_system_failure(int rc) noexcept {
  switch (rc) {
    case PAM_ABORT:
    case PAM_AUTHINFO_UNAVAIL:
    case PAM_BUF_ERR:
    case PAM_CONV_ERR:
    case PAM_CRED_INSUFFICIENT:
    case PAM_SERVICE_ERR:
    case PAM_SYSTEM_ERR:
    case PAM_OPEN_ERR:
    case PAM_SYMBOL_ERR:
      return true;
    default:
      return false;
  }
}

// libpam calls this instead of sleeping after a failed pam_authenticate.
// The delay (pam_unix: 2 s) slows guessing at an interactive login; here the
// lockout bounds guessing (a failure is reserved before each check), and a
// sleeping check would hold the one check slot, so one user's wrong passwords
// would delay everyone else's.
void no_fail_delay(int /*status*/, unsigned /*usec*/, void* /*appdata*/) noexcept {}

std::string describe(pam_handle_t* handle, std::string_view step, int rc) {
  std::string message(step);
  message.append(": ");
  const char* text = pam_strerror(handle, rc);
  message.append(text != nullptr ? text : "unknown PAM error");
  return message;
}

}  // namespace

std::expected<bool, PasswordCheckError> PamPasswordChecker::check(
    std::string_view user, const common::SecureString& password) {
  if (user.empty() || user.find('\0') != std::string_view::npos) {
    return false;
  }
  const std::lock_guard lock(mutex_);
  const std::string name(user);
  const pam_conv conversation{
      &converse, const_cast<common::SecureString*>(&password)};  // NOLINT(*-const-cast)
  pam_handle_t* handle = nullptr;
  int rc = pam_start(service_.c_str(), name.c_str(), &conversation, &handle);
  if (rc != PAM_SUCCESS || handle == nullptr) {
    return std::unexpected(PasswordCheckError{describe(handle, "pam_start(" + service_ + ")", rc)});
  }
  rc = pam_set_item(handle, PAM_FAIL_DELAY,
                    reinterpret_cast<const void*>(&no_fail_delay));  // NOLINT(*-reinterpret-cast)
  if (rc != PAM_SUCCESS) {
    auto error = std::unexpected(PasswordCheckError{describe(handle, "pam_set_item", rc)});
    pam_end(handle, rc);
    return error;
  }
  std::expected<bool, PasswordCheckError> result = false;
  rc = pam_authenticate(handle, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
  if (rc == PAM_SUCCESS) {
    rc = pam_acct_mgmt(handle, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
    // An expired password was still the right one: the identity is proven.
    if (rc == PAM_SUCCESS || rc == PAM_NEW_AUTHTOK_REQD) {
      result = true;
      rc = PAM_SUCCESS;
    } else if (is_system_failure(rc)) {
      result = std::unexpected(PasswordCheckError{describe(handle, "pam_acct_mgmt", rc)});
    }
  } else if (is_system_failure(rc)) {
    result = std::unexpected(PasswordCheckError{describe(handle, "pam_authenticate", rc)});
  }
  pam_end(handle, rc);
  return result;
}

}  // namespace kpanel::daemon
