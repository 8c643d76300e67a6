#include "daemon/authz/dispatch.hpp"

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

namespace kpanel::daemon {
namespace {

namespace protocol = common::protocol;
using protocol::Request;
using protocol::Response;
using protocol::Status;

using Handler = Response (*)(Rules&, const Caller&, const std::string& user, const Request&);

// An op's wire and audit names are its row of protocol::kOps (a refused
// request is logged under the audit name, by Rules::record_refused).
struct Row {
  protocol::Op op;
  std::size_t index;  // which alternative of protocol::Request
  Permit permit;
  Cost cost;
  Handler handler;
};

template <typename T, typename... Ts>
constexpr std::size_t index_in(const std::variant<Ts...>* /*tag*/) {
  constexpr std::array<bool, sizeof...(Ts)> same{std::is_same_v<T, Ts>...};
  for (std::size_t i = 0; i < same.size(); ++i) {
    if (same.at(i)) {
      return i;
    }
  }
  return same.size();
}

template <typename Req, auto Method>
constexpr Row row(protocol::Op op, Permit permit, Cost cost) {
  return Row{
      op, index_in<Req>(static_cast<const Request*>(nullptr)), permit, cost,
      [](Rules& rules, const Caller& caller, const std::string& user, const Request& request) {
        if constexpr (std::is_invocable_v<decltype(Method), Rules&, const Caller&, const Req&>) {
          return (rules.*Method)(caller, std::get<Req>(request));
        } else {
          return (rules.*Method)(caller, user, std::get<Req>(request));
        }
      }};
}

// clang-format off
constexpr std::array kTable{
  // request                                    handler                           op                                  who may call it        cost (lanes.hpp)
  row<protocol::LoginCheckRequest,              &Rules::login_check>              (protocol::Op::login_check,         Permit::self_or_root,  Cost::fast),
  row<protocol::VerifyRequest,                  &Rules::verify>                   (protocol::Op::verify,              Permit::self_or_root,  Cost::by_request),
  row<protocol::StatusRequest,                  &Rules::status>                   (protocol::Op::status,              Permit::self_or_admin, Cost::fast),
  row<protocol::EnrollBeginRequest,             &Rules::enroll_begin>             (protocol::Op::enroll_begin,        Permit::self_or_admin, Cost::slow),
  row<protocol::EnrollConfirmRequest,           &Rules::enroll_confirm>           (protocol::Op::enroll_confirm,      Permit::self_or_admin, Cost::slow),
  row<protocol::DisableRequest,                 &Rules::disable>                  (protocol::Op::disable,             Permit::self_or_admin, Cost::slow),
  row<protocol::RegenerateRecoveryCodesRequest, &Rules::regenerate_recovery_codes>(protocol::Op::recovery_regenerate, Permit::self_or_admin, Cost::slow),
  row<protocol::AdminListRequest,               &Rules::admin_list>               (protocol::Op::admin_list,          Permit::admin,         Cost::by_request),
  row<protocol::AdminResetRequest,              &Rules::admin_reset>              (protocol::Op::admin_reset,         Permit::admin,         Cost::fast),
  row<protocol::AdminUnlockRequest,             &Rules::admin_unlock>             (protocol::Op::admin_unlock,        Permit::admin,         Cost::fast),
  row<protocol::AdminStatsRequest,              &Rules::admin_stats>              (protocol::Op::admin_stats,         Permit::admin,         Cost::fast),
  row<protocol::AdminImportRequest,             &Rules::admin_import>             (protocol::Op::admin_import,        Permit::root,          Cost::slow),
  row<protocol::ForgetRequest,                  &Rules::forget>                   (protocol::Op::forget,              Permit::self_or_admin, Cost::fast),
};
// clang-format on

constexpr bool rows_follow_the_variant() {
  for (std::size_t i = 0; i < kTable.size(); ++i) {
    if (kTable.at(i).index != i || static_cast<std::size_t>(kTable.at(i).op) != i) {
      return false;
    }
  }
  return true;
}
static_assert(kTable.size() == std::variant_size_v<Request>, "one row per request type");
static_assert(rows_follow_the_variant(), "rows in protocol::Request order");

// The request's user field, if its type has one.
const std::string* named_user(const Request& request) {
  return std::visit(
      [](const auto& r) -> const std::string* {
        if constexpr (requires { r.user; }) {
          return &r.user;
        } else {
          return nullptr;
        }
      },
      request);
}

// A deleted account's state stays in the store until an admin removes it:
// reset and unlock act on the name as given when NSS no longer knows it.
bool may_name_a_leftover(const Request& request) {
  return std::holds_alternative<protocol::AdminResetRequest>(request) ||
         std::holds_alternative<protocol::AdminUnlockRequest>(request);
}

Response reply(Status status) noexcept {
  Response response;
  response.status = status;
  return response;
}

}  // namespace

Permit Dispatcher::permit(const Request& request) noexcept {
  return kTable.at(request.index()).permit;
}

Lane Dispatcher::lane(const Request& request) noexcept {
  switch (kTable.at(request.index()).cost) {
    case Cost::fast:
      return Lane::fast;
    case Cost::slow:
      return Lane::slow;
    case Cost::by_request:
      break;
  }
  if (const auto* list = std::get_if<protocol::AdminListRequest>(&request)) {
    return list->all ? Lane::slow : Lane::fast;
  }
  // A recovery code costs scrypt hashes; a TOTP code an HMAC or two. An
  // 8-digit code may be an imported scratch code (checks.hpp,
  // is_recovery_attempt), which only the record tells: the slow lane too.
  const auto* verify = std::get_if<protocol::VerifyRequest>(&request);
  const bool slow = verify != nullptr && (verify->code.kind() == protocol::Code::Kind::recovery ||
                                          verify->code.may_be_scratch_code());
  return slow ? Lane::slow : Lane::fast;
}

Response Dispatcher::handle(const PeerCredentials& peer, const Request& request) noexcept {
  try {
    const Row& entry = kTable.at(request.index());
    const bool root = peer.uid == 0;
    const std::string* named = named_user(request);
    // Root may act on anyone, so its own name matters only for a request that
    // names nobody; skipping that passwd lookup keeps it off every PAM login.
    const bool needs_self = !root || (named != nullptr && named->empty());
    const std::optional<std::string> self =
        needs_self ? accounts_.name_for_uid(peer.uid) : std::nullopt;
    const auto policy = rules_.policy();
    const bool admin = root || (self && !policy->admin_group.empty() &&
                                accounts_.is_member(*self, policy->admin_group));
    // Remembered logins: only root's word on where a login comes from counts
    // (the module in sshd, login, su, sudo); a user's process could name any source.
    const Caller caller{.uid = peer.uid, .privileged = admin, .may_remember = root};

    // One account, one enrollment: a name is resolved to its account's
    // canonical name (the passwd entry of its uid) here and nowhere else,
    // before the permission check and before the Rules see it, so an alias
    // or another spelling of an account reaches that account's state. The
    // peer's own name is canonical already: it is the passwd entry of its uid.
    const bool names_someone = named != nullptr && !named->empty();
    const std::optional<std::string> account =
        names_someone ? accounts_.canonical_name(*named) : self;
    std::string target;
    if (named != nullptr) {
      target = account.value_or(*named);
    }
    const bool own =
        self.has_value() && account.has_value() && named != nullptr && *account == *self;

    bool allowed = false;
    if (root || self) {  // a uid with no passwd entry may do nothing
      switch (entry.permit) {
        case Permit::self_or_root:
          allowed = root || own;
          break;
        case Permit::self_or_admin:
          allowed = admin || own;
          break;
        case Permit::admin:
          allowed = admin;
          break;
        case Permit::root:
          allowed = root;
          break;
      }
    }
    if (!allowed) {
      rules_.record_refused(caller, request, target, Status::forbidden);
      return reply(Status::forbidden);
    }
    if (named != nullptr && target.empty()) {
      return reply(Status::bad_request);  // root, no name
    }
    if (names_someone && !account && !may_name_a_leftover(request)) {
      rules_.record_refused(caller, request, target, Status::no_such_user);
      return reply(Status::no_such_user);
    }
    Response response = entry.handler(rules_, caller, target, request);
    if (response.status == Status::store_unavailable && !store_name_.empty()) {
      response.store = store_name_;
    }
    return response;
  } catch (...) {
    return reply(Status::internal_error);
  }
}

}  // namespace kpanel::daemon
