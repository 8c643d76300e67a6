#pragma once
// Rules wired to test collaborators: a store backend, a ManualClock, a fixed
// account table, a fixed password table and a recording audit log.
//
// Accounts: root (0), alice (1000), bob (1001), carol (1002, admin group
// "totp-admins"), eve (1003, exempt group "breakglass"), dave (1004).
// Passwords: "<name>-password".

#include <memory>

#include "common/clock.hpp"
#include "daemon/rules/rules.hpp"
#include "fake_accounts.hpp"
#include "fake_passwords.hpp"
#include "recording_audit.hpp"
#include "store_backends.hpp"

namespace kpanel::daemon::test {

// 2027-01-15T08:00:05Z: 5 s into TOTP step 60'000'000 (period 30).
inline const common::TimePoint kStart = common::from_unix(1'800'000'005);

inline constexpr uid_t kAlice = 1000;
inline constexpr uid_t kBob = 1001;
inline constexpr uid_t kCarol = 1002;
inline constexpr uid_t kEve = 1003;
inline constexpr uid_t kDave = 1004;
inline constexpr uid_t kNoPasswdEntry = 4242;

// The documented defaults, except fewer recovery codes (hashing them is deliberately slow).
[[nodiscard]] Policy test_policy();

class Harness {
 public:
  explicit Harness(std::unique_ptr<StoreBackend> backend, Policy policy = test_policy());

  // A daemon restart: new store and rules on the same data, same clock.
  void restart();
  [[nodiscard]] Rules& rules() { return *rules_; }
  [[nodiscard]] Store& store() { return *store_; }

  common::ManualClock clock{kStart};
  MapAccountDirectory accounts;
  TablePasswordChecker passwords;
  RecordingAuditLog audit;

 private:
  Policy policy_;
  std::unique_ptr<StoreBackend> backend_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Rules> rules_;
};

}  // namespace kpanel::daemon::test
