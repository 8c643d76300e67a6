"""Rollout policy: enforce_after, exempt_group, the module's nullok
and enroll — through pamtester against the real daemon, and inline
enrollment inside a real OpenSSH keyboard-interactive login."""

import datetime
import os
import re
import tempfile
import time
import unittest

import kpanel_harness as h
import terminal_picture
from test_pam import Pam, MODULE
from test_sshd import Sshd

NEWBIE, BREAKGLASS = "kpt_r_newbie", "kpt_r_glass"
EXEMPT_GROUP = "kpt_r_exempt"
PASSWORD = h.password_of(NEWBIE)

PAST = "2020-01-01"
FUTURE_DAYS = 10


def future_date(days=FUTURE_DAYS):
    return (datetime.datetime.now(datetime.timezone.utc).date() +
            datetime.timedelta(days=days)).isoformat()


def setUpModule():
    h.require_root(None)
    if not MODULE:
        raise unittest.SkipTest("KPANEL_PAM_MODULE not set (run through ctest)")
    h.ensure_users(NEWBIE, BREAKGLASS)


def tearDownModule():
    h.remove_users(NEWBIE, BREAKGLASS)


class Policy(unittest.TestCase):
    def run_case(self, daemon_config, options, user, *answers):
        with h.Daemon(**daemon_config) as d:
            d.start()
            pam = Pam()
            try:
                svc = pam.service("kp-rollout", f"socket={d.socket} {options}", then_permit=True)
                return pam.authenticate(svc, user, *answers)
            finally:
                pam.cleanup()

    def test_before_enforce_after_passes_with_a_notice_and_days_left(self):
        ok, out = self.run_case({"enforce_after": future_date()}, "", NEWBIE)
        self.assertTrue(ok, out)
        self.assertIn("kpanel-totp enroll", out)
        self.assertRegex(out, rf"\b{FUTURE_DAYS} days\b")
        self.assertNotIn("Verification code", out)

    def test_after_enforce_after_refused_even_with_nullok(self):
        ok, out = self.run_case({"enforce_after": PAST}, "nullok", NEWBIE)
        self.assertFalse(ok, out)

    def test_nullok_without_enforce_after_passes(self):
        ok, out = self.run_case({}, "nullok", NEWBIE)
        self.assertTrue(ok, out)

    def test_no_nullok_no_date_refused(self):
        ok, out = self.run_case({}, "", NEWBIE)
        self.assertFalse(ok, out)

    def test_exempt_group_passes_without_a_code_and_is_logged(self):
        with h.Daemon(enforce_after=PAST, exempt_group=EXEMPT_GROUP) as d:
            d.start()
            pam = Pam()
            try:
                svc = pam.service("kp-exempt", f"socket={d.socket}")
                ok, out = pam.authenticate(svc, BREAKGLASS)
                self.assertTrue(ok, out)
                self.assertNotIn("Verification code", out)
                # An enrolled member passes without a code too.
                d.enroll(BREAKGLASS)
                ok, out = pam.authenticate(svc, BREAKGLASS)
                self.assertTrue(ok, out)
                self.assertNotIn("Verification code", out)
            finally:
                pam.cleanup()
            self.assertIn("exempt", d.log())
            self.assertIn(BREAKGLASS, d.log())


class InlineEnrollmentOverSsh(unittest.TestCase):
    """A never-enrolled user is enrolled inside the SSH login: reads the key
    from the text shown, answers with an oathtool code, gets recovery codes,
    then logs in again with a normal code."""

    @classmethod
    def setUpClass(cls):
        cls.d = h.Daemon(enforce_after=PAST).start()
        cls.sshd = Sshd(f"socket={cls.d.socket} enroll", user=NEWBIE, daemon=cls.d)

    @classmethod
    def tearDownClass(cls):
        cls.sshd.stop()
        cls.d.cleanup()

    def test_enroll_at_first_login_then_normal_login(self):
        import pexpect
        self.d.tool("admin", "reset", NEWBIE)
        child = self.sshd.spawn_ssh()
        try:
            child.expect("[Pp]assword:")
            child.sendline(PASSWORD)
            child.expect("Verification code: ")
            shown = child.before
            self.assertIn("otpauth://totp/", shown)
            key = re.search(r"Key: ((?:[A-Z2-7]{4} ?)+)", shown).group(1).replace(" ", "")
            self.assertEqual(len(key), 32)
            self.assertIn("▀", shown)  # the QR code, as text
            # ssh shows no colours, so the text must scan on a dark and on a
            # light terminal theme alike: the transcript drawn both ways, read
            # by zbarimg, gives the URI each time.
            uri = re.search(r"otpauth://\S+", shown).group(0)
            with tempfile.TemporaryDirectory() as pictures:
                found = terminal_picture.decode_both_themes(shown, pictures, "ssh-login")
            self.assertEqual(found, {"dark": [uri], "light": [uri]})
            child.sendline(h.totp(key))
            child.expect("Press Enter once you have saved these codes")
            codes = re.findall(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{2}\b", child.before)
            self.assertEqual(len(codes), 10, child.before)
            child.sendline("")
            child.expect("LOGIN-OK-42")
            child.expect(pexpect.EOF)
        finally:
            child.close()
        rc, status, _ = self.d.tool_json("status", as_user=NEWBIE)
        self.assertTrue(status["enrolled"])
        self.assertEqual(status["recovery_codes_left"], 10)
        # The next step's code: confirming the enrollment used this one.
        ok, transcript = self.sshd.login(PASSWORD, h.totp(key, at=time.time() + 30))
        self.assertTrue(ok, transcript)

    def test_wrong_code_at_inline_enrollment_leaves_nothing_enrolled(self):
        import pexpect
        self.d.tool("admin", "reset", NEWBIE)
        child = self.sshd.spawn_ssh()
        try:
            child.expect("[Pp]assword:")
            child.sendline(PASSWORD)
            for _ in range(3):
                index = child.expect(["Verification code: ", "Permission denied", pexpect.EOF])
                if index != 0:
                    break
                child.sendline("000000")
            child.expect(pexpect.EOF)
            self.assertNotIn("LOGIN-OK-42", child.before or "")
        finally:
            child.close()
        rc, status, _ = self.d.tool_json("status", as_user=NEWBIE)
        self.assertFalse(status["enrolled"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
