"""A real SSH login end to end: stock /usr/sbin/sshd on 127.0.0.1 and a free
port (its own config, host key and PAM stack pam_unix + our module, read
through pam_wrapper), the real daemon, and an ssh client driven by pexpect
answering the password and an oathtool code."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import kpanel_harness as h

try:
    import pexpect
except ImportError:  # reported as a failure below, not skipped: CI installs it
    pexpect = None

USER = "kpt_s_alice"
PASSWORD = h.password_of(USER)
MODULE = os.environ.get("KPANEL_PAM_MODULE", "")


def setUpModule():
    h.require_root(None)
    if pexpect is None:
        raise AssertionError("python3-pexpect is missing: apt-get install python3-pexpect")
    if not MODULE:
        raise unittest.SkipTest("KPANEL_PAM_MODULE not set (run through ctest)")
    h.ensure_users(USER)


def tearDownModule():
    h.remove_users(USER)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    """A throwaway sshd whose PAM stack is read through pam_wrapper. It runs
    with a /tmp of its own (h.with_private_tmp): pam_wrapper keeps each
    process's service files in /tmp/pam.<one character>, sshd's connection
    processes leave theirs behind, and another process's clean-up of such a
    stale directory can remove the one sshd has just made in its place;
    sshd then ends the connection before any prompt."""

    def __init__(self, module_options, user=USER, daemon=None):
        """`daemon`: the h.Daemon whose socket the module options name; its
        directory stays reachable from sshd's own /tmp."""
        self.user = user
        self.reach = [daemon.dir] if daemon is not None else []
        self.dir = tempfile.mkdtemp(prefix="kpanel-sshd-")
        self.pam_dir = os.path.join(self.dir, "pam.d")
        os.makedirs(self.pam_dir)
        with open(os.path.join(self.pam_dir, "sshd"), "w") as f:
            f.write("auth required pam_unix.so nodelay\n"
                    f"auth required {MODULE} {module_options}\n"
                    "account required pam_unix.so\n"
                    "session required pam_permit.so\n"
                    "password required pam_deny.so\n")
        with open(os.path.join(self.pam_dir, "other"), "w") as f:
            f.write("auth required pam_deny.so\n")
        key = os.path.join(self.dir, "host_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        self.config = os.path.join(self.dir, "sshd_config")
        os.makedirs("/run/sshd", exist_ok=True)
        # A port that was free a moment ago can be taken by then (other tests,
        # the PostgreSQL fixture): only sshd's own "Server listening" line
        # proves the port is ours, so wait for it and retry on a bind failure.
        for _ in range(5):
            self.port = free_port()
            if self._start(key):
                return
        raise AssertionError("sshd did not start: " + self.read_log())

    def _start(self, key):
        with open(self.config, "w") as f:
            f.write(f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {key}\n"
                    f"PidFile {self.dir}/sshd.pid\nUsePAM yes\n"
                    "KbdInteractiveAuthentication yes\nPasswordAuthentication no\n"
                    "PubkeyAuthentication no\nAuthenticationMethods keyboard-interactive\n"
                    "PermitRootLogin no\nStrictModes no\nLogLevel VERBOSE\n")
        env = dict(os.environ)
        command = h.with_private_tmp(["/usr/sbin/sshd", "-D", "-e", "-f", self.config],
                                     [self.dir, *self.reach], env,
                                     h.pam_wrapper_env(self.pam_dir))
        self.log = open(os.path.join(self.dir, "sshd.log"), "wb")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=self.log, env=env)
        listening = f"Server listening on 127.0.0.1 port {self.port}."
        deadline = time.time() + 10
        while time.time() < deadline:
            if listening in self.read_log():
                return True
            if self.process.poll() is not None:  # bind failed: sshd exits
                break
            time.sleep(0.05)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.log.close()
        return False

    def read_log(self):
        with open(os.path.join(self.dir, "sshd.log"), errors="replace") as f:
            return f.read()

    def spawn_ssh(self):
        """ssh to this sshd as self.user, running a command that proves the login."""
        return pexpect.spawn(
            "ssh", ["-p", str(self.port), "-o", "StrictHostKeyChecking=no",
                    "-o", "UserKnownHostsFile=/dev/null", "-o", "PubkeyAuthentication=no",
                    "-o", "PreferredAuthentications=keyboard-interactive",
                    "-o", "NumberOfPasswordPrompts=1", "-o", "LogLevel=ERROR",
                    f"{self.user}@127.0.0.1", "echo", "LOGIN-OK-$((40+2))"],
            encoding="utf-8", timeout=20)

    def login(self, password, code):
        """Returns (logged_in, transcript)."""
        child = self.spawn_ssh()
        try:
            child.expect("[Pp]assword:")
            child.sendline(password)
            child.expect("Verification code: ")
            child.sendline(code)
            index = child.expect(["LOGIN-OK-42", "Permission denied", pexpect.EOF])
            child.expect(pexpect.EOF)
            return index == 0, (child.before or "")
        except pexpect.ExceptionPexpect as error:
            # ssh says little at LogLevel=ERROR: why sshd ended the session
            # is in its own log.
            raise AssertionError(f"{error}\n--- sshd log ---\n{self.read_log()}") from None
        finally:
            child.close()

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class SshLogin(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = h.Daemon().start()
        cls.sshd = Sshd(f"socket={cls.d.socket}", daemon=cls.d)

    @classmethod
    def tearDownClass(cls):
        cls.sshd.stop()
        cls.d.cleanup()

    def test_password_and_code_then_replay_and_wrong_code_refused(self):
        secret, _ = self.d.enroll(USER)
        code = h.totp(secret, at=time.time() + 30)  # enrolling used this step's
        ok, transcript = self.sshd.login(PASSWORD, code)
        self.assertTrue(ok, transcript + self.sshd.read_log())
        ok, _ = self.sshd.login(PASSWORD, code)
        self.assertFalse(ok, "the same code worked twice")
        wrong = "000000" if h.totp(secret) != "000000" else "111111"
        ok, _ = self.sshd.login(PASSWORD, wrong)
        self.assertFalse(ok, "a wrong code worked")
        self.assertNotIn(code, self.d.log())  # no code in the daemon's log
        # Each connection's PAM set-up stayed in sshd's own /tmp, out of reach
        # of other processes' pam_wrapper clean-up (Sshd's docstring says why).
        for path in glob.glob("/tmp/pam.?/sshd"):
            with open(path, errors="replace") as f:
                self.assertNotIn(self.d.socket, f.read(), path)


if __name__ == "__main__":
    unittest.main(verbosity=2)
