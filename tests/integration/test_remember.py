"""Remembered logins through real Linux-PAM (pamtester under pam_wrapper, the
real module and daemon): after a login with a code from one source, the same
user from the same source skips the code until the window ends; a window
ends at its length, a lockout, reset, disable, enroll --replace, forget and
admin forget; nothing is skipped unless both the daemon's remember_seconds
and the module's `remember` are set; and a throwaway sshd shows that a local
service on the terminal of an SSH login that used a code (utmp names the
remote host) skips it too."""

import calendar
import os
import re
import subprocess
import time
import unittest
import uuid

import kpanel_harness as h
from test_sshd import Sshd

try:
    import pexpect
except ImportError:
    pexpect = None

ALICE, BOB, SSH_USER = "kpt_rm_alice", "kpt_rm_bob", "kpt_rm_ssh"
PASSWORD = h.password_of(SSH_USER)
MODULE = os.environ.get("KPANEL_PAM_MODULE", "")
PASSWORD_SERVICE = "auth required pam_unix.so nodelay\naccount required pam_unix.so\n"
HOST_A, HOST_B = "192.0.2.10", "192.0.2.11"
UTMP = "/var/run/utmp"


def setUpModule():
    h.require_root(None)
    if not MODULE:
        raise unittest.SkipTest("KPANEL_PAM_MODULE not set (run through ctest)")
    h.ensure_users(ALICE, BOB, SSH_USER)


def tearDownModule():
    h.remove_users(ALICE, BOB, SSH_USER)


class Pam:
    """PAM service files in the daemon's temp dir, read through pam_wrapper."""

    def __init__(self, daemon):
        self.dir = os.path.join(daemon.dir, "module-pam.d")
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "other"), "w") as f:
            f.write("auth required pam_deny.so\n")
        self.socket = daemon.socket

    def service(self, name, options=""):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(f"auth required {MODULE} socket={self.socket} {options}\n"
                    "account required pam_permit.so\n")
        return name

    def login(self, service, user, *answers, rhost=None, tty=None, ruser=None):
        """(succeeded, asked for a code, transcript)."""
        command = ["pamtester", "-v"]
        for item, value in (("rhost", rhost), ("tty", tty), ("ruser", ruser)):
            if value is not None:
                command += ["-I", f"{item}={value}"]
        command += [service, user, "authenticate"]
        env = dict(os.environ)
        env.update(h.pam_wrapper_env(self.dir))
        result = subprocess.run(command, input="".join(a + "\n" for a in answers),
                                capture_output=True, text=True, env=env, timeout=30)
        out = result.stdout + result.stderr
        return result.returncode == 0, "Verification code" in out, out


class Remembering(unittest.TestCase):
    """A daemon with remember_seconds = 60 (lockout after 3 failures, for 3 s)
    and two stacks: `remember` and one without the option."""

    REMEMBER_SECONDS = 60

    @classmethod
    def setUpClass(cls):
        cls.d = h.Daemon(pam_services={"kpanel-totp": PASSWORD_SERVICE},
                         remember_seconds=cls.REMEMBER_SECONDS, max_failures=3,
                         lockout_seconds=3).start()
        cls.pam = Pam(cls.d)
        cls.remember = cls.pam.service("kp-remember", "remember")
        cls.plain = cls.pam.service("kp-plain")

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def setUp(self):
        for user in (ALICE, BOB, SSH_USER):
            self.d.tool("admin", "reset", user)
        self.secret, self.codes = self.d.enroll(ALICE)

    # ---- helpers ----
    def open_window(self, user=ALICE, codes=None, **source):
        """A login with a recovery code (no waiting for a fresh TOTP step)."""
        codes = codes if codes is not None else self.codes
        ok, asked, out = self.pam.login(self.remember, user, codes.pop(), **source)
        self.assertTrue(ok and asked, out)

    def assert_skips(self, user=ALICE, service=None, **source):
        ok, asked, out = self.pam.login(service or self.remember, user, **source)
        self.assertTrue(ok, "not let through without a code: " + out)
        self.assertFalse(asked, out)

    def assert_asks(self, user=ALICE, service=None, **source):
        # No answer is given: a prompt means the login fails.
        ok, asked, out = self.pam.login(service or self.remember, user, **source)
        self.assertTrue(asked, "no code asked: " + out)
        self.assertFalse(ok, out)

    def skip_lines(self):
        return [line for line in self.d.log().splitlines() if "event=remembered_login" in line]

    # ---- tests ----
    def test_a_recovery_code_opens_a_window_and_each_skip_is_logged(self):
        before = len(self.skip_lines())
        self.open_window(rhost=HOST_A)
        self.assert_skips(rhost=HOST_A)
        self.assert_skips(rhost=HOST_A)
        lines = self.skip_lines()[before:]
        self.assertEqual(len(lines), 2, self.d.log())
        self.assertIn(f"user={ALICE}", lines[0])
        self.assertIn(f"source={HOST_A}", lines[0])
        self.assertIn(f"rhost={HOST_A}", lines[0])
        self.assertIn("remembered_until=", lines[0])
        # admin stats counts the skips (this class's daemon: at least these two).
        rc, stats, result = self.d.tool_json("admin", "stats")
        self.assertEqual(rc, 0, result.stderr)
        self.assertGreaterEqual(stats["logins_without_code"]["remembered"], 2, stats)

    def test_a_totp_code_opens_a_window(self):
        code = h.totp(self.secret, at=time.time() + 30)  # enrolling used this step's
        ok, asked, out = self.pam.login(self.remember, ALICE, code, rhost=HOST_A)
        self.assertTrue(ok and asked, out)
        self.assert_skips(rhost=HOST_A)

    def test_another_source_or_user_asks(self):
        self.open_window(rhost=HOST_A)
        self.assert_asks(rhost=HOST_B)
        self.d.enroll(BOB)
        self.assert_asks(user=BOB, rhost=HOST_A)
        # A local terminal without a remote host in utmp: the terminal and the
        # invoking user are the source.
        self.open_window(tty="/dev/pts/kpt-77", ruser=ALICE)
        self.assert_skips(tty="/dev/pts/kpt-77", ruser=ALICE)
        self.assert_asks(tty="/dev/pts/kpt-77", ruser="root")
        self.assert_asks(tty="/dev/pts/kpt-78", ruser=ALICE)
        self.assert_asks()  # no rhost, no tty: no source at all

    def test_status_shows_open_windows(self):
        self.open_window(rhost=HOST_A)
        start = time.time()
        rc, status, result = self.d.tool_json("status", as_user=ALICE)
        self.assertEqual(rc, 0, result.stderr)
        self.assertEqual([w["source"] for w in status["remembered"]], [HOST_A])
        until = status["remembered"][0]["until"]
        self.assertRegex(until, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        end = calendar.timegm(time.strptime(until, "%Y-%m-%dT%H:%M:%SZ"))
        self.assertAlmostEqual(end, start + self.REMEMBER_SECONDS, delta=5)
        out = self.d.tool("status", as_user=ALICE).stdout
        self.assertIn(f"no code asked from {HOST_A} until {until}", out)

    def test_forget_ends_the_users_windows(self):
        self.open_window(rhost=HOST_A)
        self.open_window(rhost=HOST_B)
        out = self.d.tool("forget", as_user=ALICE)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assert_asks(rhost=HOST_A)
        self.assert_asks(rhost=HOST_B)
        rc, status, _ = self.d.tool_json("status", as_user=ALICE)
        self.assertEqual(status["remembered"], [])
        self.assertIn(f"event=forget user={ALICE}", self.d.log())

    def test_admin_forget_ends_the_users_windows(self):
        self.open_window(rhost=HOST_A)
        _, bob_codes = self.d.enroll(BOB)
        self.open_window(user=BOB, codes=bob_codes, rhost=HOST_A)
        out = self.d.tool("admin", "forget", ALICE)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assert_asks(rhost=HOST_A)
        self.assert_skips(user=BOB, rhost=HOST_A)  # only ALICE's ended
        # An unprivileged user may not end another user's windows.
        out = self.d.tool("--user", BOB, "forget", as_user=ALICE)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assert_skips(user=BOB, rhost=HOST_A)

    def test_a_lockout_ends_the_windows(self):
        self.open_window(rhost=HOST_A)
        for _ in range(3):
            ok, _, _ = self.pam.login(self.remember, ALICE, "000000", rhost=HOST_B)
            self.assertFalse(ok)
        ok, asked, out = self.pam.login(self.remember, ALICE, rhost=HOST_A)
        self.assertFalse(ok or asked, "a locked user was let through: " + out)
        time.sleep(3.5)  # the lockout is over; the window is not back
        self.assert_asks(rhost=HOST_A)

    def test_reset_ends_the_windows(self):
        self.open_window(rhost=HOST_A)
        self.assertEqual(self.d.tool("admin", "reset", ALICE).returncode, 0)
        self.secret, self.codes = self.d.enroll(ALICE)
        self.assert_asks(rhost=HOST_A)

    def test_disable_ends_the_windows(self):
        secret, codes = self.d.enroll(SSH_USER)
        self.open_window(user=SSH_USER, codes=codes, rhost=HOST_A)
        self.assert_skips(user=SSH_USER, rhost=HOST_A)
        code = h.totp(secret, at=time.time() + 30)  # enrolling used this step's
        out = self.d.tool("disable", as_user=SSH_USER, input_text=f"{PASSWORD}\n{code}\n")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.d.enroll(SSH_USER)
        self.assert_asks(user=SSH_USER, rhost=HOST_A)

    def test_enroll_replace_ends_the_windows(self):
        self.open_window(rhost=HOST_A)
        rc, begun, result = self.d.tool_json("enroll", "--replace", "--begin", as_user=ALICE,
                                             input_text=self.codes.pop() + "\n")
        self.assertEqual(rc, 0, result.stderr)
        # Starting to change phones already ends them (the old one may be lost).
        self.assert_asks(rhost=HOST_A)
        self.open_window(rhost=HOST_A)  # the old phone still works meanwhile
        rc, _, result = self.d.tool_json("enroll", "--confirm", h.totp(begun["secret"]),
                                         as_user=ALICE)
        self.assertEqual(rc, 0, result.stderr)
        self.assert_asks(rhost=HOST_A)

    def test_a_stack_without_remember_neither_opens_nor_uses_a_window(self):
        ok, asked, out = self.pam.login(self.plain, ALICE, self.codes.pop(), rhost=HOST_A)
        self.assertTrue(ok and asked, out)
        self.assert_asks(rhost=HOST_A)  # the code above opened nothing
        self.open_window(rhost=HOST_A)
        self.assert_asks(service=self.plain, rhost=HOST_A)
        self.assert_skips(rhost=HOST_A)

    def test_only_root_may_open_or_use_a_window(self):
        # The user's own process vouches for a source: ignored.
        reply = self.d.call({"op": "verify", "user": ALICE, "code": self.codes.pop(),
                             "service": "x", "remember": True, "source": HOST_A},
                            as_user=ALICE, version=3)
        self.assertEqual(reply["status"], "ok", reply)
        self.assert_asks(rhost=HOST_A)
        self.open_window(rhost=HOST_A)
        reply = self.d.call({"op": "login_check", "user": ALICE, "remember": True,
                             "source": HOST_A}, as_user=ALICE, version=3)
        self.assertEqual(reply.get("decision"), "prompt", reply)
        reply = self.d.call({"op": "login_check", "user": ALICE, "remember": True,
                             "source": HOST_A}, version=3)
        self.assertEqual(reply.get("decision"), "remembered", reply)
        # An older client never hears of it (and cannot ask for it).
        reply = self.d.call({"op": "login_check", "user": ALICE}, version=2)
        self.assertEqual(reply.get("decision"), "prompt", reply)


class ShortWindow(unittest.TestCase):
    """remember_seconds = 4: a window ends 4 s after the login with a code,
    however often it was used meanwhile."""

    @classmethod
    def setUpClass(cls):
        cls.d = h.Daemon(remember_seconds=4).start()
        cls.pam = Pam(cls.d)
        cls.remember = cls.pam.service("kp-remember", "remember")

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def test_the_window_ends_at_its_length_and_a_skip_does_not_extend_it(self):
        self.d.tool("admin", "reset", ALICE)
        _, codes = self.d.enroll(ALICE)
        ok, _, out = self.pam.login(self.remember, ALICE, codes[0], rhost=HOST_A)
        self.assertTrue(ok, out)
        opened = time.time()
        for _ in range(2):
            ok, asked, out = self.pam.login(self.remember, ALICE, rhost=HOST_A)
            self.assertTrue(ok and not asked, out)
            time.sleep(1.5)
        time.sleep(max(0.0, opened + 4.3 - time.time()))
        ok, asked, out = self.pam.login(self.remember, ALICE, rhost=HOST_A)
        self.assertTrue(asked and not ok, "skipped after the window: " + out)
        # The next login with a code opens a new one.
        ok, _, out = self.pam.login(self.remember, ALICE, codes[1], rhost=HOST_A)
        self.assertTrue(ok, out)
        ok, asked, out = self.pam.login(self.remember, ALICE, rhost=HOST_A)
        self.assertTrue(ok and not asked, out)


class NeedsBothSettings(unittest.TestCase):
    def test_the_daemon_key_alone_or_the_module_option_alone_never_skips(self):
        for daemon_seconds, options in ((0, "remember"), (60, "")):
            with self.subTest(remember_seconds=daemon_seconds, options=options):
                d = h.Daemon(remember_seconds=daemon_seconds).start()
                self.addCleanup(d.cleanup)
                pam = Pam(d)
                service = pam.service("kp", options)
                d.tool("admin", "reset", ALICE)
                _, codes = d.enroll(ALICE)
                ok, _, out = pam.login(service, ALICE, codes[0], rhost=HOST_A)
                self.assertTrue(ok, out)
                ok, asked, out = pam.login(service, ALICE, rhost=HOST_A)
                self.assertTrue(asked and not ok, "skipped: " + out)
                self.assertNotIn("event=remembered_login", d.log())

    def test_check_config_refuses_more_than_a_day(self):
        d = h.Daemon(remember_seconds=86401)
        self.addCleanup(d.cleanup)
        result = subprocess.run([h.TOTPD, "--config", d.config_path, "--check-config"],
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("remember_seconds", result.stdout + result.stderr)
        d.config["remember_seconds"] = "86400"
        d.write_config()
        result = subprocess.run([h.TOTPD, "--config", d.config_path, "--check-config"],
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


class CrashFence(unittest.TestCase):
    """After an unclean host stop (another boot id), a window opened before it
    is not honoured: the lockout or forget that ended it may be what the
    crash lost. A crash of the daemon alone keeps it."""

    def call_check(self, d):
        return d.call({"op": "login_check", "user": ALICE, "service": "sshd", "rhost": HOST_A,
                       "remember": True, "source": HOST_A}, version=3)

    def test_windows_opened_before_a_host_crash_are_not_honoured(self):
        d = h.Daemon(remember_seconds=600)
        self.addCleanup(d.cleanup)
        d.start()
        d.tool("admin", "reset", ALICE)
        _, codes = d.enroll(ALICE)
        reply = d.call({"op": "verify", "user": ALICE, "code": codes[0], "service": "sshd",
                        "rhost": HOST_A, "remember": True, "source": HOST_A}, version=3)
        self.assertEqual(reply["status"], "ok", reply)
        self.assertEqual(self.call_check(d)["decision"], "remembered")
        d.kill()
        d.start()  # the same boot: only the daemon died
        self.assertEqual(self.call_check(d)["decision"], "remembered")
        d.kill()
        d.boot_id = str(uuid.uuid4())
        d.start()
        self.assertIn("event=fence", d.log())
        self.assertEqual(self.call_check(d)["decision"], "prompt")
        # A window opened after the fence's time (at most ~10 s after the
        # start) is honoured.
        until = re.search(r"fence_until=(\S+)", d.log()).group(1)
        end = calendar.timegm(time.strptime(until, "%Y-%m-%dT%H:%M:%SZ"))
        time.sleep(max(0.0, end + 1.1 - time.time()))
        reply = d.call({"op": "verify", "user": ALICE, "code": codes[1], "service": "sshd",
                        "rhost": HOST_A, "remember": True, "source": HOST_A}, version=3)
        self.assertEqual(reply["status"], "ok", reply)
        self.assertEqual(self.call_check(d)["decision"], "remembered", d.log())


@unittest.skipIf(pexpect is None, "python3-pexpect is missing")
class SshThenLocalService(unittest.TestCase):
    """An SSH login with a code, on a pty: sshd writes its utmp entry with the
    remote host (127.0.0.1). A local service (pamtester as sudo would call
    it: no rhost, tty = that pty) then skips the code."""

    @classmethod
    def setUpClass(cls):
        cls.made_utmp = not os.path.exists(UTMP)
        if cls.made_utmp:  # sshd updates utmp, never creates it
            with open(UTMP, "ab"):
                pass
            os.chmod(UTMP, 0o664)
        cls.d = h.Daemon(remember_seconds=120).start()
        cls.sshd = Sshd(f"socket={cls.d.socket} remember", user=SSH_USER, daemon=cls.d)
        cls.pam = Pam(cls.d)
        cls.sudo = cls.pam.service("kp-sudo", "remember")

    @classmethod
    def tearDownClass(cls):
        cls.sshd.stop()
        cls.d.cleanup()
        if cls.made_utmp:
            os.unlink(UTMP)

    def test_sudo_on_the_ssh_sessions_terminal_skips_the_code(self):
        self.d.tool("admin", "reset", SSH_USER)
        secret, _ = self.d.enroll(SSH_USER)
        code = h.totp(secret, at=time.time() + 30)  # enrolling used this step's
        child = pexpect.spawn(
            "ssh", ["-tt", "-p", str(self.sshd.port), "-o", "StrictHostKeyChecking=no",
                    "-o", "UserKnownHostsFile=/dev/null", "-o", "PubkeyAuthentication=no",
                    "-o", "PreferredAuthentications=keyboard-interactive",
                    "-o", "NumberOfPasswordPrompts=1", "-o", "LogLevel=ERROR",
                    f"{SSH_USER}@127.0.0.1", "echo TTY=$(tty); sleep 60"],
            encoding="utf-8", timeout=20)
        try:
            child.expect("[Pp]assword:")
            child.sendline(PASSWORD)
            child.expect("Verification code: ")
            child.sendline(code)
            child.expect(r"TTY=(/dev/pts/\d+)")
            tty = child.match.group(1)
            # Another pty (no utmp entry naming a host) is another source.
            ok, asked, out = self.pam.login(self.sudo, SSH_USER, tty="/dev/pts/kpt-none",
                                            ruser=SSH_USER)
            self.assertTrue(asked and not ok, out)
            ok, asked, out = self.pam.login(self.sudo, SSH_USER, tty=tty, ruser=SSH_USER)
            self.assertTrue(ok and not asked, f"asked on {tty}: {out}\n{self.d.log()}")
            lines = [line for line in self.d.log().splitlines()
                     if "event=remembered_login" in line]
            self.assertEqual(len(lines), 1, self.d.log())
            self.assertIn("source=127.0.0.1", lines[0])
            self.assertIn(f"tty={tty}", lines[0])
        finally:
            child.close(force=True)


if __name__ == "__main__":
    unittest.main()
