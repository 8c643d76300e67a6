"""kpanel-totp, the tool, against the real daemon: enrollment (QR in the
terminal, PNG, SVG, JSON), confirm, replace, status, disable, recovery codes,
admin commands, exit codes. Codes from oathtool; QR codes read by zbarimg."""

import json
import os
import re
import subprocess
import tempfile
import time
import unittest

import kpanel_harness as h
import terminal_picture

ALICE, BOB = "kpt_t_alice", "kpt_t_bob"
PASSWORD = h.password_of(ALICE)
URI_RE = re.compile(
    r"^otpauth://totp/Kapsule:(?P<user>[^?]+)%40(?P<host>[^?]+)\?secret=(?P<secret>[A-Z2-7]{32})"
    r"&issuer=Kapsule&algorithm=SHA1&digits=6&period=30$")
PASSWORD_SERVICE = "auth required pam_unix.so nodelay\naccount required pam_unix.so\n"


def setUpModule():
    h.require_root(None)
    h.ensure_users(ALICE, BOB)


def tearDownModule():
    h.remove_users(ALICE, BOB)


def zbar(path):
    out = subprocess.run(["zbarimg", "--quiet", "--raw", "--nodbus", path], capture_output=True,
                         text=True)
    return out.stdout.strip()


class Enrollment(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = h.Daemon(pam_services={"kpanel-totp": PASSWORD_SERVICE}).start()
        cls.tmp = tempfile.mkdtemp(prefix="kpanel-tool-")
        os.chmod(cls.tmp, 0o777)

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        subprocess.run(["rm", "-rf", cls.tmp])

    def setUp(self):
        self.d.tool("admin", "reset", ALICE)
        self.d.tool("admin", "reset", BOB)

    def test_begin_json_then_confirm(self):
        rc, begun, _ = self.d.tool_json("enroll", "--begin", as_user=ALICE)
        self.assertEqual(rc, 0)
        match = URI_RE.match(begun["uri"])
        self.assertIsNotNone(match, begun["uri"])
        self.assertEqual(match["user"], ALICE)
        self.assertEqual(match["secret"], begun["secret"])
        self.assertEqual(match["host"], os.uname().nodename.split(".")[0])
        rc, status, _ = self.d.tool_json("status", as_user=ALICE)
        self.assertFalse(status["enrolled"])
        rc, confirmed, _ = self.d.tool_json("enroll", "--confirm", h.totp(begun["secret"]),
                                            as_user=ALICE)
        self.assertEqual(rc, 0)
        codes = confirmed["recovery_codes"]
        self.assertEqual(len(codes), 10)
        self.assertEqual(len(set(codes)), 10)
        for code in codes:
            self.assertRegex(code, r"^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{2}$")
        rc, status, _ = self.d.tool_json("status", as_user=ALICE)
        self.assertEqual(rc, 0)
        self.assertTrue(status["enrolled"])
        self.assertRegex(status["enrolled_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(status["recovery_codes_left"], 10)
        self.assertIsNone(status["locked_until"])

    def test_png_svg_and_terminal_qr_decode_to_the_uri(self):
        png = os.path.join(self.tmp, "alice.png")
        svg = os.path.join(self.tmp, "alice.svg")
        out = self.d.tool("enroll", "--begin", "--png", png, "--svg", svg, as_user=ALICE)
        self.assertEqual(out.returncode, 0, out.stderr)
        uri = re.search(r"otpauth://\S+", out.stdout).group(0)
        self.assertIsNotNone(URI_RE.match(uri), uri)
        self.assertEqual(zbar(png), uri)
        self.assertEqual(os.stat(png).st_mode & 0o077, 0)
        with open(svg) as f:
            self.assertIn("<svg", f.read())
        key = re.search(r"Key: ((?:[A-Z2-7]{4} ?)+)", out.stdout).group(1).split()
        self.assertEqual("".join(key), URI_RE.match(uri)["secret"])
        # Not a colour terminal: plain text that scans on dark and light themes.
        found = terminal_picture.decode_both_themes(out.stdout, self.tmp, "terminal")
        self.assertEqual(found, {"dark": [uri], "light": [uri]})

    def test_new_begin_replaces_an_unconfirmed_one(self):
        _, first, _ = self.d.tool_json("enroll", "--begin", as_user=ALICE)
        _, second, _ = self.d.tool_json("enroll", "--begin", as_user=ALICE)
        self.assertNotEqual(first["secret"], second["secret"])
        rc, _, _ = self.d.tool_json("enroll", "--confirm", h.totp(first["secret"]), as_user=ALICE)
        self.assertEqual(rc, 1)
        rc, _, _ = self.d.tool_json("enroll", "--confirm", h.totp(second["secret"]), as_user=ALICE)
        self.assertEqual(rc, 0)

    def test_confirm_with_nothing_pending_exits_1(self):
        out = self.d.tool("enroll", "--confirm", "123456", as_user=BOB)
        self.assertEqual(out.returncode, 1)
        self.assertEqual(len(out.stderr.strip().splitlines()), 1, out.stderr)

    def test_replace_keeps_old_phone_until_confirmed_and_keeps_recovery_codes(self):
        old_secret, codes = self.d.enroll(ALICE)
        h.wait_for_next_step()
        rc, begun, result = self.d.tool_json("enroll", "--replace", "--begin", as_user=ALICE,
                                             input_text=h.totp(old_secret) + "\n")
        self.assertEqual(rc, 0, result.stderr)
        new_secret = begun["secret"]
        h.wait_for_next_step()
        # The old phone still works while the new one is unconfirmed.
        self.assertEqual(self.d.call(h.verify_request(ALICE, h.totp(old_secret)))["status"], "ok")
        h.wait_for_next_step()
        rc, _, result = self.d.tool_json("enroll", "--confirm", h.totp(new_secret), as_user=ALICE)
        self.assertEqual(rc, 0, result.stderr)
        h.wait_for_next_step()
        self.assertEqual(self.d.call(h.verify_request(ALICE, h.totp(old_secret)))["status"],
                         "wrong_code")
        rc, status, _ = self.d.tool_json("status", as_user=ALICE)
        self.assertEqual(status["recovery_codes_left"], len(codes))

    def test_disable_needs_password_and_code(self):
        secret, _ = self.d.enroll(ALICE)
        code = h.totp(secret, at=time.time() + 30)  # enrolling used this step's
        out = self.d.tool("disable", as_user=ALICE, input_text=f"wrong password\n{code}\n")
        self.assertEqual(out.returncode, 1, out.stderr)
        out = self.d.tool("disable", as_user=ALICE, input_text=f"{PASSWORD}\n000000\n")
        self.assertEqual(out.returncode, 1, out.stderr)
        out = self.d.tool("disable", as_user=ALICE, input_text=f"{PASSWORD}\n{code}\n")
        self.assertEqual(out.returncode, 0, out.stderr)
        rc, status, _ = self.d.tool_json("status", as_user=ALICE)
        self.assertFalse(status["enrolled"])

    def test_regenerate_recovery_codes(self):
        secret, old_codes = self.d.enroll(ALICE)
        rc, fresh, result = self.d.tool_json("recovery-codes", "--regenerate", as_user=ALICE,
                                             input_text=h.totp(secret, at=time.time() + 30) + "\n")
        self.assertEqual(rc, 0, result.stderr)
        self.assertEqual(len(fresh["recovery_codes"]), 10)
        self.assertFalse(set(fresh["recovery_codes"]) & set(old_codes))
        self.assertEqual(self.d.call(h.verify_request(ALICE, old_codes[0]))["status"],
                         "wrong_code")

    def test_admin_commands_as_root(self):
        self.d.enroll(ALICE)
        rc, listed, _ = self.d.tool_json("admin", "list")
        self.assertEqual(rc, 0)
        entry = [u for u in listed["users"] if u["user"] == ALICE][0]
        self.assertTrue(entry["enrolled"])
        self.assertEqual(self.d.tool("admin", "reset", ALICE).returncode, 0)
        rc, status, _ = self.d.tool_json("--user", ALICE, "status")
        self.assertEqual(status["enrolled"], False)
        # Global flags after the command too.
        rc, status, _ = self.d.tool_json("status", "--user", ALICE)
        self.assertEqual(rc, 0)
        self.assertEqual(status["user"], ALICE)


class MessagesAndJsonErrors(unittest.TestCase):
    """What people and scripts are told when something is refused or has
    nothing to do, against the real daemon."""

    @classmethod
    def setUpClass(cls):
        cls.d = h.Daemon(pam_services={"kpanel-totp": PASSWORD_SERVICE}).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def setUp(self):
        self.d.tool("admin", "reset", ALICE)
        self.d.tool("admin", "reset", BOB)

    def assert_json_error(self, result, reason, exit_code=1):
        self.assertEqual(result.returncode, exit_code, result.stderr)
        lines = result.stdout.splitlines()
        self.assertEqual(len(lines), 1, result.stdout)
        error = json.loads(lines[0])
        self.assertEqual(set(error), {"error", "message"})
        self.assertEqual(error["error"], reason)
        self.assertEqual(result.stderr.splitlines()[0], "kpanel-totp: " + error["message"])
        return error

    def test_every_refusal_with_json_is_one_object_with_the_same_exit_code(self):
        self.assert_json_error(self.d.tool("--json", "enroll", "--confirm", "123456",
                                           as_user=BOB), "no_pending_enrollment")
        self.assert_json_error(self.d.tool("--json", "status", "--user", "root", as_user=BOB),
                               "forbidden")
        self.assert_json_error(self.d.tool("--json", "frobnicate"), "usage", 2)
        self.assert_json_error(self.d.tool("--json", "recovery-codes"), "usage", 2)
        unreachable = subprocess.run([h.TOOL, "--json", "--socket", "/nonexistent/k.sock",
                                      "status"], capture_output=True, text=True)
        self.assert_json_error(unreachable, "unreachable", 3)

    def test_begin_says_when_it_expires_and_status_the_clock_offset(self):
        rc, begun, _ = self.d.tool_json("enroll", "--begin", as_user=ALICE)
        self.assertEqual(rc, 0)
        self.assertRegex(begun["expires_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        rc, status, _ = self.d.tool_json("status", as_user=ALICE)
        self.assertIn("clock_offset_seconds", status)
        self.assertIsNone(status["clock_offset_seconds"])

    def test_a_code_of_the_wrong_shape_is_refused_and_not_counted(self):
        secret, _ = self.d.enroll(ALICE)
        for _ in range(8):  # more than max_failures
            result = self.d.tool("--json", "recovery-codes", "--regenerate", as_user=ALICE,
                                 input_text="12345\n")
            self.assert_json_error(result, "malformed_code")
        self.assertIsNone(self.d.tool_json("status", as_user=ALICE)[1]["locked_until"])
        reply = self.d.call(h.verify_request(ALICE, "000000" if h.totp(secret) != "000000"
                                             else "111111"))
        self.assertEqual(reply.get("failures_left"), 4, reply)

    def test_admin_unlock_of_a_user_who_is_not_locked_says_so(self):
        out = self.d.tool("admin", "unlock", ALICE)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(f"{ALICE} is not locked; nothing to unlock", out.stdout)

    def test_admin_reset_of_a_user_with_no_enrollment_says_so(self):
        out = self.d.tool("admin", "reset", ALICE)
        self.assertEqual(out.returncode, 1)
        self.assertIn(f"{ALICE} has no enrollment", out.stderr)
        self.assertNotIn("set one up", out.stderr)

    def test_begin_for_another_user_ends_with_the_confirm_command_for_that_user(self):
        out = self.d.tool("--user", BOB, "enroll", "--begin")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(f"Finish with: kpanel-totp --user {BOB} enroll --confirm CODE",
                      out.stdout)

    def test_disable_without_an_enrollment_refuses_before_asking_for_a_password(self):
        out = self.d.tool("disable", as_user=ALICE, input_text="")
        self.assertEqual(out.returncode, 1, out.stderr)  # not 2: no prompt ran out of input
        self.assertIn("no two-factor enrollment; nothing to disable", out.stderr)
        self.assertNotIn("Password", out.stderr + out.stdout)


class ExitCodes(unittest.TestCase):
    def test_usage_error_is_2(self):
        out = subprocess.run([h.TOOL, "frobnicate"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 2)

    def test_daemon_unreachable_is_3_with_what_to_do(self):
        out = subprocess.run([h.TOOL, "--socket", "/nonexistent/kpanel.sock", "status"],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 3)
        self.assertEqual(len(out.stderr.strip().splitlines()), 1, out.stderr)
        self.assertIn("kpanel-totpd", out.stderr)



class NoCoreDump(unittest.TestCase):
    def test_the_tool_is_not_dumpable_while_it_may_hold_a_secret(self):
        # As a user: a dumpable process owns its /proc files; a non-dumpable
        # one's belong to root (no core, no ptrace by the user's other processes).
        nobody = 65534
        with tempfile.TemporaryDirectory() as empty:
            tool = subprocess.Popen(
                ["setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups", h.TOOL,
                 "--socket", os.path.join(empty, "none.sock"), "recovery-codes",
                 "--regenerate"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                deadline = time.time() + 10
                while time.time() < deadline:  # until setpriv has become the tool
                    with open(f"/proc/{tool.pid}/status") as f:
                        status = f.read()
                    if f"\nUid:\t{nobody}\t" in status and "kpanel-totp" in status:
                        break
                    time.sleep(0.01)
                self.assertIn(f"\nUid:\t{nobody}\t", status)
                # It waits for the code on stdin, past main()'s first line (disable would
                # not: it asks the daemon, here absent, before its prompts).
                time.sleep(0.2)
                self.assertEqual(os.stat(f"/proc/{tool.pid}/status").st_uid, 0, "dumpable")
            finally:
                tool.stdin.close()
                tool.wait(10)

if __name__ == "__main__":
    unittest.main(verbosity=2)
