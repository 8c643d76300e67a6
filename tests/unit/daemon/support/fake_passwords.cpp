#include "fake_passwords.hpp"

#include <utility>

namespace kpanel::daemon::test {

void TablePasswordChecker::set(const std::string& user, const std::string& password) {
  const std::lock_guard lock(mutex_);
  passwords_.insert_or_assign(user, common::SecureString(password));
}

void TablePasswordChecker::fail_with(std::optional<std::string> message) {
  const std::lock_guard lock(mutex_);
  failure_ = std::move(message);
}

int TablePasswordChecker::calls() const {
  const std::lock_guard lock(mutex_);
  return calls_;
}

void TablePasswordChecker::hold() {
  const std::lock_guard lock(mutex_);
  held_ = true;
}

void TablePasswordChecker::release() {
  {
    const std::lock_guard lock(mutex_);
    held_ = false;
  }
  released_.notify_all();
}

int TablePasswordChecker::waiting() const {
  const std::lock_guard lock(mutex_);
  return waiting_;
}

std::expected<bool, PasswordCheckError> TablePasswordChecker::check(
    std::string_view user, const common::SecureString& password) {
  std::unique_lock lock(mutex_);
  ++calls_;
  ++waiting_;
  released_.wait(lock, [this] { return !held_; });
  --waiting_;
  if (failure_) {
    return std::unexpected(PasswordCheckError{*failure_});
  }
  const auto found = passwords_.find(user);
  return found != passwords_.end() && found->second == password;
}

}  // namespace kpanel::daemon::test
