// kpanel-totp forget: ends the caller's remembered-login windows (the
// daemon's remember_seconds), on every host of a fleet. With --user, an
// admin's, for that user (the same as `admin forget USER`).
#include <ostream>

#include "cli/commands.hpp"
#include "cli/output.hpp"

namespace kpanel::cli {

namespace protocol = common::protocol;

int run_forget(Context& context, const CommandLine& /*line*/) {
  const std::string& user = context.global().user;
  auto result = context.request<protocol::EmptyResult>(protocol::ForgetRequest{user}, user);
  if (!result) {
    return context.fail(result.error());
  }
  if (context.global().json) {
    context.out() << kEmptyJsonObject << '\n';
  } else {
    context.out() << "Ended the remembered logins of " << context.subject()
                  << "; the next login asks for a code.\n";
  }
  return kExitOk;
}

}  // namespace kpanel::cli
