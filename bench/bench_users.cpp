// The suite's users and their seeding (bench_users.hpp).
#include "bench/bench_users.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <thread>

#include "common/clock.hpp"
#include "common/random.hpp"
#include "daemon/store/secret_box.hpp"
#include "daemon/store/store_postgresql.hpp"
#include "daemon/store/store_sqlite.hpp"

namespace kpanel::bench {
namespace {

std::string user_name(std::size_t index) {
  std::array<char, 32> text{};
  (void)std::snprintf(text.data(), text.size(), "bench%06zu", index);
  return text.data();
}

// The store kpanel-totpd will open: SQLite in `state_dir`, or PostgreSQL at
// `dsn` when it is not empty; secrets sealed with the key in `key_file`.
std::unique_ptr<daemon::Store> open_store(const fs::path& state_dir, const fs::path& key_file,
                                          const std::string& dsn) {
  auto box = daemon::SecretBox::load_or_create(key_file);
  if (!box) {
    (void)std::fprintf(stderr, "kpanel_bench: key: %s\n", box.error().c_str());
    return nullptr;
  }
  const auto opened = [](auto store) -> std::unique_ptr<daemon::Store> {
    if (!store) {
      (void)std::fprintf(stderr, "kpanel_bench: store: %s\n", store.error().message.c_str());
      return nullptr;
    }
    return std::move(*store);
  };
  if (dsn.empty()) return opened(daemon::SqliteStore::open(state_dir, std::move(*box)));
  return opened(daemon::PostgresqlStore::open(dsn, std::move(*box)));
}

// The lines of the file `from` whose first field (the name) is in `names` or
// whose third (the id) is `id`.
std::string copy_lines(const char* from, const std::vector<std::string>& names,
                       const std::string& id) {
  std::ifstream in(from);
  std::string out;
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find(':');
    const auto second = first == std::string::npos ? first : line.find(':', first + 1);
    const auto third = second == std::string::npos ? second : line.find(':', second + 1);
    if (third == std::string::npos) continue;
    const std::string name = line.substr(0, first);
    const bool wanted = std::find(names.begin(), names.end(), name) != names.end() ||
                        line.substr(second + 1, third - second - 1) == id;
    if (wanted) out += line + "\n";
  }
  return out;
}

}  // namespace

bool provide_accounts(const fs::path& dir) {
  const std::string uid = std::to_string(::geteuid());
  const std::string gid = std::to_string(::getegid());
  const fs::path passwd = dir / "passwd";
  const fs::path group = dir / "group";
  {
    std::ofstream out(passwd);
    out << copy_lines("/etc/passwd", {"root"}, uid);
  }
  {
    std::ofstream out(group);
    out << copy_lines("/etc/group", {"root"}, gid) << "kpanelbench:x:3000000:\n";
  }
  if (!fs::exists(KPANEL_BENCH_NSS_WRAPPER) || !fs::exists(KPANEL_BENCH_NSS_MODULE)) {
    (void)std::fprintf(stderr,
                       "kpanel_bench: %s or %s missing (apt-get install libnss-wrapper): the "
                       "suite's users would not be accounts\n",
                       KPANEL_BENCH_NSS_WRAPPER, KPANEL_BENCH_NSS_MODULE);
    return false;
  }
  return ::setenv("NSS_WRAPPER_PASSWD", passwd.c_str(), 1) == 0 &&
         ::setenv("NSS_WRAPPER_GROUP", group.c_str(), 1) == 0 &&
         ::setenv("NSS_WRAPPER_MODULE_SO_PATH", KPANEL_BENCH_NSS_MODULE, 1) == 0 &&
         ::setenv("NSS_WRAPPER_MODULE_FN_PREFIX", "kpanelbench", 1) == 0;
}

std::string hex(std::span<const std::uint8_t> bytes) {
  std::string out;
  for (const std::uint8_t b : bytes) {
    std::array<char, 3> pair{};
    (void)std::snprintf(pair.data(), pair.size(), "%02x", b);
    out += pair.data();
  }
  return out;
}

std::int64_t current_step() {
  return common::totp_step(common::SystemClock().now(), kParams.period);
}

std::string code_for(const BenchUser& user, std::int64_t step) {
  auto code = common::totp_code(user.secret.view(), step, kParams);
  return code ? std::string(code->view()) : std::string("000000");
}

std::string wrong_code_for(const BenchUser& user, std::int64_t step) {
  const std::string right = code_for(user, step);
  std::string wrong = right;
  wrong[0] = static_cast<char>('0' + ((right[0] - '0' + 5) % 10));
  wrong[3] = static_cast<char>('0' + ((right[3] - '0' + 3) % 10));
  return wrong;
}

bool seed(const fs::path& state_dir, const fs::path& key_file, const std::string& dsn,
          std::vector<BenchUser>& users, std::size_t from, std::size_t to) {
  const auto store = open_store(state_dir, key_file, dsn);
  if (!store) return false;
  for (std::size_t i = users.size(); i < to; ++i) {
    auto secret = common::random_bytes(20);
    if (!secret) return false;
    users.push_back({user_name(i), std::move(*secret)});
  }
  const common::TimePoint now = common::SystemClock().now();
  std::atomic<std::size_t> next{from};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  threads.reserve(64);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (std::size_t i = next++; i < to && !failed; i = next++) {
        const BenchUser& user = users[i];
        auto done = store->update(user.name, [&](daemon::UserRecord& record) {
          record.active = daemon::Enrollment{user.secret, kParams, now};
          return true;
        });
        if (!done) {
          (void)std::fprintf(stderr, "kpanel_bench: seeding: %s\n", done.error().message.c_str());
          failed = true;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  return !failed;
}

}  // namespace kpanel::bench
