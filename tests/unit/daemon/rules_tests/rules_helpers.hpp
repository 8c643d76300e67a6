// The rules suite's shared vocabulary: the per-backend test macro, the
// callers and the helpers that drive Rules like a client; test_rules.cpp and
// the files here make one test binary (unit_daemon_rules).
#pragma once

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "../support/harness.hpp"
#include "../support/printing.hpp"
#include "common/base32.hpp"
#include "common/totp.hpp"
#include "daemon/rules/rules.hpp"

namespace kpanel::daemon::test {

namespace protocol = common::protocol;
using namespace std::chrono_literals;
using protocol::LoginDecision;
using protocol::Response;
using protocol::Status;

// Every test runs once per store backend; on one with no server (PostgreSQL
// outside CTest's fixture) it says SKIPPED instead.
#define RULES_TEST(name)                                        \
  template <typename Backend>                                   \
  void name##_body();                                           \
  BOOST_AUTO_TEST_CASE_TEMPLATE(name, Backend, StoreBackends) { \
    if (!backend_available<Backend>()) {                        \
      BOOST_WARN_MESSAGE(false,                                 \
                         "SKIPPED: no PostgreSQL server "       \
                         "(set KPANEL_TEST_POSTGRESQL_DSN "     \
                         "or run through ctest)");              \
      return;                                                   \
    }                                                           \
    name##_body<Backend>();                                     \
  }                                                             \
  template <typename Backend>                                   \
  void name##_body()

inline const Caller kSelf{kAlice, false};
inline const Caller kRoot{0, true};
inline const std::string kUser = "alice";
inline const common::TotpParams kParams{};

// ---- helpers -------------------------------------------------------------------

inline std::int64_t step_now(const Harness& h) { return common::totp_step(h.clock.now(), 30); }

inline std::string code_for(const common::SecureBytes& secret, std::int64_t step) {
  const auto code = common::totp_code(secret.view(), step, kParams);
  BOOST_REQUIRE(code.has_value());
  return std::string(code->view());
}

// The code of the step `offset` steps from now.
inline std::string code_at(const Harness& h, const common::SecureBytes& secret,
                           std::int64_t offset) {
  return code_for(secret, step_now(h) + offset);
}

// A code that is right for no step near now.
inline std::string wrong_code(const Harness& h, const common::SecureBytes& secret) {
  for (int candidate = 0;; ++candidate) {
    std::string code = std::to_string(100000 + candidate);
    bool used = false;
    for (std::int64_t offset = -30; offset <= 30; ++offset) {
      used = used || code == code_at(h, secret, offset);
    }
    if (!used) {
      return code;
    }
  }
}

inline Response verify(Harness& h, const std::string& code, const std::string& user = kUser) {
  protocol::VerifyRequest request;
  request.user = user;
  request.service = "sshd";
  request.rhost = "192.0.2.7";
  request.tty = "ssh";
  request.code = common::SecureString(code);
  return h.rules().verify(kRoot, user, request);
}

inline Response begin(Harness& h, const std::string& user = kUser, bool replace = false,
                      const std::string& proof = "") {
  protocol::EnrollBeginRequest request;
  request.user = user;
  request.replace = replace;
  request.proof = common::SecureString(proof);
  return h.rules().enroll_begin(kSelf, user, request);
}

inline common::SecureBytes secret_of(const Response& response) {
  BOOST_REQUIRE_EQUAL(response.status, Status::ok);
  const auto& result = std::get<protocol::EnrollBeginResult>(response.result);
  auto secret = common::base32_decode(result.secret_base32.view());
  BOOST_REQUIRE(secret.has_value());
  return *secret;
}

inline Response confirm(Harness& h, const std::string& code, const std::string& user = kUser) {
  protocol::EnrollConfirmRequest request;
  request.user = user;
  request.code = common::SecureString(code);
  return h.rules().enroll_confirm(kSelf, user, request);
}

inline std::vector<std::string> codes_of(const Response& response) {
  BOOST_REQUIRE_EQUAL(response.status, Status::ok);
  std::vector<std::string> codes;
  for (const auto& code : std::get<protocol::RecoveryCodesResult>(response.result).codes) {
    codes.emplace_back(code.view());
  }
  return codes;
}

struct Enrolled {
  common::SecureBytes secret;
  std::vector<std::string> recovery_codes;
};

// Enrolls `user`, then moves the clock one step on, so that the confirming
// code is spent and the next step's code is fresh.
inline Enrolled enroll(Harness& h, const std::string& user = kUser) {
  Enrolled enrolled;
  enrolled.secret = secret_of(begin(h, user));
  enrolled.recovery_codes = codes_of(confirm(h, code_at(h, enrolled.secret, 0), user));
  h.clock.advance(30s);
  return enrolled;
}

inline protocol::UserStatus status_of(Harness& h, const Caller& caller,
                                      const std::string& user = kUser) {
  protocol::StatusRequest request;
  request.user = user;
  const Response response = h.rules().status(caller, user, request);
  BOOST_REQUIRE_EQUAL(response.status, Status::ok);
  return std::get<protocol::StatusResult>(response.result).status;
}

inline Response disable(Harness& h, const std::string& password, const std::string& code) {
  protocol::DisableRequest request;
  request.password = common::SecureString(password);
  request.code = common::SecureString(code);
  return h.rules().disable(kSelf, kUser, request);
}

inline Response regenerate(Harness& h, const std::string& code) {
  protocol::RegenerateRecoveryCodesRequest request;
  request.code = common::SecureString(code);
  return h.rules().regenerate_recovery_codes(kSelf, kUser, request);
}

// A login_check as the module sends it for an sshd login; tests set the
// options and items they are about.
inline protocol::LoginCheckRequest login_check_request(const std::string& user) {
  protocol::LoginCheckRequest request;
  request.user = user;
  request.service = "sshd";
  return request;
}

inline Response login_check(Harness& h, const std::string& user, bool nullok = false,
                            bool enroll_option = false) {
  protocol::LoginCheckRequest request = login_check_request(user);
  request.nullok = nullok;
  request.enroll = enroll_option;
  return h.rules().login_check(kRoot, user, request);
}

inline LoginDecision decision_of(const Response& response) {
  BOOST_REQUIRE_EQUAL(response.status, Status::ok);
  return std::get<protocol::LoginCheckResult>(response.result).decision;
}

// Fails until a lockout starts; returns the reply that started it.
inline Response fail_until_locked(Harness& h, const Enrolled& enrolled) {
  for (int i = 0; i < 100; ++i) {
    Response response = verify(h, wrong_code(h, enrolled.secret));
    if (response.status != Status::wrong_code) {
      return response;
    }
  }
  BOOST_FAIL("no lockout after 100 failures");
  return {};
}

inline std::string lower_spaced(const std::string& code) {
  std::string out;
  for (const char c : code) {
    if (c == '-') {
      out.push_back(' ');
    } else {
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
    }
  }
  return out;
}

}  // namespace kpanel::daemon::test
