"""The real module through real Linux-PAM (pamtester under pam_wrapper, a
throwaway service directory) against the real daemon. Codes from oathtool."""

import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import kpanel_harness as h

ALICE, BOB = "kpt_p_alice", "kpt_p_bob"
MODULE = os.environ.get("KPANEL_PAM_MODULE", "")


def setUpModule():
    h.require_root(None)
    if not MODULE:
        raise unittest.SkipTest("KPANEL_PAM_MODULE not set (run through ctest)")
    h.ensure_users(ALICE, BOB)


def tearDownModule():
    h.remove_users(ALICE, BOB)


class Pam:
    """Service files in a temp dir, read by pam_start() through pam_wrapper."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kpanel-pam-")
        with open(os.path.join(self.dir, "other"), "w") as f:
            f.write("auth required pam_deny.so\naccount required pam_deny.so\n")

    def service(self, name, options, then_permit=False):
        with open(os.path.join(self.dir, name), "w") as f:
            if then_permit:
                # PAM_IGNORE from our module leaves the decision to the next line.
                f.write(f"auth [success=done ignore=ignore default=die] {MODULE} {options}\n")
                f.write("auth required pam_permit.so\n")
            else:
                f.write(f"auth required {MODULE} {options}\n")
            f.write("account required pam_permit.so\n")
        return name

    def authenticate(self, service, user, *answers, timeout=30):
        env = dict(os.environ)
        env.update(h.pam_wrapper_env(self.dir))
        result = subprocess.run(
            ["pamtester", "-v", "-I", "rhost=192.0.2.7", "-I", "tty=ssh", service, user,
             "authenticate"],
            input="".join(a + "\n" for a in answers), capture_output=True, text=True,
            env=env, timeout=timeout)
        return result.returncode == 0, result.stdout + result.stderr

    def cleanup(self):
        subprocess.run(["rm", "-rf", self.dir])


class DaemonAndTwoStacks(unittest.TestCase):
    """A daemon (3 failures lock for 2 minutes) and two PAM stacks on it: the
    module alone (svc), and the module with nullok followed by pam_permit
    (nullok). Tests of their own are in the subclasses."""

    @classmethod
    def setUpClass(cls):
        cls.d = h.Daemon(max_failures=3, lockout_seconds=120).start()
        cls.pam = Pam()
        cls.svc = cls.pam.service("kp-plain", f"socket={cls.d.socket}")
        cls.nullok = cls.pam.service("kp-nullok", f"socket={cls.d.socket} nullok",
                                     then_permit=True)

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        cls.pam.cleanup()


class ModuleAgainstDaemon(DaemonAndTwoStacks):
    def setUp(self):
        self.d.tool("admin", "reset", ALICE)
        self.d.tool("admin", "reset", BOB)

    def test_right_code_then_replay_then_wrong(self):
        secret, _ = self.d.enroll(ALICE)
        code = h.totp(secret, at=time.time() + 30)  # enrolling used this step's
        ok, out = self.pam.authenticate(self.svc, ALICE, code)
        self.assertTrue(ok, out)
        self.assertIn("Verification code", out)
        ok, out = self.pam.authenticate(self.svc, ALICE, code)
        self.assertFalse(ok, "replayed code accepted: " + out)
        ok, out = self.pam.authenticate(self.svc, ALICE, "000000" if code != "000000" else "111111")
        self.assertFalse(ok, out)

    def test_recovery_code_lowercase_without_dashes_once(self):
        _, codes = self.d.enroll(ALICE)
        typed = codes[0].replace("-", "").lower()
        ok, out = self.pam.authenticate(self.svc, ALICE, typed)
        self.assertTrue(ok, out)
        self.assertIn("Recovery code accepted; 9 left.", out)
        ok, out = self.pam.authenticate(self.svc, ALICE, typed)
        self.assertFalse(ok, out)

    def test_lockout_message(self):
        self.d.enroll(ALICE)
        for _ in range(3):
            ok, _ = self.pam.authenticate(self.svc, ALICE, "000000")
            self.assertFalse(ok)
        ok, out = self.pam.authenticate(self.svc, ALICE, "000000")
        self.assertFalse(ok)
        self.assertIn("Too many failed attempts; try again in 2 minutes.", out)

    def test_nullok_lets_a_never_enrolled_user_through_without_a_prompt(self):
        ok, out = self.pam.authenticate(self.nullok, BOB)
        self.assertTrue(ok, out)
        self.assertNotIn("Verification code", out)
        # Without nullok the same user is refused.
        ok, out = self.pam.authenticate(self.svc, BOB)
        self.assertFalse(ok, out)

    def test_nullok_does_not_help_an_enrolled_user_with_a_wrong_code(self):
        self.d.enroll(ALICE)
        ok, out = self.pam.authenticate(self.nullok, ALICE, "000000")
        self.assertFalse(ok, out)


class DaemonUnavailable(unittest.TestCase):
    def setUp(self):
        self.pam = Pam()
        self.dir = tempfile.mkdtemp(prefix="kpanel-down-")
        self.socket = os.path.join(self.dir, "none.sock")

    def tearDown(self):
        self.pam.cleanup()
        subprocess.run(["rm", "-rf", self.dir])

    def test_daemon_down_deny_and_ignore(self):
        deny = self.pam.service("kp-deny", f"socket={self.socket} unavailable=deny",
                                then_permit=True)
        ignore = self.pam.service("kp-ignore", f"socket={self.socket} unavailable=ignore",
                                  then_permit=True)
        ok, out = self.pam.authenticate(deny, ALICE, "123456")
        self.assertFalse(ok, out)
        ok, out = self.pam.authenticate(ignore, ALICE, "123456")
        self.assertTrue(ok, out)

    def test_daemon_that_never_answers_is_refused_even_with_ignore(self):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.socket)
        listener.listen(8)
        accepted = []
        stop = threading.Event()

        def accept_and_hold():
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    accepted.append(listener.accept()[0])
                except OSError:
                    pass

        thread = threading.Thread(target=accept_and_hold)
        thread.start()
        try:
            deny = self.pam.service("kp-hang-deny", f"socket={self.socket} timeout=1",
                                    then_permit=True)
            ignore = self.pam.service("kp-hang-ignore",
                                      f"socket={self.socket} timeout=1 unavailable=ignore",
                                      then_permit=True)
            started = time.monotonic()
            ok, out = self.pam.authenticate(deny, ALICE, "123456")
            self.assertFalse(ok, out)
            self.assertLess(time.monotonic() - started, 5)
            # A daemon that is there but stalled is not "no daemon": any local
            # user can stall it, so unavailable=ignore must not let this through.
            started = time.monotonic()
            ok, out = self.pam.authenticate(ignore, ALICE, "123456")
            self.assertFalse(ok, "stalled daemon turned into PAM_IGNORE: " + out)
            self.assertIn("unavailable", out)
            self.assertLess(time.monotonic() - started, 5)
        finally:
            stop.set()
            thread.join()
            for conn in accepted:
                conn.close()
            listener.close()


class RealDaemonStalledOrStopped(unittest.TestCase):
    """unavailable=ignore through real PAM against the real daemon: it applies
    when no daemon is listening, never when one is there but does not answer."""

    def setUp(self):
        self.d = h.Daemon().start()
        self.pam = Pam()
        self.d.enroll(ALICE)
        opts = f"socket={self.d.socket} timeout=1"
        self.ignore = self.pam.service("kp-ignore", f"{opts} unavailable=ignore",
                                       then_permit=True)
        self.deny = self.pam.service("kp-deny", opts, then_permit=True)

    def tearDown(self):
        if self.d.process is not None and self.d.process.poll() is None:
            os.kill(self.d.process.pid, signal.SIGCONT)
        self.d.cleanup()
        self.pam.cleanup()

    def test_sigstopped_daemon_is_refused_under_ignore(self):
        # Running: an enrolled user still needs the right code on this stack.
        ok, out = self.pam.authenticate(self.ignore, ALICE, "000000")
        self.assertFalse(ok, out)
        os.kill(self.d.process.pid, signal.SIGSTOP)
        try:
            for service in (self.ignore, self.deny):
                started = time.monotonic()
                ok, out = self.pam.authenticate(service, ALICE, "000000")
                self.assertFalse(ok, f"{service}: stopped daemon let the login through: {out}")
                self.assertIn("unavailable", out)
                self.assertNotIn("Verification code", out)
                self.assertLess(time.monotonic() - started, 10)
        finally:
            os.kill(self.d.process.pid, signal.SIGCONT)

    def test_daemon_stopped_ignore_applies(self):
        self.assertEqual(self.d.stop(), 0)
        self.assertFalse(os.path.exists(self.d.socket))  # it removed its socket
        ok, out = self.pam.authenticate(self.ignore, ALICE)
        self.assertTrue(ok, "no daemon listening, unavailable=ignore: " + out)
        self.assertNotIn("Verification code", out)
        ok, out = self.pam.authenticate(self.deny, ALICE)
        self.assertFalse(ok, out)

    def test_daemon_killed_stale_socket_ignore_applies(self):
        self.d.kill()
        self.assertTrue(os.path.exists(self.d.socket))  # left behind: connect() is refused
        ok, out = self.pam.authenticate(self.ignore, ALICE)
        self.assertTrue(ok, "stale socket, unavailable=ignore: " + out)
        ok, out = self.pam.authenticate(self.deny, ALICE)
        self.assertFalse(ok, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
