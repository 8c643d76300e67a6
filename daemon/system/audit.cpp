#include "daemon/system/audit.hpp"

#include <syslog.h>

#include <algorithm>
#include <array>
#include <cstdio>

#include "common/clock.hpp"
#include "common/text.hpp"

namespace kpanel::daemon {
namespace {

using common::protocol::Status;

constexpr std::size_t kMaxValueBytes = 128;

std::string_view to_string(StoreErrorKind kind) noexcept {
  switch (kind) {
    case StoreErrorKind::io:
      return "io";
    case StoreErrorKind::corrupt:
      return "corrupt";
    case StoreErrorKind::busy:
      return "busy";
    case StoreErrorKind::key:
      return "key";
    case StoreErrorKind::unavailable:
      return "unavailable";
  }
  return "unknown";
}

constexpr std::size_t kMaxMessageBytes = 512;

// Printable ASCII kept; everything else (newlines, escapes, UTF-8) as \xNN,
// `"` and `\` escaped; cut at `max_bytes` with "..." appended.
std::string escape(std::string_view value, std::size_t max_bytes) {
  constexpr std::string_view kHex = "0123456789abcdef";
  std::string out;
  const std::string_view kept = value.substr(0, max_bytes);
  for (const char c : kept) {
    const auto byte = static_cast<unsigned char>(c);
    if (!common::is_printable_ascii(byte)) {
      out.append("\\x").push_back(kHex[byte >> 4U]);
      out.push_back(kHex[byte & 0x0fU]);
    } else {
      if (c == '"' || c == '\\') {
        out.push_back('\\');
      }
      out.push_back(c);
    }
  }
  if (kept.size() < value.size()) {
    out.append("...");
  }
  return out;
}

// A client-supplied value as one key=value field: escaped, and quoted when
// empty or holding a space, '=', a quote or a backslash.
std::string sanitize(std::string_view value) {
  std::string out = escape(value, kMaxValueBytes);
  if (out.empty() || out.find_first_of(" =\"\\") != std::string::npos) {
    out = '"' + out + '"';
  }
  return out;
}

void field(std::string& line, std::string_view key, std::string_view value) {
  if (!line.empty()) {
    line.push_back(' ');
  }
  line.append(key).append("=").append(value);
}

bool is_warning(const AuditEvent& event) noexcept {
  return event.outcome != Status::ok || event.kind == AuditEventKind::lockout ||
         event.kind == AuditEventKind::audit_suppressed ||
         event.kind == AuditEventKind::exempt_login || event.kind == AuditEventKind::clock_moved ||
         event.kind == AuditEventKind::fence || event.kind == AuditEventKind::remembered_login ||
         event.decision == common::protocol::LoginDecision::refuse ||
         event.decision == common::protocol::LoginDecision::locked;
}

void write_stderr(std::string_view prefix, const std::string& line) noexcept {
  // One fwrite per line, so lines from concurrent threads do not interleave.
  std::string out(prefix);
  out.append(line).push_back('\n');
  static_cast<void>(std::fwrite(out.data(), 1, out.size(), stderr));
}

// The kinds that are ops, in protocol::Op order: the op's event is logged
// under its audit name there.
constexpr std::array kOpKinds{
    AuditEventKind::login_check,
    AuditEventKind::verify,
    AuditEventKind::status,
    AuditEventKind::enroll_begin,
    AuditEventKind::enroll_confirm,
    AuditEventKind::disable,
    AuditEventKind::recovery_regenerate,
    AuditEventKind::admin_list,
    AuditEventKind::reset,
    AuditEventKind::unlock,
    AuditEventKind::admin_stats,
    AuditEventKind::import,
    AuditEventKind::forget,
};
static_assert(kOpKinds.size() == common::protocol::kOps.size(), "one kind per op");

}  // namespace

AuditEventKind audit_kind(common::protocol::Op op) noexcept {
  const auto index = static_cast<std::size_t>(op);
  return index < kOpKinds.size() ? kOpKinds.at(index) : AuditEventKind::verify;
}

std::string_view to_string(AuditEventKind kind) noexcept {
  for (std::size_t i = 0; i < kOpKinds.size(); ++i) {
    if (kOpKinds.at(i) == kind) {
      return common::protocol::audit_name(static_cast<common::protocol::Op>(i));
    }
  }
  switch (kind) {
    case AuditEventKind::exempt_login:
      return "exempt_login";
    case AuditEventKind::grace_login:
      return "grace_login";
    case AuditEventKind::nullok_login:
      return "nullok_login";
    case AuditEventKind::lockout:
      return "lockout";
    case AuditEventKind::clock_skew:
      return "clock_skew";
    case AuditEventKind::clock_moved:
      return "clock_moved";
    case AuditEventKind::audit_suppressed:
      return "audit_suppressed";
    case AuditEventKind::fence:
      return "fence";
    case AuditEventKind::import:
      return "import";
    case AuditEventKind::remembered_login:
      return "remembered_login";
    default:  // an op: named above
      break;
  }
  return "unknown";
}

// event=audit_suppressed peer_uid=1001 suppressed=5310 seconds=10
// counts=status/forbidden:5300,verify/wrong_code:10
std::string format_summary(const AuditEvent& event) {
  std::string line;
  field(line, "event", to_string(event.kind));
  field(line, "peer_uid", event.peer_uid ? std::to_string(*event.peer_uid) : "other");
  field(line, "suppressed", std::to_string(event.suppressed));
  field(line, "seconds", std::to_string(event.suppressed_seconds));
  std::string counts;
  for (const SuppressedCount& count : event.suppressed_by) {
    if (!counts.empty()) {
      counts.push_back(',');
    }
    counts.append(to_string(count.kind))
        .append("/")
        .append(common::protocol::to_string(count.outcome))
        .append(":")
        .append(std::to_string(count.count));
  }
  field(line, "counts", counts.empty() ? std::string("\"\"") : counts);
  return line;
}

std::string format_audit_event(const AuditEvent& event) {
  if (event.kind == AuditEventKind::audit_suppressed) {
    return format_summary(event);
  }
  std::string line;
  field(line, "event", to_string(event.kind));
  field(line, "user", sanitize(event.user));
  if (event.peer_uid) {
    field(line, "peer_uid", std::to_string(*event.peer_uid));
  }
  if (!event.service.empty()) {
    field(line, "service", sanitize(event.service));
  }
  if (!event.rhost.empty()) {
    field(line, "rhost", sanitize(event.rhost));
  }
  if (!event.tty.empty()) {
    field(line, "tty", sanitize(event.tty));
  }
  if (!event.source.empty()) {
    field(line, "source", sanitize(event.source));
  }
  field(line, "outcome", common::protocol::to_string(event.outcome));
  if (event.decision) {
    field(line, "decision", common::protocol::to_string(*event.decision));
  }
  if (event.recovery_code_used) {
    field(line, "recovery_code", "used");
  }
  if (event.recovery_codes_left) {
    field(line, "recovery_codes_left", std::to_string(*event.recovery_codes_left));
  }
  if (event.failures_left) {
    field(line, "failures_left", std::to_string(*event.failures_left));
  }
  if (event.locked_until) {
    field(line, "locked_until", common::format_iso8601(common::from_unix(*event.locked_until)));
  }
  if (event.skew_seconds) {
    field(line, "skew_seconds", std::to_string(*event.skew_seconds));
  }
  if (event.clock_moved_seconds) {
    field(line, "clock_moved_seconds", std::to_string(*event.clock_moved_seconds));
  }
  if (event.remembered_until) {
    field(line, "remembered_until",
          common::format_iso8601(common::from_unix(*event.remembered_until)));
  }
  if (event.days_left) {
    field(line, "days_left", std::to_string(*event.days_left));
  }
  if (event.store_error) {
    field(line, "store_error", to_string(*event.store_error));
  }
  if (event.fenced) {
    field(line, "fenced", "yes");
  }
  if (!event.cause.empty()) {
    field(line, "cause", sanitize(event.cause));
  }
  if (event.fence_time) {
    field(line, "fence_until", common::format_iso8601(common::from_unix(*event.fence_time)));
  }
  if (event.snapshot_taken_at) {
    field(line, "snapshot_taken_at",
          common::format_iso8601(common::from_unix(*event.snapshot_taken_at)));
  }
  return line;
}

struct HeldAuditLine {
  int priority = 0;
  std::string line;
  bool also_stderr = false;
};

namespace {

// Set while a HoldAuditLines lives on this thread.
thread_local std::vector<HeldAuditLine>* held_audit_lines = nullptr;

void write_audit_line(int priority, const std::string& line, bool also_stderr) noexcept {
  syslog(priority, "%s", line.c_str());  // NOLINT(*-vararg)
  if (also_stderr) {
    write_stderr("audit: ", line);
  }
}

}  // namespace

HoldAuditLines::HoldAuditLines() noexcept {
  if (held_audit_lines == nullptr) {
    held_audit_lines = &lines_;
    holding_ = true;
  }
}

HoldAuditLines::~HoldAuditLines() {
  if (!holding_) return;
  held_audit_lines = nullptr;
  for (const HeldAuditLine& held : lines_) {
    write_audit_line(held.priority, held.line, held.also_stderr);
  }
}

void SyslogAuditLog::record(const AuditEvent& event) noexcept {
  try {
    std::string line = format_audit_event(event);
    const int priority = LOG_AUTHPRIV | (is_warning(event) ? LOG_WARNING : LOG_NOTICE);
    if (held_audit_lines != nullptr) {
      held_audit_lines->push_back(HeldAuditLine{
          .priority = priority, .line = std::move(line), .also_stderr = also_stderr_});
      return;
    }
    write_audit_line(priority, line, also_stderr_);
  } catch (...) {
    // Out of memory while formatting: nothing sensible left to log with.
  }
}

// ---- the per-uid budget --------------------------------------------------------

// A success that changed state (a code accepted, an enrollment confirmed,
// the factor disabled, an admin's reset or unlock) cannot be repeated at will:
// each needs a fresh code or a deliberate act, so it is always written. Any
// other event of an unprivileged uid can be repeated as fast as it can send,
// a refusal or not (a login_check that lets an unenrolled user through, a
// started enrollment), and spends the uid's budget.
bool RateLimitedAuditLog::may_suppress(const AuditEvent& event) noexcept {
  if (!event.peer_uid || *event.peer_uid == 0) {
    return false;
  }
  switch (event.kind) {
    case AuditEventKind::lockout:
    case AuditEventKind::clock_moved:
    case AuditEventKind::audit_suppressed:
    case AuditEventKind::fence:
      return false;
    case AuditEventKind::verify:
    case AuditEventKind::enroll_confirm:
    case AuditEventKind::disable:
    case AuditEventKind::recovery_regenerate:
    case AuditEventKind::reset:
    case AuditEventKind::unlock:
    case AuditEventKind::import:
    case AuditEventKind::remembered_login:
    case AuditEventKind::forget:
      return event.outcome != Status::ok;
    case AuditEventKind::login_check:
    case AuditEventKind::exempt_login:
    case AuditEventKind::grace_login:
    case AuditEventKind::nullok_login:
    case AuditEventKind::status:
    case AuditEventKind::enroll_begin:
    case AuditEventKind::admin_list:
    case AuditEventKind::admin_stats:
    case AuditEventKind::clock_skew:
      return true;
  }
  return true;
}

void RateLimitedAuditLog::refill(Budget& budget, common::TimePoint now) const {
  // A clock set back refills nothing and restarts from now.
  const auto elapsed = std::max(now - budget.refilled, common::TimePoint::duration::zero());
  budget.tokens = std::min(
      limits_.burst, budget.tokens + static_cast<double>(elapsed.count()) * limits_.per_second);
  budget.refilled = now;
}

RateLimitedAuditLog::Budget& RateLimitedAuditLog::budget_for(std::optional<uid_t>& uid,
                                                             common::TimePoint now) {
  if (const auto found = budgets_.find(*uid); found != budgets_.end()) {
    return found->second;
  }
  if (budgets_.size() < limits_.max_uids) {
    return budgets_.emplace(*uid, Budget{limits_.burst, now, 0, now, {}}).first->second;
  }
  uid.reset();
  if (!overflow_) {
    overflow_ = Budget{limits_.burst, now, 0, now, {}};
  }
  return *overflow_;
}

AuditEvent RateLimitedAuditLog::take_summary(std::optional<uid_t> uid, Budget& budget,
                                             common::TimePoint now) {
  AuditEvent summary;
  summary.kind = AuditEventKind::audit_suppressed;
  summary.peer_uid = uid;
  summary.outcome = Status::ok;
  summary.suppressed = budget.suppressed;
  summary.suppressed_seconds = std::max<std::int64_t>((now - budget.since).count(), 0);
  for (const auto& [key, count] : budget.counts) {
    summary.suppressed_by.push_back(SuppressedCount{key.first, key.second, count});
  }
  budget.suppressed = 0;
  budget.counts.clear();
  return summary;
}

void RateLimitedAuditLog::record(const AuditEvent& event) noexcept {
  if (!may_suppress(event)) {
    inner_.record(event);
    return;
  }
  try {
    std::optional<AuditEvent> summary;
    bool write = false;
    {
      const std::lock_guard lock(mutex_);
      const common::TimePoint now = clock_.now();
      std::optional<uid_t> uid = event.peer_uid;
      Budget& budget = budget_for(uid, now);
      refill(budget, now);
      if (budget.suppressed != 0 && now - budget.since >= limits_.summary_period) {
        summary = take_summary(uid, budget, now);
      }
      if (budget.tokens >= 1) {
        budget.tokens -= 1;
        write = true;
      } else {
        if (budget.suppressed == 0) {
          budget.since = now;
        }
        ++budget.suppressed;
        ++budget.counts[{event.kind, event.outcome}];
      }
    }
    if (summary) {
      inner_.record(*summary);
    }
    if (write) {
      inner_.record(event);
    }
  } catch (...) {
    inner_.record(event);  // out of memory for the bookkeeping: rather too many lines than none
  }
}

void RateLimitedAuditLog::flush(bool everything) noexcept {
  try {
    std::vector<AuditEvent> due;
    {
      const std::lock_guard lock(mutex_);
      const common::TimePoint now = clock_.now();
      const auto ready = [&](const Budget& budget) {
        return budget.suppressed != 0 &&
               (everything || now - budget.since >= limits_.summary_period);
      };
      for (auto it = budgets_.begin(); it != budgets_.end();) {
        refill(it->second, now);
        if (ready(it->second)) {
          due.push_back(take_summary(it->first, it->second, now));
        }
        // A full budget with nothing counted is what a new uid gets: forget it.
        if (it->second.suppressed == 0 && it->second.tokens >= limits_.burst) {
          it = budgets_.erase(it);
        } else {
          ++it;
        }
      }
      if (overflow_) {
        refill(*overflow_, now);
        if (ready(*overflow_)) {
          due.push_back(take_summary(std::nullopt, *overflow_, now));
        }
        if (overflow_->suppressed == 0 && overflow_->tokens >= limits_.burst) {
          overflow_.reset();
        }
      }
    }
    for (const AuditEvent& summary : due) {
      inner_.record(summary);
    }
  } catch (...) {
    inner_.error("writing the audit summary of suppressed events failed");
  }
}

void SyslogAuditLog::error(std::string_view message) noexcept {
  try {
    const std::string line = escape(message, kMaxMessageBytes);
    syslog(LOG_DAEMON | LOG_ERR, "%s", line.c_str());  // NOLINT(*-vararg)
    if (also_stderr_) {
      write_stderr("error: ", line);
    }
  } catch (...) {
  }
}

void SyslogAuditLog::store_health(std::string_view message) noexcept {
  error(message);
  try {
    const std::string line = escape(message, kMaxMessageBytes);
    syslog(LOG_AUTHPRIV | LOG_ERR, "%s", line.c_str());  // NOLINT(*-vararg)
  } catch (...) {
  }
}

void log_notice(std::string_view message) noexcept {
  try {
    const std::string line = escape(message, kMaxMessageBytes);
    syslog(LOG_DAEMON | LOG_INFO, "%s", line.c_str());  // NOLINT(*-vararg)
    write_stderr("", line);
  } catch (...) {
  }
}

void log_error(std::string_view message) noexcept {
  try {
    const std::string line = escape(message, kMaxMessageBytes);
    syslog(LOG_DAEMON | LOG_ERR, "%s", line.c_str());  // NOLINT(*-vararg)
    write_stderr("error: ", line);
  } catch (...) {
  }
}

}  // namespace kpanel::daemon
