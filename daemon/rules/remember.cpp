#include "daemon/rules/remember.hpp"

#include <algorithm>
#include <charconv>
#include <ranges>

namespace kpanel::daemon {
namespace {

// Sources come from the module as lines already; the store still escapes
// every byte that could split a line or a field.
bool plain(unsigned char c) noexcept { return c > 0x20 && c < 0x7f && c != '%'; }

void append_escaped(std::string& out, std::string_view text) {
  constexpr std::string_view kHex = "0123456789ABCDEF";
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (plain(c)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4U]);
      out.push_back(kHex[c & 0x0fU]);
    }
  }
}

std::optional<std::string> unescape(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c != '%') {
      if (!plain(c)) return std::nullopt;
      out.push_back(text[i]);
      continue;
    }
    unsigned value = 0;
    if (i + 2 >= text.size()) return std::nullopt;
    const auto* first = text.data() + i + 1;
    const auto [end, error] = std::from_chars(first, first + 2, value, 16);
    if (error != std::errc{} || end != first + 2) return std::nullopt;
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

std::optional<std::int64_t> number(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Drops the oldest windows (by start) matching `which` until at most `keep` remain.
template <typename Which>
void keep_newest(std::vector<RememberedLogin>& windows, std::size_t keep, Which which) {
  while (static_cast<std::size_t>(std::ranges::count_if(windows, which)) > keep) {
    auto oldest = windows.end();
    for (auto it = windows.begin(); it != windows.end(); ++it) {
      if (which(*it) && (oldest == windows.end() || it->from < oldest->from)) oldest = it;
    }
    windows.erase(oldest);
  }
}

}  // namespace

std::int64_t window_end(const RememberedLogin& window, std::chrono::seconds remember) noexcept {
  return std::min(window.until, window.from + remember.count());
}

bool window_open(const RememberedLogin& window, std::string_view host, std::int64_t now,
                 std::chrono::seconds remember, const std::optional<Fence>& fence) noexcept {
  if (remember.count() <= 0 || window.host != host) return false;
  // Opened before an unclean stop: what ended it may be lost.
  if (fence && window.from < fence->time) return false;
  return window.from <= now && now < window_end(window, remember);
}

const RememberedLogin* find_window(const std::vector<RememberedLogin>& windows,
                                   std::string_view host, std::string_view source, std::int64_t now,
                                   std::chrono::seconds remember,
                                   const std::optional<Fence>& fence) noexcept {
  for (const RememberedLogin& window : windows) {
    if (window.source == source && window_open(window, host, now, remember, fence)) {
      return &window;
    }
  }
  return nullptr;
}

void open_window(std::vector<RememberedLogin>& windows, std::string_view host,
                 std::string_view source, std::int64_t now, std::chrono::seconds remember) {
  std::erase_if(windows, [&](const RememberedLogin& w) {
    return w.host == host && (w.source == source || w.until <= now);
  });
  windows.push_back(
      RememberedLogin{std::string(host), std::string(source), now, now + remember.count()});
  keep_newest(windows, kMaxWindowsPerHost,
              [&](const RememberedLogin& w) { return w.host == host; });
  keep_newest(windows, kMaxWindows, [](const RememberedLogin& /*w*/) { return true; });
}

std::string encode_windows(const std::vector<RememberedLogin>& windows) {
  std::string out;
  for (const RememberedLogin& window : windows) {
    out.append(std::to_string(window.from)).push_back(' ');
    out.append(std::to_string(window.until)).push_back(' ');
    append_escaped(out, window.host);
    out.push_back(' ');
    append_escaped(out, window.source);
    out.push_back('\n');
  }
  return out;
}

std::optional<std::vector<RememberedLogin>> decode_windows(std::string_view stored) {
  std::vector<RememberedLogin> windows;
  while (!stored.empty()) {
    const std::size_t end = stored.find('\n');
    if (end == std::string_view::npos || windows.size() == kMaxWindows) return std::nullopt;
    const std::string_view line = stored.substr(0, end);
    stored.remove_prefix(end + 1);
    std::vector<std::string_view> parts;
    for (const auto part : std::views::split(line, ' ')) {
      parts.emplace_back(part.begin(), part.end());
    }
    if (parts.size() != 4) return std::nullopt;
    const auto from = number(parts[0]);
    const auto until = number(parts[1]);
    auto host = unescape(parts[2]);
    auto source = unescape(parts[3]);
    if (!from || !until || !host || !source || host->empty() || source->empty() || *until < *from) {
      return std::nullopt;
    }
    windows.push_back(RememberedLogin{std::move(*host), std::move(*source), *from, *until});
  }
  return windows;
}

}  // namespace kpanel::daemon
