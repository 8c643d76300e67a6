#include "daemon/rules/replay_steps.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <system_error>

namespace kpanel::daemon {
namespace {

// The number of steps strictly between two runs, without overflow at the
// ends of the range (a run of an old record starts at the lowest step).
std::uint64_t gap_between(const StepRun& lower, const StepRun& upper) noexcept {
  return static_cast<std::uint64_t>(upper.first) - static_cast<std::uint64_t>(lower.last) - 1U;
}

// Whether two runs, in order, touch or overlap (so they are one run).
bool touch(const StepRun& lower, const StepRun& upper) noexcept {
  return lower.last == std::numeric_limits<std::int64_t>::max() || upper.first <= lower.last + 1;
}

// Sorts and joins touching runs.
void normalize(std::vector<StepRun>& runs) {
  std::sort(runs.begin(), runs.end(),
            [](const StepRun& a, const StepRun& b) { return a.first < b.first; });
  std::vector<StepRun> out;
  out.reserve(runs.size());
  for (const StepRun& run : runs) {
    if (!out.empty() && touch(out.back(), run)) {
      out.back().last = std::max(out.back().last, run.last);
    } else {
      out.push_back(run);
    }
  }
  runs = std::move(out);
}

// Joins neighbours until at most kMaxStepRuns remain (see the header for the
// choice of gap).
void bound(std::vector<StepRun>& runs, std::int64_t newest) {
  while (runs.size() > kMaxStepRuns) {
    std::optional<std::size_t> behind;  // the gap i is between runs[i] and runs[i + 1]
    std::optional<std::size_t> ahead;
    for (std::size_t i = 0; i + 1 < runs.size(); ++i) {
      std::optional<std::size_t>& best = runs[i + 1].last <= newest ? behind : ahead;
      if (!best || gap_between(runs[i], runs[i + 1]) < gap_between(runs[*best], runs[*best + 1])) {
        best = i;
      }
    }
    const std::size_t i = behind ? *behind : *ahead;
    runs[i].last = runs[i + 1].last;
    runs.erase(runs.begin() + static_cast<std::ptrdiff_t>(i) + 1);
  }
}

std::optional<std::int64_t> parse_step(std::string_view text) {
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [at, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc{} || at != end) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

bool step_used(std::span<const StepRun> runs, std::int64_t step) noexcept {
  return std::any_of(runs.begin(), runs.end(),
                     [step](const StepRun& run) { return run.first <= step && step <= run.last; });
}

void mark_step_used(std::vector<StepRun>& runs, std::int64_t step) {
  runs.push_back(StepRun{step, step});
  normalize(runs);
  bound(runs, step);
}

void merge_step_runs(std::vector<StepRun>& into, std::span<const StepRun> from) {
  into.insert(into.end(), from.begin(), from.end());
  normalize(into);
  std::int64_t newest = std::numeric_limits<std::int64_t>::min();
  for (const StepRun& run : into) {
    newest = std::max(newest, run.last);
  }
  bound(into, newest);
}

std::vector<StepRun> step_runs_up_to(std::int64_t last_step) {
  return {StepRun{std::numeric_limits<std::int64_t>::min(), last_step}};
}

std::string encode_step_runs(std::span<const StepRun> runs) {
  std::string text;
  for (const StepRun& run : runs) {
    if (!text.empty()) {
      text.push_back(',');
    }
    text += std::to_string(run.first);
    if (run.last != run.first) {
      text += "..";
      text += std::to_string(run.last);
    }
  }
  return text;
}

std::optional<std::vector<StepRun>> decode_step_runs(std::string_view text) {
  // Each run is at most two 20-character numbers and "..", plus a comma.
  constexpr std::size_t kMaxText = kMaxStepRuns * 43;
  std::vector<StepRun> runs;
  if (text.empty()) {
    return runs;
  }
  if (text.size() > kMaxText) {
    return std::nullopt;
  }
  while (true) {
    const std::size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    const std::size_t dots = item.find("..");
    const auto first = parse_step(item.substr(0, dots));
    const auto last = dots == std::string_view::npos ? first : parse_step(item.substr(dots + 2));
    if (!first || !last || *last < *first || (dots != std::string_view::npos && *last == *first) ||
        (!runs.empty() && touch(runs.back(), StepRun{*first, *last})) ||
        runs.size() == kMaxStepRuns) {
      return std::nullopt;
    }
    runs.push_back(StepRun{*first, *last});
    if (comma == std::string_view::npos) {
      return runs;
    }
    text.remove_prefix(comma + 1);
  }
}

}  // namespace kpanel::daemon
