// kpanel-totp admin doctor on fake /etc trees, one test binary: the PAM
// parsers and stacks (test_doctor_pam), the sshd_config reader
// (test_doctor_sshd), what an SSH login needs (test_doctor_ssh_logins), the
// key and socket file checks (test_doctor_files) and the command end to end
// against a scripted daemon (test_doctor_command).
#define BOOST_TEST_MODULE cli_doctor
#include <boost/test/unit_test.hpp>
