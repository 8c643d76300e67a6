#include "cli/output.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "cli/errors.hpp"
#include "common/base32.hpp"
#include "common/totp.hpp"

namespace kpanel::cli {

namespace protocol = common::protocol;

namespace {

using Json = nlohmann::ordered_json;  // keys in the documented order

Json time_or_null(const std::optional<std::int64_t>& unix_seconds) {
  if (!unix_seconds) {
    return nullptr;
  }
  return iso8601(*unix_seconds);
}

Json status_object(const protocol::UserStatus& status) {
  Json object;
  object["user"] = status.user;
  object["enrolled"] = status.enrolled;
  object["enrolled_at"] = time_or_null(status.enrolled_at);
  object["recovery_codes_left"] = status.recovery_codes_left;
  object["locked_until"] = time_or_null(status.locked_until);
  if (status.last_skew_seconds) {
    object["clock_offset_seconds"] = *status.last_skew_seconds;
  } else {
    object["clock_offset_seconds"] = nullptr;
  }
  return object;
}

std::string dump(const Json& json) {
  // replace: a name that is not UTF-8 must not throw; the daemon's codec forbids it anyway.
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// A JSON string literal (RFC 8259 escapes) appended to wiping storage.
void append_json_string(common::SecureString& out, std::string_view text) {
  constexpr std::string_view kHex = "0123456789abcdef";
  out.push_back('"');
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (byte < 0x20) {
      out.append("\\u00");
      out.push_back(kHex[byte >> 4U]);
      out.push_back(kHex[byte & 0xFU]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

std::string enrolled_text(const protocol::UserStatus& status) {
  if (!status.enrolled) {
    return "no";
  }
  if (!status.enrolled_at) {
    return "yes";
  }
  return "yes, since " + iso8601(*status.enrolled_at);
}

std::string locked_text(const protocol::UserStatus& status, common::TimePoint now) {
  if (!status.locked_until) {
    return "no";
  }
  const std::int64_t minutes = minutes_until(*status.locked_until, now);
  return "until " + iso8601(*status.locked_until) + " (about " + std::to_string(minutes) +
         (minutes == 1 ? " minute)" : " minutes)");
}

}  // namespace

std::string iso8601(std::int64_t unix_seconds) {
  return common::format_iso8601(common::from_unix(unix_seconds));
}

std::string status_json(const protocol::UserStatus& status,
                        std::span<const protocol::RememberedWindow> remembered) {
  Json object = status_object(status);
  Json windows = Json::array();
  for (const protocol::RememberedWindow& window : remembered) {
    Json item;
    item["source"] = window.source;
    item["until"] = iso8601(window.until);
    windows.push_back(std::move(item));
  }
  object["remembered"] = std::move(windows);
  return dump(object);
}

std::string error_json(std::string_view reason, std::string_view message) {
  Json object;
  object["error"] = reason;
  object["message"] = message;
  return dump(object);
}

std::string admin_list_json(std::span<const protocol::UserStatus> users, bool with_exempt,
                            bool truncated, std::span<const std::string> unreadable) {
  Json list = Json::array();
  for (const auto& user : users) {
    Json entry = status_object(user);
    if (with_exempt) {
      entry["exempt"] = user.exempt.value_or(false);
    }
    list.push_back(std::move(entry));
  }
  Json object;
  object["users"] = std::move(list);
  if (truncated) {
    object["truncated"] = true;
  }
  if (!unreadable.empty()) {
    object["unreadable"] = Json(std::vector<std::string>(unreadable.begin(), unreadable.end()));
  }
  return dump(object);
}

void print_unreadable(std::ostream& err, std::span<const std::string> unreadable) {
  for (const std::string& user : unreadable) {
    err << "kpanel-totp: the stored record of " << user
        << " cannot be read (a wrong key_file, or its row was changed outside kpanel-totpd); "
           "its logins are refused until `kpanel-totp admin reset "
        << user << "` clears it\n";
  }
}

common::SecureString recovery_codes_json(std::span<const common::SecureString> codes) {
  common::SecureString out;
  out.append("{\"recovery_codes\":[");
  for (std::size_t i = 0; i < codes.size(); ++i) {
    if (i != 0) {
      out.push_back(',');
    }
    append_json_string(out, codes[i].view());
  }
  out.append("]}");
  return out;
}

common::SecureString enroll_begin_json(std::string_view uri, std::string_view secret_base32,
                                       std::int64_t expires_at) {
  common::SecureString out;
  out.append("{\"uri\":");
  append_json_string(out, uri);
  out.append(",\"secret\":");
  append_json_string(out, secret_base32);
  out.append(",\"expires_at\":");
  if (expires_at != 0) {
    append_json_string(out, iso8601(expires_at));
  } else {
    out.append("null");
  }
  out.push_back('}');
  return out;
}

void print_status(std::ostream& out, const protocol::UserStatus& status, common::TimePoint now,
                  std::string_view tool, std::span<const protocol::RememberedWindow> remembered) {
  out << "User:                " << status.user << '\n'
      << "Enrolled:            " << enrolled_text(status) << '\n';
  if (status.enrolled) {
    out << "Recovery codes left: " << status.recovery_codes_left;
    if (status.recovery_codes_left <= 2) {
      out << " (running low: " << tool << "recovery-codes --regenerate)";
    }
    out << '\n';
  }
  out << "Locked:              " << locked_text(status, now) << '\n';
  if (status.enrollment_pending) {
    out << "Pending:             an enrollment waits for its code (" << tool
        << "enroll --confirm CODE)\n";
  }
  if (status.last_skew_seconds) {
    // Only root and admins receive it (the daemon never tells a guesser).
    const std::int64_t skew = *status.last_skew_seconds;
    // Which clock is wrong cannot be told from here: say what was seen.
    out << "Clock offset:        the phone's codes match about " << (skew < 0 ? -skew : skew)
        << " s " << (skew < 0 ? "behind" : "ahead")
        << " of this host's clock (a refused code matched outside the window): check "
           "this host's time sync (timedatectl) and the phone's automatic time\n";
  }
  for (const protocol::RememberedWindow& window : remembered) {
    out << "Remembered:          no code asked from " << window.source << " until "
        << iso8601(window.until) << " (end it: " << tool << "forget)\n";
  }
  if (!status.enrolled) {
    out << "Set up a code app with: " << tool << "enroll\n";
  }
}

// Rows, then with `with_exempt` the counts that answer "may nullok go yet?".
void print_user_table(std::ostream& out, std::span<const protocol::UserStatus> users,
                      common::TimePoint now, bool with_exempt) {
  if (users.empty()) {
    out << (with_exempt ? "No accounts can log in and none is known to kpanel-totpd.\n"
                        : "No users are known to kpanel-totpd.\n");
    return;
  }
  std::size_t user_width = 4;  // "USER"
  for (const auto& user : users) {
    user_width = std::max(user_width, user.user.size());
  }
  const auto pad = [](std::string text, std::size_t width) {
    if (text.size() < width) {
      text.append(width - text.size(), ' ');
    }
    return text;
  };
  constexpr std::size_t kTimeWidth = 20;   // "2026-11-28T19:27:28Z"
  constexpr std::size_t kExemptWidth = 6;  // "EXEMPT"
  out << pad("USER", user_width) << "  " << pad("ENROLLED", kTimeWidth) << "  ";
  if (with_exempt) {
    out << pad("EXEMPT", kExemptWidth) << "  ";
  }
  out << "CODES  LOCKED UNTIL\n";
  std::size_t enrolled_count = 0;
  std::size_t exempt_count = 0;
  std::size_t missing = 0;  // neither enrolled nor exempt: nullok still lets them in
  for (const auto& user : users) {
    enrolled_count += user.enrolled ? 1 : 0;
    const bool exempt = user.exempt.value_or(false);
    exempt_count += exempt ? 1 : 0;
    missing += !user.enrolled && !exempt ? 1 : 0;
    const std::string enrolled =
        !user.enrolled ? "no" : (user.enrolled_at ? iso8601(*user.enrolled_at) : "yes");
    std::string locked = "-";
    if (user.locked_until) {
      locked = iso8601(*user.locked_until) + " (" +
               std::to_string(minutes_until(*user.locked_until, now)) + " min)";
    }
    out << pad(user.user, user_width) << "  " << pad(enrolled, kTimeWidth) << "  ";
    if (with_exempt) {
      out << pad(exempt ? "yes" : "no", kExemptWidth) << "  ";
    }
    out << pad(std::to_string(user.recovery_codes_left), 5) << "  " << locked;
    if (user.enrollment_pending) {
      out << "  (enrollment pending)";
    }
    out << '\n';
  }
  if (with_exempt) {
    out << '\n'
        << users.size() << (users.size() == 1 ? " account: " : " accounts: ") << enrolled_count
        << " enrolled, " << users.size() - enrolled_count << " not enrolled, " << exempt_count
        << " exempt.\n";
    if (missing == 0) {
      out << "Every account is enrolled or exempt: nullok no longer lets anyone in without a "
             "code.\n";
    } else {
      out << missing << (missing == 1 ? " account is" : " accounts are")
          << " neither enrolled nor exempt: nullok or a grace period is all that lets "
          << (missing == 1 ? "it" : "them") << " in without a code.\n";
    }
  }
}

void print_recovery_codes(std::ostream& out, std::span<const common::SecureString> codes) {
  out << "\nRecovery codes: store these now (password manager, or on paper somewhere safe).\n"
      << "Each works once, in place of a code, if the phone is lost. They are not shown again.\n\n";
  for (const auto& code : codes) {
    out << "    " << code.view() << '\n';
  }
  out << '\n';
}

void print_enrollment(std::ostream& out, const protocol::EnrollBeginResult& begun,
                      std::string_view qr_text, common::TimePoint now) {
  out << "Scan this QR code with your authenticator app (Google Authenticator, Authy,\n"
      << "Apple Passwords, ...):\n\n"
      << qr_text << '\n'
      << "Or enter it by hand:\n"
      << "    URI: " << begun.uri.view() << '\n'
      << "    Key: " << common::group_in_fours(begun.secret_base32.view()).view() << '\n';
  // Typed in the reply (protocol version 2), so the URI is not parsed back.
  out << "    Type: time-based, " << common::to_string(begun.algorithm) << ", " << begun.digits
      << " digits, every " << begun.period << " seconds\n";
  if (begun.expires_at != 0) {
    const std::int64_t minutes = minutes_until(begun.expires_at, now);
    out << "\nThis enrollment waits for its confirming code until " << iso8601(begun.expires_at)
        << " (about " << minutes << (minutes == 1 ? " minute" : " minutes") << ").\n";
  }
}

}  // namespace kpanel::cli
