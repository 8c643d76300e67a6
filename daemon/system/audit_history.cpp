#include "daemon/system/audit_history.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <streambuf>

#include "common/clock.hpp"
#include "common/text.hpp"

namespace kpanel::daemon::audit_history {
namespace {

constexpr std::string_view kIdent = "kpanel-totpd";

// `count` decimal digits at `text[at]`, or nullopt.
std::optional<int> digits(std::string_view text, std::size_t at, std::size_t count) {
  if (at + count > text.size()) return std::nullopt;
  int value = 0;
  for (std::size_t i = at; i < at + count; ++i) {
    const char c = text[i];
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

// "Z", "+HH:MM", "+HHMM" (and '-') at `at`: the offset in seconds and its length.
std::optional<std::pair<std::int64_t, std::size_t>> zone(std::string_view text, std::size_t at) {
  if (at >= text.size()) return std::nullopt;
  if (text[at] == 'Z' || text[at] == 'z') return std::pair<std::int64_t, std::size_t>{0, 1};
  if (text[at] != '+' && text[at] != '-') return std::nullopt;
  const std::int64_t sign = text[at] == '-' ? -1 : 1;
  const auto hours = digits(text, at + 1, 2);
  if (!hours) return std::nullopt;
  std::size_t length = 3;
  if (at + length < text.size() && text[at + length] == ':') ++length;
  const auto minutes = digits(text, at + length, 2);
  if (!minutes || *hours > 23 || *minutes > 59) return std::nullopt;
  length += 2;
  return std::pair<std::int64_t, std::size_t>{
      sign * (std::int64_t{3600} * *hours + std::int64_t{60} * *minutes), length};
}

// One key=value field of an audit line; `value` keeps a quoted value's
// quotes and escapes, as written (printable ASCII already).
struct Field {
  std::string_view key;
  std::string_view value;
};

// The fields of `message`, or nullopt when it is not key=value text.
std::optional<std::vector<Field>> fields(std::string_view message) {
  std::vector<Field> out;
  std::size_t at = 0;
  while (at < message.size()) {
    if (message[at] == ' ') {
      ++at;
      continue;
    }
    const std::size_t eq = message.find('=', at);
    if (eq == std::string_view::npos || eq == at) return std::nullopt;
    const std::string_view key = message.substr(at, eq - at);
    if (!std::ranges::all_of(key, [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; })) {
      return std::nullopt;
    }
    std::size_t end = eq + 1;
    if (end < message.size() && message[end] == '"') {
      ++end;
      while (end < message.size() && message[end] != '"') {
        end += message[end] == '\\' ? 2 : 1;
      }
      if (end >= message.size()) return std::nullopt;  // no closing quote
      ++end;
    } else {
      end = std::min(message.find(' ', end), message.size());
    }
    out.push_back(Field{key, message.substr(eq + 1, end - eq - 1)});
    at = end;
  }
  return out;
}

std::optional<std::string_view> value_of(const std::vector<Field>& all, std::string_view key) {
  const auto found = std::ranges::find(all, key, &Field::key);
  if (found == all.end()) return std::nullopt;
  return found->value;
}

// The message of a kpanel-totpd line: after "HOST kpanel-totpd[PID]: ".
std::optional<std::string_view> message_of(std::string_view rest) {
  const std::size_t host_end = rest.find(' ');
  if (host_end == std::string_view::npos || host_end == 0) return std::nullopt;
  rest.remove_prefix(host_end + 1);
  if (!rest.starts_with(kIdent)) return std::nullopt;
  rest.remove_prefix(kIdent.size());
  if (rest.starts_with("[")) {
    const std::size_t close = rest.find(']');
    if (close == std::string_view::npos || close == 1 ||
        !std::ranges::all_of(rest.substr(1, close - 1),
                             [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    rest.remove_prefix(close + 1);
  }
  if (!rest.starts_with(": ")) return std::nullopt;
  return rest.substr(2);
}

// Reads one line into `line`, at most kMaxLineBytes (the rest is skipped);
// false at the end of the input.
bool next_line(std::streambuf& in, std::string& line, bool& overlong) {
  line.clear();
  overlong = false;
  using Traits = std::streambuf::traits_type;
  Traits::int_type c = in.sbumpc();
  if (Traits::eq_int_type(c, Traits::eof())) return false;
  for (; !Traits::eq_int_type(c, Traits::eof()); c = in.sbumpc()) {
    const char byte = Traits::to_char_type(c);
    if (byte == '\n') break;
    if (line.size() < kMaxLineBytes) {
      line.push_back(byte);
    } else {
      overlong = true;
    }
  }
  if (line.ends_with('\r')) line.pop_back();
  return true;
}

}  // namespace

std::optional<std::int64_t> parse_timestamp(std::string_view line, std::string_view* rest) {
  // YYYY-MM-DDTHH:MM:SS
  const auto year = digits(line, 0, 4);
  const auto month = digits(line, 5, 2);
  const auto day = digits(line, 8, 2);
  const auto hour = digits(line, 11, 2);
  const auto minute = digits(line, 14, 2);
  const auto second = digits(line, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second || line[4] != '-' || line[7] != '-' ||
      (line[10] != 'T' && line[10] != ' ') || line[13] != ':' || line[16] != ':' || *hour > 23 ||
      *minute > 59 || *second > 60) {
    return std::nullopt;
  }
  const std::chrono::year_month_day date{std::chrono::year{*year},
                                         std::chrono::month{static_cast<unsigned>(*month)},
                                         std::chrono::day{static_cast<unsigned>(*day)}};
  if (!date.ok()) return std::nullopt;
  std::size_t at = 19;
  if (at < line.size() && (line[at] == '.' || line[at] == ',')) {
    ++at;
    const std::size_t start = at;
    while (at < line.size() && line[at] >= '0' && line[at] <= '9' && at - start < 9) ++at;
    if (at == start) return std::nullopt;
  }
  const auto offset = zone(line, at);
  if (!offset) return std::nullopt;
  at += offset->second;
  if (at < line.size() && line[at] != ' ') return std::nullopt;
  if (rest != nullptr) *rest = line.substr(std::min(at + 1, line.size()));
  const std::int64_t days = std::chrono::sys_days{date}.time_since_epoch().count();
  constexpr std::int64_t kDay = 86400;
  constexpr std::int64_t kHour = 3600;
  constexpr std::int64_t kMinute = 60;
  return days * kDay + kHour * *hour + kMinute * *minute + std::min(*second, 59) - offset->first;
}

std::optional<Change> parse_line(std::string_view line) {
  // Our daemon escapes everything else: a raw control or non-ASCII byte
  // means another writer.
  if (!std::ranges::all_of(
          line, [](char c) { return common::is_printable_ascii(static_cast<unsigned char>(c)); })) {
    return std::nullopt;
  }
  std::string_view rest;
  const auto at = parse_timestamp(line, &rest);
  if (!at) return std::nullopt;
  const auto message = message_of(rest);
  if (!message) return std::nullopt;
  const auto parsed = fields(*message);
  if (!parsed) return std::nullopt;
  const auto event = value_of(*parsed, "event");
  const auto user = value_of(*parsed, "user");
  if (!event || !user || user->empty() || value_of(*parsed, "outcome") != "ok") {
    return std::nullopt;
  }
  Change change{.at = *at, .kind = ChangeKind::reset, .user = std::string(*user)};
  if (*event == "reset") {
    change.kind = ChangeKind::reset;
  } else if (*event == "disable") {
    change.kind = ChangeKind::disable;
  } else if (*event == "enroll_confirm") {
    change.kind = ChangeKind::enrollment_confirmed;
  } else if (*event == "recovery_regenerate") {
    change.kind = ChangeKind::recovery_regenerated;
  } else if (value_of(*parsed, "recovery_code") == "used") {
    change.kind = ChangeKind::recovery_code_used;  // a verify (or login) that consumed one
  } else {
    return std::nullopt;
  }
  return change;
}

History read_changes(std::istream& in, std::int64_t since) {
  History history;
  std::streambuf* buffer = in.rdbuf();
  if (buffer == nullptr) return history;
  std::string line;
  bool overlong = false;
  while (next_line(*buffer, line, overlong)) {
    ++history.lines;
    if (overlong) {
      ++history.overlong;
      continue;
    }
    if (const auto stamp = parse_timestamp(line)) {
      history.first_stamp = std::min(history.first_stamp.value_or(*stamp), *stamp);
    }
    if (auto change = parse_line(line); change && change->at >= since) {
      history.changes.push_back(std::move(*change));
    }
  }
  return history;
}

std::string describe(const Change& change) {
  const std::string& user = change.user;
  const std::string text = common::format_iso8601(common::from_unix(change.at)) + "  ";
  switch (change.kind) {
    case ChangeKind::reset:
      return text + user + ": enrollment reset by an admin; the restore brings the old secret " +
             "back (a lost or stolen phone works again): kpanel-totp admin reset " + user;
    case ChangeKind::disable:
      return text + user + ": turned the second factor off; the restore turns it on again: " +
             "if they still want it off, kpanel-totp admin reset " + user;
    case ChangeKind::recovery_code_used:
      return text + user + ": used a recovery code, which works again after the restore: " +
             "have them run kpanel-totp recovery-codes --regenerate";
    case ChangeKind::enrollment_confirmed:
      return text + user + ": confirmed an enrollment (new, or a new phone); the restore " +
             "brings back what was before: have them enroll again (kpanel-totp admin reset " +
             user + " first if the restored state still has the old one)";
    case ChangeKind::recovery_regenerated:
      return text + user + ": made new recovery codes; the restore brings the old ones back: " +
             "have them run kpanel-totp recovery-codes --regenerate";
  }
  return text + user;
}

}  // namespace kpanel::daemon::audit_history
