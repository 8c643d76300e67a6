#pragma once
// A PasswordChecker with a fixed user -> password table, for tests.
// fail_with() makes checks fail as a broken PAM stack would; hold() keeps
// checks waiting inside check() until release(), as a slow PAM stack would.

#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "daemon/system/password_check.hpp"

namespace kpanel::daemon::test {

class TablePasswordChecker final : public PasswordChecker {
 public:
  void set(const std::string& user, const std::string& password);
  void fail_with(std::optional<std::string> message);
  [[nodiscard]] int calls() const;
  void hold();
  void release();
  // Checks waiting inside check() while held.
  [[nodiscard]] int waiting() const;

  [[nodiscard]] std::expected<bool, PasswordCheckError> check(
      std::string_view user, const common::SecureString& password) override;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, common::SecureString, std::less<>> passwords_;
  std::optional<std::string> failure_;
  int calls_ = 0;
  bool held_ = false;
  int waiting_ = 0;
  std::condition_variable released_;
};

}  // namespace kpanel::daemon::test
