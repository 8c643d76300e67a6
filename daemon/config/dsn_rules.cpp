#include "daemon/config/dsn_rules.hpp"

#include <algorithm>
#include <cctype>

namespace kpanel::daemon::dsn {
namespace {

constexpr std::string_view kSpace = " \t\r\n\f\v";

bool is_space(char c) { return kSpace.find(c) != std::string_view::npos; }

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         std::ranges::equal(text.substr(0, prefix.size()), prefix, [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) ==
                  std::tolower(static_cast<unsigned char>(b));
         });
}

std::vector<std::string> split_commas(std::string_view value) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = value.find(',', start);
    out.emplace_back(
        value.substr(start, comma == std::string_view::npos ? value.npos : comma - start));
    if (comma == std::string_view::npos) return out;
    start = comma + 1;
  }
}

void take(Fields& fields, std::string_view key, const std::string& value) {
  if (key == "host") {
    fields.hosts = split_commas(value);
  } else if (key == "hostaddr") {
    fields.hostaddrs = split_commas(value);
  } else if (key == "sslmode") {
    fields.sslmode = value;
  } else if (key == "service") {
    fields.service = true;
  } else if (key == "password") {
    fields.password = !value.empty();
  }
}

// key = value pairs; a value quoted with ' (\ escapes) or up to whitespace.
Fields read_keywords(std::string_view dsn) {
  Fields fields;
  std::size_t i = 0;
  while (i < dsn.size()) {
    if (is_space(dsn[i])) {
      ++i;
      continue;
    }
    const std::size_t key_start = i;
    while (i < dsn.size() && dsn[i] != '=' && !is_space(dsn[i])) ++i;
    const std::string_view key = dsn.substr(key_start, i - key_start);
    while (i < dsn.size() && is_space(dsn[i])) ++i;
    if (i >= dsn.size() || dsn[i] != '=') continue;  // malformed: libpq says so
    ++i;
    while (i < dsn.size() && is_space(dsn[i])) ++i;
    std::string value;
    const bool quoted = i < dsn.size() && dsn[i] == '\'';
    if (quoted) ++i;
    while (i < dsn.size() && (quoted ? dsn[i] != '\'' : !is_space(dsn[i]))) {
      if (dsn[i] == '\\' && i + 1 < dsn.size()) ++i;
      value.push_back(dsn[i++]);
    }
    if (quoted && i < dsn.size()) ++i;
    take(fields, key, value);
  }
  return fields;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string percent_decoded(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex_digit(text[i + 1]) >= 0 &&
        hex_digit(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_digit(text[i + 1]) * 16 + hex_digit(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// postgresql://[user[:password]@][host[:port][,...]][/dbname][?key=value&...]
Fields read_uri(std::string_view rest) {
  Fields fields;
  const std::size_t authority_end = std::min(rest.find_first_of("/?"), rest.size());
  std::string_view authority = rest.substr(0, authority_end);
  if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    fields.password = authority.substr(0, at).find(':') != std::string_view::npos;
    authority = authority.substr(at + 1);
  }
  if (!authority.empty()) {
    for (const std::string& entry : split_commas(authority)) {
      std::string_view host = entry;
      if (host.starts_with('[')) {  // [IPv6]:port
        host = host.substr(1, std::min(host.find(']'), host.size()) - 1);
      } else {
        host = host.substr(0, std::min(host.find(':'), host.size()));
      }
      fields.hosts.push_back(percent_decoded(host));
    }
  }
  const std::size_t query = rest.find('?');
  if (query == std::string_view::npos) return fields;
  std::string_view params = rest.substr(query + 1);
  while (!params.empty()) {
    const std::size_t end = std::min(params.find('&'), params.size());
    const std::string_view param = params.substr(0, end);
    const std::size_t eq = param.find('=');
    if (eq != std::string_view::npos) {
      take(fields, percent_decoded(param.substr(0, eq)), percent_decoded(param.substr(eq + 1)));
    }
    params = params.substr(std::min(end + 1, params.size()));
  }
  return fields;
}

// A dotted-quad IPv4 address whose first number is 127.
bool is_ipv4_loopback(std::string_view host) {
  if (!host.starts_with("127.")) return false;
  int dots = 0;
  std::size_t digits = 0;
  for (const char c : host) {
    if (c == '.') {
      if (digits == 0) return false;
      ++dots;
      digits = 0;
    } else if (c < '0' || c > '9' || ++digits > 3) {
      return false;
    }
  }
  return dots == 3 && digits > 0;
}

}  // namespace

Fields read(std::string_view dsn) {
  for (const std::string_view scheme : {"postgresql://", "postgres://"}) {
    if (starts_with_ignoring_case(dsn, scheme)) return read_uri(dsn.substr(scheme.size()));
  }
  return read_keywords(dsn);
}

bool is_local(std::string_view host) {
  return host.empty() || host.starts_with('/') || host.starts_with('@') || host == "localhost" ||
         host == "::1" || is_ipv4_loopback(host);
}

std::optional<std::string> transport_problem(std::string_view dsn) {
  const Fields fields = read(dsn);
  if (fields.sslmode == "verify-full") return std::nullopt;
  const std::string mode = fields.sslmode ? "sslmode=" + *fields.sslmode : "no sslmode";
  if (fields.service) {
    return "names a service= (whose host this cannot see) with " + mode +
           "; add sslmode=verify-full (and sslrootcert=)";
  }
  for (const auto* list : {&fields.hosts, &fields.hostaddrs}) {
    const auto remote =
        std::ranges::find_if(*list, [](const std::string& h) { return !is_local(h); });
    if (remote != list->end()) {
      return "reaches " + *remote + ", not this machine, with " + mode +
             ": the password and the login state would cross the network without a verified "
             "server; add sslmode=verify-full and sslrootcert= (the CA of the server's "
             "certificate)";
    }
  }
  return std::nullopt;
}

std::string mask_passwords(std::string_view text) {
  constexpr std::string_view kKey = "password";
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t found = i;
    while (found + kKey.size() <= text.size() &&
           !starts_with_ignoring_case(text.substr(found), kKey)) {
      ++found;
    }
    if (found + kKey.size() > text.size()) break;
    std::size_t j = found + kKey.size();
    while (j < text.size() && is_space(text[j])) ++j;
    if (j >= text.size() || text[j] != '=') {
      out += text.substr(i, j - i);
      i = j;
      continue;
    }
    ++j;
    while (j < text.size() && is_space(text[j])) ++j;
    out += text.substr(i, j - i);
    out += "***";
    // The value: quoted (' with \ escapes), else up to whitespace or a
    // closing quote of the text around it.
    if (j < text.size() && text[j] == '\'') {
      ++j;
      while (j < text.size() && text[j] != '\'') j += text[j] == '\\' ? 2 : 1;
      j = std::min(j + 1, text.size());
    } else {
      while (j < text.size() && !is_space(text[j]) && text[j] != '"' && text[j] != '\'') ++j;
    }
    i = j;
  }
  out += text.substr(std::min(i, text.size()));
  return out;
}

}  // namespace kpanel::daemon::dsn
