// kpanel-totp admin list | reset USER | unlock USER: for root and members of
// the daemon's admin_group (the daemon decides from the socket's peer credentials).
#include <ostream>

#include "cli/commands.hpp"
#include "cli/output.hpp"

namespace kpanel::cli {

namespace protocol = common::protocol;

namespace {

// Admin commands name their user as an argument; --user would be ambiguous.
std::optional<int> refuse_user_flag(Context& context) {
  if (context.global().user.empty()) {
    return std::nullopt;
  }
  return context.usage("--user does not apply to admin commands");
}

// reset / unlock: one USER argument, then an EmptyResult.
int run_user_action(Context& context, const CommandLine& line, const protocol::Request& request,
                    std::string_view done) {
  auto result = context.request<protocol::EmptyResult>(request, line.positionals.front());
  if (!result) {
    return context.fail(result.error());
  }
  if (context.global().json) {
    context.out() << kEmptyJsonObject << '\n';
  } else {
    context.out() << done << '\n';
  }
  return kExitOk;
}

std::expected<std::string, int> user_argument(Context& context, const CommandLine& line) {
  if (auto refused = refuse_user_flag(context)) {
    return std::unexpected(*refused);
  }
  const std::string& user = line.positionals.front();
  if (auto valid = check_user_name(user); !valid) {
    return std::unexpected(context.usage(valid.error()));
  }
  return user;
}

}  // namespace

int run_admin_list(Context& context, const CommandLine& /*line*/) {
  if (auto refused = refuse_user_flag(context)) {
    return *refused;
  }
  auto result = context.request<protocol::AdminListResult>(protocol::AdminListRequest{});
  if (!result) {
    return context.fail(result.error());
  }
  if (context.global().json) {
    context.out() << admin_list_json(result->users) << '\n';
  } else {
    print_user_table(context.out(), result->users, context.now());
  }
  return kExitOk;
}

int run_admin_reset(Context& context, const CommandLine& line) {
  auto user = user_argument(context, line);
  if (!user) {
    return user.error();
  }
  return run_user_action(context, line, protocol::AdminResetRequest{*user},
                         "Removed the enrollment and recovery codes of " + *user +
                             ". They set up a new one with: kpanel-totp enroll");
}

int run_admin_unlock(Context& context, const CommandLine& line) {
  auto user = user_argument(context, line);
  if (!user) {
    return user.error();
  }
  return run_user_action(context, line, protocol::AdminUnlockRequest{*user},
                         "Cleared the lockout of " + *user + "; they may try codes again.");
}

}  // namespace kpanel::cli
