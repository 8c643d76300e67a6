#pragma once
// The TOTP steps a secret has accepted, remembered so that a code never works
// twice even when the host clock jumps back over steps already used.
//
// Kept as sorted, disjoint, non-adjacent runs of steps [first, last]. Every
// step inside a run may have been accepted; every step outside all runs never
// was. Consecutive accepted steps (a user logging in every 30 s) are one run,
// so the list stays short. It is bounded: past kMaxStepRuns runs, two
// neighbouring runs are joined, which fills the gap between them; the steps
// in it are then refused as if used. That is safe (a used code stays refused)
// and costs only a jump back into that gap, which refuses codes until the
// clock has passed it again. The gap joined is the smallest one lying wholly
// before the step just accepted (in the past by this host's clock), so the
// steps a clock running normally will reach are never filled; only when every
// gap lies ahead (the clock moved back before more than kMaxStepRuns
// separate logins) is the smallest gap ahead joined. A record written before
// this state existed knows only its last accepted step: one run from the
// lowest step to it, i.e. the old rule "nothing at or before last_step".

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kpanel::daemon {

struct StepRun {
  std::int64_t first = 0;
  std::int64_t last = 0;
  friend bool operator==(const StepRun&, const StepRun&) = default;
};

// 32 runs of ~40 characters: a stored value of at most ~1.3 KiB per user.
inline constexpr std::size_t kMaxStepRuns = 32;

// Whether `step` may have been accepted.
[[nodiscard]] bool step_used(std::span<const StepRun> runs, std::int64_t step) noexcept;

// Records `step` as accepted, then joins runs until at most kMaxStepRuns remain.
void mark_step_used(std::vector<StepRun>& runs, std::int64_t step);

// Adds every step of `from` (another copy of the same secret's state).
void merge_step_runs(std::vector<StepRun>& into, std::span<const StepRun> from);

// The state of a record that knew only its last accepted step.
[[nodiscard]] std::vector<StepRun> step_runs_up_to(std::int64_t last_step);

// Stored form: "a..b,c,d..e" (a run of one step is its number alone).
[[nodiscard]] std::string encode_step_runs(std::span<const StepRun> runs);
// Nullopt for anything encode_step_runs would not write: bad syntax, runs out
// of order, overlapping or adjacent, or more than kMaxStepRuns of them.
[[nodiscard]] std::optional<std::vector<StepRun>> decode_step_runs(std::string_view text);

}  // namespace kpanel::daemon
