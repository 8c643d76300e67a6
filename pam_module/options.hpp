#pragma once
// The module's options parser lives in common_wire (common/pam_options.hpp),
// so `kpanel-totp doctor` checks stack lines with the module's own rules.
#include "common/pam_options.hpp"
