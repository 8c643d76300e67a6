"""scripts/install.sh on this machine, as an admin runs it: a Release build in a
throwaway build directory (KPANEL_INSTALL_BUILD_DIR), the install into the
real /usr, the daemon started (in the background when systemd is not
running), `kpanel-totp status` answering; a second run changes nothing an
admin edited; `--uninstall --purge` leaves nothing behind.

Runs only as root, not for a sanitizer build, never where kpanel-totp is
already installed. tearDownModule uninstalls whatever is left."""

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import unittest

import kpanel_harness as h

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INSTALL_SH = os.path.join(SOURCE, "scripts", "install.sh")
DAEMON_USER = "kpanel-totp"
ETC_DIR = "/etc/kpanel-totp"
STATE_DIR = "/var/lib/kpanel-totp"
PID_FILE = "/run/kpanel-totp/kpanel-totpd.pid"
INSTALLED = ("/usr/sbin/kpanel-totpd", "/usr/bin/kpanel-totp", "/etc/pam.d/kpanel-totp",
             ETC_DIR, STATE_DIR, "/usr/share/kpanel-totp", "/run/kpanel-totp",
             "/lib/x86_64-linux-gnu/security/pam_kpanel_totp.so")

state = {"lock": None, "tmp": None, "touched": False}

# test_deb and test_install both install into the real system: one at a time.
SYSTEM_LOCK = "/run/lock/kpanel-totp-system-install.test.lock"


def take_system_lock():
    import fcntl
    os.makedirs(os.path.dirname(SYSTEM_LOCK), exist_ok=True)
    fd = os.open(SYSTEM_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd



def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def install_sh(*args, timeout=900):
    env = dict(os.environ, KPANEL_INSTALL_BUILD_DIR=os.path.join(state["tmp"], "build"),
               DEBIAN_FRONTEND="noninteractive")
    for name in ("LD_PRELOAD", "PAM_WRAPPER", "PAM_WRAPPER_SERVICE_DIR"):
        env.pop(name, None)
    return subprocess.run(["bash", INSTALL_SH, *args], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def setUpModule():
    h.require_root(None)
    if os.environ.get("KPANEL_SANITIZE") == "1":
        raise unittest.SkipTest("sanitizer build: install.sh makes its own Release build")
    state["lock"] = take_system_lock()
    if any(os.path.exists(p) for p in INSTALLED) or user_exists(DAEMON_USER):
        raise unittest.SkipTest("kpanel-totp is already installed on this machine: not touching it")
    state["tmp"] = tempfile.mkdtemp(prefix="kpanel-install-")


def tearDownModule():
    if state["touched"] and (any(os.path.exists(p) for p in INSTALLED)
                             or user_exists(DAEMON_USER)):
        out = install_sh("--uninstall", "--purge", "--force")
        if out.returncode != 0:
            print(f"tearDown: install.sh --uninstall failed:\n{out.stdout}{out.stderr}")
    if state["tmp"]:
        shutil.rmtree(state["tmp"], ignore_errors=True)
    if state["lock"] is not None:
        os.close(state["lock"])


def status():
    out = subprocess.run(["/usr/bin/kpanel-totp", "--json", "status"], capture_output=True,
                         text=True, timeout=30)
    return out.returncode, out


class InstallScript(unittest.TestCase):
    def test_install_twice_then_uninstall_purge(self):
        state["touched"] = True
        out = install_sh()
        self.assertEqual(out.returncode, 0, out.stdout[-4000:] + out.stderr[-4000:])
        self.assertIn("kpanel-totp is installed", out.stdout)
        rc, result = status()
        self.assertEqual(rc, 0, result.stderr)
        self.assertIn("enrolled", json.loads(result.stdout))
        self.assertEqual(os.stat(os.path.join(ETC_DIR, "state.key")).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(STATE_DIR).st_mode & 0o777, 0o700)

        # An admin's edit and the key survive a second run.
        conf = os.path.join(ETC_DIR, "kpanel-totpd.conf")
        with open(conf, "a") as f:
            f.write("# edited by test_install\n")
        with open(conf) as f:
            edited = f.read()
        with open(os.path.join(ETC_DIR, "state.key"), "rb") as f:
            key = f.read()
        out = install_sh()
        self.assertEqual(out.returncode, 0, out.stdout[-4000:] + out.stderr[-4000:])
        with open(conf) as f:
            self.assertEqual(f.read(), edited)
        with open(os.path.join(ETC_DIR, "state.key"), "rb") as f:
            self.assertEqual(f.read(), key)
        rc, result = status()
        self.assertEqual(rc, 0, result.stderr)

        pid = None
        if os.path.exists(PID_FILE):
            with open(PID_FILE) as f:
                pid = int(f.read().strip())

        out = install_sh("--uninstall", "--purge")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        for gone in INSTALLED:
            self.assertFalse(os.path.exists(gone), gone)
        self.assertFalse(user_exists(DAEMON_USER))
        if pid is not None:
            self.assertFalse(os.path.exists(f"/proc/{pid}"), "daemon still running")


if __name__ == "__main__":
    unittest.main(verbosity=2)
