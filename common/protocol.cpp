#include "common/protocol.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <streambuf>
#include <type_traits>
#include <utility>

#include "common/text.hpp"
#include "common/user_name.hpp"

namespace kpanel::common::protocol {
namespace {

using Json = nlohmann::json;
using Outcome = std::expected<void, DecodeError>;

// ---- closed sets: index = the enum's number (never reused, see PROTOCOL.md) ----
constexpr std::array<std::string_view, 11> kDecodeErrorNames{
    "truncated",      "bad_magic",      "unsupported_version", "oversized",
    "malformed_body", "unknown_op",     "missing_field",       "wrong_type",
    "unknown_field",  "field_too_long", "invalid_value"};
constexpr std::array<std::string_view, 16> kStatusNames{"ok",
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
constexpr std::array<std::string_view, 6> kDecisionNames{"prompt", "pass",   "ignore",
                                                         "enroll", "refuse", "locked"};

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
                            std::vector<UserStatus> M::*>;

template <class M>
struct Field {
  std::string_view name;
  Member<M> member;
  Rule rule;
};

template <class M>
constexpr Field<M> user_field(std::string_view name, std::string M::*member, Need need) {
  return {name, member, {need, kMaxUserLength, Text::user}};
}
template <class M>
constexpr Field<M> line_field(std::string_view name, std::string M::*member,
                              std::size_t max_length = kMaxFieldLength,
                              Need need = Need::optional) {
  return {name, member, {need, max_length, Text::line}};
}
template <class M>
constexpr Field<M> text_field(std::string_view name, std::string M::*member,
                              std::size_t max_length) {
  return {name, member, {Need::optional, max_length, Text::any}};
}
template <class M, class T>  // SecureString or a list of them
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
constexpr Field<M> flag_field(std::string_view name, bool M::*member) {
  return {name, member, {Need::optional, 0, Text::any}};  // absent means false
}
template <class M, class T>  // numbers, enums, nested objects
constexpr Field<M> value_field(std::string_view name, T M::*member, Need need) {
  return {name, member, {need, 0, Text::any}};
}

// Schema<M>: the wire name of a message and its fields. Adding an op or a result
// is one specialization here (plus the struct and the variant in protocol.hpp).
template <class M>
struct Schema;

template <>
struct Schema<LoginCheckRequest> {
  using M = LoginCheckRequest;
  static constexpr std::string_view name = "login_check";
  static constexpr std::array fields{user_field("user", &M::user, Need::required),
                                     line_field("service", &M::service),
                                     line_field("rhost", &M::rhost),
                                     line_field("tty", &M::tty),
                                     flag_field("nullok", &M::nullok),
                                     flag_field("enroll", &M::enroll)};
};
template <>
struct Schema<VerifyRequest> {
  using M = VerifyRequest;
  static constexpr std::string_view name = "verify";
  static constexpr std::array fields{
      user_field("user", &M::user, Need::required), line_field("service", &M::service),
      line_field("rhost", &M::rhost), line_field("tty", &M::tty),
      secret_field("code", &M::code, kMaxCodeLength, Need::required)};
};
template <>
struct Schema<StatusRequest> {
  using M = StatusRequest;
  static constexpr std::string_view name = "status";
  static constexpr std::array fields{user_field("user", &M::user, Need::optional)};
};
template <>
struct Schema<EnrollBeginRequest> {
  using M = EnrollBeginRequest;
  static constexpr std::string_view name = "enroll_begin";
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
  static constexpr std::string_view name = "enroll_confirm";
  static constexpr std::array fields{user_field("user", &M::user, Need::optional),
                                     secret_field("code", &M::code, kMaxCodeLength, Need::required),
                                     line_field("service", &M::service),
                                     line_field("rhost", &M::rhost), line_field("tty", &M::tty)};
};
template <>
struct Schema<DisableRequest> {
  using M = DisableRequest;
  static constexpr std::string_view name = "disable";
  static constexpr std::array fields{
      user_field("user", &M::user, Need::optional),
      secret_field("password", &M::password, kMaxPasswordLength, Need::required),
      secret_field("code", &M::code, kMaxCodeLength, Need::required)};
};
template <>
struct Schema<RegenerateRecoveryCodesRequest> {
  using M = RegenerateRecoveryCodesRequest;
  static constexpr std::string_view name = "recovery_regenerate";
  static constexpr std::array fields{
      user_field("user", &M::user, Need::optional),
      secret_field("code", &M::code, kMaxCodeLength, Need::required)};
};
template <>
struct Schema<AdminListRequest> {
  static constexpr std::string_view name = "admin_list";
  static constexpr std::array<Field<AdminListRequest>, 0> fields{};
};
template <>
struct Schema<AdminResetRequest> {
  using M = AdminResetRequest;
  static constexpr std::string_view name = "admin_reset";
  static constexpr std::array fields{user_field("user", &M::user, Need::required)};
};
template <>
struct Schema<AdminUnlockRequest> {
  using M = AdminUnlockRequest;
  static constexpr std::string_view name = "admin_unlock";
  static constexpr std::array fields{user_field("user", &M::user, Need::required)};
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
      value_field("last_skew_seconds", &M::last_skew_seconds, Need::optional)};
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
  static constexpr std::array fields{value_field("user_status", &M::status, Need::required)};
};
template <>
struct Schema<EnrollBeginResult> {
  using M = EnrollBeginResult;
  static constexpr std::string_view name = "enroll_begin";
  static constexpr std::array fields{
      secret_line_field("uri", &M::uri, kMaxUriLength, Need::required),
      secret_field("secret_base32", &M::secret_base32, kMaxFieldLength, Need::required),
      value_field("expires_at", &M::expires_at, Need::required),
      secret_field("qr_text", &M::qr_text, kMaxQrTextLength, Need::optional)};
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
  static constexpr std::array fields{value_field("users", &M::users, Need::required)};
};

// Sent instead of a payload when the status is not ok.
constexpr std::array kErrorDetailFields{
    value_field("locked_until", &Response::locked_until, Need::optional),
    value_field("failures_left", &Response::failures_left, Need::optional),
    Field<Response>{"store", &Response::store, {Need::optional, kMaxFieldLength, Text::line}}};

// Keys every body has besides the message's fields.
constexpr std::array<std::string_view, 1> kRequestEnvelope{"op"};
constexpr std::array<std::string_view, 2> kResponseEnvelope{"status", "result"};

// ---- one value: the checks shared by both directions ----
Outcome check_text(std::string_view text, const Rule& rule) noexcept {
  if (text.size() > rule.max_length) {
    return std::unexpected(DecodeError::field_too_long);
  }
  if (rule.text == Text::any) {
    return {};
  }
  if (rule.text == Text::user) {
    // An optional name may be left empty; any other follows the one user-name rule.
    if (text.empty() && rule.need == Need::optional) {
      return {};
    }
    return valid_user_name(text) ? Outcome{} : std::unexpected(DecodeError::invalid_value);
  }
  if (has_control(text, Controls::c0_and_c1)) {
    return std::unexpected(DecodeError::invalid_value);
  }
  return {};
}

template <class I>
Outcome read_integer(const Json& value, I& out) {
  if (value.is_number_unsigned()) {
    const auto number = value.get<std::uint64_t>();
    if (!std::in_range<I>(number)) {
      return std::unexpected(DecodeError::invalid_value);
    }
    out = static_cast<I>(number);
    return {};
  }
  if (value.is_number_integer()) {
    const auto number = value.get<std::int64_t>();
    if (!std::in_range<I>(number)) {
      return std::unexpected(DecodeError::invalid_value);
    }
    out = static_cast<I>(number);
    return {};
  }
  return std::unexpected(DecodeError::wrong_type);  // floats, strings, ...
}

// read(): JSON value (never null) -> member. write(): member -> JSON value.
Outcome read(const Json& value, const Rule& rule, std::string& out);
Outcome read(const Json& value, const Rule& rule, SecureString& out);
Outcome read(const Json& value, const Rule& rule, bool& out);
Outcome read(const Json& value, const Rule& rule, std::uint32_t& out);
Outcome read(const Json& value, const Rule& rule, std::int64_t& out);
Outcome read(const Json& value, const Rule& rule, LoginDecision& out);
Outcome read(const Json& value, const Rule& rule, std::vector<SecureString>& out);
Outcome read(const Json& value, const Rule& rule, UserStatus& out);
Outcome read(const Json& value, const Rule& rule, std::vector<UserStatus>& out);
template <class T>
Outcome read(const Json& value, const Rule& rule, std::optional<T>& out) {
  T inner{};
  Outcome outcome = read(value, rule, inner);
  if (outcome) {
    out = inner;
  }
  return outcome;
}

Outcome write(Json& slot, const Rule& rule, const std::string& value);
Outcome write(Json& slot, const Rule& rule, const SecureString& value);
Outcome write(Json& slot, const Rule& rule, bool value);
Outcome write(Json& slot, const Rule& rule, std::uint32_t value);
Outcome write(Json& slot, const Rule& rule, std::int64_t value);
Outcome write(Json& slot, const Rule& rule, LoginDecision value);
Outcome write(Json& slot, const Rule& rule, const std::vector<SecureString>& value);
Outcome write(Json& slot, const Rule& rule, const UserStatus& value);
Outcome write(Json& slot, const Rule& rule, const std::vector<UserStatus>& value);

template <class T>
inline constexpr bool kIsOptional = false;
template <class T>
inline constexpr bool kIsOptional<std::optional<T>> = true;

// ---- one message: every key must be a field or an envelope key; null = absent ----
template <class M>
Outcome decode_fields(const Json& object, M& out,
                      std::type_identity_t<std::span<const Field<M>>> fields,
                      std::span<const std::string_view> envelope) {
  for (auto entry = object.begin(); entry != object.end(); ++entry) {
    const std::string& key = entry.key();
    const bool known =
        std::ranges::find(envelope, key) != envelope.end() ||
        std::ranges::any_of(fields, [&](const Field<M>& f) { return f.name == key; });
    if (!known) {
      return std::unexpected(DecodeError::unknown_field);
    }
  }
  for (const Field<M>& field : fields) {
    const auto found = object.find(field.name);
    if (found == object.end() || found->is_null()) {
      if (field.rule.need == Need::required) {
        return std::unexpected(DecodeError::missing_field);
      }
      continue;
    }
    Outcome outcome = std::visit([&](auto member) { return read(*found, field.rule, out.*member); },
                                 field.member);
    if (!outcome) {
      return outcome;
    }
  }
  return {};
}

template <class M>
Outcome encode_fields(Json& object, const M& message,
                      std::type_identity_t<std::span<const Field<M>>> fields) {
  for (const Field<M>& field : fields) {
    Outcome outcome = std::visit(
        [&](auto member) -> Outcome {
          const auto& value = message.*member;
          const auto put = [&](const auto& present) -> Outcome {
            Json slot;
            Outcome written = write(slot, field.rule, present);
            if (written) {
              object[field.name] = std::move(slot);
            }
            return written;
          };
          if constexpr (kIsOptional<std::remove_cvref_t<decltype(value)>>) {
            if (!value.has_value()) {
              return {};  // absent optionals are left out
            }
            return put(*value);
          } else {
            return put(value);
          }
        },
        field.member);
    if (!outcome) {
      return outcome;
    }
  }
  return {};
}

Outcome read(const Json& value, const Rule& rule, std::string& out) {
  if (!value.is_string()) {
    return std::unexpected(DecodeError::wrong_type);
  }
  const auto& text = value.get_ref<const std::string&>();
  Outcome outcome = check_text(text, rule);
  if (outcome) {
    out = text;
  }
  return outcome;
}
Outcome read(const Json& value, const Rule& rule, SecureString& out) {
  if (!value.is_string()) {
    return std::unexpected(DecodeError::wrong_type);
  }
  const auto& text = value.get_ref<const std::string&>();
  Outcome outcome = check_text(text, rule);
  if (outcome) {
    out = SecureString(text);
  }
  return outcome;
}
Outcome read(const Json& value, const Rule& /*rule*/, bool& out) {
  if (!value.is_boolean()) {
    return std::unexpected(DecodeError::wrong_type);
  }
  out = value.get<bool>();
  return {};
}
Outcome read(const Json& value, const Rule& /*rule*/, std::uint32_t& out) {
  return read_integer(value, out);
}
Outcome read(const Json& value, const Rule& /*rule*/, std::int64_t& out) {
  return read_integer(value, out);
}
Outcome read(const Json& value, const Rule& /*rule*/, LoginDecision& out) {
  if (!value.is_string()) {
    return std::unexpected(DecodeError::wrong_type);
  }
  const auto decision =
      value_of<LoginDecision>(kDecisionNames, value.get_ref<const std::string&>());
  if (!decision) {
    return std::unexpected(DecodeError::invalid_value);
  }
  out = *decision;
  return {};
}
Outcome read(const Json& value, const Rule& rule, std::vector<SecureString>& out) {
  if (!value.is_array()) {
    return std::unexpected(DecodeError::wrong_type);
  }
  out.clear();
  out.reserve(value.size());
  for (const Json& item : value) {
    Outcome outcome = read(item, rule, out.emplace_back());
    if (!outcome) {
      return outcome;
    }
  }
  return {};
}
Outcome read(const Json& value, const Rule& /*rule*/, UserStatus& out) {
  if (!value.is_object()) {
    return std::unexpected(DecodeError::wrong_type);
  }
  return decode_fields<UserStatus>(value, out, Schema<UserStatus>::fields, {});
}
Outcome read(const Json& value, const Rule& rule, std::vector<UserStatus>& out) {
  if (!value.is_array()) {
    return std::unexpected(DecodeError::wrong_type);
  }
  out.clear();
  out.reserve(value.size());
  for (const Json& item : value) {
    Outcome outcome = read(item, rule, out.emplace_back());
    if (!outcome) {
      return outcome;
    }
  }
  return {};
}

Outcome write(Json& slot, const Rule& rule, const std::string& value) {
  Outcome outcome = check_text(value, rule);
  if (outcome) {
    slot = value;
  }
  return outcome;
}
Outcome write(Json& slot, const Rule& rule, const SecureString& value) {
  Outcome outcome = check_text(value.view(), rule);
  if (outcome) {
    slot = value.view();
  }
  return outcome;
}
Outcome write(Json& slot, const Rule& /*rule*/, bool value) {
  slot = value;
  return {};
}
Outcome write(Json& slot, const Rule& /*rule*/, std::uint32_t value) {
  slot = value;
  return {};
}
Outcome write(Json& slot, const Rule& /*rule*/, std::int64_t value) {
  slot = value;
  return {};
}
Outcome write(Json& slot, const Rule& /*rule*/, LoginDecision value) {
  const std::string_view name = name_of(kDecisionNames, value);
  if (name.empty()) {
    return std::unexpected(DecodeError::invalid_value);
  }
  slot = name;
  return {};
}
Outcome write(Json& slot, const Rule& rule, const std::vector<SecureString>& value) {
  slot = Json::array();
  for (const SecureString& item : value) {
    Outcome outcome = write(slot.emplace_back(), rule, item);
    if (!outcome) {
      return outcome;
    }
  }
  return {};
}
Outcome write(Json& slot, const Rule& /*rule*/, const UserStatus& value) {
  slot = Json::object();
  return encode_fields<UserStatus>(slot, value, Schema<UserStatus>::fields);
}
Outcome write(Json& slot, const Rule& rule, const std::vector<UserStatus>& value) {
  slot = Json::array();
  for (const UserStatus& item : value) {
    Outcome outcome = write(slot.emplace_back(), rule, item);
    if (!outcome) {
      return outcome;
    }
  }
  return {};
}

// ---- variants: the name in the body selects the alternative ----
template <class V>
struct Alternative {
  std::string_view name;
  std::expected<V, DecodeError> (*decode)(const Json& object,
                                          std::span<const std::string_view> envelope);
};

template <class T, class V>
std::expected<V, DecodeError> decode_as(const Json& object,
                                        std::span<const std::string_view> envelope) {
  T message{};
  Outcome outcome = decode_fields<T>(object, message, Schema<T>::fields, envelope);
  if (!outcome) {
    return std::unexpected(outcome.error());
  }
  return V{std::in_place_type<T>, std::move(message)};
}

template <class V, std::size_t... I>
constexpr std::array<Alternative<V>, sizeof...(I)> make_alternatives(std::index_sequence<I...>) {
  return {Alternative<V>{Schema<std::variant_alternative_t<I, V>>::name,
                         &decode_as<std::variant_alternative_t<I, V>, V>}...};
}

// Indexed like the variant.
template <class V>
constexpr auto kAlternatives =
    make_alternatives<V>(std::make_index_sequence<std::variant_size_v<V>>{});

template <class V>
const Alternative<V>* find_alternative(std::string_view name) noexcept {
  const auto& table = kAlternatives<V>;
  const auto* found = std::ranges::find(table, name, &Alternative<V>::name);
  return found == table.end() ? nullptr : found;
}

template <class V>
std::string_view alternative_name(const V& value) noexcept {
  const std::size_t index = value.index();
  return index < kAlternatives<V>.size() ? kAlternatives<V>[index].name : std::string_view{};
}

template <class M>
constexpr bool avoids(std::span<const Field<M>> fields, std::span<const std::string_view> keys) {
  return std::ranges::none_of(fields, [&](const Field<M>& field) {
    return std::ranges::find(keys, field.name) != keys.end();
  });
}
template <class V, std::size_t... I>
constexpr bool all_avoid(std::span<const std::string_view> keys, std::index_sequence<I...>) {
  return (avoids<std::variant_alternative_t<I, V>>(Schema<std::variant_alternative_t<I, V>>::fields,
                                                   keys) &&
          ...);
}
// A field named like an envelope key would be ambiguous on the wire.
static_assert(all_avoid<Request>(kRequestEnvelope,
                                 std::make_index_sequence<std::variant_size_v<Request>>{}));
static_assert(all_avoid<Result>(kResponseEnvelope,
                                std::make_index_sequence<std::variant_size_v<Result>>{}));
static_assert(avoids<Response>(kErrorDetailFields, kResponseEnvelope));

// ---- JSON text ----
constexpr int kMaxDepth = 2;  // body object > list of users > user object

// Wipes every string in a parsed or built body when it goes out of scope: the
// tree holds codes and passwords.
void wipe_strings(Json& value) {
  if (value.is_string()) {
    auto* text = value.get_ptr<std::string*>();
    secure_wipe(text->data(), text->capacity());
    text->clear();
  } else if (value.is_structured()) {
    for (Json& child : value) {
      wipe_strings(child);
    }
  }
}
class WipeOnExit {
 public:
  explicit WipeOnExit(Json& value) noexcept : value_(value) {}
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;
  WipeOnExit(WipeOnExit&&) = delete;
  WipeOnExit& operator=(WipeOnExit&&) = delete;
  ~WipeOnExit() {
    try {
      wipe_strings(value_);
    } catch (...) {  // iterating a built tree does not throw; a destructor must not
    }
  }

 private:
  Json& value_;
};

// Parses a body that must be one JSON object. Duplicate keys (which nlohmann
// would resolve silently, last one wins) and nesting deeper than any message
// needs make it malformed. The parsed tree is wiped by its caller; what this
// cannot reach is nlohmann's lexer, which frees its copy of the longest token
// unwiped: one string, bounded by the field caps (the QR text's is the largest).
Outcome parse_object(std::span<const std::uint8_t> body, Json& out) {
  bool rejected = false;
  std::vector<std::set<std::string, std::less<>>> open_objects;
  const Json::parser_callback_t check = [&](int depth, Json::parse_event_t event,
                                            Json& parsed) -> bool {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        if (depth > kMaxDepth) {
          rejected = true;
          return false;
        }
        if (event == Json::parse_event_t::object_start) {
          open_objects.emplace_back();
        }
        return true;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) {
          open_objects.pop_back();
        }
        return true;
      case Json::parse_event_t::key:
        if (open_objects.empty() ||
            !open_objects.back().insert(parsed.get_ref<const std::string&>()).second) {
          rejected = true;
          return false;
        }
        return true;
      default:
        return true;
    }
  };
  out = Json::parse(body.begin(), body.end(), check, /*allow_exceptions=*/false);
  if (rejected || out.is_discarded() || !out.is_object()) {
    return std::unexpected(DecodeError::malformed_body);
  }
  return {};
}

std::expected<std::string_view, DecodeError> required_name(const Json& object,
                                                           std::string_view key) {
  const auto found = object.find(key);
  if (found == object.end() || found->is_null()) {
    return std::unexpected(DecodeError::missing_field);
  }
  if (!found->is_string()) {
    return std::unexpected(DecodeError::wrong_type);
  }
  return std::string_view(found->get_ref<const std::string&>());
}

// Serializes straight into wiping storage behind an 8-byte gap for the header,
// so the JSON text (codes, passwords) never sits in a freed std::string.
class FrameSink final : public std::streambuf {
 public:
  explicit FrameSink(std::size_t max_body) : max_body_(max_body), frame_(kInitialSize) {}

  SecureBytes finish() {
    const std::size_t length = used_ - kHeaderSize;
    frame_.resize(used_);
    std::uint8_t* header = frame_.data();
    header[0] = kMagic[0];
    header[1] = kMagic[1];
    header[2] = kVersion;
    header[3] = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      header[4 + i] = static_cast<std::uint8_t>(length >> (8 * (3 - i)));
    }
    return std::move(frame_);
  }

 protected:
  int_type overflow(int_type ch) override {
    if (traits_type::eq_int_type(ch, traits_type::eof())) {
      return traits_type::not_eof(ch);
    }
    const char_type c = traits_type::to_char_type(ch);
    return append(&c, 1) ? ch : traits_type::eof();
  }
  std::streamsize xsputn(const char_type* text, std::streamsize count) override {
    return count >= 0 && append(text, static_cast<std::size_t>(count)) ? count : 0;
  }

 private:
  static constexpr std::size_t kInitialSize = 512;

  bool append(const char_type* text, std::size_t count) {
    if (count > max_body_ - (used_ - kHeaderSize)) {
      return false;  // over the cap: fail
    }
    if (count > frame_.size() - used_) {
      const std::size_t wanted = std::max(used_ + count, frame_.size() * 2);
      SecureBytes grown(std::min(wanted, kHeaderSize + max_body_));
      std::memcpy(grown.data(), frame_.data(), used_);
      frame_ = std::move(grown);  // wipes the old buffer
    }
    std::memcpy(frame_.data() + used_, text, count);
    used_ += count;
    return true;
  }

  std::size_t max_body_;
  SecureBytes frame_;
  std::size_t used_ = kHeaderSize;
};

// Empty on any failure; nlohmann's strict serializer throws on invalid UTF-8.
SecureBytes encode_frame(const Json& body, std::size_t max_body) {
  FrameSink sink(max_body);
  std::ostream stream(&sink);
  stream << body;
  if (!stream) {
    return {};
  }
  return sink.finish();
}

}  // namespace

std::string_view to_string(DecodeError e) noexcept {
  const std::string_view name = name_of(kDecodeErrorNames, e);
  return name.empty() ? "unknown" : name;
}

std::string_view to_string(Status s) noexcept {
  const std::string_view name = name_of(kStatusNames, s);
  return name.empty() ? "unknown" : name;
}

std::string_view to_string(LoginDecision d) noexcept {
  const std::string_view name = name_of(kDecisionNames, d);
  return name.empty() ? "unknown" : name;
}

std::string_view op_name(const Request& request) noexcept { return alternative_name(request); }

std::expected<FrameHeader, DecodeError> parse_header(std::span<const std::uint8_t> header,
                                                     std::size_t max_body) noexcept {
  if (header.size() < kHeaderSize) {
    return std::unexpected(DecodeError::truncated);
  }
  if (header[0] != kMagic[0] || header[1] != kMagic[1]) {
    return std::unexpected(DecodeError::bad_magic);
  }
  // The reserved byte is 0 in version 1; anything else is an extension we do not speak.
  if (header[2] != kVersion || header[3] != 0) {
    return std::unexpected(DecodeError::unsupported_version);
  }
  std::uint32_t length = 0;
  for (std::size_t i = 4; i < kHeaderSize; ++i) {
    length = (length << 8U) | header[i];
  }
  if (length > max_body) {
    return std::unexpected(DecodeError::oversized);
  }
  return FrameHeader{.version = header[2], .body_length = length};
}

SecureBytes encode_request(const Request& request) noexcept {
  try {
    Json object = Json::object();
    const WipeOnExit wipe(object);
    const std::string_view op = alternative_name(request);
    if (op.empty()) {
      return {};
    }
    object["op"] = op;
    const Outcome outcome = std::visit(
        [&](const auto& message) {
          using M = std::remove_cvref_t<decltype(message)>;
          return encode_fields<M>(object, message, Schema<M>::fields);
        },
        request);
    if (!outcome) {
      return {};
    }
    return encode_frame(object, kMaxBodySize);
  } catch (...) {
    return {};
  }
}

SecureBytes encode_response(const Response& response) noexcept {
  try {
    const std::string_view status = name_of(kStatusNames, response.status);
    const std::string_view result = alternative_name(response.result);
    const bool ok = response.status == Status::ok;
    if (status.empty() || result.empty()) {
      return {};
    }
    // Payload and error details share one object, so they never travel together.
    if (!ok && !std::holds_alternative<EmptyResult>(response.result)) {
      return {};
    }
    if (ok && (response.locked_until || response.failures_left || response.store)) {
      return {};
    }

    Json object = Json::object();
    const WipeOnExit wipe(object);
    object["status"] = status;
    object["result"] = result;
    const Outcome outcome = ok ? std::visit(
                                     [&](const auto& payload) {
                                       using M = std::remove_cvref_t<decltype(payload)>;
                                       return encode_fields<M>(object, payload, Schema<M>::fields);
                                     },
                                     response.result)
                               : encode_fields<Response>(object, response, kErrorDetailFields);
    if (!outcome) {
      return {};
    }
    return encode_frame(object, kMaxResponseBodySize);
  } catch (...) {
    return {};
  }
}

std::expected<Request, DecodeError> decode_request(std::span<const std::uint8_t> body) noexcept {
  try {
    if (body.size() > kMaxBodySize) {
      return std::unexpected(DecodeError::oversized);
    }
    Json object;
    const WipeOnExit wipe(object);
    if (Outcome parsed = parse_object(body, object); !parsed) {
      return std::unexpected(parsed.error());
    }
    const auto op = required_name(object, "op");
    if (!op) {
      return std::unexpected(op.error());
    }
    const auto* alternative = find_alternative<Request>(*op);
    if (alternative == nullptr) {
      return std::unexpected(DecodeError::unknown_op);
    }
    return alternative->decode(object, kRequestEnvelope);
  } catch (...) {
    return std::unexpected(DecodeError::malformed_body);
  }
}

std::expected<Response, DecodeError> decode_response(std::span<const std::uint8_t> body) noexcept {
  try {
    if (body.size() > kMaxResponseBodySize) {
      return std::unexpected(DecodeError::oversized);
    }
    Json object;
    const WipeOnExit wipe(object);
    if (Outcome parsed = parse_object(body, object); !parsed) {
      return std::unexpected(parsed.error());
    }
    const auto status_name = required_name(object, "status");
    if (!status_name) {
      return std::unexpected(status_name.error());
    }
    const auto result_name = required_name(object, "result");
    if (!result_name) {
      return std::unexpected(result_name.error());
    }
    const auto status = value_of<Status>(kStatusNames, *status_name);
    if (!status) {
      return std::unexpected(DecodeError::invalid_value);
    }

    Response response;
    response.status = *status;
    if (*status != Status::ok) {
      if (*result_name != Schema<EmptyResult>::name) {
        return std::unexpected(DecodeError::invalid_value);
      }
      Outcome details =
          decode_fields<Response>(object, response, kErrorDetailFields, kResponseEnvelope);
      if (!details) {
        return std::unexpected(details.error());
      }
      return response;
    }
    const auto* alternative = find_alternative<Result>(*result_name);
    if (alternative == nullptr) {
      return std::unexpected(DecodeError::invalid_value);
    }
    auto result = alternative->decode(object, kResponseEnvelope);
    if (!result) {
      return std::unexpected(result.error());
    }
    response.result = std::move(*result);
    return response;
  } catch (...) {
    return std::unexpected(DecodeError::malformed_body);
  }
}

}  // namespace kpanel::common::protocol
