#include <algorithm>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <streambuf>
#include <type_traits>
#include <utility>

#include "common/protocol.hpp"
#include "common/protocol_schema.hpp"
#include "common/text.hpp"
#include "common/user_name.hpp"

// The codec: JSON bodies <-> messages, by the tables of protocol_schema.hpp,
// and whole frames in wiping storage.
namespace kpanel::common::protocol {
namespace {

using Json = nlohmann::json;
using Outcome = std::expected<void, DecodeError>;
using namespace detail;

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
Outcome read(const Json& value, const Rule& rule, TotpAlgorithm& out);
Outcome read(const Json& value, const Rule& rule, Code& out);
template <class S>  // SecureString (codes) or std::string (user names)
Outcome read(const Json& value, const Rule& rule, std::vector<S>& out);
Outcome read(const Json& value, const Rule& rule, UserStatus& out, std::uint8_t version);
Outcome read(const Json& value, const Rule& rule, std::vector<UserStatus>& out,
             std::uint8_t version);
Outcome read(const Json& value, const Rule& rule, std::vector<std::int64_t>& out);
Outcome read(const Json& value, const Rule& rule, std::vector<RememberedWindow>& out);
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
Outcome write(Json& slot, const Rule& rule, TotpAlgorithm value);
Outcome write(Json& slot, const Rule& rule, const Code& value);
template <class S>
Outcome write(Json& slot, const Rule& rule, const std::vector<S>& value);
Outcome write(Json& slot, const Rule& rule, const std::vector<RememberedWindow>& value);
Outcome write(Json& slot, const Rule& rule, const UserStatus& value, std::uint8_t version);
Outcome write(Json& slot, const Rule& rule, const std::vector<UserStatus>& value,
              std::uint8_t version);
Outcome write(Json& slot, const Rule& rule, const std::vector<std::int64_t>& value);

// Nested messages have fields of their own, each with its first version, so
// they are read and written in the frame's version; plain values have none.
template <class T>
inline constexpr bool kIsNested =
    std::is_same_v<T, UserStatus> || std::is_same_v<T, std::vector<UserStatus>>;

template <class T>
inline constexpr bool kIsOptional = false;
template <class T>
inline constexpr bool kIsOptional<std::optional<T>> = true;

// ---- one message: every key must be a field or an envelope key; null = absent ----
template <class M>
Outcome decode_fields(const Json& object, M& out,
                      std::type_identity_t<std::span<const Field<M>>> fields,
                      std::span<const std::string_view> envelope, std::uint8_t version) {
  const auto in_version = [version](const Field<M>& f) { return f.since <= version; };
  for (auto entry = object.begin(); entry != object.end(); ++entry) {
    const std::string& key = entry.key();
    const bool known = std::ranges::find(envelope, key) != envelope.end() ||
                       std::ranges::any_of(fields, [&](const Field<M>& f) {
                         return f.name == key && in_version(f);
                       });
    if (!known) {
      return std::unexpected(DecodeError::unknown_field);
    }
  }
  for (const Field<M>& field : fields) {
    if (!in_version(field)) {
      continue;
    }
    const auto found = object.find(field.name);
    if (found == object.end() || found->is_null()) {
      if (field.rule.need == Need::required) {
        return std::unexpected(DecodeError::missing_field);
      }
      continue;
    }
    Outcome outcome = std::visit(
        [&](auto member) {
          auto& target = out.*member;
          if constexpr (kIsNested<std::remove_cvref_t<decltype(target)>>) {
            return read(*found, field.rule, target, version);
          } else {
            return read(*found, field.rule, target);
          }
        },
        field.member);
    if (!outcome) {
      return outcome;
    }
  }
  return {};
}

template <class M>
Outcome encode_fields(Json& object, const M& message,
                      std::type_identity_t<std::span<const Field<M>>> fields,
                      std::uint8_t version) {
  for (const Field<M>& field : fields) {
    if (field.since > version) {
      continue;  // the peer's version has no such field
    }
    Outcome outcome = std::visit(
        [&](auto member) -> Outcome {
          const auto& value = message.*member;
          const auto put = [&](const auto& present) -> Outcome {
            Json slot;
            const Outcome written = [&] {
              if constexpr (kIsNested<std::remove_cvref_t<decltype(present)>>) {
                return write(slot, field.rule, present, version);
              } else {
                return write(slot, field.rule, present);
              }
            }();
            if (written) {
              object[field.name] = std::move(slot);
            }
            return written;
          };
          using Value = std::remove_cvref_t<decltype(value)>;
          if constexpr (kIsOptional<Value>) {
            if (!value.has_value()) {
              return {};  // absent optionals are left out
            }
            return put(*value);
          } else {
            // A newer optional field at its default is left out too, so a
            // message that uses nothing new has the older versions' shape.
            if (field.since > kOldestVersion && field.rule.need == Need::optional &&
                value == Value{}) {
              return {};
            }
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
Outcome read(const Json& value, const Rule& /*rule*/, TotpAlgorithm& out) {
  if (!value.is_string()) {
    return std::unexpected(DecodeError::wrong_type);
  }
  const auto algorithm =
      value_of<TotpAlgorithm>(kAlgorithmNames, value.get_ref<const std::string&>());
  if (!algorithm) {
    return std::unexpected(DecodeError::invalid_value);
  }
  out = *algorithm;
  return {};
}
// The one decode of a typed code on the daemon's side: classified here, once.
Outcome read(const Json& value, const Rule& rule, Code& out) {
  SecureString typed;
  Outcome outcome = read(value, rule, typed);
  if (outcome) {
    out = Code(std::move(typed));
  }
  return outcome;
}
template <class S>
Outcome read(const Json& value, const Rule& rule, std::vector<S>& out) {
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
Outcome read(const Json& value, const Rule& /*rule*/, UserStatus& out, std::uint8_t version) {
  if (!value.is_object()) {
    return std::unexpected(DecodeError::wrong_type);
  }
  return decode_fields<UserStatus>(value, out, Schema<UserStatus>::fields, {}, version);
}
Outcome read(const Json& value, const Rule& rule, std::vector<UserStatus>& out,
             std::uint8_t version) {
  if (!value.is_array()) {
    return std::unexpected(DecodeError::wrong_type);
  }
  out.clear();
  out.reserve(value.size());
  for (const Json& item : value) {
    Outcome outcome = read(item, rule, out.emplace_back(), version);
    if (!outcome) {
      return outcome;
    }
  }
  return {};
}
// A list of numbers (the steps an import marks used): bounded by the body cap.
Outcome read(const Json& value, const Rule& /*rule*/, std::vector<std::int64_t>& out) {
  if (!value.is_array()) {
    return std::unexpected(DecodeError::wrong_type);
  }
  out.clear();
  out.reserve(value.size());
  for (const Json& item : value) {
    Outcome outcome = read_integer(item, out.emplace_back());
    if (!outcome) {
      return outcome;
    }
  }
  return {};
}

// Version 3's windows: each one a small object, the list bounded.
Outcome read(const Json& value, const Rule& /*rule*/, std::vector<RememberedWindow>& out) {
  if (!value.is_array()) {
    return std::unexpected(DecodeError::wrong_type);
  }
  if (value.size() > kMaxRememberedWindows) {
    return std::unexpected(DecodeError::field_too_long);
  }
  out.clear();
  for (const Json& item : value) {
    if (!item.is_object()) {
      return std::unexpected(DecodeError::wrong_type);
    }
    Outcome outcome = decode_fields<RememberedWindow>(item, out.emplace_back(),
                                                      Schema<RememberedWindow>::fields, {}, 3);
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
Outcome write(Json& slot, const Rule& /*rule*/, TotpAlgorithm value) {
  const std::string_view name = name_of(kAlgorithmNames, value);
  if (name.empty()) {
    return std::unexpected(DecodeError::invalid_value);
  }
  slot = name;
  return {};
}
Outcome write(Json& slot, const Rule& rule, const Code& value) {
  Outcome outcome = check_text(value.view(), rule);
  if (outcome) {
    slot = value.view();
  }
  return outcome;
}
template <class S>
Outcome write(Json& slot, const Rule& rule, const std::vector<S>& value) {
  slot = Json::array();
  for (const S& item : value) {
    Outcome outcome = write(slot.emplace_back(), rule, item);
    if (!outcome) {
      return outcome;
    }
  }
  return {};
}
Outcome write(Json& slot, const Rule& /*rule*/, const UserStatus& value, std::uint8_t version) {
  slot = Json::object();
  return encode_fields<UserStatus>(slot, value, Schema<UserStatus>::fields, version);
}
Outcome write(Json& slot, const Rule& rule, const std::vector<UserStatus>& value,
              std::uint8_t version) {
  slot = Json::array();
  for (const UserStatus& item : value) {
    Outcome outcome = write(slot.emplace_back(), rule, item, version);
    if (!outcome) {
      return outcome;
    }
  }
  return {};
}
Outcome write(Json& slot, const Rule& /*rule*/, const std::vector<std::int64_t>& value) {
  slot = Json::array();
  for (const std::int64_t item : value) {
    slot.push_back(item);
  }
  return {};
}

Outcome write(Json& slot, const Rule& /*rule*/, const std::vector<RememberedWindow>& value) {
  if (value.size() > kMaxRememberedWindows) {
    return std::unexpected(DecodeError::field_too_long);
  }
  slot = Json::array();
  for (const RememberedWindow& item : value) {
    Json& object = slot.emplace_back(Json::object());
    Outcome outcome =
        encode_fields<RememberedWindow>(object, item, Schema<RememberedWindow>::fields, 3);
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
  std::uint8_t since;  // the first version that has it
  std::expected<V, DecodeError> (*decode)(const Json& object, std::uint8_t version,
                                          std::span<const std::string_view> envelope);
};

template <class T, class V>
std::expected<V, DecodeError> decode_as(const Json& object, std::uint8_t version,
                                        std::span<const std::string_view> envelope) {
  T message{};
  Outcome outcome = decode_fields<T>(object, message, Schema<T>::fields, envelope, version);
  if (!outcome) {
    return std::unexpected(outcome.error());
  }
  return V{std::in_place_type<T>, std::move(message)};
}

// A message is in every version unless its Schema names a later `since`.
template <class T>
constexpr std::uint8_t since_of() {
  if constexpr (requires { Schema<T>::since; }) {
    return Schema<T>::since;
  } else {
    return kOldestVersion;
  }
}

template <class V, std::size_t... I>
constexpr std::array<Alternative<V>, sizeof...(I)> make_alternatives(std::index_sequence<I...>) {
  return {Alternative<V>{Schema<std::variant_alternative_t<I, V>>::name,
                         since_of<std::variant_alternative_t<I, V>>(),
                         &decode_as<std::variant_alternative_t<I, V>, V>}...};
}

// Indexed like the variant.
template <class V>
constexpr auto kAlternatives =
    make_alternatives<V>(std::make_index_sequence<std::variant_size_v<V>>{});

// An op or result newer than the frame's version is unknown in it: never
// decoded from, never encoded into, such a frame.
template <class V>
const Alternative<V>* find_alternative(std::string_view name, std::uint8_t version) noexcept {
  const auto& table = kAlternatives<V>;
  const auto* found = std::ranges::find(table, name, &Alternative<V>::name);
  return found == table.end() || found->since > version ? nullptr : found;
}

template <class V>
std::string_view alternative_name(const V& value, std::uint8_t version) noexcept {
  const std::size_t index = value.index();
  if (index >= kAlternatives<V>.size() || kAlternatives<V>[index].since > version) {
    return {};
  }
  return kAlternatives<V>[index].name;
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
  FrameSink(std::size_t max_body, std::uint8_t version)
      : max_body_(max_body), version_(version), frame_(kInitialSize) {}

  SecureBytes finish() {
    const std::size_t length = used_ - kHeaderSize;
    frame_.resize(used_);
    std::uint8_t* header = frame_.data();
    header[0] = kMagic[0];
    header[1] = kMagic[1];
    header[2] = version_;
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
  std::uint8_t version_;
  SecureBytes frame_;
  std::size_t used_ = kHeaderSize;
};

// Empty on any failure; nlohmann's strict serializer throws on invalid UTF-8.
SecureBytes encode_frame(const Json& body, std::size_t max_body, std::uint8_t version) {
  FrameSink sink(max_body, version);
  std::ostream stream(&sink);
  stream << body;
  if (!stream) {
    return {};
  }
  return sink.finish();
}

// LoginDecision::remembered is version 3's.
bool decision_in_version(LoginDecision decision, std::uint8_t version) noexcept {
  return decision != LoginDecision::remembered || version >= 3;
}

bool speaks(std::uint8_t version) noexcept {
  return version >= kOldestVersion && version <= kVersion;
}

// What every body passes before its fields are read: a version this codec
// speaks, the size cap of its direction, one JSON object.
Outcome open_body(std::span<const std::uint8_t> body, std::uint8_t version, std::size_t max_size,
                  Json& object) {
  if (!speaks(version)) {
    return std::unexpected(DecodeError::unsupported_version);
  }
  if (body.size() > max_size) {
    return std::unexpected(DecodeError::oversized);
  }
  return parse_object(body, object);
}

}  // namespace

SecureBytes encode_request(const Request& request, std::uint8_t version) noexcept {
  try {
    if (!speaks(version)) {
      return {};
    }
    Json object = Json::object();
    const WipeOnExit wipe(object);
    const std::string_view op = alternative_name(request, version);
    if (op.empty()) {
      return {};
    }
    object["op"] = op;
    const Outcome outcome = std::visit(
        [&](const auto& message) {
          using M = std::remove_cvref_t<decltype(message)>;
          return encode_fields<M>(object, message, Schema<M>::fields, version);
        },
        request);
    if (!outcome) {
      return {};
    }
    return encode_frame(object, kMaxBodySize, version);
  } catch (...) {
    return {};
  }
}

SecureBytes encode_response(const Response& response, std::uint8_t version) noexcept {
  try {
    if (!speaks(version)) {
      return {};
    }
    const std::string_view status = name_of(kStatusNames, response.status);
    const std::string_view result = alternative_name(response.result, version);
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
    // A decision newer than the frame becomes what that client knows: a
    // remembered login asks for the code.
    const auto* check = std::get_if<LoginCheckResult>(&response.result);
    std::optional<LoginCheckResult> older;
    if (check != nullptr && !decision_in_version(check->decision, version)) {
      older = *check;
      older->decision = LoginDecision::prompt;
    }
    const Outcome outcome =
        ok ? std::visit(
                 [&](const auto& payload) {
                   using M = std::remove_cvref_t<decltype(payload)>;
                   if constexpr (std::is_same_v<M, LoginCheckResult>) {
                     if (older) {
                       return encode_fields<M>(object, *older, Schema<M>::fields, version);
                     }
                   }
                   return encode_fields<M>(object, payload, Schema<M>::fields, version);
                 },
                 response.result)
           : encode_fields<Response>(object, response, kErrorDetailFields, version);
    if (!outcome) {
      return {};
    }
    return encode_frame(object, kMaxResponseBodySize, version);
  } catch (...) {
    return {};
  }
}

std::expected<Request, DecodeError> decode_request(std::span<const std::uint8_t> body,
                                                   std::uint8_t version) noexcept {
  try {
    Json object;
    const WipeOnExit wipe(object);
    if (Outcome opened = open_body(body, version, kMaxBodySize, object); !opened) {
      return std::unexpected(opened.error());
    }
    const auto op = required_name(object, "op");
    if (!op) {
      return std::unexpected(op.error());
    }
    const auto* alternative = find_alternative<Request>(*op, version);
    if (alternative == nullptr) {
      return std::unexpected(DecodeError::unknown_op);
    }
    return alternative->decode(object, version, kRequestEnvelope);
  } catch (...) {
    return std::unexpected(DecodeError::malformed_body);
  }
}

std::expected<Response, DecodeError> decode_response(std::span<const std::uint8_t> body,
                                                     std::uint8_t version) noexcept {
  try {
    Json object;
    const WipeOnExit wipe(object);
    if (Outcome opened = open_body(body, version, kMaxResponseBodySize, object); !opened) {
      return std::unexpected(opened.error());
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
          decode_fields<Response>(object, response, kErrorDetailFields, kResponseEnvelope, version);
      if (!details) {
        return std::unexpected(details.error());
      }
      return response;
    }
    const auto* alternative = find_alternative<Result>(*result_name, version);
    if (alternative == nullptr) {
      return std::unexpected(DecodeError::invalid_value);
    }
    auto result = alternative->decode(object, version, kResponseEnvelope);
    if (!result) {
      return std::unexpected(result.error());
    }
    if (const auto* check = std::get_if<LoginCheckResult>(&*result);
        check != nullptr && !decision_in_version(check->decision, version)) {
      return std::unexpected(DecodeError::invalid_value);
    }
    response.result = std::move(*result);
    return response;
  } catch (...) {
    return std::unexpected(DecodeError::malformed_body);
  }
}

}  // namespace kpanel::common::protocol
