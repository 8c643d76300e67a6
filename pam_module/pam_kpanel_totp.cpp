// pam_kpanel_totp.so: the PAM entry points and the login flow. The
// module holds no state and no secrets: it asks the daemon (login_check), asks
// the user, asks the daemon again (verify, or enroll_begin/enroll_confirm) and
// maps each answer through the table in outcome.cpp.

#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <syslog.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "common/daemon_client.hpp"
#include "common/pam_options.hpp"
#include "common/protocol.hpp"
#include "common/user_name.hpp"
#include "pam_module/conversation.hpp"
#include "pam_module/login_source.hpp"
#include "pam_module/outcome.hpp"

namespace {

namespace protocol = kpanel::common::protocol;
using kpanel::pam::Answer;
using kpanel::pam::Conversation;
using kpanel::pam::LogLevel;
using kpanel::pam::MessageStyle;
using kpanel::pam::Options;
using kpanel::pam::Outcome;

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* item_text(pam_handle_t* pamh, int type) {
  const void* item = nullptr;
  if (pam_get_item(pamh, type, &item) != PAM_SUCCESS) return nullptr;
  return static_cast<const char*>(item);
}

std::string_view raw_item(pam_handle_t* pamh, int type) {
  const char* text = item_text(pamh, type);
  return text != nullptr ? std::string_view(text) : std::string_view();
}

const pam_conv* conversation_of(pam_handle_t* pamh) {
  const void* item = nullptr;
  if (pam_get_item(pamh, PAM_CONV, &item) != PAM_SUCCESS) return nullptr;
  return static_cast<const pam_conv*>(item);
}

class Login {
 public:
  Login(pam_handle_t* pamh, int flags, Options options, std::string user)
      : pamh_(pamh),
        options_(std::move(options)),
        conversation_(conversation_of(pamh)),
        silent_((static_cast<unsigned int>(flags) & PAM_SILENT) != 0),
        user_(std::move(user)),
        service_(kpanel::pam::audit_field(item_text(pamh, PAM_SERVICE))),
        rhost_(kpanel::pam::audit_field(item_text(pamh, PAM_RHOST))),
        tty_(kpanel::pam::audit_field(item_text(pamh, PAM_TTY))) {
    if (options_.remember) {
      source_ = kpanel::pam::login_source(raw_item(pamh, PAM_RHOST), raw_item(pamh, PAM_TTY),
                                          raw_item(pamh, PAM_RUSER));
    }
  }

  int run() {
    if (options_.debug) {  // not built on every login for a line that is dropped
      log(LogLevel::debug, "service=" + service_ + " rhost=" + rhost_ + " tty=" + tty_ +
                               (options_.nullok ? " nullok" : "") +
                               (options_.enroll ? " enroll" : "") +
                               (options_.remember ? " remember source=" + source_ : ""));
    }
    const Answer answer = call(protocol::LoginCheckRequest{.user = user_,
                                                           .service = service_,
                                                           .rhost = rhost_,
                                                           .tty = tty_,
                                                           .nullok = options_.nullok,
                                                           .enroll = options_.enroll,
                                                           .remember = !source_.empty(),
                                                           .source = source_});
    const kpanel::pam::LoginStep step =
        kpanel::pam::after_login_check(answer, options_, now_seconds());
    if (!step.notice.empty() && !silent_) {
      conversation_.info(step.notice);
    }
    switch (step.next) {
      case kpanel::pam::Next::prompt:
        log(step.outcome.log_level, step.outcome.log);
        return verify();
      case kpanel::pam::Next::enroll:
        log(step.outcome.log_level, step.outcome.log);
        return enroll();
      case kpanel::pam::Next::finish:
        break;
    }
    return finish(step.outcome);
  }

 private:
  int verify() {
    std::optional<kpanel::common::SecureString> code = ask_code();
    if (!code) return conversation_failed("code prompt");
    if (const auto typed = kpanel::pam::check_typed_code(code->view());
        typed != kpanel::pam::TypedCode::ok) {
      return finish(kpanel::pam::typed_code_refusal(typed));
    }
    const Answer answer = call(protocol::VerifyRequest{.user = user_,
                                                       .service = service_,
                                                       .rhost = rhost_,
                                                       .tty = tty_,
                                                       .code = std::move(*code),
                                                       .remember = !source_.empty(),
                                                       .source = source_});
    return finish(kpanel::pam::after_verify(answer, options_, now_seconds()));
  }

  // Inline enrollment: show the new secret, take one code to confirm it, show
  // the recovery codes once and wait until the user has saved them.
  int enroll() {
    const Answer begun = call(protocol::EnrollBeginRequest{
        .user = user_, .want_qr_text = true, .service = service_, .rhost = rhost_, .tty = tty_});
    if (auto failed = kpanel::pam::after_enroll_begin(begun, options_, now_seconds())) {
      return finish(*failed);
    }
    const auto& secret = std::get<protocol::EnrollBeginResult>(begun->result);
    // Shown whatever PAM_SILENT says: the login cannot go on without them.
    bool shown = conversation_.info(kpanel::pam::enrollment_intro());
    if (shown && !secret.qr_text.empty()) {
      shown = conversation_.info(secret.qr_text.view());
    }
    shown = shown && conversation_.info(kpanel::pam::uri_message(secret.uri.view()).view()) &&
            conversation_.info(kpanel::pam::key_message(secret.secret_base32.view()).view());
    if (!shown) return conversation_failed("enrollment text");

    for (int attempt = 1; attempt <= kpanel::pam::kEnrollAttempts; ++attempt) {
      const bool last = attempt == kpanel::pam::kEnrollAttempts;
      std::optional<kpanel::common::SecureString> code = ask_code();
      if (!code) return conversation_failed("enrollment code prompt");
      if (const auto typed = kpanel::pam::check_typed_code(code->view());
          typed != kpanel::pam::TypedCode::ok) {
        const Outcome refusal = kpanel::pam::typed_code_refusal(typed);
        if (last) return finish(refusal);
        note(refusal);
        continue;
      }
      const Answer confirmed = call(protocol::EnrollConfirmRequest{.user = user_,
                                                                   .code = std::move(*code),
                                                                   .service = service_,
                                                                   .rhost = rhost_,
                                                                   .tty = tty_});
      const kpanel::pam::ConfirmStep step =
          kpanel::pam::after_enroll_confirm(confirmed, options_, now_seconds(), last);
      switch (step.next) {
        case kpanel::pam::ConfirmNext::retry:
          note(step.outcome);
          continue;
        case kpanel::pam::ConfirmNext::finish:
          return finish(step.outcome);
        case kpanel::pam::ConfirmNext::done:
          break;
      }
      const auto& codes = std::get<protocol::RecoveryCodesResult>(confirmed->result).codes;
      // The enrollment is done whatever happens now; a conversation failure
      // here must not fail a login whose second factor was just proven.
      conversation_.info(kpanel::pam::recovery_codes_message(codes).view());
      // OpenSSH shows text only together with a following prompt,
      // so one more prompt makes sure the codes are seen. The answer is ignored.
      (void)conversation_.ask(kpanel::pam::kSavedCodesPrompt, true);
      return finish(step.outcome);
    }
    return finish(Outcome{});  // not reached: the last attempt always finishes
  }

  std::optional<kpanel::common::SecureString> ask_code() {
    return conversation_.ask(options_.prompt, false);
  }

  Answer call(const protocol::Request& request) {
    if (options_.debug) {
      log(LogLevel::debug, "asking the daemon: " + std::string(protocol::op_name(request)));
    }
    return kpanel::common::call_daemon(
        kpanel::common::ClientOptions{.socket_path = options_.socket_path,
                                      .timeout = options_.timeout},
        request);
  }

  int conversation_failed(const char* where) {
    log(LogLevel::error, std::string("the application's conversation failed at the ") + where);
    return PAM_CONV_ERR;
  }

  void show(const Outcome& outcome) {
    if (silent_ || outcome.message.empty()) return;
    switch (outcome.style) {
      case MessageStyle::none:
        break;
      case MessageStyle::info:
        conversation_.info(outcome.message);
        break;
      case MessageStyle::error:
        conversation_.error(outcome.message);
        break;
    }
  }

  // An outcome that does not end the login (a retry): message and log line only.
  void note(const Outcome& outcome) {
    show(outcome);
    log(outcome.log_level, outcome.log);
  }

  int finish(const Outcome& outcome) {
    note(outcome);
    if (options_.debug) {
      pam_syslog(pamh_, LOG_DEBUG, "user=%s: returning %s", user_.c_str(),
                 pam_strerror(pamh_, outcome.pam_code));
    }
    return outcome.pam_code;
  }

  void log(LogLevel level, const std::string& text) {
    int priority = LOG_DEBUG;
    switch (level) {
      case LogLevel::none:
        return;
      case LogLevel::debug:
        if (!options_.debug) return;
        priority = LOG_DEBUG;
        break;
      case LogLevel::warning:
        priority = LOG_WARNING;
        break;
      case LogLevel::error:
        priority = LOG_ERR;
        break;
    }
    pam_syslog(pamh_, priority, "user=%s: %s", user_.c_str(), text.c_str());
  }

  pam_handle_t* pamh_;
  Options options_;
  Conversation conversation_;
  bool silent_;
  std::string user_, service_, rhost_, tty_;
  std::string source_;  // module option remember: where this login comes from (login_source.hpp)
};

int authenticate(pam_handle_t* pamh, int flags, int argc, const char** argv) {
  const std::span<const char* const> arguments(
      argv, argc > 0 && argv != nullptr ? static_cast<std::size_t>(argc) : 0);
  auto options = kpanel::pam::parse_options(arguments);
  if (!options) {
    // Fail closed: a typo in the stack must not quietly weaken it.
    for (const auto& problem : options.error()) {
      pam_syslog(pamh, LOG_ERR, "bad option '%s': %s; refusing every login until fixed",
                 problem.argument.c_str(), problem.reason.c_str());
    }
    return PAM_AUTH_ERR;
  }

  const char* user = nullptr;
  const int got = pam_get_user(pamh, &user, nullptr);
  if (got == PAM_CONV_AGAIN) return PAM_INCOMPLETE;
  if (got != PAM_SUCCESS) return got;
  // The protocol's rule: a name the codec would refuse never reaches the daemon.
  if (user == nullptr || !kpanel::common::valid_user_name(user)) {
    pam_syslog(pamh, LOG_ERR, "refusing an unusable user name '%s'",
               kpanel::pam::audit_field(user).c_str());
    return PAM_USER_UNKNOWN;
  }
  return Login(pamh, flags, std::move(*options), user).run();
}

}  // namespace

#if KPANEL_PAM_STATIC_CXX_RUNTIME
// The C++ runtime linked into the module (pam_module/CMakeLists.txt) keeps an
// emergency exception pool (~71 KiB) that it never frees: without this, every
// pam_start/pam_end of a long-lived process (a screen locker, a display
// manager) would leak one. Only with the runtime inside the module: a shared
// libstdc++'s pool belongs to the whole process.
namespace __gnu_cxx {
void __freeres() noexcept;  // NOLINT(bugprone-reserved-identifier): libstdc++'s own
}  // namespace __gnu_cxx
__attribute__((destructor)) static void release_cxx_runtime() { __gnu_cxx::__freeres(); }
#endif

// The only two exported symbols (pam_kpanel_totp.map). Nothing is thrown past them.
extern "C" {

__attribute__((visibility("default"))) int pam_sm_authenticate(pam_handle_t* pamh, int flags,
                                                               int argc, const char** argv) {
  try {
    return authenticate(pamh, flags, argc, argv);
  } catch (const std::exception& e) {
    pam_syslog(pamh, LOG_ERR, "internal error: %s; refusing", e.what());
  } catch (...) {
    pam_syslog(pamh, LOG_ERR, "internal error; refusing");
  }
  return PAM_AUTH_ERR;
}

__attribute__((visibility("default"))) int pam_sm_setcred(pam_handle_t* /*pamh*/, int /*flags*/,
                                                          int /*argc*/, const char** /*argv*/) {
  return PAM_SUCCESS;  // no credentials of our own
}

}  // extern "C"
