// kpanel-totp: the user's and admin's tool (SPEC §6). Everything but this
// line lives in cli_core, which the tests link.
#include "cli/cli.hpp"

int main(int argc, char** argv) { return kpanel::cli::run_main(argc, argv); }
