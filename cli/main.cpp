// kpanel-totp: the user's and admin's tool. Everything but main() lives in
// cli_core, which the tests link.
#include <sys/prctl.h>

#include "cli/cli.hpp"

int main(int argc, char** argv) {
  // `enroll` holds a new TOTP secret, and a password or recovery codes pass
  // through: no core dump of this process, and no ptrace by other processes
  // of the user. Best effort; the tool works the same without it.
  (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // NOLINT(*-vararg)
  return kpanel::cli::run_main(argc, argv);
}
