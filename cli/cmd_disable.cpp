// kpanel-totp disable: the account password and a current code, both checked
// by the daemon, turn the second factor off. Prompts: password, then code.
#include <ostream>

#include "cli/commands.hpp"
#include "cli/output.hpp"

namespace kpanel::cli {

namespace protocol = common::protocol;

int run_disable(Context& context, const CommandLine& /*line*/) {
  const std::string user(context.subject());
  // Nobody should type a password for nothing: an account with no enrollment
  // is refused before the prompts (the daemon refuses it anyway).
  auto current =
      context.request<protocol::StatusResult>(protocol::StatusRequest{context.global().user});
  if (!current) {
    return context.fail(current.error());
  }
  if (!current->status.enrolled) {
    return context.fail(Failure{kExitRefused,
                                current->status.user +
                                    " has no two-factor enrollment; nothing to disable (status: " +
                                    context.suggest("status") + ")",
                                "not_enrolled"});
  }
  auto password = context.ask("Password for " + user + ": ", "password",
                              protocol::kMaxPasswordLength, /*allow_empty=*/true);
  if (!password) {
    return context.fail(password.error());
  }
  auto code = context.ask("Verification code: ", "verification code", protocol::kMaxCodeLength);
  if (!code) {
    return context.fail(code.error());
  }

  protocol::DisableRequest request;
  request.user = context.global().user;
  request.password = std::move(*password);
  request.code = std::move(*code);
  auto result = context.request<protocol::EmptyResult>(request);
  if (!result) {
    return context.fail(result.error());
  }

  if (context.global().json) {
    context.out() << kEmptyJsonObject << '\n';
  } else {
    context.out() << "Two-factor login is now off for " << user
                  << "; the entry in the app can be deleted.\n"
                  << "Turn it on again with: kpanel-totp enroll\n";
  }
  return kExitOk;
}

}  // namespace kpanel::cli
