// kpanel-totp admin backup FILE: root only. A consistent snapshot of the
// daemon's state (never the key) to FILE, mode 0600, written atomically,
// while the daemon keeps running. Restoring it: kpanel-totpd --restore FILE.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <ostream>
#include <span>

#include "cli/backup.hpp"
#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "common/atomic_file.hpp"
#include "common/os_text.hpp"
#include "daemon/config/config.hpp"

namespace kpanel::cli {

namespace {

// The daemon's database in state_dir (daemon/store/store_sqlite.cpp names it).
constexpr const char* kStateDatabase = "state.db";

std::string join_problems(const daemon::ConfigProblems& problems) {
  std::string text;
  for (const std::string& problem : problems) {
    text.append(text.empty() ? "" : "; ").append(problem);
  }
  return text;
}

}  // namespace

int run_admin_backup(Context& context, const CommandLine& line) {
  if (!context.global().user.empty()) {
    return context.usage("--user does not apply to admin commands");
  }
  if (::geteuid() != 0) {
    return context.fail(Failure{kExitRefused,
                                "admin backup needs root (it reads the daemon's state_dir): run "
                                "it with sudo",
                                "forbidden"});
  }
  const std::string* given = line.value("config");
  const std::filesystem::path config_path = given != nullptr
                                                ? std::filesystem::path(*given)
                                                : std::filesystem::path(daemon::kDefaultConfigPath);
  const auto config = daemon::load_config(
      config_path, {.check_permissions = true, .missing_is_default = given == nullptr});
  if (!config) {
    return context.fail(Failure{
        kExitRefused, "cannot read the daemon's configuration: " + join_problems(config.error()),
        "config"});
  }
  if (config->store == daemon::StoreBackend::postgresql) {
    return context.fail(Failure{kExitRefused,
                                "store = postgresql: the state is in PostgreSQL; back it up "
                                "there with pg_dump (and key_file separately)",
                                "postgresql"});
  }
  const std::filesystem::path database = config->state_dir / kStateDatabase;
  struct stat info {};
  if (::lstat(database.c_str(), &info) != 0) {
    const int error = errno;
    return context.fail(Failure{kExitRefused,
                                "no state to back up at " + database.string() + ": " +
                                    common::errno_text(error) + " (has kpanel-totpd run?)",
                                "no_state"});
  }
  const std::int64_t now = common::to_unix(context.now());
  auto snapshot = backup::take_snapshot(database, now);
  if (!snapshot) {
    return context.fail(Failure{kExitRefused, snapshot.error() + "; nothing written", "snapshot"});
  }
  const std::string& file = line.positionals.front();
  if (auto written = common::write_file_atomically(file, snapshot->bytes); !written) {
    return context.fail(Failure{kExitRefused, written.error(), "write"});
  }
  const std::string key_file = config->key_file.string();
  if (context.global().json) {
    nlohmann::ordered_json object;
    object["file"] = file;
    object["taken_at"] = iso8601(now);
    object["users"] = snapshot->users;
    object["key_file"] = key_file;
    context.out() << object.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
                  << '\n';
  } else {
    context.out() << "Wrote a snapshot of " << snapshot->users
                  << (snapshot->users == 1 ? " user" : " users") << " to " << file
                  << " (mode 0600, " << iso8601(now) << ").\n"
                  << "It does not contain the key its secrets are sealed with: back up " << key_file
                  << " separately and keep it as safe as the secrets themselves (not next to "
                     "the snapshot).\n"
                  << "To restore: stop kpanel-totpd, then kpanel-totpd --restore " << file << '\n';
  }
  return kExitOk;
}

}  // namespace kpanel::cli
