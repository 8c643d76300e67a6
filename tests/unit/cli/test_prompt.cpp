// Answers from stdin when it is not a terminal: one line per prompt, in order,
// without reading past the line that was asked for.
#define BOOST_TEST_MODULE cli_prompt
#include <fcntl.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <string>

#include "cli/prompt.hpp"

namespace {

using kpanel::cli::LinePrompter;
using kpanel::cli::PromptError;

// A pipe holding `input`, its write end closed: reads see the input, then EOF.
class InputPipe {
 public:
  explicit InputPipe(const std::string& input) {
    BOOST_REQUIRE_EQUAL(::pipe2(fds_, O_CLOEXEC), 0);
    BOOST_REQUIRE(input.size() < 60000);  // fits in the pipe buffer
    BOOST_REQUIRE_EQUAL(::write(fds_[1], input.data(), input.size()),
                        static_cast<ssize_t>(input.size()));
    ::close(fds_[1]);
  }
  ~InputPipe() { ::close(fds_[0]); }
  InputPipe(const InputPipe&) = delete;
  InputPipe& operator=(const InputPipe&) = delete;
  [[nodiscard]] int fd() const { return fds_[0]; }

 private:
  int fds_[2] = {-1, -1};  // NOLINT(modernize-avoid-c-arrays): pipe2's interface
};

std::string answer(LinePrompter& prompter, std::string_view prompt = "Code: ") {
  auto line = prompter.ask_secret(prompt);
  BOOST_REQUIRE(line.has_value());
  return std::string(line->view());
}

}  // namespace

BOOST_AUTO_TEST_CASE(one_line_per_prompt_in_order) {
  const InputPipe input("correct horse battery\n123456\n");
  LinePrompter prompter(input.fd());
  BOOST_TEST(!prompter.interactive());
  BOOST_TEST(answer(prompter, "Password: ") == "correct horse battery");
  BOOST_TEST(answer(prompter) == "123456");
  BOOST_TEST((prompter.ask_secret("More: ").error() == PromptError::no_input));
}

BOOST_AUTO_TEST_CASE(crlf_and_a_last_line_without_newline) {
  const InputPipe input("123456\r\n654321");
  LinePrompter prompter(input.fd());
  BOOST_TEST(answer(prompter) == "123456");
  BOOST_TEST(answer(prompter) == "654321");
  BOOST_TEST((prompter.ask_secret("More: ").error() == PromptError::no_input));
}

BOOST_AUTO_TEST_CASE(empty_line_is_an_empty_answer_not_the_end) {
  const InputPipe input("\n123456\n");
  LinePrompter prompter(input.fd());
  BOOST_TEST(answer(prompter, "Password: ").empty());
  BOOST_TEST(answer(prompter) == "123456");
}

BOOST_AUTO_TEST_CASE(spaces_inside_an_answer_are_kept) {
  const InputPipe input("  pass with spaces  \n");
  LinePrompter prompter(input.fd());
  BOOST_TEST(answer(prompter) == "  pass with spaces  ");
}

BOOST_AUTO_TEST_CASE(reads_nothing_past_the_line) {
  const InputPipe input("first\nrest of input");
  LinePrompter prompter(input.fd());
  BOOST_TEST(answer(prompter) == "first");
  std::string rest(64, '\0');
  const ssize_t n = ::read(input.fd(), rest.data(), rest.size());
  BOOST_REQUIRE(n > 0);
  rest.resize(static_cast<std::size_t>(n));
  BOOST_TEST(rest == "rest of input");
}

BOOST_AUTO_TEST_CASE(overlong_line_is_refused) {
  const InputPipe input(std::string(kpanel::cli::kMaxAnswerLength + 1, 'x') + "\n");
  LinePrompter prompter(input.fd());
  BOOST_TEST((prompter.ask_secret("Code: ").error() == PromptError::too_long));
}

BOOST_AUTO_TEST_CASE(longest_allowed_line_is_read) {
  const InputPipe input(std::string(kpanel::cli::kMaxAnswerLength, 'x') + "\n");
  LinePrompter prompter(input.fd());
  BOOST_TEST(answer(prompter).size() == kpanel::cli::kMaxAnswerLength);
}

BOOST_AUTO_TEST_CASE(unreadable_input_is_an_io_error) {
  LinePrompter prompter(-1);
  BOOST_TEST((prompter.ask_secret("Code: ").error() == PromptError::io_error));
}

BOOST_AUTO_TEST_CASE(stdin_that_is_not_a_terminal_gets_the_line_prompter) {
  const InputPipe input("123456\n");
  const int saved = ::dup(STDIN_FILENO);
  BOOST_REQUIRE(saved >= 0);
  BOOST_REQUIRE(::dup2(input.fd(), STDIN_FILENO) >= 0);
  {
    const auto prompter = kpanel::cli::make_prompter();
    BOOST_TEST(!prompter->interactive());
    const auto line = prompter->ask_secret("Code: ");
    BOOST_REQUIRE(line.has_value());
    BOOST_TEST(line->view() == "123456");
  }
  ::dup2(saved, STDIN_FILENO);
  ::close(saved);
}
