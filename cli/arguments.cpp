#include "cli/arguments.hpp"

#include <algorithm>
#include <optional>
#include <utility>

#include "common/user_name.hpp"

namespace kpanel::cli {

bool CommandLine::has(std::string_view name) const noexcept { return value(name) != nullptr; }

const std::string* CommandLine::value(std::string_view name) const noexcept {
  for (const auto& [option, value] : options) {
    if (option == name) {
      return &value;
    }
  }
  return nullptr;
}

std::expected<void, std::string> check_user_name(std::string_view name) {
  const auto valid = common::check_user_name(name);
  if (valid) {
    return {};
  }
  switch (valid.error()) {
    case common::UserNameProblem::empty:
      return std::unexpected("the user name is empty");
    case common::UserNameProblem::too_long:
      return std::unexpected("the user name is too long");
    case common::UserNameProblem::bad_character:
      break;
  }
  // Built by append: `"'" + std::string` trips g++ 12's -Wrestrict false
  // positive at -O3 (GCC PR 105651).
  std::string message("'");
  message.append(name).append("' is not a valid user name");
  return std::unexpected(std::move(message));
}

namespace {

// The first word of "admin list"; empty for a command without a group.
std::string_view group_of(std::string_view name) {
  const std::size_t space = name.find(' ');
  return space == std::string_view::npos ? std::string_view{} : name.substr(0, space);
}

class Parser {
 public:
  Parser(std::span<const std::string> args, std::span<const CommandSpec> table)
      : args_(args), table_(table) {}

  std::expected<Invocation, UsageError> parse() {
    bool only_positionals = false;
    for (next_ = 0; next_ < args_.size();) {
      const std::string& arg = args_[next_++];
      if (only_positionals || arg == "-" || !arg.starts_with("-")) {
        positional(arg);
      } else if (arg == "--") {
        only_positionals = true;
      } else {
        option(arg);
      }
    }
    if (invocation_.help || invocation_.version) {
      return std::move(invocation_);
    }
    if (error_) {
      return std::unexpected(std::move(*error_));
    }
    if (invocation_.line.command == nullptr) {
      if (!group_.empty()) {
        return std::unexpected(UsageError{missing_subcommand(), nullptr});
      }
      return std::unexpected(UsageError{"no command given", nullptr});
    }
    const CommandSpec& command = *invocation_.line.command;
    const auto& positionals = invocation_.line.positionals;
    // A last positional spelled "NAME..." takes any number, none included;
    // the command decides what is enough.
    if (!command.positionals.empty() && command.positionals.back().ends_with("...")) {
      if (positionals.size() + 1 < command.positionals.size()) {
        return std::unexpected(UsageError{std::string(command.name) + " needs " +
                                              std::string(command.positionals[positionals.size()]),
                                          &command});
      }
      return std::move(invocation_);
    }
    if (positionals.size() < command.positionals.size()) {
      return std::unexpected(UsageError{std::string(command.name) + " needs " +
                                            std::string(command.positionals[positionals.size()]),
                                        &command});
    }
    if (positionals.size() > command.positionals.size()) {
      return std::unexpected(UsageError{
          "unexpected argument '" + positionals[command.positionals.size()] + "'", &command});
    }
    return std::move(invocation_);
  }

 private:
  void fail(std::string message) {
    if (!error_) {
      error_ = UsageError{std::move(message), invocation_.line.command};
    }
  }

  // The value of --name: after '=' or the next argument (never one that looks
  // like an option, so "--png --json" does not write a file named "--json").
  std::optional<std::string> take_value(std::string_view name, std::string_view value_name,
                                        const std::optional<std::string>& inline_value) {
    if (inline_value && !inline_value->empty()) {
      return *inline_value;
    }
    if (!inline_value && next_ < args_.size() && !args_[next_].empty() &&
        !args_[next_].starts_with("-")) {
      return args_[next_++];
    }
    fail("--" + std::string(name) + " needs " + std::string(value_name));
    return std::nullopt;
  }

  void set_once(std::string& target, bool& seen, std::string_view name, std::string value) {
    if (seen) {
      fail("--" + std::string(name) + " given twice");
      return;
    }
    seen = true;
    target = std::move(value);
  }

  void option(const std::string& arg) {
    std::string name = arg.starts_with("--") ? arg.substr(2) : arg.substr(1);
    std::optional<std::string> inline_value;
    if (const std::size_t eq = name.find('='); arg.starts_with("--") && eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name.resize(eq);
    }
    const bool long_form = arg.starts_with("--");
    auto flag = [&](bool& target) {
      if (inline_value) {
        fail("--" + name + " takes no value");
      }
      target = true;
    };
    if ((long_form && name == "help") || arg == "-h") {
      return flag(invocation_.help);
    }
    if (long_form && name == "version") {
      return flag(invocation_.version);
    }
    if (long_form && name == "json") {
      return flag(invocation_.global.json);
    }
    if (long_form && name == "socket") {
      if (auto value = take_value(name, "PATH", inline_value)) {
        set_once(invocation_.global.socket_path, socket_seen_, name, std::move(*value));
      }
      return;
    }
    if (long_form && name == "user") {
      if (auto value = take_value(name, "NAME", inline_value)) {
        if (auto valid = check_user_name(*value); !valid) {
          return fail("--user: " + valid.error());
        }
        set_once(invocation_.global.user, user_seen_, name, std::move(*value));
      }
      return;
    }
    const CommandSpec* command = invocation_.line.command;
    const OptionSpec* spec = nullptr;
    if (long_form && command != nullptr) {
      const auto found = std::ranges::find(command->options, name, &OptionSpec::name);
      if (found != command->options.end()) {
        spec = &*found;
      }
    }
    if (spec == nullptr) {
      if (command == nullptr) {
        return fail("unknown option '" + arg + "'");
      }
      return fail(std::string(command->name) + " has no option '" + arg + "'");
    }
    if (invocation_.line.has(spec->name)) {
      return fail("--" + name + " given twice");
    }
    std::string value;
    if (spec->value_name.empty()) {
      if (inline_value) {
        return fail("--" + name + " takes no value");
      }
    } else if (auto taken = take_value(name, spec->value_name, inline_value)) {
      value = std::move(*taken);
    } else {
      return;
    }
    invocation_.line.options.emplace_back(spec->name, std::move(value));
  }

  void positional(const std::string& arg) {
    if (invocation_.line.command != nullptr) {
      invocation_.line.positionals.push_back(arg);
      return;
    }
    const std::string name = group_.empty() ? arg : group_ + " " + arg;
    const auto found = std::ranges::find(table_, name, &CommandSpec::name);
    if (found != table_.end()) {
      invocation_.line.command = &*found;
      return;
    }
    if (group_.empty()) {
      const auto grouped = std::ranges::find(
          table_, arg, [](const CommandSpec& spec) { return group_of(spec.name); });
      if (grouped != table_.end()) {
        group_ = arg;
        return;
      }
      return fail("unknown command '" + arg + "'");
    }
    fail("unknown command '" + name + "'; " + missing_subcommand());
  }

  std::string missing_subcommand() const {
    std::string text = group_ + " needs one of:";
    for (const CommandSpec& spec : table_) {
      if (group_of(spec.name) != group_) {
        continue;
      }
      text += " ";
      text += spec.name.substr(group_.size() + 1);
      for (const std::string_view positional : spec.positionals) {
        text += " ";
        text += positional;
      }
      text += ",";
    }
    if (text.ends_with(",")) {
      text.pop_back();
    }
    return text;
  }

  std::span<const std::string> args_;
  std::span<const CommandSpec> table_;
  std::size_t next_ = 0;
  Invocation invocation_;
  std::string group_;  // "admin" seen, its subcommand not yet
  bool socket_seen_ = false;
  bool user_seen_ = false;
  std::optional<UsageError> error_;
};

}  // namespace

std::expected<Invocation, UsageError> parse_arguments(std::span<const std::string> args,
                                                      std::span<const CommandSpec> table) {
  return Parser(args, table).parse();
}

}  // namespace kpanel::cli
