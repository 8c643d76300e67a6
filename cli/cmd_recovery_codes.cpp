// kpanel-totp recovery-codes --regenerate: a current code replaces every
// recovery code with a new set, shown once.
#include <ostream>

#include "cli/commands.hpp"
#include "cli/output.hpp"

namespace kpanel::cli {

namespace protocol = common::protocol;

int run_recovery_codes(Context& context, const CommandLine& line) {
  if (!line.has("regenerate")) {
    return context.usage(
        "recovery-codes needs --regenerate (codes are shown only once, when they are made)");
  }
  auto code = context.ask("Verification code: ", "verification code", protocol::kMaxCodeLength);
  if (!code) {
    return context.fail(code.error());
  }

  protocol::RegenerateRecoveryCodesRequest request;
  request.user = context.global().user;
  request.code = std::move(*code);
  auto result = context.request<protocol::RecoveryCodesResult>(request);
  if (!result) {
    return context.fail(result.error());
  }

  if (context.global().json) {
    context.out() << recovery_codes_json(result->codes).view() << '\n';
  } else {
    context.out() << "New recovery codes made; the old ones no longer work.\n";
    print_recovery_codes(context.out(), result->codes);
  }
  return kExitOk;
}

}  // namespace kpanel::cli
