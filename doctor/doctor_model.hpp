#pragma once
// admin doctor: what an SSH login actually needs. sshd accepts a login that
// completes one AuthenticationMethods list (globally, or in a Match block;
// "any" means each enabled method alone). Each method in the list proves
// something: publickey a key, hostbased the client host, gssapi-with-mic a
// Kerberos ticket; keyboard-interactive and password hand the login to the
// sshd PAM stack, which is run here the way libpam runs it (controls, jumps,
// substacks) for each kind of user and each set of answers they can give.
// keyboard-interactive shows every prompt; password answers every prompt with
// the password, so it can never give a code.
//
// Intended: an enrolled user gives the code and at least one of a password or
// a key (key + password without the code is not enough: the code is the
// point). A user the module lets through without a code (nullok, the
// enforce_after grace period, exempt_group, a daemon that is down with
// unavailable=ignore) must still give a password or a key. Every way in with
// less is an error, and so is an SSH setup no enrolled user can pass.
// doctor_model.cpp builds the model; doctor_ssh_logins.cpp checks sshd's
// lists against it.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "doctor/doctor.hpp"
#include "doctor/doctor_pam.hpp"
#include "doctor/doctor_sshd.hpp"

namespace kpanel::cli::doctor {

// A set of factors, as bits.
using Factors = unsigned;
inline constexpr Factors kPassword = 1U << 0U;
inline constexpr Factors kKey = 1U << 1U;
inline constexpr Factors kHostbased = 1U << 2U;
inline constexpr Factors kGssapi = 1U << 3U;
inline constexpr Factors kCode = 1U << 4U;
// What may stand beside the code.
inline constexpr Factors kFirstFactors = kPassword | kKey | kHostbased | kGssapi;

// "a key and the code", "the code alone", "nothing".
[[nodiscard]] std::string describe_factors(Factors factors);

enum class UserKind : std::uint8_t {
  enrolled,
  unenrolled,   // the module's nullok, enroll or the grace period decide
  exempt,       // a member of exempt_group (only when one is set)
  daemon_down,  // anyone, while no daemon listens (matters with unavailable=ignore)
};
inline constexpr std::size_t kUserKinds = 4;

// The sshd PAM stack for one kind of user: the smallest sets of answers
// (kPassword, kCode bits) with which it ends in success. Empty: no way through.
struct StackNeeds {
  std::vector<Factors> keyboard_interactive;
  std::vector<Factors> password_method;  // every prompt answered with the password
};

struct PamModel {
  std::string file;                        // the stack's file, as shown
  std::array<bool, kUserKinds> applies{};  // the kinds this host has
  std::array<StackNeeds, kUserKinds> needs{};
  std::string unenrolled_how;  // why the module lets such a user through: "nullok at FILE:LINE"
  std::string down_how;        // "unavailable=ignore at FILE:LINE"
  std::string exempt_group;
  // "pam_unix.so nullok at FILE:LINE": an account with an empty password
  // passes it with nothing typed, when sshd allows empty passwords.
  std::string empty_password_how;
};

// The sets with no smaller set among them, without repeats.
[[nodiscard]] std::vector<Factors> minimal_sets(std::vector<Factors> sets);
// "a, b and c" (with `last` before the last part).
[[nodiscard]] std::string join_words(const std::vector<std::string>& parts, std::string_view last);
// "a key and the code"; empty for no factor (describe_factors says "nothing").
[[nodiscard]] std::string factor_names(Factors factors);

// Runs the stack for each kind of user and each set of answers.
[[nodiscard]] PamModel model_pam_stack(const Tree& tree, const PamStack& stack,
                                       const DaemonSettings& daemon);

// Every AuthenticationMethods list (global, then each Match block) against the
// model: errors for every way in with fewer factors than intended, and when no
// list lets an enrolled user in; an ok line per context that is fine.
void check_ssh_logins(const SshdConfig& config, const PamModel& model, Report& report);

// The PAM stacks of the login services, then (when sshd's asks for a code)
// the sshd settings and what SSH logins need. `sshd_t`: correct the global
// sshd settings with `sshd -T` (this host, as root).
void check_pam_and_sshd(const Tree& tree, const DaemonSettings& daemon, bool sshd_t,
                        Report& report);

}  // namespace kpanel::cli::doctor
