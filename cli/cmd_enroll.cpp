// kpanel-totp enroll: begin (QR code, URI, key), ask for the app's current
// code, confirm, print the recovery codes once. --begin stops after the first
// step, --confirm CODE does only the last; --replace first proves the current
// factor (a code or a recovery code) and keeps the recovery codes.
#include <ostream>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "common/qr.hpp"

namespace kpanel::cli {

namespace protocol = common::protocol;

namespace {

// A person typing may slip; each wrong code still counts toward a lockout.
constexpr int kConfirmAttempts = 3;

// The images asked for with --png / --svg, written before anything is shown.
std::expected<void, Failure> write_images(const common::QrCode& qr, const CommandLine& line) {
  const auto failed = [](const std::string& file, const common::QrError& error) {
    return std::unexpected(Failure{
        kExitRefused,
        "cannot write " + file + ": " + common::describe(error) +
            "; nothing was confirmed: run the command again with a file that can be written",
        "file_error"});
  };
  if (const std::string* png = line.value("png")) {
    if (auto written = common::write_qr_png(qr, *png); !written) {
      return failed(*png, written.error());
    }
  }
  if (const std::string* svg = line.value("svg")) {
    if (auto written = common::write_qr_svg(qr, *svg); !written) {
      return failed(*svg, written.error());
    }
  }
  return {};
}

// The same checks before the daemon is asked for anything, so that a file the
// images cannot go to (someone else's, a symlink, no such directory) stops the
// command before an enrollment is started or replaced.
std::expected<void, Failure> check_image_paths(const CommandLine& line) {
  for (const std::string_view kind : {"png", "svg"}) {
    if (const std::string* file = line.value(kind)) {
      if (auto usable = common::check_qr_output_path(*file); !usable) {
        return std::unexpected(Failure{kExitRefused,
                                       "cannot write " + *file + ": " +
                                           common::describe(usable.error()) +
                                           "; nothing was started",
                                       "file_error"});
      }
    }
  }
  return {};
}

int print_confirmed(Context& context, const protocol::RecoveryCodesResult& result) {
  if (context.global().json) {
    context.out() << recovery_codes_json(result.codes).view() << '\n';
    return kExitOk;
  }
  if (result.codes.empty()) {
    // A replacement: the recovery codes were not on the old phone, so they stay.
    context.out() << "Enrollment confirmed: logins now take the new app's codes.\n"
                  << "Your recovery codes are unchanged.\n";
    return kExitOk;
  }
  context.out() << "Enrollment confirmed: logins now ask for the app's code.\n";
  print_recovery_codes(context.out(), result.codes);
  return kExitOk;
}

std::expected<protocol::RecoveryCodesResult, Failure> confirm(Context& context,
                                                              common::SecureString code) {
  protocol::EnrollConfirmRequest request;
  request.user = context.global().user;
  request.code = std::move(code);
  return context.request<protocol::RecoveryCodesResult>(request);
}

int confirm_from_command_line(Context& context, const CommandLine& line, const std::string& code) {
  for (const std::string_view other : {"begin", "replace", "png", "svg"}) {
    if (line.has(other)) {
      return context.usage("--confirm finishes a started enrollment; drop --" + std::string(other));
    }
  }
  if (code.size() > protocol::kMaxCodeLength) {
    return context.usage("--confirm: not a code (too long)");
  }
  auto result = confirm(context, common::SecureString(code));
  if (!result) {
    return context.fail(result.error());
  }
  return print_confirmed(context, *result);
}

// Asks for the app's code and confirms; on a terminal a wrong code may be retyped.
int confirm_interactively(Context& context) {
  for (int attempt = 1;; ++attempt) {
    auto code = context.ask("Code shown by the app: ", "confirming code", protocol::kMaxCodeLength);
    if (!code) {
      return context.fail(code.error());
    }
    auto result = confirm(context, std::move(*code));
    if (result) {
      return print_confirmed(context, *result);
    }
    // A replayed code (the step was already used) is retried too: the app's
    // next code works.
    const auto status = result.error().status;
    const bool replayed = status == protocol::Status::replayed;
    const bool retry = context.interactive() && attempt < kConfirmAttempts &&
                       (status == protocol::Status::wrong_code || replayed ||
                        status == protocol::Status::malformed_code);
    if (!retry) {
      return context.fail(result.error());
    }
    context.err() << "kpanel-totp: " << result.error().message
                  << (replayed ? " Type it when it appears.\n" : "; try again\n");
  }
}

}  // namespace

int run_enroll(Context& context, const CommandLine& line) {
  if (const std::string* code = line.value("confirm")) {
    return confirm_from_command_line(context, line, *code);
  }
  const bool begin_only = line.has("begin");
  const bool replace = line.has("replace");
  if (auto usable = check_image_paths(line); !usable) {
    return context.fail(usable.error());
  }

  protocol::EnrollBeginRequest request;
  request.user = context.global().user;
  request.replace = replace;
  if (replace) {
    auto proof = context.ask("Current code (or a recovery code) from the app being replaced: ",
                             "current code or recovery code", protocol::kMaxCodeLength);
    if (!proof) {
      return context.fail(proof.error());
    }
    request.proof = std::move(*proof);
  }
  auto begun = context.request<protocol::EnrollBeginResult>(request);
  if (!begun) {
    return context.fail(begun.error());
  }

  auto qr = common::QrCode::encode(begun->uri.view());
  if (!qr) {
    return context.fail(Failure{
        kExitRefused, "cannot draw the QR code: " + common::describe(qr.error()), "qr_failed"});
  }
  if (auto written = write_images(*qr, line); !written) {
    return context.fail(written.error());
  }

  const bool json = context.global().json;
  if (begin_only && json) {
    context.out() << enroll_begin_json(begun->uri.view(), begun->secret_base32.view(),
                                       begun->expires_at)
                         .view()
                  << '\n';
    return kExitOk;
  }
  // With --json, stdout is kept for the one JSON object: the picture goes to stderr.
  std::ostream& show = json ? context.err() : context.out();
  const auto colors =
      context.colors(show) ? common::QrTextColors::ansi : common::QrTextColors::none;
  print_enrollment(show, *begun, common::render_qr_text(*qr, colors).view(), context.now());
  for (const std::string_view kind : {"png", "svg"}) {
    if (const std::string* file = line.value(kind)) {
      show << "The QR code is also in " << *file << " (delete it once scanned).\n";
    }
  }
  if (replace) {
    show << "The current app keeps working until the new one is confirmed; the recovery codes "
            "stay the same.\n";
  }
  if (begin_only) {
    show << "\nFinish with: " << context.suggest("enroll --confirm CODE") << '\n';
    return kExitOk;
  }
  show << '\n';
  return confirm_interactively(context);
}

}  // namespace kpanel::cli
