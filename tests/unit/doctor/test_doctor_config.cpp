// The doctor and kpanel-totpd read kpanel-totpd.conf through the same key
// table (daemon/config): for every row, the same good and bad lines get the
// same verdict from both, so a change to the table changes both. And the
// table's reload/restart column is what a reload warns about.
#define BOOST_TEST_MODULE doctor_config
#include <sys/stat.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config/config.hpp"
#include "doctor/doctor.hpp"

namespace {

namespace daemon = kpanel::daemon;
namespace doctor = kpanel::cli::doctor;

// Lines for one key: a whole file the daemon accepts (some keys need another
// to go with them), values it refuses, and the keys the accepted file changes
// that a reload does not apply.
struct Sample {
  std::string valid;
  std::vector<std::string> invalid;
  std::vector<std::string_view> restart;
};

// One entry per key of the table; the test fails for a key added without one.
const std::map<std::string_view, Sample>& samples() {
  static const std::map<std::string_view, Sample> table{
      {"socket", {"socket = /run/other/d.sock\n", {"relative.sock", ""}, {"socket"}}},
      {"state_dir", {"state_dir = /srv/kpanel\n", {"srv/kpanel", ""}, {"state_dir"}}},
      {"key_file", {"key_file = /srv/state.key\n", {"state.key", "\"/srv/k\""}, {"key_file"}}},
      {"issuer", {"issuer = Example #1\n", {"a:b", std::string(65, 'x')}, {}}},
      {"algorithm", {"algorithm = SHA256\n", {"MD5", ""}, {}}},
      {"digits", {"digits = 8\n", {"5", "9", "six"}, {}}},
      {"period", {"period = 60\n", {"14", "301"}, {}}},
      {"window", {"window = 2\n", {"11", "-1"}, {}}},
      {"max_failures", {"max_failures = 10\n", {"0", "101"}, {}}},
      {"lockout_seconds", {"lockout_seconds = 600\nlockout_max_seconds = 7200\n", {"0"}, {}}},
      {"lockout_max_seconds", {"lockout_max_seconds = 7200\n", {"1", "0"}, {}}},
      {"recovery_codes", {"recovery_codes = 5\n", {"0", "101"}, {}}},
      {"enrollment_timeout", {"enrollment_timeout = 120\n", {"59", "86401"}, {}}},
      {"password_service", {"password_service = login\n", {".hidden", ""}, {"password_service"}}},
      {"admin_group", {"admin_group = wheel\n", {"-x", "1234"}, {}}},
      {"enforce_after", {"enforce_after = 2030-01-01\n", {"2030-13-01", "soon"}, {}}},
      {"exempt_group", {"exempt_group = ops\n", {"a b", "123"}, {}}},
      {"remember_seconds", {"remember_seconds = 3600\n", {"86401", "-1", "1h"}, {}}},
      {"store",
       {"store = postgresql\npostgresql_dsn = host=/db\n",
        {"mysql", ""},
        {"store", "postgresql_dsn"}}},
      {"postgresql_dsn",
       {"store = postgresql\npostgresql_dsn = host=/db password=x\n",
        {std::string(2049, 'h')},
        {"store", "postgresql_dsn"}}},
      {"postgresql_allow_unverified",
       {"store = postgresql\npostgresql_dsn = host=db\npostgresql_allow_unverified = yes\n",
        {"maybe", ""},
        {"store", "postgresql_dsn", "postgresql_allow_unverified"}}},
  };
  return table;
}

class FakeRoot {
 public:
  FakeRoot() {
    std::string pattern = (std::filesystem::temp_directory_path() / "kpanel-dc-XXXXXX").string();
    BOOST_TEST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    root_ = pattern;
    std::filesystem::create_directories(root_ / "etc/kpanel-totp");
  }
  FakeRoot(const FakeRoot&) = delete;
  FakeRoot& operator=(const FakeRoot&) = delete;
  ~FakeRoot() {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
  [[nodiscard]] std::filesystem::path config() const {
    return root_ / "etc/kpanel-totp/kpanel-totpd.conf";
  }
  void write_config(const std::string& text) const { std::ofstream(config()) << text; }
  [[nodiscard]] doctor::Tree tree() const { return doctor::Tree(root_); }

 private:
  std::filesystem::path root_;
};

// The daemon's verdict: its loader on the file.
std::vector<std::string> daemon_verdict(const FakeRoot& root) {
  const auto loaded = daemon::load_config(root.config(), {.check_permissions = false});
  return loaded ? std::vector<std::string>{} : loaded.error();
}

// The doctor's verdict: its config check on the same file.
std::vector<std::string> doctor_verdict(const FakeRoot& root, doctor::DaemonSettings* out) {
  doctor::Report report;
  const doctor::DaemonSettings settings = doctor::load_daemon_config(root.tree(), 0, report);
  BOOST_TEST(settings.known);
  std::vector<std::string> problems;
  for (const daemon::ConfigProblem& problem : settings.problems) {
    problems.push_back(daemon::format_problem(root.config().string(), problem));
  }
  if (out != nullptr) {
    *out = settings;
  }
  return problems;
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_key_has_samples) {
  for (const daemon::ConfigKey& key : daemon::config_keys()) {
    BOOST_TEST(samples().contains(key.name), "no sample lines for key " << key.name);
  }
  BOOST_TEST(samples().size() == daemon::config_keys().size());
}

BOOST_AUTO_TEST_CASE(daemon_and_doctor_agree_on_every_key) {
  const FakeRoot root;
  for (const daemon::ConfigKey& key : daemon::config_keys()) {
    const auto found = samples().find(key.name);
    BOOST_TEST_REQUIRE((found != samples().end()));
    const Sample& sample = found->second;
    BOOST_TEST_CONTEXT("key " << key.name) {
      root.write_config(sample.valid);
      doctor::DaemonSettings settings;
      BOOST_TEST(daemon_verdict(root).empty());
      BOOST_TEST(doctor_verdict(root, &settings).empty());
      // The values the doctor goes on with are the daemon's.
      const auto loaded = daemon::load_config(root.config(), {.check_permissions = false});
      BOOST_TEST_REQUIRE(loaded.has_value());
      BOOST_TEST(settings.key_file == daemon::config_value(*loaded, "key_file"));
      BOOST_TEST(settings.enforce_after == daemon::config_value(*loaded, "enforce_after"));
      BOOST_TEST(settings.exempt_group == daemon::config_value(*loaded, "exempt_group"));
      if (key.name == "socket") {
        BOOST_TEST(settings.socket == loaded->socket.string());
      }
      for (const std::string& value : sample.invalid) {
        BOOST_TEST_CONTEXT("value \"" << value << "\"") {
          root.write_config(std::string(key.name) + " = " + value + "\n");
          const auto daemon_problems = daemon_verdict(root);
          BOOST_TEST(!daemon_problems.empty());
          BOOST_TEST(doctor_verdict(root, nullptr) == daemon_problems,
                     boost::test_tools::per_element());
        }
      }
    }
  }
  // Syntax the table does not decide: the same verdict too.
  for (const std::string text :
       {"nonsense\n", "digtis = 6\n", "digits = 6\ndigits = 7\n", "socket = \"/run/x.sock\"\n"}) {
    root.write_config(text);
    const auto daemon_problems = daemon_verdict(root);
    BOOST_TEST(!daemon_problems.empty());
    BOOST_TEST(doctor_verdict(root, nullptr) == daemon_problems, boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(the_doctor_uses_the_daemons_defaults) {
  const FakeRoot root;  // no config file: every default applies
  doctor::Report report;
  const doctor::DaemonSettings settings = doctor::load_daemon_config(root.tree(), 0, report);
  BOOST_TEST(settings.known);
  BOOST_TEST(settings.key_file == daemon::DaemonConfig{}.key_file.string());
  BOOST_TEST(settings.socket.empty());
  BOOST_TEST(doctor::kDaemonConfigPath == daemon::kDefaultConfigPath);
}

BOOST_AUTO_TEST_CASE(restart_keys_come_from_the_column) {
  // The keys read once at start; a reload warns about these and only these.
  const std::vector<std::string_view> restart{"socket",
                                              "state_dir",
                                              "key_file",
                                              "password_service",
                                              "store",
                                              "postgresql_dsn",
                                              "postgresql_allow_unverified"};
  std::vector<std::string_view> column;
  for (const daemon::ConfigKey& key : daemon::config_keys()) {
    if (key.takes_effect == daemon::TakesEffect::on_restart) {
      column.push_back(key.name);
    }
  }
  BOOST_TEST(column == restart, boost::test_tools::per_element());

  const daemon::DaemonConfig running;
  for (const daemon::ConfigKey& key : daemon::config_keys()) {
    const Sample& sample = samples().at(key.name);
    BOOST_TEST_CONTEXT("key " << key.name) {
      const auto loaded = daemon::parse_config(sample.valid, "test");
      BOOST_TEST_REQUIRE(loaded.has_value());
      const auto named = daemon::keys_needing_restart(running, *loaded);
      BOOST_TEST(named == sample.restart, boost::test_tools::per_element());
      BOOST_TEST(daemon::keys_needing_restart(*loaded, *loaded).empty());
    }
  }
  // Only the DSN's password changed: shown the same (masked), still a change.
  const auto before =
      daemon::parse_config("store = postgresql\npostgresql_dsn = host=/db password=a\n", "t");
  const auto after =
      daemon::parse_config("store = postgresql\npostgresql_dsn = host=/db password=b\n", "t");
  BOOST_TEST_REQUIRE((before.has_value() && after.has_value()));
  BOOST_TEST(daemon::keys_needing_restart(*before, *after) ==
                 std::vector<std::string_view>{"postgresql_dsn"},
             boost::test_tools::per_element());
}
