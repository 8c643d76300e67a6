#include "cli/stats_output.hpp"

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string_view>

#include "cli/output.hpp"

namespace kpanel::cli {
namespace {

namespace protocol = common::protocol;
using Json = nlohmann::ordered_json;  // keys in the documented order

struct Labelled {
  std::string_view label;
  std::int64_t protocol::AdminStatsResult::*member;
};

// One table per labelled metric, read by all three renderings.
constexpr std::array<Labelled, 9> kVerifications{{
    {"ok", &protocol::AdminStatsResult::verify_ok},
    {"recovery", &protocol::AdminStatsResult::verify_recovery},
    {"wrong_code", &protocol::AdminStatsResult::verify_wrong_code},
    {"replayed", &protocol::AdminStatsResult::verify_replayed},
    {"locked", &protocol::AdminStatsResult::verify_locked},
    {"malformed", &protocol::AdminStatsResult::verify_malformed},
    {"busy", &protocol::AdminStatsResult::verify_busy},
    {"store_unavailable", &protocol::AdminStatsResult::verify_store_unavailable},
    {"other", &protocol::AdminStatsResult::verify_other},
}};
constexpr std::array<Labelled, 4> kWithoutCode{{
    {"remembered", &protocol::AdminStatsResult::remembered_skips},
    {"exempt", &protocol::AdminStatsResult::exempt_logins},
    {"grace", &protocol::AdminStatsResult::grace_logins},
    {"nullok", &protocol::AdminStatsResult::nullok_logins},
}};
constexpr std::array<Labelled, 2> kInFlight{{
    {"fast", &protocol::AdminStatsResult::in_flight_fast},
    {"slow", &protocol::AdminStatsResult::in_flight_slow},
}};

template <std::size_t N>
Json labelled_object(const protocol::AdminStatsResult& stats,
                     const std::array<Labelled, N>& table) {
  Json object = Json::object();
  for (const Labelled& entry : table) {
    object[std::string(entry.label)] = stats.*entry.member;
  }
  return object;
}

std::int64_t uptime(const protocol::AdminStatsResult& stats) {
  return stats.now > stats.started_at ? stats.now - stats.started_at : 0;
}

// Prometheus text format, one metric family at a time.
class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    text_.append("# HELP kpanel_totp_").append(name).append(" ").append(help).append("\n");
    text_.append("# TYPE kpanel_totp_").append(name).append(" ").append(type).append("\n");
    name_ = name;
  }
  void sample(std::int64_t value) {
    text_.append("kpanel_totp_").append(name_).append(" ").append(std::to_string(value)) += '\n';
  }
  // Labels come from the tables above: fixed words that need no escaping.
  void sample(std::string_view label, std::string_view label_value, std::int64_t value) {
    text_.append("kpanel_totp_")
        .append(name_)
        .append("{")
        .append(label)
        .append("=\"")
        .append(label_value)
        .append("\"} ")
        .append(std::to_string(value)) += '\n';
  }
  template <std::size_t N>
  void samples(std::string_view label, const protocol::AdminStatsResult& stats,
               const std::array<Labelled, N>& table) {
    for (const Labelled& entry : table) {
      sample(label, entry.label, stats.*entry.member);
    }
  }
  [[nodiscard]] std::string take() { return std::move(text_); }

 private:
  std::string text_;
  std::string_view name_;
};

}  // namespace

std::string stats_json(const protocol::AdminStatsResult& stats) {
  Json object;
  object["started_at"] = iso8601(stats.started_at);
  object["uptime_seconds"] = uptime(stats);
  object["verifications"] = labelled_object(stats, kVerifications);
  object["lockouts"] = stats.lockouts;
  object["enrollments"] = stats.enrollments;
  object["imports"] = stats.imports;
  object["logins_without_code"] = labelled_object(stats, kWithoutCode);
  object["users_enrolled"] = stats.users_enrolled;
  object["users_locked"] = stats.users_locked;
  object["in_flight"] = labelled_object(stats, kInFlight);
  object["connections"] = stats.connections;
  return object.dump();
}

std::string stats_prometheus(const protocol::AdminStatsResult& stats) {
  Exposition out;
  out.family("start_time_seconds", "gauge",
             "When kpanel-totpd started (unix seconds); the counters below count from then.");
  out.sample(stats.started_at);
  out.family("verifications_total", "counter",
             "Codes checked (TOTP or recovery code) by outcome; recovery is a recovery code "
             "accepted.");
  out.samples("outcome", stats, kVerifications);
  out.family("lockouts_total", "counter", "Lockouts started by failed codes.");
  out.sample(stats.lockouts);
  out.family("enrollments_total", "counter",
             "Enrollments confirmed (first ones and changes of phone).");
  out.sample(stats.enrollments);
  out.family("imports_total", "counter", "google-authenticator files imported.");
  out.sample(stats.imports);
  out.family("logins_without_code_total", "counter",
             "Logins let through without a code, by reason (remembered: inside a "
             "remember_seconds window).");
  out.samples("reason", stats, kWithoutCode);
  out.family("users_enrolled", "gauge", "Users with a confirmed enrollment.");
  out.sample(stats.users_enrolled);
  out.family("users_locked", "gauge", "Users locked out now.");
  out.sample(stats.users_locked);
  out.family("requests_in_flight", "gauge", "Requests queued or running, by lane.");
  out.samples("lane", stats, kInFlight);
  out.family("connections", "gauge", "Connections open on the daemon's socket.");
  out.sample(stats.connections);
  return out.take();
}

void print_stats(std::ostream& out, const protocol::AdminStatsResult& stats) {
  const std::int64_t seconds = uptime(stats);
  out << "kpanel-totpd running since " << iso8601(stats.started_at) << " (" << seconds / 86400
      << " d " << (seconds % 86400) / 3600 << " h " << (seconds % 3600) / 60 << " min)\n";
  const auto line = [&](std::string_view title, const auto& table) {
    out << title;
    bool first = true;
    for (const Labelled& entry : table) {
      out << (first ? " " : ", ") << stats.*entry.member << ' ' << entry.label;
      first = false;
    }
    out << '\n';
  };
  line("Verifications:", kVerifications);
  out << "Lockouts: " << stats.lockouts << "  Enrollments: " << stats.enrollments
      << "  Imports: " << stats.imports << '\n';
  line("Logins without a code:", kWithoutCode);
  out << "Users: " << stats.users_enrolled << " enrolled, " << stats.users_locked << " locked\n";
  line("Requests in flight:", kInFlight);
  out << "Connections open: " << stats.connections << '\n';
}

}  // namespace kpanel::cli
