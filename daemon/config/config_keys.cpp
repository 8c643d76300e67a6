#include "daemon/config/config_keys.hpp"

#include <sys/un.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/text.hpp"
#include "common/totp.hpp"
#include "daemon/rules/remember.hpp"

// The keys of kpanel-totpd.conf: how each value is parsed and validated, how
// it is shown, and whether a reload applies it. The file's syntax is
// config.cpp's.

namespace kpanel::daemon::config_table {

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(kWhitespace);
  if (first == std::string_view::npos) {
    return {};
  }
  return s.substr(first, s.find_last_not_of(kWhitespace) - first + 1);
}

// Quoted for a message: control characters, quotes and backslashes escaped (the
// text goes to a terminal and a log), cut at a UTF-8 boundary when long.
std::string quoted(std::string_view s) {
  constexpr std::size_t kMaxShown = 60;
  bool cut = false;
  if (s.size() > kMaxShown) {
    std::size_t end = kMaxShown;
    while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0U) == 0x80U) {
      --end;
    }
    s = s.substr(0, end);
    cut = true;
  }
  constexpr std::string_view kHex = "0123456789abcdef";
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (common::c1_control_at(s, i)) {
      // C1 controls (U+0080..U+009F): some terminals act on them too.
      const auto next = static_cast<unsigned char>(s[++i]);
      out += "\\u00";
      out += kHex[next >> 4U];
      out += kHex[next & 0x0FU];
    } else if (common::is_c0_control(byte)) {
      out += "\\x";
      out += kHex[byte >> 4U];
      out += kHex[byte & 0x0FU];
    } else {
      out += c;
    }
  }
  out += cut ? "...\"" : "\"";
  return out;
}

namespace {

// Bounds, also stated in config/kpanel-totpd.conf.
constexpr unsigned kMinDigits = 6;  // RFC 4226 minimum; 8 is what authenticator apps support
constexpr unsigned kMaxDigits = 8;
constexpr unsigned kMinPeriod = 15;
constexpr unsigned kMaxPeriod = 300;
constexpr unsigned kMaxWindow = 10;
constexpr unsigned kMaxFailuresLimit = 100;
constexpr std::int64_t kMaxLockoutSeconds = 86'400;            // a day
constexpr std::int64_t kMaxLockoutMaxSeconds = 30LL * 86'400;  // 30 days
constexpr unsigned kMaxRecoveryCodes = 100;
constexpr std::int64_t kMinEnrollmentTimeout = 60;  // time to scan and type
constexpr std::int64_t kMaxEnrollmentTimeout = 86'400;
constexpr std::size_t kMaxIssuerChars = 64;
constexpr std::size_t kMaxGroupNameBytes = 32;
constexpr std::size_t kMaxServiceNameBytes = 255;  // a file name in /etc/pam.d
// bind() needs the path and its NUL in sockaddr_un::sun_path.
constexpr std::size_t kMaxSocketPathBytes = sizeof(sockaddr_un::sun_path) - 1;
// Room for many hosts and TLS file paths. The bound holds for the DSN and for
// its masked form (a short password becomes "***", so masking can lengthen
// it), so what --check-config prints parses back and fits a config line.
constexpr std::size_t kMaxDsnBytes = 2048;

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return std::ranges::equal(a, b, [](char x, char y) {
    const auto lower = [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    };
    return lower(x) == lower(y);
  });
}
// ---- value parsers ------------------------------------------------------------------

// A decimal whole number in [lo, hi]: digits only (no sign, no spaces, no units).
std::expected<std::uint64_t, std::string> parse_number(std::string_view value, std::uint64_t lo,
                                                       std::uint64_t hi) {
  const auto range = [&] {
    return " is out of range (" + std::to_string(lo) + " to " + std::to_string(hi) + ")";
  };
  const bool digits_only =
      !value.empty() && std::ranges::all_of(value, [](char c) { return c >= '0' && c <= '9'; });
  if (!digits_only) {
    return std::unexpected(quoted(value) + " is not a whole number");
  }
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec == std::errc::result_out_of_range) {
    return std::unexpected(quoted(value) + range());
  }
  if (ec != std::errc{} || end != value.data() + value.size()) {
    return std::unexpected(quoted(value) + " is not a whole number");
  }
  if (n < lo || n > hi) {
    return std::unexpected(std::to_string(n) + range());
  }
  return n;
}

Parsed set_unsigned(std::string_view value, unsigned lo, unsigned hi, unsigned& out) {
  const auto n = parse_number(value, lo, hi);
  if (!n) {
    return std::unexpected(n.error());
  }
  out = static_cast<unsigned>(*n);  // within [lo, hi]
  return {};
}

Parsed set_seconds(std::string_view value, std::int64_t lo, std::int64_t hi,
                   std::chrono::seconds& out) {
  const auto n =
      parse_number(value, static_cast<std::uint64_t>(lo), static_cast<std::uint64_t>(hi));
  if (!n) {
    return std::unexpected(n.error());
  }
  out = std::chrono::seconds{static_cast<std::int64_t>(*n)};  // within [lo, hi]
  return {};
}

Parsed set_path(std::string_view value, std::filesystem::path& out) {
  if (!value.starts_with('/')) {
    return std::unexpected(quoted(value) + " is not an absolute path");
  }
  out = std::filesystem::path{value};
  return {};
}

Parsed set_socket_path(std::string_view value, std::filesystem::path& out) {
  if (value.size() > kMaxSocketPathBytes) {
    return std::unexpected("path is longer than " + std::to_string(kMaxSocketPathBytes) +
                           " bytes, the limit for a UNIX socket");
  }
  return set_path(value, out);
}

// POSIX portable file name characters (what getgrnam() of any libc accepts),
// not starting with '-', not all digits (that would read as a gid).
Parsed set_group(std::string_view value, std::string& out) {
  if (value.empty()) {
    out.clear();
    return {};
  }
  const auto portable = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  };
  const bool all_digits = std::ranges::all_of(value, [](char c) { return c >= '0' && c <= '9'; });
  if (value.size() > kMaxGroupNameBytes || !std::ranges::all_of(value, portable) ||
      value.front() == '-' || all_digits) {
    return std::unexpected(quoted(value) +
                           " is not a valid group name (up to 32 letters, digits, \".\", \"_\", "
                           "\"-\"; not starting with \"-\"; not a number)");
  }
  out = std::string{value};
  return {};
}

Parsed set_pam_service(std::string_view value, std::string& out) {
  const auto allowed = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  };
  // No leading '.': "." and ".." would name directories next to /etc/pam.d files.
  if (value.empty() || value.size() > kMaxServiceNameBytes ||
      !std::ranges::all_of(value, allowed) || value.starts_with('.')) {
    return std::unexpected(quoted(value) +
                           " is not a valid PAM service name (letters, digits, \".\", \"_\", "
                           "\"-\"; not starting with \".\")");
  }
  out = std::string{value};
  return {};
}

// The issuer is shown by authenticator apps and is the part of the otpauth
// label before the ':' that separates it from the account.
Parsed set_issuer(std::string_view value, std::string& out) {
  const std::size_t chars = common::utf8_length(value).value_or(0);  // lines are checked already
  if (chars > kMaxIssuerChars) {
    return std::unexpected("is longer than " + std::to_string(kMaxIssuerChars) + " characters");
  }
  if (value.find(':') != std::string_view::npos) {
    return std::unexpected(quoted(value) +
                           " contains \":\", which separates issuer and account in the "
                           "otpauth label");
  }
  // Lines hold no C0 controls but tabs, so this refuses tabs and C1 controls.
  if (common::has_control(value, common::Controls::c0_and_c1)) {
    return std::unexpected(quoted(value) + " contains a control character");
  }
  out = std::string{value};
  return {};
}

Parsed set_algorithm(std::string_view value, common::TotpAlgorithm& out) {
  const auto algorithm = common::parse_algorithm(value);
  if (!algorithm) {
    return std::unexpected(quoted(value) + " is not one of SHA1, SHA256, SHA512");
  }
  out = *algorithm;
  return {};
}

Parsed set_store(std::string_view value, StoreBackend& out) {
  if (equals_ignoring_case(value, "sqlite")) {
    out = StoreBackend::sqlite;
  } else if (equals_ignoring_case(value, "postgresql")) {
    out = StoreBackend::postgresql;
  } else {
    return std::unexpected(quoted(value) + " is not one of sqlite, postgresql");
  }
  return {};
}

std::string_view to_string(StoreBackend store) {
  return store == StoreBackend::postgresql ? "postgresql" : "sqlite";
}

Parsed set_date(std::string_view value, std::optional<std::chrono::sys_days>& out) {
  if (value.empty()) {
    out.reset();
    return {};
  }
  const auto digits = [&](std::size_t at, std::size_t n) {
    unsigned v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      v = v * 10 + static_cast<unsigned>(value[i] - '0');
    }
    return v;
  };
  const bool shape = value.size() == 10 && value[4] == '-' && value[7] == '-' &&
                     std::ranges::all_of(std::array{0, 1, 2, 3, 5, 6, 8, 9}, [&](int i) {
                       const char c = value[static_cast<std::size_t>(i)];
                       return c >= '0' && c <= '9';
                     });
  if (!shape) {
    return std::unexpected(quoted(value) + " is not a date in the form YYYY-MM-DD");
  }
  const std::chrono::year_month_day date{std::chrono::year{static_cast<int>(digits(0, 4))},
                                         std::chrono::month{digits(5, 2)},
                                         std::chrono::day{digits(8, 2)}};
  if (!date.ok() || date.year() < std::chrono::year{1970}) {
    return std::unexpected(quoted(value) + " is not a real date");
  }
  out = std::chrono::sys_days{date};
  return {};
}

std::string format_date(const std::optional<std::chrono::sys_days>& day) {
  if (!day) {
    return {};
  }
  const std::chrono::year_month_day date{*day};
  const auto pad = [](unsigned v, std::size_t width) {
    const std::string s = std::to_string(v);
    return std::string(width > s.size() ? width - s.size() : 0, '0') + s;
  };
  return pad(static_cast<unsigned>(static_cast<int>(date.year())), 4) + "-" +
         pad(static_cast<unsigned>(date.month()), 2) + "-" +
         pad(static_cast<unsigned>(date.day()), 2);
}

// ---- DSN masking --------------------------------------------------------------------

// Keys whose value is a secret: password, sslpassword.
bool is_secret_keyword(std::string_view key) {
  constexpr std::string_view kPassword = "password";
  return key.size() >= kPassword.size() &&
         equals_ignoring_case(key.substr(key.size() - kPassword.size()), kPassword);
}

// URI form: postgresql://user:SECRET@host/db?password=SECRET&...
std::string mask_dsn_uri(std::string_view dsn, std::size_t authority_at) {
  std::string out{dsn.substr(0, authority_at)};
  std::string_view rest = dsn.substr(authority_at);
  const std::size_t authority_end = std::min(rest.find_first_of("/?#"), rest.size());
  const std::string_view authority = rest.substr(0, authority_end);
  const std::size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    const std::size_t colon = userinfo.find(':');
    out += colon == std::string_view::npos ? userinfo
                                           : std::string{userinfo.substr(0, colon)} + ":***";
    out += authority.substr(at);
  } else {
    out += authority;
  }
  rest = rest.substr(authority_end);
  // Query parameters: mask the value of every secret one.
  const std::size_t query = rest.find('?');
  out += rest.substr(0, query == std::string_view::npos ? rest.size() : query + 1);
  if (query == std::string_view::npos) {
    return out;
  }
  rest = rest.substr(query + 1);
  bool first = true;
  while (!rest.empty()) {
    const std::size_t end = std::min(rest.find_first_of("&#"), rest.size());
    const std::string_view param = rest.substr(0, end);
    const std::size_t eq = param.find('=');
    if (!first) {
      out += '&';
    }
    first = false;
    if (eq != std::string_view::npos && is_secret_keyword(param.substr(0, eq))) {
      out += std::string{param.substr(0, eq)} + "=***";
    } else {
      out += param;
    }
    if (end < rest.size() && rest[end] == '#') {
      out += rest.substr(end);
      break;
    }
    rest = end < rest.size() ? rest.substr(end + 1) : std::string_view{};
  }
  return out;
}

// Keyword form: `host=db password='se cret' ...` (libpq: spaces around '=',
// single quotes, backslash escapes).
std::string mask_dsn_keywords(std::string_view dsn) {
  std::string out;
  std::size_t i = 0;
  const auto is_space = [](char c) { return kWhitespace.find(c) != std::string_view::npos; };
  while (i < dsn.size()) {
    if (is_space(dsn[i])) {
      out += dsn[i++];
      continue;
    }
    const std::size_t key_start = i;
    while (i < dsn.size() && dsn[i] != '=' && !is_space(dsn[i])) {
      ++i;
    }
    const std::string_view key = dsn.substr(key_start, i - key_start);
    std::size_t j = i;
    while (j < dsn.size() && is_space(dsn[j])) {
      ++j;
    }
    if (j >= dsn.size() || dsn[j] != '=') {
      out += dsn.substr(key_start, i - key_start);  // malformed; libpq will say so
      continue;
    }
    ++j;
    while (j < dsn.size() && is_space(dsn[j])) {
      ++j;
    }
    // The value: quoted up to the closing quote, else up to whitespace.
    std::size_t k = j;
    if (k < dsn.size() && dsn[k] == '\'') {
      ++k;
      while (k < dsn.size() && dsn[k] != '\'') {
        k += (dsn[k] == '\\' && k + 1 < dsn.size()) ? 2 : 1;
      }
      k = std::min(k + 1, dsn.size());
      // libpq ends the value here and refuses anything stuck to it; a secret's
      // mask still runs to whitespace, so `password='hun'ter2` shows no "ter2".
      while (is_secret_keyword(key) && k < dsn.size() && !is_space(dsn[k])) {
        ++k;
      }
    } else {
      while (k < dsn.size() && !is_space(dsn[k])) {
        k += (dsn[k] == '\\' && k + 1 < dsn.size()) ? 2 : 1;
      }
    }
    if (is_secret_keyword(key)) {
      out += std::string{key} + "=***";
    } else {
      out += dsn.substr(key_start, k - key_start);
    }
    i = k;
  }
  return out;
}

std::string mask_dsn(std::string_view dsn) {
  for (const std::string_view scheme : {"postgresql://", "postgres://"}) {
    if (dsn.size() >= scheme.size() && equals_ignoring_case(dsn.substr(0, scheme.size()), scheme)) {
      return mask_dsn_uri(dsn, scheme.size());
    }
  }
  return mask_dsn_keywords(dsn);
}

}  // namespace

// ---- the table ----------------------------------------------------------------------

// Every key of kpanel-totpd.conf(5), in the order of the shipped file and describe_config().
// The defaults are DaemonConfig's and Policy's member initializers.
constexpr auto kKeys = std::to_array<Key>({
    {"socket", false, TakesEffect::on_restart,
     [](std::string_view v, DaemonConfig& c) { return set_socket_path(v, c.socket); },
     [](const DaemonConfig& c) { return c.socket.string(); }},
    {"state_dir", false, TakesEffect::on_restart,
     [](std::string_view v, DaemonConfig& c) { return set_path(v, c.state_dir); },
     [](const DaemonConfig& c) { return c.state_dir.string(); }},
    {"key_file", false, TakesEffect::on_restart,
     [](std::string_view v, DaemonConfig& c) { return set_path(v, c.key_file); },
     [](const DaemonConfig& c) { return c.key_file.string(); }},
    {"issuer", false, TakesEffect::on_reload,
     [](std::string_view v, DaemonConfig& c) { return set_issuer(v, c.policy.issuer); },
     [](const DaemonConfig& c) { return c.policy.issuer; }},
    {"algorithm", false, TakesEffect::on_reload,
     [](std::string_view v, DaemonConfig& c) { return set_algorithm(v, c.policy.totp.algorithm); },
     [](const DaemonConfig& c) { return std::string{common::to_string(c.policy.totp.algorithm)}; }},
    {"digits", false, TakesEffect::on_reload,
     [](std::string_view v, DaemonConfig& c) {
       return set_unsigned(v, kMinDigits, kMaxDigits, c.policy.totp.digits);
     },
     [](const DaemonConfig& c) { return std::to_string(c.policy.totp.digits); }},
    {"period", false, TakesEffect::on_reload,
     [](std::string_view v, DaemonConfig& c) {
       return set_unsigned(v, kMinPeriod, kMaxPeriod, c.policy.totp.period);
     },
     [](const DaemonConfig& c) { return std::to_string(c.policy.totp.period); }},
    {"window", false, TakesEffect::on_reload,
     [](std::string_view v, DaemonConfig& c) {
       return set_unsigned(v, 0, kMaxWindow, c.policy.window);
     },
     [](const DaemonConfig& c) { return std::to_string(c.policy.window); }},
    {"max_failures", false, TakesEffect::on_reload,
     [](std::string_view v, DaemonConfig& c) {
       return set_unsigned(v, 1, kMaxFailuresLimit, c.policy.max_failures);
     },
     [](const DaemonConfig& c) { return std::to_string(c.policy.max_failures); }},
    {"lockout_seconds", false, TakesEffect::on_reload,
     [](std::string_view v, DaemonConfig& c) {
       return set_seconds(v, 1, kMaxLockoutSeconds, c.policy.lockout);
     },
     [](const DaemonConfig& c) { return std::to_string(c.policy.lockout.count()); }},
    // Checked against lockout_seconds once every line is read.
    {"lockout_max_seconds", false, TakesEffect::on_reload,
     [](std::string_view v, DaemonConfig& c) {
       return set_seconds(v, 1, kMaxLockoutMaxSeconds, c.policy.lockout_max);
     },
     [](const DaemonConfig& c) { return std::to_string(c.policy.lockout_max.count()); }},
    {"recovery_codes", false, TakesEffect::on_reload,
     [](std::string_view v, DaemonConfig& c) {
       return set_unsigned(v, 1, kMaxRecoveryCodes, c.policy.recovery_codes);
     },
     [](const DaemonConfig& c) { return std::to_string(c.policy.recovery_codes); }},
    {"enrollment_timeout", false, TakesEffect::on_reload,
     [](std::string_view v, DaemonConfig& c) {
       return set_seconds(v, kMinEnrollmentTimeout, kMaxEnrollmentTimeout,
                          c.policy.enrollment_timeout);
     },
     [](const DaemonConfig& c) { return std::to_string(c.policy.enrollment_timeout.count()); }},
    {"password_service", false, TakesEffect::on_restart,
     [](std::string_view v, DaemonConfig& c) { return set_pam_service(v, c.password_service); },
     [](const DaemonConfig& c) { return c.password_service; }},
    {"admin_group", true, TakesEffect::on_reload,
     [](std::string_view v, DaemonConfig& c) { return set_group(v, c.policy.admin_group); },
     [](const DaemonConfig& c) { return c.policy.admin_group; }},
    {"enforce_after", true, TakesEffect::on_reload,
     [](std::string_view v, DaemonConfig& c) { return set_date(v, c.policy.enforce_after); },
     [](const DaemonConfig& c) { return format_date(c.policy.enforce_after); }},
    {"exempt_group", true, TakesEffect::on_reload,
     [](std::string_view v, DaemonConfig& c) { return set_group(v, c.policy.exempt_group); },
     [](const DaemonConfig& c) { return c.policy.exempt_group; }},
    {"remember_seconds", false, TakesEffect::on_reload,
     [](std::string_view v, DaemonConfig& c) {
       return set_seconds(v, 0, kMaxRememberSeconds, c.policy.remember);
     },
     [](const DaemonConfig& c) { return std::to_string(c.policy.remember.count()); }},
    // Checked against postgresql_dsn once every line is read.
    {"store", false, TakesEffect::on_restart,
     [](std::string_view v, DaemonConfig& c) { return set_store(v, c.store); },
     [](const DaemonConfig& c) { return std::string{to_string(c.store)}; }},
    {"postgresql_dsn", true, TakesEffect::on_restart,
     [](std::string_view v, DaemonConfig& c) -> Parsed {
       if (v.size() > kMaxDsnBytes || mask_dsn(v).size() > kMaxDsnBytes) {
         return std::unexpected("is longer than " + std::to_string(kMaxDsnBytes) +
                                " bytes (each password counted as 3)");
       }
       c.postgresql_dsn = std::string{v};  // libpq is the judge of its syntax
       return {};
     },
     [](const DaemonConfig& c) { return mask_dsn(c.postgresql_dsn); },
     // show() masks the password: a changed password is a change too.
     [](const DaemonConfig& a, const DaemonConfig& b) {
       return a.postgresql_dsn != b.postgresql_dsn;
     }},
    // Checked against postgresql_dsn once every line is read.
    {"postgresql_allow_unverified", false, TakesEffect::on_restart,
     [](std::string_view v, DaemonConfig& c) -> Parsed {
       if (equals_ignoring_case(v, "yes")) {
         c.postgresql_allow_unverified = true;
       } else if (equals_ignoring_case(v, "no")) {
         c.postgresql_allow_unverified = false;
       } else {
         return std::unexpected(quoted(v) + " is not one of yes, no");
       }
       return {};
     },
     [](const DaemonConfig& c) {
       return std::string{c.postgresql_allow_unverified ? "yes" : "no"};
     }},
});

static_assert(kKeys.size() == kKeyCount);

std::span<const Key, kKeyCount> keys() { return kKeys; }

std::optional<std::size_t> find_key(std::string_view name) {
  const auto* const it = std::ranges::find(kKeys, name, &Key::name);
  if (it == kKeys.end()) {
    return std::nullopt;
  }
  return static_cast<std::size_t>(it - kKeys.begin());
}
}  // namespace kpanel::daemon::config_table
