#pragma once
// Checking an account password (the `disable` operation needs one).

#include <cstdint>
#include <expected>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "common/secure_buffer.hpp"

namespace kpanel::daemon {

// The check could not be made (PAM misconfigured, daemon not in group shadow,
// ...): neither right nor wrong. `message` is for the daemon's log and never
// contains the password.
struct PasswordCheckError {
  std::string message;
};

class PasswordChecker {
 public:
  PasswordChecker() = default;
  PasswordChecker(const PasswordChecker&) = delete;
  PasswordChecker& operator=(const PasswordChecker&) = delete;
  PasswordChecker(PasswordChecker&&) = delete;
  PasswordChecker& operator=(PasswordChecker&&) = delete;
  virtual ~PasswordChecker() = default;

  // True when `password` is `user`'s password and the account is usable.
  [[nodiscard]] virtual std::expected<bool, PasswordCheckError> check(
      std::string_view user, const common::SecureString& password) = 0;
};

// pam_authenticate + pam_acct_mgmt through the PAM service `service`
// (config key password_service; config/pam.d/kpanel-totp is the shipped one).
// Blocking (a PAM module may do network or slow hashing), so it runs in the
// daemon's slow lane (lanes.hpp), never on its event loop or fast workers.
// Checks are serialized, since not every PAM module in an admin's stack is
// thread-safe; libpam's failure delay is turned off (see no_fail_delay).
class PamPasswordChecker final : public PasswordChecker {
 public:
  explicit PamPasswordChecker(std::string service) : service_(std::move(service)) {}

  [[nodiscard]] std::expected<bool, PasswordCheckError> check(
      std::string_view user, const common::SecureString& password) override;

 private:
  std::string service_;
  std::mutex mutex_;
};

}  // namespace kpanel::daemon
