#include "cli/errors.hpp"

#include <sys/stat.h>

#include <cstdint>

namespace kpanel::cli {

namespace protocol = common::protocol;

std::int64_t minutes_until(std::int64_t until_unix, common::TimePoint now) {
  const std::int64_t seconds = until_unix - common::to_unix(now);
  if (seconds <= 60) {
    return 1;
  }
  return (seconds + 59) / 60;
}

std::string reason_of(const Failure& failure) {
  if (!failure.reason.empty()) {
    return failure.reason;
  }
  if (failure.status) {
    return std::string(protocol::to_string(*failure.status));
  }
  switch (failure.exit_code) {
    case kExitUsage:
      return "usage";
    case kExitUnreachable:
      return "unreachable";
    default:
      return "refused";
  }
}

ServiceManager detect_service_manager() {
  // The test systemd itself documents (sd_booted): this directory exists only
  // when systemd is PID 1.
  struct stat st {};
  if (::lstat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode)) {
    return ServiceManager::systemd;
  }
  return ServiceManager::none;
}

namespace {

// Where the daemon's log is: the journal under systemd, else the file
// kpanel-totpd-ctl appends to.
std::string daemon_log(const FailureContext& context) {
  return context.service_manager == ServiceManager::systemd ? "journalctl -u kpanel-totpd"
                                                            : "/var/log/kpanel-totpd.log";
}

// The store the daemon says failed; an older daemon does not say.
std::string store_name(const protocol::Response& response) {
  if (response.store && !response.store->empty()) {
    return *response.store;
  }
  return "its state_dir or PostgreSQL database, see its config";
}

std::string user_or_placeholder(std::string_view user) {
  return user.empty() ? std::string("USER") : std::string(user);
}

std::string locked_message(const protocol::Response& response, const FailureContext& context) {
  std::string text = "too many failed attempts; try again ";
  if (response.locked_until) {
    const std::int64_t minutes = minutes_until(*response.locked_until, context.now);
    text += "in " + std::to_string(minutes) + (minutes == 1 ? " minute" : " minutes");
  } else {
    text += "later";
  }
  return text + " (or ask an admin: kpanel-totp admin unlock " + user_or_placeholder(context.user) +
         ")";
}

std::string wrong_code_message(const protocol::Response& response) {
  std::string text =
      "wrong code, nothing changed (a code works once; check the phone's clock if it keeps "
      "failing)";
  if (response.failures_left) {
    const std::uint32_t left = *response.failures_left;
    text += "; " + std::to_string(left) + (left == 1 ? " attempt" : " attempts") +
            " left before a lockout";
  }
  return text;
}

Failure describe_status_text(const protocol::Response& response, const FailureContext& context) {
  const std::string user = user_or_placeholder(context.user);
  switch (response.status) {
    case protocol::Status::ok:
      break;
    case protocol::Status::bad_request:
      return {kExitRefused,
              "kpanel-totpd refused the request as malformed; make sure kpanel-totp and "
              "kpanel-totpd come from the same version"};
    case protocol::Status::forbidden:
      return {kExitRefused,
              "not allowed: only root or a member of the daemon's admin_group may do this or act "
              "for another user"};
    case protocol::Status::not_enrolled:
      return {kExitRefused, user + " has no two-factor enrollment; set one up with: kpanel-totp " +
                                std::string(context.user_flag) + "enroll"};
    case protocol::Status::wrong_code:
      return {kExitRefused, wrong_code_message(response)};
    case protocol::Status::locked:
      return {kExitRefused, locked_message(response, context)};
    case protocol::Status::wrong_password:
      return {kExitRefused, "wrong password, nothing changed; try again"};
    case protocol::Status::no_pending_enrollment:
      return {kExitRefused,
              "no enrollment is waiting for a code (none was started, or it expired); start one "
              "with: kpanel-totp enroll"};
    case protocol::Status::already_enrolled:
      return {kExitRefused, user +
                                " is already enrolled; to move to a new phone run: kpanel-totp " +
                                std::string(context.user_flag) + "enroll --replace"};
    case protocol::Status::no_such_user:
      return {kExitRefused, "no such user: " + user +
                                " (this host's user database does not know it); check the name"};
    case protocol::Status::store_unavailable:
      return {kExitRefused,
              "kpanel-totpd cannot use its state store (" + store_name(response) +
                  "); nothing changed; check the daemon's log: " + daemon_log(context)};
    case protocol::Status::internal_error:
      return {kExitRefused,
              "kpanel-totpd failed to handle the request; check its log: " + daemon_log(context)};
    case protocol::Status::busy:
      // The slow lane (password checks, recovery-code hashing) is full or
      // already holds a request of this caller: nothing was checked.
      return {kExitRefused,
              "kpanel-totpd is busy (an earlier request of yours, or too many at once); nothing "
              "was checked or changed; try again in a few seconds"};
    case protocol::Status::replayed:
      // The same text the PAM module shows, so users learn one sentence.
      return {kExitRefused, "That code was already used; wait for the next one."};
    case protocol::Status::malformed_code:
      // Not counted: the daemon did not even compare it.
      return {kExitRefused,
              "that is not a code: a code is the digits the app shows (a recovery code is 10 "
              "letters and digits); nothing was checked or counted"};
    case protocol::Status::unsupported_version:
      return {kExitRefused,
              "kpanel-totpd speaks another protocol version; install kpanel-totp and kpanel-totpd "
              "from the same release"};
  }
  return {kExitRefused,
          "kpanel-totpd gave no usable answer; check its log: " + daemon_log(context)};
}

}  // namespace

Failure describe_status(const protocol::Response& response, const FailureContext& context) {
  Failure failure = describe_status_text(response, context);
  failure.status = response.status;
  return failure;
}

namespace {

Failure describe_client_error_text(common::ClientError error, const FailureContext& context) {
  const std::string socket(context.socket_path);
  // Both installs (install.sh and the .deb) ship kpanel-totpd-ctl for hosts
  // without systemd; under systemd the socket unit starts the daemon on demand.
  const bool systemd = context.service_manager == ServiceManager::systemd;
  const std::string start = systemd ? "start it with: sudo systemctl start kpanel-totpd.socket"
                                    : "start it with: sudo kpanel-totpd-ctl start";
  const std::string check =
      systemd ? "systemctl status kpanel-totpd" : "sudo kpanel-totpd-ctl status";
  const std::string log = daemon_log(context);
  switch (error) {
    case common::ClientError::unreachable:
      return {kExitUnreachable, "cannot reach kpanel-totpd at " + socket + "; " + start +
                                    " (not installed yet: sudo scripts/install.sh)"};
    case common::ClientError::timeout:
      return {kExitUnreachable, "kpanel-totpd at " + socket +
                                    " did not answer in time; check it with: " + check + " (or " +
                                    start + ")"};
    case common::ClientError::untrusted_peer:
      return {kExitUnreachable,
              "refusing to talk to " + socket +
                  ": it is not owned by root or the kpanel-totp user; point --socket at the real "
                  "daemon or " +
                  start};
    case common::ClientError::io_error:
      return {kExitUnreachable, "the connection to kpanel-totpd at " + socket +
                                    " broke before it answered; check with kpanel-totp status and "
                                    "its log: " +
                                    log};
    case common::ClientError::protocol_error:
      return {kExitRefused,
              "could not exchange a valid message with kpanel-totpd at " + socket +
                  "; make sure kpanel-totp and kpanel-totpd come from the same version"};
  }
  return {kExitUnreachable, "cannot reach kpanel-totpd at " + socket + "; " + start};
}

}  // namespace

Failure describe_client_error(common::ClientError error, const FailureContext& context) {
  Failure failure = describe_client_error_text(error, context);
  failure.reason = std::string(common::to_string(error));
  return failure;
}

Failure unexpected_reply() {
  return {kExitRefused,
          "kpanel-totpd sent an answer this tool does not understand; make sure kpanel-totp and "
          "kpanel-totpd come from the same version",
          "unexpected_reply"};
}

}  // namespace kpanel::cli
