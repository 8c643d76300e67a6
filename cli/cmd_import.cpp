// kpanel-totp admin import-google-authenticator USER... | --all [--remove]:
// each user's ~/.google_authenticator (google-authenticator-libpam) becomes
// their enrollment, so nobody re-enrolls. Root only: the files are the users'
// and the daemon takes the op from root alone.
//
// A file is read without following a symlink (openat O_NOFOLLOW from the
// home directory's descriptor), only when it is a regular file of at most
// 4 KiB owned by the user and writable by nobody else. --remove deletes a
// file only after the daemon answered that its import is on disk, and only
// while the name still points at the file that was read (same inode).
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "cli/commands.hpp"
#include "cli/google_authenticator_file.hpp"
#include "common/unique_fd.hpp"

namespace kpanel::cli {

namespace protocol = common::protocol;

namespace {

constexpr const char* kFileName = ".google_authenticator";

struct Account {
  std::string name;
  uid_t uid = 0;
  std::string home;
};

std::optional<Account> account_named(const std::string& name) {
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  if (getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 ||
      found == nullptr) {
    return std::nullopt;
  }
  return Account{found->pw_name, found->pw_uid, found->pw_dir != nullptr ? found->pw_dir : ""};
}

// Every account NSS lists, once per uid (an alias shares its account's file).
std::vector<Account> every_account() {
  std::vector<Account> accounts;
  setpwent();
  while (const passwd* entry = getpwent()) {
    const bool seen = std::ranges::any_of(
        accounts, [&](const Account& account) { return account.uid == entry->pw_uid; });
    if (!seen && entry->pw_name != nullptr) {
      accounts.push_back(
          Account{entry->pw_name, entry->pw_uid, entry->pw_dir != nullptr ? entry->pw_dir : ""});
    }
  }
  endpwent();
  return accounts;
}

std::string errno_text(int error) { return std::strerror(error); }

// The file as read, and what --remove needs to delete exactly it.
struct Opened {
  common::UniqueFd home;
  dev_t device = 0;
  ino_t inode = 0;
  common::SecureString text;
};

struct Skip {
  std::string reason;
  bool no_file = false;  // no home or no file: --all does not list it
};

// Long: each refusal of the file (symlink, owner, mode, size) is its own case.
std::expected<Opened, Skip> open_file(const Account& account) {
  Opened opened;
  opened.home.reset(::open(account.home.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!opened.home.valid()) {
    const int error = errno;
    return std::unexpected(Skip{"home directory " + account.home + ": " + errno_text(error),
                                error == ENOENT || error == ENOTDIR});
  }
  // O_NONBLOCK: a FIFO under that name must not hang the run (refused below).
  const common::UniqueFd file(::openat(opened.home.get(), kFileName,
                                       O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
  if (!file.valid()) {
    const int error = errno;
    if (error == ENOENT) {
      return std::unexpected(Skip{"no ~/.google_authenticator", true});
    }
    if (error == ELOOP) {
      return std::unexpected(Skip{"~/.google_authenticator is a symbolic link"});
    }
    return std::unexpected(Skip{"~/.google_authenticator: " + errno_text(error)});
  }
  struct stat status {};
  if (::fstat(file.get(), &status) != 0) {
    return std::unexpected(Skip{"~/.google_authenticator: " + errno_text(errno)});
  }
  if (!S_ISREG(status.st_mode)) {
    return std::unexpected(Skip{"~/.google_authenticator is not a regular file"});
  }
  if (status.st_uid != account.uid) {
    return std::unexpected(Skip{"~/.google_authenticator is owned by uid " +
                                std::to_string(status.st_uid) + ", not by " + account.name});
  }
  if ((status.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return std::unexpected(Skip{"~/.google_authenticator is writable by group or others"});
  }
  if (status.st_size > static_cast<off_t>(kMaxGoogleAuthenticatorFileSize)) {
    return std::unexpected(Skip{"~/.google_authenticator is larger than " +
                                std::to_string(kMaxGoogleAuthenticatorFileSize) + " bytes"});
  }
  // One byte more than the bound: a file that grew since fstat is refused too.
  common::SecureBytes buffer(kMaxGoogleAuthenticatorFileSize + 1);
  std::size_t used = 0;
  while (used < buffer.size()) {
    const ssize_t got = ::read(file.get(), buffer.data() + used, buffer.size() - used);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      return std::unexpected(Skip{"~/.google_authenticator: " + errno_text(errno)});
    }
    if (got == 0) break;
    used += static_cast<std::size_t>(got);
  }
  opened.text =
      common::SecureString(std::string_view(reinterpret_cast<const char*>(buffer.data()), used));
  opened.device = status.st_dev;
  opened.inode = status.st_ino;
  return opened;
}

// Deletes the file that was read, never another one put under its name since.
std::expected<void, std::string> remove_file(const Opened& opened) {
  struct stat now {};
  if (::fstatat(opened.home.get(), kFileName, &now, AT_SYMLINK_NOFOLLOW) != 0) {
    return std::unexpected("cannot look at it again: " + errno_text(errno));
  }
  if (now.st_dev != opened.device || now.st_ino != opened.inode) {
    return std::unexpected(
        "it changed since it was read (a login rewrote it?); not removed: run the import again");
  }
  if (::unlinkat(opened.home.get(), kFileName, 0) != 0) {
    return std::unexpected("cannot remove it: " + errno_text(errno));
  }
  return {};
}

struct Report {
  std::vector<std::string> imported;
  std::vector<std::pair<std::string, std::string>> skipped;  // user, reason
  bool remove_failed = false;
};

}  // namespace

// Long: per user, read, ask, remove and report, with the run's stop rules
// (no daemon, not root) in one loop.
int run_admin_import(Context& context, const CommandLine& line) {
  if (!context.global().user.empty()) {
    return context.usage("--user does not apply to admin commands");
  }
  const bool all = line.has("all");
  const bool remove = line.has("remove");
  if (all == !line.positionals.empty()) {
    return context.usage(all ? "give user names or --all, not both"
                             : "name the users to import, or --all");
  }
  std::vector<Account> accounts;
  Report report;
  if (all) {
    accounts = every_account();
  } else {
    for (const std::string& name : line.positionals) {
      if (auto valid = check_user_name(name); !valid) {
        return context.usage(valid.error());
      }
      if (auto account = account_named(name)) {
        const bool again = std::ranges::any_of(
            accounts, [&](const Account& seen) { return seen.uid == account->uid; });
        if (!again) {  // an alias or a repeat: one account, one import
          accounts.push_back(std::move(*account));
        }
      } else {
        report.skipped.emplace_back(name, "no such user");
      }
    }
  }
  if (::geteuid() != 0) {
    return context.fail(Failure{kExitRefused,
                                "importing reads every user's ~/.google_authenticator and sets "
                                "their secret: run it as root",
                                "forbidden"});
  }

  for (const Account& account : accounts) {
    auto opened = open_file(account);
    if (!opened) {
      if (!(all && opened.error().no_file)) {
        report.skipped.emplace_back(account.name, opened.error().reason);
      }
      continue;
    }
    auto parsed = parse_google_authenticator_file(opened->text.view());
    if (!parsed) {
      report.skipped.emplace_back(account.name, "~/.google_authenticator: " + parsed.error());
      continue;
    }
    protocol::AdminImportRequest request;
    request.user = account.name;
    request.secret_base32 = std::move(parsed->secret_base32);
    request.period = parsed->step_size;
    request.window_size = parsed->window_size;
    request.time_skew = parsed->time_skew;
    request.used_steps = std::move(parsed->used_steps);
    request.scratch_codes = std::move(parsed->scratch_codes);
    auto result = context.request<protocol::AdminImportResult>(request, account.name);
    if (!result) {
      // No daemon, or not allowed: every other user would fail the same way.
      const auto status = result.error().status;
      if (result.error().exit_code == kExitUnreachable || status == protocol::Status::forbidden ||
          status == protocol::Status::unsupported_version) {
        return context.fail(result.error());
      }
      report.skipped.emplace_back(account.name, result.error().message);
      continue;
    }
    if (!result->imported) {
      report.skipped.emplace_back(account.name, result->reason);
      continue;
    }
    report.imported.push_back(account.name);
    if (!context.global().json) {
      context.out() << "Imported " << account.name << ".\n";
    }
    if (remove) {
      if (auto removed = remove_file(*opened); !removed) {
        context.err() << "kpanel-totp: " << account.home << '/' << kFileName << ": "
                      << removed.error() << '\n';
        report.remove_failed = true;
      } else if (!context.global().json) {
        context.out() << "Removed " << account.home << '/' << kFileName << ".\n";
      }
    }
  }

  if (context.global().json) {
    nlohmann::json out = {{"imported", report.imported}, {"skipped", nlohmann::json::array()}};
    for (const auto& [user, reason] : report.skipped) {
      out["skipped"].push_back({{"user", user}, {"reason", reason}});
    }
    context.out() << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  } else {
    for (const auto& [user, reason] : report.skipped) {
      context.out() << "Skipped " << user << ": " << reason << ".\n";
    }
    context.out() << "Imported " << report.imported.size() << ", skipped " << report.skipped.size()
                  << ".";
    if (!report.imported.empty() && !remove) {
      context.out() << " Check with: kpanel-totp admin list";
    }
    context.out() << '\n';
  }
  return report.skipped.empty() && !report.remove_failed ? kExitOk : kExitRefused;
}

}  // namespace kpanel::cli
