"""The Debian package, end to end on this machine: the .deb is made with CPack
from the build directory the other tests use (found from KPANEL_TOTPD, which
is <build>/daemon/kpanel-totpd), installed with dpkg into the real /usr, the
daemon started the no-systemd way (kpanel-totpd-ctl, as scripts/install.sh does),
a real enrollment with the installed tool, a real login through the installed
module (pamtester under pam_wrapper), then `dpkg -r` (keeps key, config and
state) and `dpkg --purge` (removes them and the system user).

It installs into the real system, so it runs only as root, never on a machine
where kpanel-totp (package, user or /etc/kpanel-totp) is already present, and
not for a sanitizer build (an ASan build is not packaged). Whatever happens,
tearDownModule purges the package and removes its test user."""

import glob
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import unittest

import kpanel_harness as h

PACKAGE = "kpanel-totp"
DAEMON_USER = "kpanel-totp"
ALICE = "kpt_deb_alice"  # made and removed here (not a fixture user)
ETC_DIR = "/etc/kpanel-totp"
STATE_DIR = "/var/lib/kpanel-totp"
RUN_DIR = "/run/kpanel-totp"
SOCKET = os.path.join(RUN_DIR, "kpanel-totpd.sock")
PID_FILE = os.path.join(RUN_DIR, "kpanel-totpd.pid")
DAEMON_LOG = "/var/log/kpanel-totpd.log"
MODULE = "/lib/x86_64-linux-gnu/security/pam_kpanel_totp.so"
STRAY_PAM_FILE = "/etc/pam.d/kpt-deb-test"  # a hand-made stack naming the module

DEBIAN_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")

state = {"lock": None, "tmp": None, "deb": None, "daemon": None, "made_alice": False}

# test_deb and test_install both install into the real system: one at a time.
SYSTEM_LOCK = "/run/lock/kpanel-totp-system-install.test.lock"


def take_system_lock():
    import fcntl
    os.makedirs(os.path.dirname(SYSTEM_LOCK), exist_ok=True)
    fd = os.open(SYSTEM_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd



def run(*args, check=False, **kwargs):
    return subprocess.run(list(args), capture_output=True, text=True, env=DEBIAN_ENV,
                          check=check, **kwargs)


def package_status():
    """dpkg's status word for the package ('installed', 'config-files', ...) or None."""
    out = run("dpkg-query", "-W", "-f=${db:Status-Status}", PACKAGE)
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() != "not-installed" \
        else None


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def build_dir():
    return os.path.dirname(os.path.dirname(os.path.abspath(h.TOTPD)))


def setUpModule():
    h.require_root(None)
    if os.environ.get("KPANEL_SANITIZE") == "1":
        raise unittest.SkipTest("sanitizer build: not packaged")
    for tool in ("dpkg", "dpkg-deb", "cpack", "pamtester", "setpriv"):
        if shutil.which(tool) is None:
            raise unittest.SkipTest(f"{tool} not found")
    state["lock"] = take_system_lock()
    if package_status() is not None or user_exists(DAEMON_USER) or os.path.exists(ETC_DIR) \
            or os.path.exists(STATE_DIR):
        raise unittest.SkipTest("kpanel-totp is already installed on this machine (package, "
                                "user or directories): not touching it")
    config = os.path.join(build_dir(), "CPackConfig.cmake")
    if not os.path.isfile(config):
        raise unittest.SkipTest(f"{config} not found (KPANEL_TOTPD={h.TOTPD})")
    try:
        build_package(config)
    except BaseException:
        tearDownModule()  # unittest does not call it when setUpModule fails
        raise


def build_package(config):
    state["tmp"] = tempfile.mkdtemp(prefix="kpanel-deb-")
    os.chmod(state["tmp"], 0o755)
    # Package what is built; no build step (CPack's "preinstall" would build
    # every target, tests included): a generator without a preinstall target.
    wrapper = os.path.join(state["tmp"], "CPackConfig.cmake")
    with open(wrapper, "w") as f:
        f.write(f'include("{config}")\nset(CPACK_CMAKE_GENERATOR "Ninja")\n')
    out = subprocess.run(["cpack", "-G", "DEB", "--config", wrapper, "-B",
                          os.path.join(state["tmp"], "out")], cwd=state["tmp"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(f"cpack failed:\n{out.stdout}\n{out.stderr}")
    debs = glob.glob(os.path.join(state["tmp"], "out", "kpanel-totp_*.deb"))
    if len(debs) != 1:
        raise AssertionError(f"expected one .deb, found {debs}:\n{out.stdout}")
    state["deb"] = debs[0]
    if not user_exists(ALICE):
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", ALICE], check=True)
        state["made_alice"] = True


def alive(pid):
    return pid is not None and os.path.exists(f"/proc/{pid}")


def stop_daemon():
    pid = state["daemon"]
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + 10
        while alive(pid) and time.time() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    state["daemon"] = None


def tearDownModule():
    stop_daemon()
    if os.path.exists(STRAY_PAM_FILE):
        os.remove(STRAY_PAM_FILE)
    if os.path.exists("/usr/share/pam-configs/kpanel-totp"):
        run("pam-auth-update", "--package", "--remove", "kpanel-totp")
    if package_status() is not None:
        out = run("dpkg", "--purge", PACKAGE)
        if out.returncode != 0:
            print(f"tearDown: dpkg --purge failed:\n{out.stdout}{out.stderr}")
    # Anything the scripts left behind (they should not): the machine stays clean.
    for path in (ETC_DIR, STATE_DIR, RUN_DIR):
        shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(DAEMON_LOG):
        os.remove(DAEMON_LOG)
    if user_exists(DAEMON_USER):
        subprocess.run(["userdel", DAEMON_USER], capture_output=True)
    try:
        grp.getgrnam(DAEMON_USER)
        subprocess.run(["groupdel", DAEMON_USER], capture_output=True)
    except KeyError:
        pass
    if state["made_alice"]:
        subprocess.run(["userdel", "--remove", ALICE], capture_output=True)
    if state["tmp"]:
        shutil.rmtree(state["tmp"], ignore_errors=True)
    if state["lock"] is not None:
        os.close(state["lock"])


def as_user(user, *command, input_text=""):
    return subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups",
                           "--reset-env", *command], input=input_text, capture_output=True,
                          text=True, timeout=30)


class DebianPackage(unittest.TestCase):
    maxDiff = None

    def dpkg(self, *args, ok=True):
        out = run("dpkg", *args)
        if ok:
            self.assertEqual(out.returncode, 0, f"dpkg {' '.join(args)}:\n{out.stdout}{out.stderr}")
        return out

    def assertMode(self, path, mode, owner="root"):
        info = os.stat(path)
        self.assertEqual(stat.S_IMODE(info.st_mode), mode, f"{path}: {oct(info.st_mode)}")
        self.assertEqual(pwd.getpwuid(info.st_uid).pw_name, owner, path)

    def start_daemon(self):
        # The no-systemd way the postinst names, as scripts/install.sh does it.
        out = run("/usr/sbin/kpanel-totpd-ctl", "start")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr + self.daemon_log())
        with open(PID_FILE) as f:
            state["daemon"] = int(f.read().strip())
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(SOCKET)

    def daemon_log(self):
        try:
            with open(DAEMON_LOG, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def login(self, service_dir, code):
        env = dict(os.environ)
        env.update(h.pam_wrapper_env(service_dir))
        out = subprocess.run(["pamtester", "-v", "-I", "rhost=192.0.2.9", "-I", "tty=ssh",
                              "kp-deb", ALICE, "authenticate"], input=code + "\n",
                             capture_output=True, text=True, env=env, timeout=30)
        return out.returncode == 0, out.stdout + out.stderr

    def test_lintian_reports_no_errors(self):
        if shutil.which("lintian") is None:
            self.skipTest("lintian not found (apt-get install lintian)")
        out = run("lintian", "--no-cfg", state["deb"])
        errors = [line for line in out.stdout.splitlines() if line.startswith("E:")]
        self.assertEqual(errors, [], out.stdout + out.stderr)

    def test_installs_under_usr_whatever_the_build_prefix(self):
        # The tree the tests use is configured for CMake's default prefix
        # (/usr/local); the package still installs under /usr.
        listing = run("dpkg-deb", "-c", state["deb"], check=True).stdout
        paths = [line.split()[-1].lstrip(".") for line in listing.splitlines()]
        self.assertFalse([p for p in paths if p.startswith("/usr/local")], listing)
        for path in ("/usr/sbin/kpanel-totpd", "/usr/sbin/kpanel-totpd-ctl",
                     "/usr/bin/kpanel-totp", "/usr/share/kpanel-totp/kpanel-totpd.conf",
                     "/usr/share/doc/kpanel-totp/copyright",
                     "/usr/share/doc/kpanel-totp/changelog.Debian.gz"):
            self.assertIn(path, paths)
        maintainer = run("dpkg-deb", "-f", state["deb"], "Maintainer").stdout.strip()
        self.assertRegex(maintainer, r"^[^<>]+ <[^@<>\s]+@[^@<>\s]+\.[a-z]+>$")
        self.assertNotIn("localhost", maintainer)

    def test_install_enroll_login_remove_purge(self):
        # libpq is loaded at run time for store = postgresql: recommended, and
        # not a dependency shlibdeps could have derived from the daemon.
        fields = run("dpkg-deb", "-f", state["deb"], "Depends", "Recommends").stdout
        self.assertIn("Recommends: libpq5", fields)
        self.assertNotIn("libpq", fields.split("Recommends:")[0])
        # --- install ---------------------------------------------------------
        out = self.dpkg("-i", state["deb"])
        self.assertIn("systemd is not running", out.stdout)  # says how to start it
        self.assertIn("kpanel-totpd-ctl start", out.stdout)
        self.assertEqual(package_status(), "installed")
        self.assertMode("/usr/sbin/kpanel-totpd", 0o755)
        self.assertMode("/usr/bin/kpanel-totp", 0o755)
        self.assertMode(MODULE, 0o644)
        # Debian policy: shipped binaries are stripped (debug info goes in -dbgsym).
        for binary in ("/usr/sbin/kpanel-totpd", "/usr/bin/kpanel-totp", MODULE):
            sections = run("readelf", "-S", "-W", binary).stdout
            self.assertIn(".text", sections, binary)
            self.assertNotIn(".debug_info", sections, f"{binary} is not stripped")
        self.assertMode(ETC_DIR, 0o755)
        self.assertMode(os.path.join(ETC_DIR, "state.key"), 0o600, DAEMON_USER)
        self.assertEqual(os.path.getsize(os.path.join(ETC_DIR, "state.key")), 32)
        self.assertMode(STATE_DIR, 0o700, DAEMON_USER)
        self.assertMode(os.path.join(ETC_DIR, "kpanel-totpd.conf"), 0o644)
        self.assertMode("/etc/pam.d/kpanel-totp", 0o644)
        for page in ("man1/kpanel-totp.1.gz", "man5/kpanel-totpd.conf.5.gz",
                     "man8/kpanel-totpd.8.gz", "man8/pam_kpanel_totp.8.gz"):
            self.assertTrue(os.path.isfile(f"/usr/share/man/{page}"), page)
        for unit in ("kpanel-totpd.service", "kpanel-totpd.socket"):
            self.assertTrue(os.path.isfile(f"/lib/systemd/system/{unit}"), unit)
        self.assertTrue(os.path.isfile("/usr/lib/tmpfiles.d/kpanel-totp.conf"))
        self.assertTrue(os.path.isfile("/usr/share/pam-configs/kpanel-totp"))
        conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", PACKAGE).stdout
        self.assertIn("/etc/kpanel-totp/kpanel-totpd.conf", conffiles)
        self.assertIn("/etc/pam.d/kpanel-totp", conffiles)
        entry = pwd.getpwnam(DAEMON_USER)
        self.assertEqual(entry.pw_dir, STATE_DIR)
        self.assertTrue(entry.pw_shell.endswith("nologin"))
        self.assertLess(entry.pw_uid, 1000)  # a system user
        self.assertIn(DAEMON_USER, grp.getgrnam("shadow").gr_mem)
        # Default: no — installing changes no login.
        with open("/etc/pam.d/common-auth") as f:
            self.assertNotIn("pam_kpanel_totp", f.read())

        # Installing again changes nothing that exists (the key above all).
        with open(os.path.join(ETC_DIR, "state.key"), "rb") as f:
            key = f.read()
        self.dpkg("-i", state["deb"])
        with open(os.path.join(ETC_DIR, "state.key"), "rb") as f:
            self.assertEqual(f.read(), key)

        # --- run: enroll with the installed tool, log in through the module ---
        self.start_daemon()
        begun = as_user(ALICE, "/usr/bin/kpanel-totp", "--json", "enroll", "--begin")
        self.assertEqual(begun.returncode, 0, begun.stderr + self.daemon_log())
        secret = json.loads(begun.stdout)["secret"]
        confirmed = as_user(ALICE, "/usr/bin/kpanel-totp", "--json", "enroll", "--confirm",
                            h.totp(secret))
        self.assertEqual(confirmed.returncode, 0, confirmed.stderr + self.daemon_log())
        self.assertEqual(len(json.loads(confirmed.stdout)["recovery_codes"]), 10)
        status = subprocess.run(["/usr/bin/kpanel-totp", "--json", "--user", ALICE, "status"],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertTrue(json.loads(status.stdout)["enrolled"])

        service_dir = os.path.join(state["tmp"], "pam.d")
        os.makedirs(service_dir, exist_ok=True)
        with open(os.path.join(service_dir, "other"), "w") as f:
            f.write("auth required pam_deny.so\naccount required pam_deny.so\n")
        with open(os.path.join(service_dir, "kp-deb"), "w") as f:
            f.write(f"auth required {MODULE}\naccount required pam_permit.so\n")
        ok, output = self.login(service_dir, "000000" if h.totp(secret) != "000000" else "111111")
        self.assertFalse(ok, output)
        h.wait_for_next_step()
        ok, output = self.login(service_dir, h.totp(secret))
        self.assertTrue(ok, output + self.daemon_log())
        self.assertIn("Verification code", output)

        # --- remove: refused while a hand-made stack needs the module ---------
        # The profile is on too: a refused removal must leave it in common-auth
        # (su, sudo and login keep asking for a code).
        enable = run("pam-auth-update", "--enable", "kpanel-totp")
        self.assertEqual(enable.returncode, 0, enable.stdout + enable.stderr)
        with open("/etc/pam.d/common-auth") as f:
            common_auth = f.read()
        self.assertIn("pam_kpanel_totp.so", common_auth)
        with open(STRAY_PAM_FILE, "w") as f:
            f.write("# kpanel-totp test_deb\nauth required pam_kpanel_totp.so\n")
        out = self.dpkg("-r", PACKAGE, ok=False)
        self.assertNotEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(STRAY_PAM_FILE, out.stdout + out.stderr)
        self.assertTrue(os.path.exists(MODULE))
        self.assertTrue(alive(state["daemon"]))  # still serving
        with open("/etc/pam.d/common-auth") as f:
            self.assertEqual(f.read(), common_auth)
        # A commented-out line does not count.
        with open(STRAY_PAM_FILE, "w") as f:
            f.write("# auth required pam_kpanel_totp.so\n")

        # --- remove: stops the daemon, keeps key, config and state -----------
        self.dpkg("-r", PACKAGE)
        os.remove(STRAY_PAM_FILE)
        self.assertFalse(alive(state["daemon"]), self.daemon_log())  # prerm stopped it
        state["daemon"] = None
        with open("/etc/pam.d/common-auth") as f:
            self.assertNotIn("pam_kpanel_totp", f.read())
        self.assertEqual(package_status(), "config-files")
        for gone in ("/usr/sbin/kpanel-totpd", "/usr/bin/kpanel-totp", MODULE):
            self.assertFalse(os.path.exists(gone), gone)
        with open(os.path.join(ETC_DIR, "state.key"), "rb") as f:
            self.assertEqual(f.read(), key)
        self.assertTrue(os.path.isfile(os.path.join(ETC_DIR, "kpanel-totpd.conf")))
        self.assertTrue(os.listdir(STATE_DIR))
        self.assertTrue(user_exists(DAEMON_USER))

        # --- purge: everything goes ---------------------------------------------
        self.dpkg("--purge", PACKAGE)
        self.assertIsNone(package_status())
        for gone in (ETC_DIR, STATE_DIR, "/etc/pam.d/kpanel-totp", DAEMON_LOG):
            self.assertFalse(os.path.exists(gone), gone)
        self.assertFalse(user_exists(DAEMON_USER))
        with self.assertRaises(KeyError):
            grp.getgrnam(DAEMON_USER)
        self.assertNotIn(DAEMON_USER, grp.getgrnam("shadow").gr_mem)


if __name__ == "__main__":
    unittest.main(verbosity=2)
