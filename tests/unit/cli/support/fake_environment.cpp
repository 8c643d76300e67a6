#include "support/fake_environment.hpp"

namespace kpanel::cli::testing {

std::expected<common::SecureString, PromptError> ScriptedPrompter::ask_secret(
    std::string_view prompt) {
  prompts.emplace_back(prompt);
  if (answers.empty()) {
    return std::unexpected(PromptError::no_input);
  }
  common::SecureString answer(answers.front());
  answers.pop_front();
  return answer;
}

FakeWorld::FakeWorld() : clock(common::from_unix(kNow)) {}

void FakeWorld::reply(common::protocol::Result result) {
  common::protocol::Response response;
  response.status = common::protocol::Status::ok;
  response.result = std::move(result);
  replies_.emplace_back(std::move(response));
}

void FakeWorld::reply_status(common::protocol::Status status) {
  common::protocol::Response response;
  response.status = status;
  replies_.emplace_back(std::move(response));
}

int FakeWorld::run(std::vector<std::string> args) {
  Environment env{out_,
                  err_,
                  prompter,
                  [this](const common::ClientOptions& client_options,
                         const common::protocol::Request& request) -> Reply {
                    requests.push_back(request);
                    options.push_back(client_options);
                    if (replies_.empty()) {
                      return std::unexpected(common::ClientError::unreachable);
                    }
                    Reply next = std::move(replies_.front());
                    replies_.pop_front();
                    return next;
                  },
                  clock,
                  "alice",
                  out_colors,
                  false,
                  service_manager};
  return cli::run(args, env);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  return lines;
}

}  // namespace kpanel::cli::testing
