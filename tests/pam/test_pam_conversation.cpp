// Conversation against hand-written application conversation functions,
// including the ones that misbehave (no response array, null answers, errors).
#define BOOST_TEST_MODULE pam_conversation
#include <security/pam_appl.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "pam_module/conversation.hpp"

namespace {

using kpanel::pam::Conversation;

enum class Behaviour { answer, null_array, null_string, fail, info_with_array };

struct App {
  Behaviour behaviour = Behaviour::answer;
  std::string answer = "123456";
  std::vector<int> styles{};
  std::vector<std::string> texts{};
};

int converse(int count, const pam_message** messages, pam_response** responses, void* data) {
  auto* app = static_cast<App*>(data);
  BOOST_REQUIRE_EQUAL(count, 1);
  BOOST_REQUIRE(responses != nullptr);  // the module always gives somewhere to answer
  app->styles.push_back(messages[0]->msg_style);
  app->texts.emplace_back(messages[0]->msg);
  switch (app->behaviour) {
    case Behaviour::fail:
      return PAM_CONV_ERR;
    case Behaviour::null_array:
      *responses = nullptr;
      return PAM_SUCCESS;
    case Behaviour::null_string:
    case Behaviour::info_with_array:
    case Behaviour::answer:
      break;
  }
  auto* reply = static_cast<pam_response*>(std::calloc(1, sizeof(pam_response)));
  if (app->behaviour == Behaviour::answer || app->behaviour == Behaviour::info_with_array) {
    reply[0].resp = ::strdup(app->answer.c_str());
  }
  *responses = reply;
  return PAM_SUCCESS;
}

}  // namespace

BOOST_AUTO_TEST_CASE(prompt_is_echo_off_and_returns_the_answer) {
  App app;
  const pam_conv conv{.conv = converse, .appdata_ptr = &app};
  const Conversation conversation(&conv);
  const auto answer = conversation.ask("Verification code: ", false);
  BOOST_REQUIRE(answer.has_value());
  BOOST_TEST(answer->view() == "123456");
  BOOST_TEST(app.styles == std::vector<int>{PAM_PROMPT_ECHO_OFF});
  BOOST_TEST(app.texts == std::vector<std::string>{"Verification code: "});
  BOOST_TEST(conversation.ask("Press Enter", true).has_value());
  BOOST_TEST(app.styles.back() == PAM_PROMPT_ECHO_ON);
}

BOOST_AUTO_TEST_CASE(empty_answer_is_an_answer) {
  App app{.answer = ""};
  const pam_conv conv{.conv = converse, .appdata_ptr = &app};
  const auto answer = Conversation(&conv).ask("Code: ", false);
  BOOST_REQUIRE(answer.has_value());
  BOOST_TEST(answer->empty());
}

BOOST_AUTO_TEST_CASE(missing_answers_are_tolerated_and_reported) {
  for (const auto behaviour : {Behaviour::null_array, Behaviour::null_string, Behaviour::fail}) {
    App app{.behaviour = behaviour};
    const pam_conv conv{.conv = converse, .appdata_ptr = &app};
    BOOST_TEST(!Conversation(&conv).ask("Code: ", false).has_value());
  }
}

BOOST_AUTO_TEST_CASE(messages_have_their_style) {
  App app;
  const pam_conv conv{.conv = converse, .appdata_ptr = &app};
  const Conversation conversation(&conv);
  BOOST_TEST(conversation.info("hello"));
  BOOST_TEST(conversation.error("no"));
  BOOST_TEST(app.styles == (std::vector<int>{PAM_TEXT_INFO, PAM_ERROR_MSG}));
  BOOST_TEST(app.texts == (std::vector<std::string>{"hello", "no"}));
}

BOOST_AUTO_TEST_CASE(messages_tolerate_any_response_shape) {
  for (const auto behaviour :
       {Behaviour::null_array, Behaviour::null_string, Behaviour::info_with_array}) {
    App app{.behaviour = behaviour};
    const pam_conv conv{.conv = converse, .appdata_ptr = &app};
    BOOST_TEST(Conversation(&conv).info("text"));  // an unasked-for answer is freed (ASan checks)
  }
  App failing{.behaviour = Behaviour::fail};
  const pam_conv conv{.conv = converse, .appdata_ptr = &failing};
  BOOST_TEST(!Conversation(&conv).info("text"));
}

BOOST_AUTO_TEST_CASE(no_conversation_function) {
  const Conversation none(nullptr);
  BOOST_TEST(!none.ask("Code: ", false).has_value());
  BOOST_TEST(!none.info("x"));
  const pam_conv empty{.conv = nullptr, .appdata_ptr = nullptr};
  BOOST_TEST(!Conversation(&empty).error("x"));
}
