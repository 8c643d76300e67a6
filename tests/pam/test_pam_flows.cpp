// pam_kpanel_totp.so inside real Linux-PAM: pam_wrapper (LD_PRELOAD) makes
// pam_start read the service files CMake generated for this test, libpamtest
// runs pam_authenticate/pam_setcred, and a fake daemon on the socket the
// services name answers with scripted replies and records what it was asked.
#define BOOST_TEST_MODULE pam_flows
#include <security/pam_appl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "common/protocol.hpp"
#include "fake_daemon.hpp"

extern "C" {  // libpamtest.h has no C++ guard of its own
#include <libpamtest.h>
}

namespace {

namespace protocol = kpanel::common::protocol;
using kpanel::test::FakeDaemon;
using kpanel::test::login_check_answer;
using kpanel::test::status_answer;
using kpanel::test::verify_answer;
using protocol::LoginDecision;
using protocol::Status;

constexpr const char* kSocket = KPANEL_PAM_TEST_SOCKET;
constexpr const char* kUser = "alice";
constexpr std::string_view kPrompt = "Verification code: ";

// The application side of the conversation: answers prompts in order, records
// every message with its style.
struct Dialogue {
  std::vector<std::string> answers{};
  bool null_responses = false;  // answer PAM_SUCCESS with no response array
  std::size_t next = 0;
  std::vector<std::pair<int, std::string>> seen{};

  [[nodiscard]] std::vector<std::string> of_style(int style) const {
    std::vector<std::string> out;
    for (const auto& [s, text] : seen) {
      if (s == style) out.push_back(text);
    }
    return out;
  }
  [[nodiscard]] std::vector<std::string> prompts() const {
    std::vector<std::string> out;
    for (const auto& [s, text] : seen) {
      if (s == PAM_PROMPT_ECHO_OFF || s == PAM_PROMPT_ECHO_ON) out.push_back(text);
    }
    return out;
  }
  [[nodiscard]] bool showed(int style, std::string_view needle) const {
    for (const auto& [s, text] : seen) {
      if (s == style && text.find(needle) != std::string::npos) return true;
    }
    return false;
  }
};

int converse(int count, const pam_message** messages, pam_response** responses, void* data) {
  auto* dialogue = static_cast<Dialogue*>(data);
  if (count <= 0 || responses == nullptr) return PAM_CONV_ERR;
  for (int i = 0; i < count; ++i) {
    dialogue->seen.emplace_back(messages[i]->msg_style, messages[i]->msg);
  }
  if (dialogue->null_responses) {
    *responses = nullptr;
    return PAM_SUCCESS;
  }
  auto* replies = static_cast<pam_response*>(
      std::calloc(static_cast<std::size_t>(count), sizeof(pam_response)));
  if (replies == nullptr) return PAM_BUF_ERR;
  for (int i = 0; i < count; ++i) {
    const int style = messages[i]->msg_style;
    if (style != PAM_PROMPT_ECHO_OFF && style != PAM_PROMPT_ECHO_ON) continue;
    if (dialogue->next >= dialogue->answers.size()) {
      for (int k = 0; k < i; ++k) std::free(replies[k].resp);
      std::free(replies);
      return PAM_CONV_ERR;  // more prompts than the test expected
    }
    replies[i].resp = ::strdup(dialogue->answers[dialogue->next++].c_str());
  }
  *responses = replies;
  return PAM_SUCCESS;
}

// Sends this process's stderr (where pam_wrapper writes what the module gives
// pam_syslog) to a file while it lives, at pam_wrapper's most verbose level.
class SyslogCapture {
 public:
  SyslogCapture() : saved_(::dup(STDERR_FILENO)) {
    std::array<char, 64> name{};
    std::snprintf(name.data(), name.size(), "/tmp/kpanel-pam-log-XXXXXX");
    file_ = ::mkstemp(name.data());
    path_ = name.data();
    BOOST_REQUIRE(saved_ >= 0 && file_ >= 0);
    std::fflush(stderr);
    BOOST_REQUIRE(::dup2(file_, STDERR_FILENO) >= 0);
    ::setenv("PAM_WRAPPER_DEBUGLEVEL", "3", 1);
  }
  SyslogCapture(const SyslogCapture&) = delete;
  SyslogCapture& operator=(const SyslogCapture&) = delete;
  ~SyslogCapture() {
    restore();
    ::close(file_);
    ::unlink(path_.c_str());
  }
  // Stops capturing and returns everything logged.
  std::string text() {
    restore();
    std::string out;
    std::array<char, 4096> buffer{};
    ::lseek(file_, 0, SEEK_SET);
    for (ssize_t got = 0; (got = ::read(file_, buffer.data(), buffer.size())) > 0;) {
      out.append(buffer.data(), static_cast<std::size_t>(got));
    }
    return out;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
    ::unsetenv("PAM_WRAPPER_DEBUGLEVEL");
  }
  int saved_;
  int file_ = -1;
  std::string path_;
};

struct Login {
  std::string service{};
  std::string user = kUser;
  std::string rhost = "192.0.2.7";
  std::string tty = "ssh";
};

// Runs pam_authenticate (and pam_setcred after a success) through libpamtest
// and returns what pam_authenticate returned.
int authenticate(const Login& login, Dialogue& dialogue) {
  pam_conv conversation{.conv = converse, .appdata_ptr = &dialogue};
  pam_handle_t* handle = nullptr;
  // Started here (through pam_wrapper) so the items an sshd would set are set.
  BOOST_REQUIRE_EQUAL(pam_start(login.service.c_str(), login.user.c_str(), &conversation, &handle),
                      PAM_SUCCESS);
  BOOST_REQUIRE_EQUAL(pam_set_item(handle, PAM_RHOST, login.rhost.c_str()), PAM_SUCCESS);
  BOOST_REQUIRE_EQUAL(pam_set_item(handle, PAM_TTY, login.tty.c_str()), PAM_SUCCESS);
  std::array<pam_testcase, 2> cases{};
  cases[0].pam_operation = PAMTEST_AUTHENTICATE;
  cases[0].expected_rv = PAM_SUCCESS;
  cases[1].pam_operation = PAMTEST_SETCRED;
  cases[1].expected_rv = PAM_SUCCESS;
  // libpamtest stops at the first case that differs and ends the handle.
  const pamtest_err error = _pamtest_conv(login.service.c_str(), login.user.c_str(), converse,
                                          &dialogue, cases.data(), cases.size(), handle);
  if (cases[0].op_rv == PAM_SUCCESS) {
    BOOST_TEST(error == PAMTEST_ERR_OK, "pam_setcred after a success: " << cases[1].op_rv);
  } else {
    BOOST_TEST(error == PAMTEST_ERR_CASE);
  }
  BOOST_TEST_MESSAGE(login.service << ": pam_authenticate returned " << cases[0].op_rv);
  return cases[0].op_rv;
}

int authenticate(const std::string& service, Dialogue& dialogue) {
  return authenticate(Login{.service = service}, dialogue);
}

// A stack whose only module returned PAM_IGNORE has no module that decided:
// Linux-PAM then answers PAM_PERM_DENIED (PAM_MUST_FAIL_CODE). The stacks used
// here have one module, so this value means the module said PAM_IGNORE (the
// module itself never returns PAM_PERM_DENIED).
constexpr int kStackSawIgnore = PAM_PERM_DENIED;

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <typename T>
const T& request_as(const std::vector<protocol::Request>& requests, std::size_t index) {
  BOOST_REQUIRE_GT(requests.size(), index);
  const T* request = std::get_if<T>(&requests[index]);
  BOOST_REQUIRE_MESSAGE(request != nullptr,
                        "request " << index << " is " << protocol::op_name(requests[index]));
  return *request;
}

// kSocket as a sockaddr (CMake keeps the path well inside sun_path).
sockaddr_un socket_address() {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, kSocket, std::strlen(kSocket) + 1);
  return address;
}

// call_daemon trusts only sockets and peers owned by root or kpanel-totp.
boost::test_tools::assertion_result root_only(boost::unit_test::test_unit_id /*id*/) {
  boost::test_tools::assertion_result result(::geteuid() == 0);
  result.message() << "the fake daemon must run as root to be trusted";
  return result;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pam_flows, *boost::unit_test::precondition(root_only))

BOOST_AUTO_TEST_CASE(code_accepted_and_request_carries_the_login) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::prompt));
  daemon.reply(verify_answer(false, 10));
  Dialogue dialogue{.answers = {"123456"}};
  BOOST_TEST(authenticate("kp_basic", dialogue) == PAM_SUCCESS);

  BOOST_TEST(dialogue.of_style(PAM_PROMPT_ECHO_OFF) ==
             std::vector<std::string>{std::string(kPrompt)});
  BOOST_TEST(dialogue.of_style(PAM_ERROR_MSG).empty());
  const auto requests = daemon.requests();
  BOOST_REQUIRE_EQUAL(requests.size(), 2U);
  const auto& check = request_as<protocol::LoginCheckRequest>(requests, 0);
  BOOST_TEST(check.user == kUser);
  BOOST_TEST(check.service == "kp_basic");
  BOOST_TEST(check.rhost == "192.0.2.7");
  BOOST_TEST(check.tty == "ssh");
  BOOST_TEST(!check.nullok);
  BOOST_TEST(!check.enroll);
  const auto& verify = request_as<protocol::VerifyRequest>(requests, 1);
  BOOST_TEST(verify.user == kUser);
  BOOST_TEST(verify.service == "kp_basic");
  BOOST_TEST(verify.rhost == "192.0.2.7");
  BOOST_TEST(verify.tty == "ssh");
  BOOST_TEST(verify.code.view() == "123456");
}

BOOST_AUTO_TEST_CASE(custom_prompt_is_used) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::prompt));
  daemon.reply(verify_answer(false, 10));
  Dialogue dialogue{.answers = {"123456"}};
  BOOST_TEST(authenticate("kp_prompt", dialogue) == PAM_SUCCESS);
  BOOST_TEST(dialogue.prompts() == std::vector<std::string>{"Code from your phone: "});
}

BOOST_AUTO_TEST_CASE(wrong_code_is_refused) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::prompt));
  daemon.reply(protocol::Response{.status = Status::wrong_code, .failures_left = 2});
  Dialogue dialogue{.answers = {"000000"}};
  BOOST_TEST(authenticate("kp_basic", dialogue) == PAM_AUTH_ERR);
  BOOST_TEST(dialogue.of_style(PAM_ERROR_MSG) == std::vector<std::string>{"Wrong code."});
}

BOOST_AUTO_TEST_CASE(replayed_code_is_refused_with_its_own_message) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::prompt));
  daemon.reply(status_answer(Status::replayed));
  Dialogue dialogue{.answers = {"123456"}};
  BOOST_TEST(authenticate("kp_ignore", dialogue) == PAM_AUTH_ERR);
  BOOST_TEST(dialogue.of_style(PAM_ERROR_MSG) ==
             std::vector<std::string>{"That code was already used; wait for the next one."});
}

// The daemon refuses a name NSS does not know: PAM_USER_UNKNOWN, at either request.
BOOST_AUTO_TEST_CASE(name_unknown_to_the_daemon_is_user_unknown) {
  FakeDaemon daemon(kSocket);
  daemon.reply(status_answer(Status::no_such_user));
  Dialogue at_check;
  BOOST_TEST(authenticate("kp_ignore", at_check) == PAM_USER_UNKNOWN);
  BOOST_TEST(at_check.prompts().empty());

  daemon.reply(login_check_answer(LoginDecision::prompt));
  daemon.reply(status_answer(Status::no_such_user));
  Dialogue at_verify{.answers = {"123456"}};
  BOOST_TEST(authenticate("kp_basic", at_verify) == PAM_USER_UNKNOWN);
}

BOOST_AUTO_TEST_CASE(locked_at_login_check_is_refused_without_a_prompt) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::locked, {}, now_seconds() + 290));
  Dialogue dialogue;
  BOOST_TEST(authenticate("kp_basic", dialogue) == PAM_AUTH_ERR);
  BOOST_TEST(dialogue.prompts().empty());
  BOOST_TEST(dialogue.of_style(PAM_ERROR_MSG) ==
             std::vector<std::string>{"Too many failed attempts; try again in 5 minutes."});
  BOOST_TEST(daemon.requests().size() == 1U);
}

BOOST_AUTO_TEST_CASE(locked_at_verify_is_refused) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::prompt));
  daemon.reply(status_answer(Status::locked, now_seconds() + 50));
  Dialogue dialogue{.answers = {"111111"}};
  BOOST_TEST(authenticate("kp_basic", dialogue) == PAM_AUTH_ERR);
  BOOST_TEST(dialogue.of_style(PAM_ERROR_MSG) ==
             std::vector<std::string>{"Too many failed attempts; try again in 1 minute."});
}

BOOST_AUTO_TEST_CASE(recovery_code_accepted_says_how_many_are_left) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::prompt));
  daemon.reply(verify_answer(true, 3));
  Dialogue dialogue{.answers = {"abcd-efgh-2345"}};
  BOOST_TEST(authenticate("kp_basic", dialogue) == PAM_SUCCESS);
  BOOST_TEST(dialogue.of_style(PAM_TEXT_INFO) ==
             std::vector<std::string>{"Recovery code accepted; 3 left."});
  const auto requests = daemon.requests();
  BOOST_TEST(request_as<protocol::VerifyRequest>(requests, 1).code.view() == "abcd-efgh-2345");
}

BOOST_AUTO_TEST_CASE(nullok_not_enrolled_is_ignored_without_a_prompt) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::ignore));
  Dialogue dialogue;
  BOOST_TEST(authenticate("kp_nullok", dialogue) == kStackSawIgnore);
  BOOST_TEST(dialogue.seen.empty());
  const auto requests = daemon.requests();
  BOOST_REQUIRE_EQUAL(requests.size(), 1U);
  BOOST_TEST(request_as<protocol::LoginCheckRequest>(requests, 0).nullok);
}

// PAM_IGNORE really is what the module returned: in a stack where a later
// module decides, the login goes on to it.
BOOST_AUTO_TEST_CASE(ignore_leaves_the_decision_to_the_rest_of_the_stack) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::ignore));
  Dialogue dialogue;
  BOOST_TEST(authenticate("kp_nullok_then_permit", dialogue) == PAM_SUCCESS);
  daemon.reply(login_check_answer(LoginDecision::refuse));
  Dialogue refused;
  BOOST_TEST(authenticate("kp_nullok_then_permit", refused) == PAM_AUTH_ERR);
}

BOOST_AUTO_TEST_CASE(grace_period_notice_is_shown) {
  FakeDaemon daemon(kSocket);
  const std::string notice =
      "Set up two-factor authentication with: kpanel-totp enroll (12 days left)";
  daemon.reply(login_check_answer(LoginDecision::ignore, notice));
  Dialogue dialogue;
  BOOST_TEST(authenticate("kp_basic", dialogue) == kStackSawIgnore);
  BOOST_TEST(dialogue.of_style(PAM_TEXT_INFO) == std::vector<std::string>{notice});
  BOOST_TEST(dialogue.prompts().empty());
}

BOOST_AUTO_TEST_CASE(exempt_user_passes_without_a_prompt) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::pass));
  Dialogue dialogue;
  BOOST_TEST(authenticate("kp_basic", dialogue) == PAM_SUCCESS);
  BOOST_TEST(dialogue.prompts().empty());
}

BOOST_AUTO_TEST_CASE(not_enrolled_and_required_is_refused) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::refuse));
  Dialogue dialogue;
  BOOST_TEST(authenticate("kp_basic", dialogue) == PAM_AUTH_ERR);
  BOOST_TEST(dialogue.prompts().empty());
  BOOST_TEST(dialogue.of_style(PAM_ERROR_MSG) ==
             std::vector<std::string>{
                 "Two-factor authentication is required for this account; ask an administrator."});
}

BOOST_AUTO_TEST_CASE(unreachable_daemon_with_unavailable_deny) {
  ::unlink(kSocket);
  Dialogue dialogue;
  BOOST_TEST(authenticate("kp_basic", dialogue) == PAM_AUTHINFO_UNAVAIL);
  BOOST_TEST(dialogue.prompts().empty());
  BOOST_TEST(dialogue.showed(PAM_ERROR_MSG, "unavailable"));
}

BOOST_AUTO_TEST_CASE(unreachable_daemon_with_unavailable_ignore) {
  ::unlink(kSocket);
  Dialogue dialogue;
  BOOST_TEST(authenticate("kp_ignore", dialogue) == kStackSawIgnore);
  BOOST_TEST(dialogue.seen.empty());
}

BOOST_AUTO_TEST_CASE(silent_daemon_times_out_as_unavailable) {
  FakeDaemon daemon(kSocket);
  daemon.hang();
  Dialogue dialogue;
  const auto started = std::chrono::steady_clock::now();
  BOOST_TEST(authenticate("kp_timeout", dialogue) == PAM_AUTHINFO_UNAVAIL);
  const auto took = std::chrono::steady_clock::now() - started;
  BOOST_TEST(took >= std::chrono::milliseconds(900));
  BOOST_TEST(took < std::chrono::seconds(5));
  BOOST_TEST(daemon.requests().size() == 1U);  // it was asked, and never answered
}

// unavailable=ignore is for "no daemon", not for one that is there but stalled:
// any local user can stall it (a flood), and that must not switch the factor
// off for everyone.
BOOST_AUTO_TEST_CASE(silent_daemon_with_unavailable_ignore_is_refused) {
  FakeDaemon daemon(kSocket);
  daemon.hang();
  Dialogue dialogue;
  const auto started = std::chrono::steady_clock::now();
  BOOST_TEST(authenticate("kp_timeout_ignore", dialogue) == PAM_AUTHINFO_UNAVAIL);
  const auto took = std::chrono::steady_clock::now() - started;
  BOOST_TEST(took < std::chrono::seconds(5));
  BOOST_TEST(dialogue.prompts().empty());
  BOOST_TEST(dialogue.showed(PAM_ERROR_MSG, "unavailable"));
  BOOST_TEST(daemon.requests().size() == 1U);  // it was asked, and never answered
}

// A daemon whose listen backlog is full (flooded, or stopped) makes connect()
// wait and fail with EAGAIN: a live daemon, refused under unavailable=ignore.
BOOST_AUTO_TEST_CASE(full_backlog_with_unavailable_ignore_is_refused) {
  ::unlink(kSocket);
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int filler = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  const sockaddr_un address = socket_address();
  const auto* raw = reinterpret_cast<const sockaddr*>(&address);
  BOOST_REQUIRE_EQUAL(::bind(listener, raw, sizeof address), 0);
  BOOST_REQUIRE_EQUAL(::listen(listener, 0), 0);  // holds one connection, never accepted
  BOOST_REQUIRE_EQUAL(::connect(filler, raw, sizeof address), 0);
  Dialogue dialogue;
  BOOST_TEST(authenticate("kp_timeout_ignore", dialogue) == PAM_AUTHINFO_UNAVAIL);
  BOOST_TEST(dialogue.showed(PAM_ERROR_MSG, "unavailable"));
  ::close(filler);
  ::close(listener);
  ::unlink(kSocket);
}

// A socket file nobody listens on (a daemon that stopped without removing it):
// connect() is refused, nobody is there, so unavailable=ignore applies.
BOOST_AUTO_TEST_CASE(stale_socket_with_unavailable_ignore_is_ignored) {
  ::unlink(kSocket);
  const int bound = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un address = socket_address();
  BOOST_REQUIRE_EQUAL(::bind(bound, reinterpret_cast<const sockaddr*>(&address), sizeof address),
                      0);
  Dialogue ignored;
  BOOST_TEST(authenticate("kp_ignore", ignored) == kStackSawIgnore);
  Dialogue denied;
  BOOST_TEST(authenticate("kp_basic", denied) == PAM_AUTHINFO_UNAVAIL);
  ::close(bound);
  ::unlink(kSocket);
}

// An overloaded (busy) or failing (internal_error) daemon answered: it is
// there, so unavailable=ignore does not apply.
BOOST_AUTO_TEST_CASE(busy_or_failing_daemon_with_unavailable_ignore_is_refused) {
  FakeDaemon daemon(kSocket);
  for (const auto answer : {Status::busy, Status::internal_error}) {
    BOOST_TEST_CONTEXT(protocol::to_string(answer)) {
      daemon.reply(status_answer(answer));
      Dialogue dialogue;
      BOOST_TEST(authenticate("kp_ignore", dialogue) == PAM_AUTHINFO_UNAVAIL);
      BOOST_TEST(dialogue.prompts().empty());
      BOOST_TEST(dialogue.showed(PAM_ERROR_MSG, "unavailable"));

      daemon.reply(login_check_answer(LoginDecision::prompt));
      daemon.reply(status_answer(answer));
      Dialogue at_verify{.answers = {"123456"}};
      BOOST_TEST(authenticate("kp_ignore", at_verify) == PAM_AUTHINFO_UNAVAIL);
    }
  }
}

// Once the user has typed a code, a daemon that stops answering must not turn
// it into PAM_IGNORE (an attacker could stall the daemon on purpose).
BOOST_AUTO_TEST_CASE(daemon_silent_at_verify_refuses_even_with_unavailable_ignore) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::prompt));
  daemon.hang();
  Dialogue dialogue{.answers = {"123456"}};
  BOOST_TEST(authenticate("kp_timeout_ignore", dialogue) == PAM_AUTHINFO_UNAVAIL);
}

BOOST_AUTO_TEST_CASE(store_unavailable_refuses_even_with_unavailable_ignore) {
  FakeDaemon daemon(kSocket);
  daemon.reply(status_answer(Status::store_unavailable));
  Dialogue dialogue;
  BOOST_TEST(authenticate("kp_ignore", dialogue) == PAM_AUTH_ERR);
  BOOST_TEST(dialogue.showed(PAM_ERROR_MSG, "store"));

  daemon.reply(login_check_answer(LoginDecision::prompt));
  daemon.reply(status_answer(Status::store_unavailable));
  Dialogue at_verify{.answers = {"123456"}};
  BOOST_TEST(authenticate("kp_ignore", at_verify) == PAM_AUTH_ERR);
}

BOOST_AUTO_TEST_CASE(socket_owned_by_someone_else_is_refused) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::pass));
  BOOST_REQUIRE_EQUAL(::lchown(kSocket, 65534, 65534), 0);  // nobody
  Dialogue dialogue;
  BOOST_TEST(authenticate("kp_ignore", dialogue) == PAM_AUTH_ERR);
  BOOST_TEST(daemon.requests().empty());
}

BOOST_AUTO_TEST_CASE(unknown_option_fails_closed) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::pass));
  Dialogue dialogue;
  BOOST_TEST(authenticate("kp_bad_option", dialogue) == PAM_AUTH_ERR);
  BOOST_TEST(daemon.requests().empty());
  Dialogue timeout_dialogue;
  BOOST_TEST(authenticate("kp_bad_timeout", timeout_dialogue) == PAM_AUTH_ERR);
  BOOST_TEST(daemon.requests().empty());
}

BOOST_AUTO_TEST_CASE(empty_code_is_refused_without_asking_the_daemon) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::prompt));
  Dialogue dialogue{.answers = {""}};
  BOOST_TEST(authenticate("kp_basic", dialogue) == PAM_AUTH_ERR);
  BOOST_TEST(daemon.requests().size() == 1U);
  BOOST_TEST(dialogue.of_style(PAM_ERROR_MSG) == std::vector<std::string>{"No code entered."});
}

BOOST_AUTO_TEST_CASE(overlong_code_is_refused_without_asking_the_daemon) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::prompt));
  Dialogue dialogue{.answers = {std::string(protocol::kMaxCodeLength + 1, '7')}};
  BOOST_TEST(authenticate("kp_basic", dialogue) == PAM_AUTH_ERR);
  BOOST_TEST(daemon.requests().size() == 1U);
}

BOOST_AUTO_TEST_CASE(application_without_an_answer_is_a_conversation_error) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::prompt));
  Dialogue dialogue{.null_responses = true};
  BOOST_TEST(authenticate("kp_basic", dialogue) == PAM_CONV_ERR);
  BOOST_TEST(daemon.requests().size() == 1U);
}

BOOST_AUTO_TEST_CASE(unusable_user_name_is_unknown) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::pass));
  Dialogue dialogue;
  BOOST_TEST(authenticate(Login{.service = "kp_basic", .user = "../etc/passwd"}, dialogue) ==
             PAM_USER_UNKNOWN);
  Dialogue colon;
  BOOST_TEST(authenticate(Login{.service = "kp_basic", .user = "a:b"}, colon) == PAM_USER_UNKNOWN);
  BOOST_TEST(daemon.requests().empty());
}

BOOST_AUTO_TEST_CASE(control_characters_in_rhost_are_neutralised) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::pass));
  Dialogue dialogue;
  BOOST_TEST(authenticate(Login{.service = "kp_basic", .rhost = "evil\nhost"}, dialogue) ==
             PAM_SUCCESS);
  const auto requests = daemon.requests();
  BOOST_TEST(request_as<protocol::LoginCheckRequest>(requests, 0).rhost == "evil?host");
}

BOOST_AUTO_TEST_CASE(inline_enrollment) {
  FakeDaemon daemon(kSocket);
  const std::string secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
  const std::string uri = "otpauth://totp/Kapsule:alice%40host?secret=" + secret +
                          "&issuer=Kapsule&algorithm=SHA1&digits=6&period=30";
  const std::string qr = "\u2588\u2580\u2588\n\u2584 \u2584";
  daemon.reply(login_check_answer(LoginDecision::enroll));
  daemon.reply(protocol::Response{
      .status = Status::ok,
      .result = protocol::EnrollBeginResult{.uri = kpanel::common::SecureString(uri),
                                            .secret_base32 = kpanel::common::SecureString(secret),
                                            .expires_at = now_seconds() + 600,
                                            .qr_text = kpanel::common::SecureString(qr)}});
  daemon.reply(protocol::Response{.status = Status::wrong_code});
  daemon.reply(protocol::Response{.status = Status::ok,
                                  .result = protocol::RecoveryCodesResult{
                                      .codes = {kpanel::common::SecureString("aaaa-bbbb-cccc"),
                                                kpanel::common::SecureString("dddd-eeee-ffff")}}});
  Dialogue dialogue{.answers = {"000000", "123456", ""}};
  BOOST_TEST(authenticate("kp_enroll", dialogue) == PAM_SUCCESS);

  BOOST_TEST(dialogue.showed(PAM_TEXT_INFO, qr));
  BOOST_TEST(dialogue.showed(PAM_TEXT_INFO, uri));
  BOOST_TEST(dialogue.showed(PAM_TEXT_INFO, "JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP"));
  BOOST_TEST(dialogue.showed(PAM_ERROR_MSG, "Wrong code; try again."));
  BOOST_TEST(dialogue.showed(PAM_TEXT_INFO, "aaaa-bbbb-cccc"));
  BOOST_TEST(dialogue.showed(PAM_TEXT_INFO, "dddd-eeee-ffff"));
  const std::vector<std::string> expected_prompts{std::string(kPrompt), std::string(kPrompt),
                                                  "Press Enter once you have saved these codes"};
  BOOST_TEST(dialogue.prompts() == expected_prompts);
  BOOST_TEST(dialogue.of_style(PAM_PROMPT_ECHO_ON) ==
             std::vector<std::string>{"Press Enter once you have saved these codes"});
  // The recovery codes come after the last code prompt, before the final one.
  std::size_t codes_at = 0;
  std::size_t enter_at = 0;
  for (std::size_t i = 0; i < dialogue.seen.size(); ++i) {
    if (dialogue.seen[i].second.find("aaaa-bbbb-cccc") != std::string::npos) codes_at = i;
    if (dialogue.seen[i].first == PAM_PROMPT_ECHO_ON) enter_at = i;
  }
  BOOST_TEST(codes_at + 1 == enter_at);

  const auto requests = daemon.requests();
  BOOST_REQUIRE_EQUAL(requests.size(), 4U);
  BOOST_TEST(request_as<protocol::LoginCheckRequest>(requests, 0).enroll);
  const auto& begin = request_as<protocol::EnrollBeginRequest>(requests, 1);
  BOOST_TEST(begin.user == kUser);
  BOOST_TEST(begin.want_qr_text);
  BOOST_TEST(!begin.replace);
  BOOST_TEST(begin.service == "kp_enroll");
  BOOST_TEST(begin.rhost == "192.0.2.7");
  BOOST_TEST(request_as<protocol::EnrollConfirmRequest>(requests, 2).code.view() == "000000");
  const auto& confirm = request_as<protocol::EnrollConfirmRequest>(requests, 3);
  BOOST_TEST(confirm.user == kUser);
  BOOST_TEST(confirm.code.view() == "123456");
  BOOST_TEST(confirm.tty == "ssh");
}

BOOST_AUTO_TEST_CASE(inline_enrollment_gives_up_after_three_wrong_codes) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::enroll));
  daemon.reply(protocol::Response{
      .status = Status::ok,
      .result = protocol::EnrollBeginResult{
          .uri = kpanel::common::SecureString(
              "otpauth://totp/Kapsule:alice%40host?secret=JBSWY3DPEHPK3PXP&issuer=Kapsule"),
          .secret_base32 = kpanel::common::SecureString("JBSWY3DPEHPK3PXP"),
          .expires_at = now_seconds() + 600}});
  for (int i = 0; i < 3; ++i) daemon.reply(protocol::Response{.status = Status::wrong_code});
  Dialogue dialogue{.answers = {"1", "2", "3"}};
  BOOST_TEST(authenticate("kp_enroll", dialogue) == PAM_AUTH_ERR);
  BOOST_TEST(daemon.requests().size() == 5U);
  BOOST_TEST(dialogue.showed(PAM_ERROR_MSG, "enrollment was not completed"));
}

BOOST_AUTO_TEST_CASE(enroll_decision_without_the_enroll_option_is_refused) {
  FakeDaemon daemon(kSocket);
  daemon.reply(login_check_answer(LoginDecision::enroll));
  Dialogue dialogue;
  BOOST_TEST(authenticate("kp_basic", dialogue) == PAM_AUTH_ERR);
  BOOST_TEST(daemon.requests().size() == 1U);
}

// With `debug`, the module logs its decisions; never a code, key, URI or
// recovery code, whatever the flow.
BOOST_AUTO_TEST_CASE(debug_logs_decisions_and_no_secrets) {
  const std::string secret = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU";
  std::string log;
  {
    FakeDaemon daemon(kSocket);
    SyslogCapture capture;
    daemon.reply(login_check_answer(LoginDecision::prompt));
    daemon.reply(verify_answer(false, 10));
    Dialogue code{.answers = {"987654"}};
    BOOST_TEST(authenticate("kp_basic", code) == PAM_SUCCESS);

    daemon.reply(login_check_answer(LoginDecision::prompt));
    daemon.reply(verify_answer(true, 4));
    Dialogue recovery{.answers = {"wxyz-2345-qrst"}};
    BOOST_TEST(authenticate("kp_basic", recovery) == PAM_SUCCESS);

    daemon.reply(login_check_answer(LoginDecision::enroll));
    daemon.reply(protocol::Response{
        .status = Status::ok,
        .result = protocol::EnrollBeginResult{
            .uri = kpanel::common::SecureString(
                "otpauth://totp/Kapsule:alice%40host?secret=" + secret + "&issuer=Kapsule"),
            .secret_base32 = kpanel::common::SecureString(secret),
            .expires_at = now_seconds() + 600}});
    daemon.reply(
        protocol::Response{.status = Status::ok,
                           .result = protocol::RecoveryCodesResult{
                               .codes = {kpanel::common::SecureString("mnop-6789-uvwx")}}});
    Dialogue enroll{.answers = {"246810", ""}};
    BOOST_TEST(authenticate("kp_enroll", enroll) == PAM_SUCCESS);

    Dialogue bad;
    BOOST_TEST(authenticate("kp_bad_option", bad) == PAM_AUTH_ERR);
    log = capture.text();
  }
  // The capture works and the decisions are there.
  BOOST_TEST(log.find("login_check: ") != std::string::npos);
  BOOST_TEST(log.find("verify: ok (recovery code)") != std::string::npos);
  BOOST_TEST(log.find("enroll_confirm: ok") != std::string::npos);
  BOOST_TEST(log.find("bad option 'bogus=1': unknown option") != std::string::npos);
  const std::vector<std::string> secrets{"987654", "wxyz-2345-qrst", "246810",
                                         secret,   "KRSX G5CT",      "mnop-6789-uvwx"};
  for (const auto& needle : secrets) {
    BOOST_TEST_CONTEXT(needle) { BOOST_TEST(log.find(needle) == std::string::npos); }
  }
}

BOOST_AUTO_TEST_SUITE_END()
