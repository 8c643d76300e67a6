// kpanel-totp admin list [--all] | stats [--prometheus] | reset USER | unlock USER |
// forget USER: for root and members of the daemon's admin_group (the daemon
// decides from the socket's peer credentials).
#include <ostream>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/stats_output.hpp"

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

int run_admin_list(Context& context, const CommandLine& line) {
  if (auto refused = refuse_user_flag(context)) {
    return *refused;
  }
  const bool all = line.has("all");
  auto result = context.request<protocol::AdminListResult>(protocol::AdminListRequest{all});
  if (!result) {
    return context.fail(result.error());
  }
  if (result->truncated) {
    context.err() << "kpanel-totp: the daemon stopped listing accounts at its bound; some "
                     "accounts that can log in may be missing\n";
  }
  // Delivered, so done (exit 0) even with unreadable records: each is its
  // user's problem, told on stderr (and in the JSON) with what clears it.
  if (context.global().json) {
    context.out() << admin_list_json(result->users, all, result->truncated, result->unreadable)
                  << '\n';
  } else {
    print_user_table(context.out(), result->users, context.now(), all);
  }
  print_unreadable(context.err(), result->unreadable);
  return kExitOk;
}

// For a monitoring system: --prometheus writes the text format that
// node_exporter's textfile collector reads.
int run_admin_stats(Context& context, const CommandLine& line) {
  if (auto refused = refuse_user_flag(context)) {
    return *refused;
  }
  const bool prometheus = line.has("prometheus");
  if (prometheus && context.global().json) {
    return context.usage("--json and --prometheus exclude each other");
  }
  auto result = context.request<protocol::AdminStatsResult>(protocol::AdminStatsRequest{});
  if (!result) {
    return context.fail(result.error());
  }
  if (prometheus) {
    context.out() << stats_prometheus(*result);
  } else if (context.global().json) {
    context.out() << stats_json(*result) << '\n';
  } else {
    print_stats(context.out(), *result);
  }
  return kExitOk;
}

int run_admin_reset(Context& context, const CommandLine& line) {
  auto user = user_argument(context, line);
  if (!user) {
    return user.error();
  }
  auto result = context.request<protocol::EmptyResult>(protocol::AdminResetRequest{*user}, *user);
  if (!result) {
    Failure failure = std::move(result.error());
    if (failure.status == protocol::Status::not_enrolled) {
      // The generic text tells the user to enroll; an admin needs to hear
      // that there was nothing to remove.
      failure.message = *user + " has no enrollment (none confirmed or started); nothing to reset";
    }
    return context.fail(failure);
  }
  if (context.global().json) {
    context.out() << kEmptyJsonObject << '\n';
  } else {
    context.out() << "Removed the enrollment and recovery codes of " << *user
                  << ". They set up a new one with: kpanel-totp enroll\n";
  }
  return kExitOk;
}

// The daemon clears failures and the lockout level whether or not the account
// is locked (and answers ok); asking first lets the message say which it was.
int run_admin_unlock(Context& context, const CommandLine& line) {
  auto user = user_argument(context, line);
  if (!user) {
    return user.error();
  }
  auto before = context.request<protocol::StatusResult>(protocol::StatusRequest{*user}, *user);
  // A name NSS no longer knows may still have state to clear: unlock decides.
  if (!before && before.error().status != protocol::Status::no_such_user) {
    return context.fail(before.error());
  }
  const bool was_locked = !before || before->status.locked_until.has_value();
  auto result = context.request<protocol::EmptyResult>(protocol::AdminUnlockRequest{*user}, *user);
  if (!result) {
    return context.fail(result.error());
  }
  if (context.global().json) {
    context.out() << kEmptyJsonObject << '\n';
  } else if (was_locked) {
    context.out() << "Cleared the lockout of " << *user << "; they may try codes again.\n";
  } else {
    context.out() << *user
                  << " is not locked; nothing to unlock (its count of failed codes "
                     "starts again from zero).\n";
  }
  return kExitOk;
}

int run_admin_forget(Context& context, const CommandLine& line) {
  auto user = user_argument(context, line);
  if (!user) {
    return user.error();
  }
  auto result = context.request<protocol::EmptyResult>(protocol::ForgetRequest{*user}, *user);
  if (!result) {
    return context.fail(result.error());
  }
  if (context.global().json) {
    context.out() << kEmptyJsonObject << '\n';
  } else {
    context.out() << "Ended the remembered logins of " << *user
                  << "; their next login asks for a code.\n";
  }
  return kExitOk;
}

}  // namespace kpanel::cli
