// kpanel-totp status: enrolled or not, since when, recovery codes left, lockout,
// remembered logins.
#include <ostream>

#include "cli/commands.hpp"
#include "cli/output.hpp"

namespace kpanel::cli {

namespace protocol = common::protocol;

int run_status(Context& context, const CommandLine& /*line*/) {
  auto result =
      context.request<protocol::StatusResult>(protocol::StatusRequest{context.global().user});
  if (!result) {
    return context.fail(result.error());
  }
  if (context.global().json) {
    context.out() << status_json(result->status, result->remembered) << '\n';
  } else {
    print_status(context.out(), result->status, context.now(), context.suggest(""),
                 result->remembered);
  }
  return kExitOk;
}

}  // namespace kpanel::cli
