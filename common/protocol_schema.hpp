#pragma once
// The messages of the wire protocol as tables: every closed set's names and,
// per message, its wire name and fields with their rules. Read by the codec
// (protocol_codec.cpp) in both directions, so the encoder and the decoder
// cannot disagree. Private to common/protocol*.cpp.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/protocol.hpp"

namespace kpanel::common::protocol::detail {

// ---- closed sets: index = the enum's number (never reused, see PROTOCOL.md) ----
inline constexpr std::array<std::string_view, 11> kDecodeErrorNames{
    "truncated",      "bad_magic",      "unsupported_version", "oversized",
    "malformed_body", "unknown_op",     "missing_field",       "wrong_type",
    "unknown_field",  "field_too_long", "invalid_value"};
inline constexpr std::array<std::string_view, 16> kStatusNames{"ok",
                                                               "bad_request",
                                                               "forbidden",
                                                               "not_enrolled",
                                                               "wrong_code",
                                                               "locked",
                                                               "wrong_password",
                                                               "no_pending_enrollment",
                                                               "already_enrolled",
                                                               "no_such_user",
                                                               "store_unavailable",
                                                               "internal_error",
                                                               "unsupported_version",
                                                               "busy",
                                                               "replayed",
                                                               "malformed_code"};
// common::to_string(TotpAlgorithm) spells these too (totp.cpp, which the
// module does not link); the unit test holds the two together.
inline constexpr std::array<std::string_view, 3> kAlgorithmNames{"SHA1", "SHA256", "SHA512"};
inline constexpr std::array<std::string_view, 7> kDecisionNames{
    "prompt", "pass", "ignore", "enroll", "refuse", "locked", "remembered"};

template <class E, std::size_t N>
std::string_view name_of(const std::array<std::string_view, N>& names, E value) noexcept {
  const auto index = static_cast<std::size_t>(value);
  return index < N ? names[index] : std::string_view{};
}

template <class E, std::size_t N>
std::optional<E> value_of(const std::array<std::string_view, N>& names,
                          std::string_view name) noexcept {
  const auto* found = std::find(names.begin(), names.end(), name);
  if (found == names.end()) {
    return std::nullopt;
  }
  return static_cast<E>(found - names.begin());
}

// ---- field rules: one table per message, read by the encoder and the decoder ----
enum class Need : std::uint8_t { optional, required };
enum class Text : std::uint8_t {
  any,   // secrets, notices, QR text: any UTF-8
  line,  // audit fields, URIs: no control characters (they end up in logs)
  user,  // a login name (common/user_name.hpp); may be empty only when optional
};
struct Rule {
  Need need = Need::optional;
  std::size_t max_length = 0;  // strings, and each string of a list
  Text text = Text::any;
};

template <class M>
using Member = std::variant<std::string M::*, SecureString M::*, bool M::*, std::uint32_t M::*,
                            std::int64_t M::*, std::optional<std::int64_t> M::*,
                            std::optional<std::uint32_t> M::*, std::optional<std::string> M::*,
                            LoginDecision M::*, std::vector<SecureString> M::*, UserStatus M::*,
                            std::vector<UserStatus> M::*, Code M::*, TotpAlgorithm M::*,
                            std::optional<bool> M::*, std::vector<std::int64_t> M::*,
                            std::vector<RememberedWindow> M::*, std::vector<std::string> M::*>;

template <class M>
struct Field {
  std::string_view name;
  Member<M> member;
  Rule rule;
  // The first protocol version with this field: in an older frame it is left
  // out when encoding and an unknown field when decoding.
  std::uint8_t since = kOldestVersion;
};

template <class M>
constexpr Field<M> user_field(std::string_view name, std::string M::*member, Need need) {
  return {name, member, {need, kMaxUserLength, Text::user}};
}
template <class M>  // a list of login names; absent means empty
constexpr Field<M> user_list_field(std::string_view name, std::vector<std::string> M::*member,
                                   std::uint8_t since) {
  return {name, member, {Need::optional, kMaxUserLength, Text::user}, since};
}
template <class M>
constexpr Field<M> line_field(std::string_view name, std::string M::*member,
                              std::size_t max_length = kMaxFieldLength, Need need = Need::optional,
                              std::uint8_t since = kOldestVersion) {
  return {name, member, {need, max_length, Text::line}, since};
}
template <class M>
constexpr Field<M> text_field(std::string_view name, std::string M::*member,
                              std::size_t max_length) {
  return {name, member, {Need::optional, max_length, Text::any}};
}
template <class M, class T>  // SecureString, a Code or a list of secrets
constexpr Field<M> secret_field(std::string_view name, T M::*member, std::size_t max_length,
                                Need need) {
  return {name, member, {need, max_length, Text::any}};
}
template <class M>  // a secret that must also be a line (the otpauth URI)
constexpr Field<M> secret_line_field(std::string_view name, SecureString M::*member,
                                     std::size_t max_length, Need need) {
  return {name, member, {need, max_length, Text::line}};
}
template <class M>
constexpr Field<M> flag_field(std::string_view name, bool M::*member,
                              std::uint8_t since = kOldestVersion) {
  return {name, member, {Need::optional, 0, Text::any}, since};  // absent means false
}
template <class M, class T>  // numbers, enums, nested objects
constexpr Field<M> value_field(std::string_view name, T M::*member, Need need,
                               std::uint8_t since = kOldestVersion) {
  return {name, member, {need, 0, Text::any}, since};
}

// Schema<M>: the wire name of a message and its fields. Adding an op or a result
// is one specialization here (plus the struct and the variant in protocol.hpp,
// and for an op its row of kOps). A request's name is its row's wire name.
template <class M>
struct Schema;

template <>
struct Schema<LoginCheckRequest> {
  using M = LoginCheckRequest;
  static constexpr Op op = Op::login_check;
  static constexpr std::string_view name = op_name(op);
  static constexpr std::array fields{
      user_field("user", &M::user, Need::required),
      line_field("service", &M::service),
      line_field("rhost", &M::rhost),
      line_field("tty", &M::tty),
      flag_field("nullok", &M::nullok),
      flag_field("enroll", &M::enroll),
      flag_field("remember", &M::remember, 3),
      line_field("source", &M::source, kMaxSourceLength, Need::optional, 3)};
};
template <>
struct Schema<VerifyRequest> {
  using M = VerifyRequest;
  static constexpr Op op = Op::verify;
  static constexpr std::string_view name = op_name(op);
  static constexpr std::array fields{
      user_field("user", &M::user, Need::required),
      line_field("service", &M::service),
      line_field("rhost", &M::rhost),
      line_field("tty", &M::tty),
      secret_field("code", &M::code, kMaxCodeLength, Need::required),
      flag_field("remember", &M::remember, 3),
      line_field("source", &M::source, kMaxSourceLength, Need::optional, 3)};
};
template <>
struct Schema<StatusRequest> {
  using M = StatusRequest;
  static constexpr Op op = Op::status;
  static constexpr std::string_view name = op_name(op);
  static constexpr std::array fields{user_field("user", &M::user, Need::optional)};
};
template <>
struct Schema<EnrollBeginRequest> {
  using M = EnrollBeginRequest;
  static constexpr Op op = Op::enroll_begin;
  static constexpr std::string_view name = op_name(op);
  static constexpr std::array fields{
      user_field("user", &M::user, Need::optional),
      flag_field("replace", &M::replace),
      secret_field("proof", &M::proof, kMaxCodeLength, Need::optional),
      flag_field("want_qr_text", &M::want_qr_text),
      line_field("service", &M::service),
      line_field("rhost", &M::rhost),
      line_field("tty", &M::tty)};
};
template <>
struct Schema<EnrollConfirmRequest> {
  using M = EnrollConfirmRequest;
  static constexpr Op op = Op::enroll_confirm;
  static constexpr std::string_view name = op_name(op);
  static constexpr std::array fields{user_field("user", &M::user, Need::optional),
                                     secret_field("code", &M::code, kMaxCodeLength, Need::required),
                                     line_field("service", &M::service),
                                     line_field("rhost", &M::rhost), line_field("tty", &M::tty)};
};
template <>
struct Schema<DisableRequest> {
  using M = DisableRequest;
  static constexpr Op op = Op::disable;
  static constexpr std::string_view name = op_name(op);
  static constexpr std::array fields{
      user_field("user", &M::user, Need::optional),
      secret_field("password", &M::password, kMaxPasswordLength, Need::required),
      secret_field("code", &M::code, kMaxCodeLength, Need::required)};
};
template <>
struct Schema<RegenerateRecoveryCodesRequest> {
  using M = RegenerateRecoveryCodesRequest;
  static constexpr Op op = Op::recovery_regenerate;
  static constexpr std::string_view name = op_name(op);
  static constexpr std::array fields{
      user_field("user", &M::user, Need::optional),
      secret_field("code", &M::code, kMaxCodeLength, Need::required)};
};
template <>
struct Schema<AdminListRequest> {
  using M = AdminListRequest;
  static constexpr Op op = Op::admin_list;
  static constexpr std::string_view name = op_name(op);
  static constexpr std::array fields{flag_field("all", &M::all, 3)};
};
template <>
struct Schema<AdminResetRequest> {
  using M = AdminResetRequest;
  static constexpr Op op = Op::admin_reset;
  static constexpr std::string_view name = op_name(op);
  static constexpr std::array fields{user_field("user", &M::user, Need::required)};
};
template <>
struct Schema<AdminUnlockRequest> {
  using M = AdminUnlockRequest;
  static constexpr Op op = Op::admin_unlock;
  static constexpr std::string_view name = op_name(op);
  static constexpr std::array fields{user_field("user", &M::user, Need::required)};
};
template <>
struct Schema<AdminStatsRequest> {
  static constexpr std::uint8_t since = 3;
  static constexpr Op op = Op::admin_stats;
  static constexpr std::string_view name = op_name(op);
  static constexpr std::array<Field<AdminStatsRequest>, 0> fields{};
};
template <>
struct Schema<AdminImportRequest> {
  using M = AdminImportRequest;
  static constexpr Op op = Op::admin_import;
  static constexpr std::string_view name = op_name(op);
  static constexpr std::uint8_t since = 3;
  static constexpr std::array fields{
      user_field("user", &M::user, Need::required),
      secret_field("secret_base32", &M::secret_base32, kMaxFieldLength, Need::required),
      value_field("period", &M::period, Need::required),
      value_field("window_size", &M::window_size, Need::required),
      value_field("time_skew", &M::time_skew, Need::optional),
      value_field("used_steps", &M::used_steps, Need::optional),
      secret_field("scratch_codes", &M::scratch_codes, kMaxCodeLength, Need::optional)};
};
template <>
struct Schema<ForgetRequest> {
  using M = ForgetRequest;
  static constexpr Op op = Op::forget;
  static constexpr std::string_view name = op_name(op);
  static constexpr std::uint8_t since = 3;
  static constexpr std::array fields{user_field("user", &M::user, Need::optional)};
};

template <>
struct Schema<RememberedWindow> {
  using M = RememberedWindow;
  static constexpr std::array fields{
      line_field("source", &M::source, kMaxSourceLength, Need::required),
      value_field("until", &M::until, Need::required)};
};
template <>
struct Schema<UserStatus> {
  using M = UserStatus;
  static constexpr std::array fields{
      user_field("user", &M::user, Need::required),
      flag_field("enrolled", &M::enrolled),
      value_field("enrolled_at", &M::enrolled_at, Need::optional),
      value_field("recovery_codes_left", &M::recovery_codes_left, Need::required),
      value_field("locked_until", &M::locked_until, Need::optional),
      flag_field("enrollment_pending", &M::enrollment_pending),
      value_field("last_skew_seconds", &M::last_skew_seconds, Need::optional),
      value_field("exempt", &M::exempt, Need::optional, 3)};
};
template <>
struct Schema<EmptyResult> {
  static constexpr std::string_view name = "empty";
  static constexpr std::array<Field<EmptyResult>, 0> fields{};
};
template <>
struct Schema<LoginCheckResult> {
  using M = LoginCheckResult;
  static constexpr std::string_view name = "login_check";
  static constexpr std::array fields{value_field("decision", &M::decision, Need::required),
                                     text_field("notice", &M::notice, kMaxFieldLength),
                                     value_field("locked_until", &M::locked_until, Need::optional)};
};
template <>
struct Schema<VerifyResult> {
  using M = VerifyResult;
  static constexpr std::string_view name = "verify";
  static constexpr std::array fields{
      flag_field("used_recovery_code", &M::used_recovery_code),
      value_field("recovery_codes_left", &M::recovery_codes_left, Need::required)};
};
template <>
struct Schema<StatusResult> {
  using M = StatusResult;
  static constexpr std::string_view name = "status";
  static constexpr std::array fields{value_field("user_status", &M::status, Need::required),
                                     value_field("remembered", &M::remembered, Need::optional, 3)};
};
template <>
struct Schema<EnrollBeginResult> {
  using M = EnrollBeginResult;
  static constexpr std::string_view name = "enroll_begin";
  static constexpr std::array fields{
      secret_line_field("uri", &M::uri, kMaxUriLength, Need::required),
      secret_field("secret_base32", &M::secret_base32, kMaxFieldLength, Need::required),
      value_field("expires_at", &M::expires_at, Need::required),
      secret_field("qr_text", &M::qr_text, kMaxQrTextLength, Need::optional),
      value_field("algorithm", &M::algorithm, Need::required, 2),
      value_field("digits", &M::digits, Need::required, 2),
      value_field("period", &M::period, Need::required, 2)};
};
template <>
struct Schema<RecoveryCodesResult> {
  using M = RecoveryCodesResult;
  static constexpr std::string_view name = "recovery_codes";
  static constexpr std::array fields{
      secret_field("codes", &M::codes, kMaxCodeLength, Need::required)};
};
template <>
struct Schema<AdminListResult> {
  using M = AdminListResult;
  static constexpr std::string_view name = "admin_list";
  static constexpr std::array fields{value_field("users", &M::users, Need::required),
                                     flag_field("truncated", &M::truncated, 3),
                                     user_list_field("unreadable", &M::unreadable, 3)};
};
template <>
struct Schema<AdminStatsResult> {
  using M = AdminStatsResult;
  static constexpr std::uint8_t since = 3;
  static constexpr std::string_view name = "admin_stats";
  static constexpr auto count = [](std::string_view key, std::int64_t M::*member) {
    return value_field(key, member, Need::required);
  };
  static constexpr std::array fields{
      count("started_at", &M::started_at),
      count("now", &M::now),
      count("verify_ok", &M::verify_ok),
      count("verify_recovery", &M::verify_recovery),
      count("verify_wrong_code", &M::verify_wrong_code),
      count("verify_replayed", &M::verify_replayed),
      count("verify_locked", &M::verify_locked),
      count("verify_malformed", &M::verify_malformed),
      count("verify_busy", &M::verify_busy),
      count("verify_store_unavailable", &M::verify_store_unavailable),
      count("verify_other", &M::verify_other),
      count("lockouts", &M::lockouts),
      count("enrollments", &M::enrollments),
      count("imports", &M::imports),
      count("remembered_skips", &M::remembered_skips),
      count("exempt_logins", &M::exempt_logins),
      count("grace_logins", &M::grace_logins),
      count("nullok_logins", &M::nullok_logins),
      count("users_enrolled", &M::users_enrolled),
      count("users_locked", &M::users_locked),
      count("in_flight_fast", &M::in_flight_fast),
      count("in_flight_slow", &M::in_flight_slow),
      count("connections", &M::connections)};
};
template <>
struct Schema<AdminImportResult> {
  using M = AdminImportResult;
  static constexpr std::string_view name = "admin_import";
  static constexpr std::uint8_t since = 3;
  static constexpr std::array fields{flag_field("imported", &M::imported),
                                     line_field("reason", &M::reason)};
};

// Sent instead of a payload when the status is not ok.
inline constexpr std::array kErrorDetailFields{
    value_field("locked_until", &Response::locked_until, Need::optional),
    value_field("failures_left", &Response::failures_left, Need::optional),
    Field<Response>{"store", &Response::store, {Need::optional, kMaxFieldLength, Text::line}}};

// Keys every body has besides the message's fields.
inline constexpr std::array<std::string_view, 1> kRequestEnvelope{"op"};
inline constexpr std::array<std::string_view, 2> kResponseEnvelope{"status", "result"};

// kOps and Request list the ops in one order: op_of() is the variant's index.
template <std::size_t... I>
constexpr bool ops_follow_requests(std::index_sequence<I...> /*indices*/) {
  return ((Schema<std::variant_alternative_t<I, Request>>::op == static_cast<Op>(I) &&
           kOps.at(I).op == static_cast<Op>(I)) &&
          ...);
}
static_assert(kOps.size() == std::variant_size_v<Request>, "one row of kOps per request type");
static_assert(ops_follow_requests(std::make_index_sequence<std::variant_size_v<Request>>{}),
              "kOps rows and Schema<...>::op in protocol::Request order");

}  // namespace kpanel::common::protocol::detail
