#include "harness.hpp"

#include <utility>

namespace kpanel::daemon::test {

Policy test_policy() {
  Policy policy;
  policy.recovery_codes = 4;
  policy.admin_group = "totp-admins";
  return policy;
}

Harness::Harness(std::unique_ptr<StoreBackend> backend, Policy policy)
    : policy_(std::move(policy)), backend_(std::move(backend)) {
  accounts.add_user(0, "root", {"root"});
  accounts.add_user(kAlice, "alice", {"alice"});
  accounts.add_user(kBob, "bob", {"bob"});
  accounts.add_user(kCarol, "carol", {"carol", "totp-admins"});
  accounts.add_user(kEve, "eve", {"eve", "breakglass"});
  accounts.add_user(kDave, "dave", {"dave"});
  for (const char* name : {"root", "alice", "bob", "carol", "eve", "dave"}) {
    passwords.set(name, std::string(name) + "-password");
  }
  restart();
}

void Harness::restart() {
  const std::shared_ptr<const Policy> current = rules_ ? rules_->policy() : nullptr;
  rules_.reset();
  store_.reset();
  store_ = backend_->open();
  rules_ = std::make_unique<Rules>(current ? *current : policy_, *store_, clock, passwords,
                                   accounts, audit);
}

}  // namespace kpanel::daemon::test
