#include "cli/errors.hpp"

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

namespace {

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
      return {kExitRefused,
              user + " has no two-factor enrollment; set one up with: kpanel-totp enroll"};
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
                                " is already enrolled; to move to a new phone run: kpanel-totp "
                                "enroll --replace"};
    case protocol::Status::no_such_user:
      return {kExitRefused, "no such user: " + user +
                                " (this host's user database does not know it); check the name"};
    case protocol::Status::store_unavailable:
      return {kExitRefused,
              "kpanel-totpd cannot use its state store (the database under /var/lib/kpanel-totp); "
              "nothing changed; check the daemon's log: journalctl -u kpanel-totpd"};
    case protocol::Status::internal_error:
      return {kExitRefused,
              "kpanel-totpd failed to handle the request; check its log: journalctl -u "
              "kpanel-totpd"};
    case protocol::Status::busy:
      // The slow lane (password checks, recovery-code hashing) is full or
      // already holds a request of this caller: nothing was checked.
      return {kExitRefused,
              "kpanel-totpd is busy (an earlier request of yours, or too many at once); nothing "
              "was checked or changed; try again in a few seconds"};
    case protocol::Status::replayed:
      // The same text the PAM module shows, so users learn one sentence.
      return {kExitRefused, "That code was already used; wait for the next one."};
    case protocol::Status::unsupported_version:
      return {kExitRefused,
              "kpanel-totpd speaks another protocol version; install kpanel-totp and kpanel-totpd "
              "from the same release"};
  }
  return {kExitRefused,
          "kpanel-totpd gave no usable answer; check its log: journalctl -u kpanel-totpd"};
}

}  // namespace

Failure describe_status(const protocol::Response& response, const FailureContext& context) {
  Failure failure = describe_status_text(response, context);
  failure.status = response.status;
  return failure;
}

Failure describe_client_error(common::ClientError error, const FailureContext& context) {
  const std::string socket(context.socket_path);
  const std::string start =
      "start it with: systemctl start kpanel-totpd.socket (not installed yet: sudo "
      "scripts/install.sh)";
  switch (error) {
    case common::ClientError::unreachable:
      return {kExitUnreachable, "cannot reach kpanel-totpd at " + socket + "; " + start};
    case common::ClientError::timeout:
      return {kExitUnreachable, "kpanel-totpd at " + socket +
                                    " did not answer in time; check it with: systemctl status "
                                    "kpanel-totpd (or " +
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
                                    "journalctl -u kpanel-totpd"};
    case common::ClientError::protocol_error:
      return {kExitRefused,
              "could not exchange a valid message with kpanel-totpd at " + socket +
                  "; make sure kpanel-totp and kpanel-totpd come from the same version"};
  }
  return {kExitUnreachable, "cannot reach kpanel-totpd at " + socket + "; " + start};
}

Failure unexpected_reply() {
  return {kExitRefused,
          "kpanel-totpd sent an answer this tool does not understand; make sure kpanel-totp and "
          "kpanel-totpd come from the same version"};
}

}  // namespace kpanel::cli
