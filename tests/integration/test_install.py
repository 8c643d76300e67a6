"""scripts/install.sh on this machine, as an admin runs it: a Release build in a
throwaway build directory (KPANEL_INSTALL_BUILD_DIR), the install into the
real /usr, the daemon started (in the background when systemd is not
running: kpanel-totpd-ctl, a timestamped log in /var/log), `kpanel-totp
status` answering; one line per phase, the rest in a log; a second run
changes nothing an admin edited; a refused `--uninstall` changes no file;
`--uninstall` keeps the config it says it keeps; `--uninstall --purge`
leaves nothing behind.

Runs only as root, not for a sanitizer build, never where kpanel-totp is
already installed. tearDownModule uninstalls whatever is left."""

import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import kpanel_harness as h

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INSTALL_SH = os.path.join(SOURCE, "scripts", "install.sh")
DAEMON_USER = "kpanel-totp"
ETC_DIR = "/etc/kpanel-totp"
STATE_DIR = "/var/lib/kpanel-totp"
PID_FILE = "/run/kpanel-totp/kpanel-totpd.pid"
CTL = "/usr/sbin/kpanel-totpd-ctl"
DAEMON_LOG = "/var/log/kpanel-totpd.log"
MODULE = "/lib/x86_64-linux-gnu/security/pam_kpanel_totp.so"
PROFILE = "/usr/share/pam-configs/kpanel-totp"
STRAY_PAM_FILE = "/etc/pam.d/kpt-install-test"  # a hand-made stack naming the module
SSHD_DROPIN = "/etc/ssh/sshd_config.d/kpanel-totp.conf"
INSTALLED = ("/usr/sbin/kpanel-totpd", "/usr/bin/kpanel-totp", "/etc/pam.d/kpanel-totp",
             ETC_DIR, STATE_DIR, "/usr/share/kpanel-totp", "/run/kpanel-totp", CTL, DAEMON_LOG,
             MODULE)
# What a refused --uninstall must leave exactly as it was.
SNAPSHOT_ROOTS = ("/etc/pam.d", "/var/lib/pam", ETC_DIR, "/usr/share/pam-configs",
                  "/usr/share/kpanel-totp", "/usr/sbin/kpanel-totpd", "/usr/bin/kpanel-totp",
                  CTL, MODULE, "/lib/systemd/system/kpanel-totpd.service",
                  "/lib/systemd/system/kpanel-totpd.socket", "/run/kpanel-totp")

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


def install_sh(*args, timeout=900, **extra_env):
    # No DEBIAN_FRONTEND: the script itself must keep debconf quiet.
    env = dict(os.environ, KPANEL_INSTALL_BUILD_DIR=os.path.join(state["tmp"], "build"),
               KPANEL_INSTALL_LOG=os.path.join(state["tmp"], "install.log"))
    env.update(extra_env)
    for name in ("LD_PRELOAD", "PAM_WRAPPER", "PAM_WRAPPER_SERVICE_DIR", "DEBIAN_FRONTEND"):
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
    for path in (STRAY_PAM_FILE, SSHD_DROPIN if state.get("made_dropin") else None):
        if path and os.path.exists(path):
            os.remove(path)
    if state["touched"] and os.path.exists(PROFILE):
        subprocess.run(["pam-auth-update", "--package", "--remove", "kpanel-totp"],
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                       capture_output=True)
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


def snapshot():
    """Every file and directory under SNAPSHOT_ROOTS: type, mode, owner, content."""
    seen = {}

    def record(path):
        info = os.lstat(path)
        digest = None
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        seen[path] = (info.st_mode, info.st_uid, info.st_gid, info.st_mtime_ns, digest,
                      os.readlink(path) if os.path.islink(path) else None)

    for root in SNAPSHOT_ROOTS:
        if not os.path.lexists(root):
            seen[root] = None
            continue
        record(root)
        for directory, dirs, files in os.walk(root):
            for name in dirs + files:
                record(os.path.join(directory, name))
    return seen


def names_module(path):
    with open(path) as f:
        return any(re.match(r"^\s*[^#\s][^#]*pam_kpanel_totp\.so", line) for line in f)


class InstallScript(unittest.TestCase):
    maxDiff = None

    def test_a_failing_phase_shows_the_end_of_its_log(self):
        # A build directory that cannot be made: phase 2 fails, nothing is installed.
        out = install_sh(KPANEL_INSTALL_BUILD_DIR="/proc/kpanel-no-such-dir/build")
        self.assertNotEqual(out.returncode, 0)
        log = os.path.join(state["tmp"], "install.log")
        self.assertIn(f"output goes to {log}", out.stdout)
        self.assertRegex(out.stdout, r"\[1/4\] Debian packages\.\.\. done")
        self.assertRegex(out.stdout, r"\[2/4\] Building[^\n]*\.\.\. failed\.")
        self.assertIn(f"The last lines of {log}:", out.stderr)
        self.assertIn("/proc/kpanel-no-such-dir/build", out.stderr)  # CMake's own words
        self.assertNotIn("[3/4]", out.stdout)
        self.assertFalse(os.path.exists("/usr/sbin/kpanel-totpd"))

    def test_install_twice_then_uninstall_purge(self):
        state["touched"] = True
        started = time.monotonic()
        out = install_sh()
        print(f"install.sh took {time.monotonic() - started:.0f} s", flush=True)
        self.assertEqual(out.returncode, 0, out.stdout[-4000:] + out.stderr[-4000:])
        self.assertIn("kpanel-totp is installed", out.stdout)
        # One line per phase; apt's and CMake's words only in the log.
        log = os.path.join(state["tmp"], "install.log")
        self.assertIn(f"output goes to {log}", out.stdout)
        for phase in ("[1/4] Debian packages", "[2/4] Building", "[3/4] Installing",
                      "[4/4] Starting kpanel-totpd"):
            self.assertRegex(out.stdout, re.escape(phase) + r"[^\n]*\.\.\. done \(\d+ s\)\.\n")
        for noise in ("-- ", "pam_wrapper", "not found", "debconf", "Building CXX", "warning"):
            self.assertNotIn(noise, out.stdout + out.stderr)
        with open(log) as f:
            self.assertIn("Building CXX", f.read())
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
            self.check_background_daemon(pid)
            with open(PID_FILE) as f:
                pid = int(f.read().strip())

        self.check_refused_uninstall_changes_nothing(pid)

        # Without --purge: the config it says it keeps is kept, the drop-in named.
        made_dropin = not os.path.exists(SSHD_DROPIN)
        if made_dropin:
            os.makedirs(os.path.dirname(SSHD_DROPIN), exist_ok=True)
            state["made_dropin"] = True
            shutil.copy(os.path.join(SOURCE, "config", "sshd_config.d", "kpanel-totp.conf"),
                        SSHD_DROPIN)
        out = install_sh("--uninstall")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertNotIn("debconf", out.stdout + out.stderr)
        for kept in ("/etc/pam.d/kpanel-totp", ETC_DIR, STATE_DIR):
            self.assertTrue(os.path.exists(kept), kept)
            self.assertIn(kept, out.stdout)
        self.assertIn(SSHD_DROPIN, out.stdout)
        for gone in ("/usr/sbin/kpanel-totpd", "/usr/bin/kpanel-totp", MODULE, CTL):
            self.assertFalse(os.path.exists(gone), gone)
        with open("/etc/pam.d/common-auth") as f:
            self.assertNotIn("pam_kpanel_totp", f.read())
        if pid is not None:
            self.assertFalse(os.path.exists(f"/proc/{pid}"), "daemon still running")

        out = install_sh("--uninstall", "--purge")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(SSHD_DROPIN, out.stdout)
        if made_dropin:
            os.remove(SSHD_DROPIN)
        for gone in INSTALLED:
            self.assertFalse(os.path.exists(gone), gone)
        self.assertFalse(user_exists(DAEMON_USER))
        if pid is not None:
            self.assertFalse(os.path.exists(f"/proc/{pid}"), "daemon still running")

    def check_background_daemon(self, pid):
        """Without systemd: a timestamped log under /var/log, and the commands
        the README gives (kpanel-totpd-ctl) stop, start, reload and restart it."""
        def ctl(action):
            out = subprocess.run([CTL, action], capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, f"{action}: {out.stdout}{out.stderr}")
            return out

        self.assertIn(DAEMON_LOG, ctl("status").stdout)
        with open(DAEMON_LOG) as f:
            lines = [line for line in f.read().splitlines() if line]
        self.assertTrue(lines, "the daemon's log is empty")
        for line in lines:
            self.assertRegex(line, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")
        self.assertFalse(os.path.exists("/run/kpanel-totp/kpanel-totpd.log"))
        ctl("reload")
        time.sleep(0.5)
        self.assertTrue(os.path.exists(f"/proc/{pid}"), "reload stopped the daemon")
        ctl("stop")
        self.assertFalse(os.path.exists(f"/proc/{pid}"), "stop left the daemon running")
        out = subprocess.run([CTL, "status"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 3, out.stdout)
        ctl("start")
        self.assertEqual(status()[0], 0)
        ctl("restart")
        self.assertEqual(status()[0], 0)

    def check_refused_uninstall_changes_nothing(self, pid):
        """The profile enabled in common-auth and a hand-made stack naming the
        module: --uninstall refuses and changes no file (su, sudo and login
        still ask for a code), with no debconf noise."""
        enable = subprocess.run(["pam-auth-update", "--enable", "kpanel-totp"],
                                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                                capture_output=True, text=True)
        self.assertEqual(enable.returncode, 0, enable.stdout + enable.stderr)
        try:
            self.assertTrue(names_module("/etc/pam.d/common-auth"))
            with open(STRAY_PAM_FILE, "w") as f:
                f.write("# kpanel-totp test_install\nauth required pam_kpanel_totp.so\n")
            before = snapshot()
            out = install_sh("--uninstall")
            self.assertNotEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertIn(STRAY_PAM_FILE, out.stderr)
            self.assertIn("nothing was changed", out.stderr)
            self.assertNotIn("debconf", out.stdout + out.stderr)
            self.assertEqual(snapshot(), before)
            self.assertTrue(names_module("/etc/pam.d/common-auth"))
            if pid is not None:
                self.assertTrue(os.path.exists(f"/proc/{pid}"), "the daemon was stopped")
        finally:
            if os.path.exists(STRAY_PAM_FILE):
                os.remove(STRAY_PAM_FILE)


if __name__ == "__main__":
    unittest.main(verbosity=2)
