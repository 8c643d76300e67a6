"""kpanel-totp admin doctor, the real tool against the real daemon, reading fake
/etc trees through --root: a good host exits 0; warnings (nullok, a lockout)
exit 0 and 1 with --strict; errors exit 1 naming file and line: a sufficient
pam_unix before the module, UsePAM no, and every way into SSH with fewer
factors than intended, such as the key + code PAM recipe with sshd's
keyboard-interactive-only line (the code alone, or nothing under nullok); the
shipped sshd drop-in is safe with both shipped PAM recipes; a stopped daemon
alone exits 3; lockouts are reported to admins; plain users get the file
checks and no lockout list."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import kpanel_harness as h

USER = "kpt_o_alice"
CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "config")

COMMON_AUTH = (
    "# Debian 12 common-auth with the kpanel-totp profile enabled\n"
    "auth\t[success=1 default=ignore]\tpam_unix.so nullok\n"
    "auth\trequisite\t\t\tpam_deny.so\n"
    "auth\trequired\t\t\tpam_permit.so\n"
    "auth\trequired\tpam_kpanel_totp.so\n")
SSHD_PAM = "@include common-auth\naccount required pam_nologin.so\n@include common-account\n"
SSHD_CONFIG = ("Include /etc/ssh/sshd_config.d/*.conf\n"
               "KbdInteractiveAuthentication no\n"
               "UsePAM yes\n")
SSHD_DROP_IN = ("UsePAM yes\n"
                "KbdInteractiveAuthentication yes\n"
                "AuthenticationMethods keyboard-interactive\n")
# Debian 12's common-auth as installed, without the module.
DEBIAN_COMMON_AUTH = ("auth\t[success=1 default=ignore]\tpam_unix.so nullok\n"
                      "auth\trequisite\t\t\tpam_deny.so\n"
                      "auth\trequired\t\t\tpam_permit.so\n")
# The drop-in as shipped before: password + code active, key + code commented out.
OLD_DROP_IN = ("UsePAM yes\n"
               "KbdInteractiveAuthentication yes\n"
               "AuthenticationMethods keyboard-interactive\n"
               "#AuthenticationMethods publickey,keyboard-interactive\n")


def shipped(name):
    with open(os.path.join(CONFIG, name)) as f:
        return f.read()


def setUpModule():
    h.require_root(None)
    h.ensure_users(USER)


def tearDownModule():
    h.remove_users(USER)


class Tree:
    """A fake root with a good host's files; write() changes one."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="kpanel-doctor-")
        os.chmod(self.root, 0o755)  # plain users read it too
        self.write("/etc/pam.d/common-auth", COMMON_AUTH)
        self.write("/etc/pam.d/common-account", "account required pam_unix.so\n")
        self.write("/etc/pam.d/sshd", SSHD_PAM)
        self.write("/etc/pam.d/login", "auth optional pam_faildelay.so delay=3000000\n"
                                       "@include common-auth\n")
        self.write("/etc/ssh/sshd_config", SSHD_CONFIG)
        self.write("/etc/ssh/sshd_config.d/kpanel-totp.conf", SSHD_DROP_IN)
        self.write("/lib/x86_64-linux-gnu/security/pam_kpanel_totp.so", "")
        self.write("/etc/kpanel-totp/state.key", "k" * 32, mode=0o600)

    def path(self, logical):
        return os.path.join(self.root, logical.lstrip("/"))

    def write(self, logical, text, mode=0o644):
        path = self.path(logical)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        for directory in self._dirs_of(path):
            os.chmod(directory, 0o755)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)

    def _dirs_of(self, path):
        directory = os.path.dirname(path)
        while len(directory) > len(self.root):
            yield directory
            directory = os.path.dirname(directory)

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


class Doctor(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = h.Daemon(max_failures=2).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def setUp(self):
        self.tree = Tree()
        self.addCleanup(self.tree.cleanup)
        self.d.tool("admin", "reset", USER)
        self.d.tool("admin", "unlock", USER)

    def doctor(self, *args, **kwargs):
        return self.d.tool("admin", "doctor", "--root", self.tree.root, *args, **kwargs)

    def doctor_json(self, *args, **kwargs):
        result = self.doctor("--json", *args, **kwargs)
        try:
            return result.returncode, json.loads(result.stdout), result
        except json.JSONDecodeError as e:
            raise AssertionError(f"not JSON: {result.stdout!r} ({result.stderr!r})") from e

    def test_good_host_exits_0(self):
        result = self.doctor()
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"ok: kpanel-totpd answers at {self.d.socket}", result.stdout)
        self.assertIn(f"ok: {self.d.socket}: a socket, mode 0666, owner root", result.stdout)
        self.assertIn("sshd asks for a code", result.stdout)
        self.assertIn("none locked out", result.stdout)
        self.assertTrue(result.stdout.endswith("summary: no problems found\n"), result.stdout)
        self.assertEqual(result.stderr, "")
        rc, data, _ = self.doctor_json()
        self.assertEqual(rc, 0)
        self.assertEqual(data, {"ok": True, "findings": []})

    def test_nullok_is_a_warning_exit_0_and_1_with_strict(self):
        self.tree.write("/etc/pam.d/common-auth",
                        COMMON_AUTH.replace("pam_kpanel_totp.so", "pam_kpanel_totp.so nullok"))
        common_auth = self.tree.path("/etc/pam.d/common-auth")
        result = self.doctor()
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertIn(f"warning: nullok at {common_auth}:5: users without enrollment log in "
                      "without a code; remove nullok once everyone is enrolled", result.stdout)
        self.assertIn("summary: 0 errors, 1 warning", result.stdout)
        self.assertEqual(self.doctor("--strict").returncode, 1)
        rc, data, _ = self.doctor_json("--strict")
        self.assertEqual(rc, 1)
        self.assertFalse(data["ok"])
        self.assertEqual(len(data["findings"]), 1, data)
        finding = data["findings"][0]
        self.assertEqual(finding["severity"], "warning")
        self.assertEqual(finding["check"], "pam")
        self.assertEqual(finding["file"], common_auth)
        self.assertEqual(finding["line"], 5)

    def test_sufficient_pam_unix_before_the_module_exits_1(self):
        self.tree.write("/etc/pam.d/common-auth",
                        "auth sufficient pam_unix.so nullok\n"
                        "auth requisite pam_deny.so\n"
                        "auth required pam_kpanel_totp.so\n")
        common_auth = self.tree.path("/etc/pam.d/common-auth")
        result = self.doctor()
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn(f"error: pam_unix.so sufficient at {common_auth}:1 lets a password alone "
                      "log in", result.stdout)
        # And what that means for SSH.
        self.assertIn("error: an enrolled user logs in over SSH with a password alone, no code: "
                      "AuthenticationMethods list 'keyboard-interactive'", result.stdout)
        self.assertIn("summary: 2 errors, 0 warnings", result.stdout)

    def test_use_pam_no_exits_1(self):
        self.tree.write("/etc/ssh/sshd_config.d/kpanel-totp.conf",
                        SSHD_DROP_IN.replace("UsePAM yes", "UsePAM no"))
        drop_in = self.tree.path("/etc/ssh/sshd_config.d/kpanel-totp.conf")
        rc, data, result = self.doctor_json()
        self.assertEqual(rc, 1, result.stdout)
        self.assertEqual([(f["check"], f["file"], f["line"]) for f in data["findings"]],
                         [("sshd", drop_in, 1)])
        self.assertIn("set UsePAM yes", data["findings"][0]["message"])

    def test_codes_cannot_be_asked_and_publickey_skips(self):
        os.remove(self.tree.path("/etc/ssh/sshd_config.d/kpanel-totp.conf"))
        sshd_config = self.tree.path("/etc/ssh/sshd_config")
        result = self.doctor()
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn(f"error: KbdInteractiveAuthentication no at {sshd_config}:2: codes cannot "
                      "be asked", result.stdout)
        self.assertIn("error: an enrolled user logs in over SSH with a key alone, no code: "
                      "AuthenticationMethods is any (sshd's default), so the publickey method "
                      "alone is enough", result.stdout)
        self.assertIn("warning: PasswordAuthentication yes", result.stdout)

    def test_module_missing_from_sshd_is_a_warning(self):
        self.tree.write("/etc/pam.d/common-auth", "auth required pam_unix.so\n")
        result = self.doctor()
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertIn("warning: sshd logins do not ask for a code", result.stdout)

    def test_key_file_mode(self):
        os.chmod(self.tree.path("/etc/kpanel-totp/state.key"), 0o644)
        rc, data, _ = self.doctor_json()
        self.assertEqual(rc, 1)
        self.assertEqual([f["check"] for f in data["findings"]], ["key_file"])
        self.assertIn("chmod 600", data["findings"][0]["message"])

    def test_unreachable_daemon_alone_exits_3(self):
        result = subprocess.run(
            [h.TOOL, "--socket", os.path.join(self.tree.root, "none.sock"), "admin", "doctor",
             "--root", self.tree.root], capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 3, result.stdout)
        self.assertIn("error: cannot reach kpanel-totpd at", result.stdout)
        self.assertIn("summary: 1 error, 0 warnings", result.stdout)
        # A config problem as well: the config wins (1).
        self.tree.write("/etc/ssh/sshd_config", "UsePAM no\n")
        result = subprocess.run(
            [h.TOOL, "--socket", os.path.join(self.tree.root, "none.sock"), "admin", "doctor",
             "--root", self.tree.root], capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 1, result.stdout)

    def test_locked_user_is_reported_to_admins(self):
        self.d.enroll(USER)
        for _ in range(2):
            reply = self.d.call(h.verify_request(USER, "000000"))
            self.assertNotEqual(reply["status"], "ok")
        result = self.doctor()
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertIn(f"warning: 1 user is locked out ({USER} until ", result.stdout)
        self.assertEqual(self.doctor("--strict").returncode, 1)
        self.assertIn("kpanel-totp admin unlock USER", result.stdout)

    def test_plain_user_gets_the_file_checks_without_the_lockout_list(self):
        result = self.doctor(as_user=USER)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("skipped: lockouts: only root or a member of the daemon's admin_group",
                      result.stdout)
        self.assertIn("state.key: mode 0600, owner root", result.stdout)
        # What they cannot read is skipped, not guessed.
        os.chmod(self.tree.path("/etc/kpanel-totp"), 0o700)
        result = self.doctor(as_user=USER)
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertIn("state.key: cannot look at it (permission denied; run as root)",
                      result.stdout)

    # ---- SSH: AuthenticationMethods x the sshd PAM stack ----------------------

    def use_recipe(self, pam_example, drop_in):
        self.tree.write("/etc/pam.d/common-auth", DEBIAN_COMMON_AUTH)
        self.tree.write("/etc/pam.d/sshd", shipped("pam.d/" + pam_example) +
                        "account required pam_nologin.so\n@include common-account\n")
        self.tree.write("/etc/ssh/sshd_config.d/kpanel-totp.conf", drop_in)

    def errors(self, *args):
        rc, data, result = self.doctor_json(*args)
        return rc, [f for f in data["findings"] if f["severity"] == "error"], result

    def test_half_followed_key_recipe_is_an_error(self):
        # The key + code PAM stack with the drop-in's keyboard-interactive line.
        self.use_recipe("sshd-publickey-and-code.example", OLD_DROP_IN)
        drop_in = self.tree.path("/etc/ssh/sshd_config.d/kpanel-totp.conf")
        result = self.doctor()
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("error: an enrolled user logs in over SSH with the code alone (no password, "
                      f"no key): AuthenticationMethods list 'keyboard-interactive' at {drop_in}:3",
                      result.stdout)
        self.assertRegex(result.stdout, r"error: a user with no enrollment \(nullok at \S+\) "
                                        r"logs in over SSH with nothing at all")
        self.assertNotIn("every AuthenticationMethods list includes it", result.stdout)
        rc, errors, _ = self.errors()
        self.assertEqual(rc, 1)
        self.assertEqual([(e["check"], e["file"], e["line"]) for e in errors],
                         [("ssh", drop_in, 3), ("ssh", drop_in, 3)])

    def test_shipped_drop_in_is_safe_with_either_recipe(self):
        for example in ("sshd-publickey-and-code.example", "sshd-password-and-code.example"):
            with self.subTest(example):
                self.use_recipe(example, shipped("sshd_config.d/kpanel-totp.conf"))
                rc, errors, result = self.errors()
                self.assertEqual(errors, [], result.stdout)
                self.assertEqual(rc, 0, result.stdout)
                result = self.doctor()
                self.assertIn("needs the code and a password or a key from an enrolled user",
                              result.stdout)

    def test_password_recipe_with_keyboard_interactive_alone_is_fine(self):
        self.use_recipe("sshd-password-and-code.example", OLD_DROP_IN)
        rc, errors, result = self.errors()
        self.assertEqual((rc, errors), (0, []), result.stdout)

    def test_match_block_that_relaxes_authentication_methods(self):
        self.use_recipe("sshd-publickey-and-code.example",
                        shipped("sshd_config.d/kpanel-totp.conf"))
        self.tree.write("/etc/ssh/sshd_config", SSHD_CONFIG +
                        "Match Group backup\n    AuthenticationMethods publickey\n"
                        "Match Address 10.0.0.0/8\n    AuthenticationMethods keyboard-interactive\n")
        rc, errors, result = self.errors()
        self.assertEqual(rc, 1)
        messages = [e["message"] for e in errors]
        self.assertEqual(len(messages), 3, result.stdout)
        self.assertTrue(messages[0].startswith("for connections matching 'Match Group backup'"))
        self.assertIn("an enrolled user logs in over SSH with a key alone, no code", messages[0])
        self.assertIn("with the code alone", messages[1])
        self.assertIn("with nothing at all", messages[2])

    def test_password_authentication_with_the_key_recipe(self):
        # sshd's password method runs the PAM stack too: with no pam_unix in
        # it, any password lets a user with no enrollment in.
        self.use_recipe("sshd-publickey-and-code.example",
                        "UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication yes\n"
                        "PubkeyAuthentication no\n")
        rc, errors, result = self.errors()
        self.assertEqual(rc, 1)
        self.assertTrue(any("so the password method alone is enough" in e["message"] and
                            "with nothing at all" in e["message"] for e in errors), result.stdout)

    def test_enforce_after_passed_silences_nullok(self):
        self.use_recipe("sshd-password-and-code.example", OLD_DROP_IN)
        self.tree.write("/etc/kpanel-totp/kpanel-totpd.conf", "enforce_after = 2020-01-01\n")
        result = self.doctor("--strict")
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertNotIn("users without enrollment log in without a code", result.stdout)
        self.assertIn("lets nobody through: enforce_after (2020-01-01) has passed", result.stdout)
        # Before the date the grace period lets them in: still a warning.
        self.tree.write("/etc/kpanel-totp/kpanel-totpd.conf", "enforce_after = 2999-01-01\n")
        result = self.doctor()
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertIn("users without enrollment log in without a code", result.stdout)

    def test_user_flag_is_a_usage_error(self):
        result = self.doctor("--user", USER)
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stdout, "")


if __name__ == "__main__":
    unittest.main()
