"""admin import-google-authenticator against files written by the real
google-authenticator command (Debian's libpam-google-authenticator): the
imported secret logs in through the module (pamtester) with oathtool's codes,
a scratch code works once, a step used under google-authenticator with
DISALLOW_REUSE stays used, and every file that cannot be imported is skipped
with its reason."""

import os
import pwd
import shutil
import subprocess
import tempfile
import time
import unittest

import kpanel_harness as h

USERS = [f"kpt_i_{n}" for n in ("alice", "bob", "carol", "dave", "erin", "frank", "gina",
                                  "hank")]
ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GINA, HANK = USERS
MODULE = os.environ.get("KPANEL_PAM_MODULE", "")
GA_MODULE = "/lib/x86_64-linux-gnu/security/pam_google_authenticator.so"
FILE = ".google_authenticator"


def setUpModule():
    h.require_root(None)
    if not MODULE:
        raise unittest.SkipTest("KPANEL_PAM_MODULE not set (run through ctest)")
    if not shutil.which("google-authenticator") or not os.path.exists(GA_MODULE):
        raise unittest.SkipTest("libpam-google-authenticator not installed (scripts/deps.sh)")
    h.ensure_users(*USERS)


def tearDownModule():
    for user in USERS:
        remove_file(user)
    h.remove_users(*USERS)


def home(user):
    return pwd.getpwnam(user).pw_dir


def path_of(user):
    return os.path.join(home(user), FILE)


def remove_file(user):
    try:
        os.unlink(path_of(user))
    except FileNotFoundError:
        pass


def google_authenticator(user, *options):
    """Runs the real command as `user`, as they would; returns (secret, scratch codes)."""
    remove_file(user)
    subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups",
                    "google-authenticator", *options, "-f", "-q", "-Q", "NONE", "-s",
                    path_of(user)], stdin=subprocess.DEVNULL, capture_output=True, check=True)
    with open(path_of(user)) as f:
        lines = f.read().splitlines()
    return lines[0], [line for line in lines[1:] if line and not line.startswith('"')]


class Pam:
    """Service files in a temp dir, read by pam_start() through pam_wrapper."""

    def __init__(self, socket):
        self.dir = tempfile.mkdtemp(prefix="kpanel-import-pam-")
        stacks = {"other": "auth required pam_deny.so\n",
                  "kp-import": f"auth required {MODULE} socket={socket}\n",
                  "ga-import": f"auth required {GA_MODULE}\n"}
        for name, text in stacks.items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text + "account required pam_permit.so\n")

    def login(self, service, user, code):
        env = dict(os.environ)
        env.update(h.pam_wrapper_env(self.dir))
        result = subprocess.run(
            ["pamtester", "-v", "-I", "rhost=192.0.2.9", "-I", "tty=ssh", service, user,
             "authenticate"], input=code + "\n", capture_output=True, text=True, env=env,
            timeout=30)
        return result.returncode == 0, result.stdout + result.stderr

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class ImportTest(unittest.TestCase):
    def setUp(self):
        self.d = h.Daemon().start()
        self.pam = Pam(self.d.socket)

    def tearDown(self):
        self.pam.cleanup()
        self.d.cleanup()
        for user in USERS:
            remove_file(user)

    def run_import(self, *args):
        rc, data, result = self.d.tool_json("admin", "import-google-authenticator", *args)
        self.assertIsNotNone(data, result.stderr)
        return rc, data

    def status(self, user):
        rc, data, result = self.d.tool_json("--user", user, "status")
        self.assertEqual(rc, 0, result.stderr)
        return data

    def wait_for_fresh_step(self, period=30):
        # Not in a step's last 5 s: a code typed now is still for that step.
        if time.time() % period > period - 5:
            time.sleep(period - time.time() % period + 0.5)

    def test_time_based_file_logs_in_and_scratch_code_works_once(self):
        secret, scratch = google_authenticator(ALICE, "-t", "-d", "-w", "3", "-r", "3", "-R",
                                               "30")
        rc, data = self.run_import(ALICE)
        self.assertEqual((rc, data), (0, {"imported": [ALICE], "skipped": []}))
        status = self.status(ALICE)
        self.assertTrue(status["enrolled"])
        self.assertEqual(status["recovery_codes_left"], len(scratch))
        self.assertTrue(os.path.exists(path_of(ALICE)), "no --remove: the file stays")
        self.assertIn("event=import", self.d.log())

        self.wait_for_fresh_step()
        ok, out = self.pam.login("kp-import", ALICE, h.totp(secret))
        self.assertTrue(ok, out)
        ok, out = self.pam.login("kp-import", ALICE, scratch[0])
        self.assertTrue(ok, out)
        self.assertIn("Recovery code accepted", out)
        ok, out = self.pam.login("kp-import", ALICE, scratch[0])
        self.assertFalse(ok, "a scratch code works once: " + out)
        ok, out = self.pam.login("kp-import", ALICE, f"{scratch[1][:4]} {scratch[1][4:]}")
        self.assertTrue(ok, "spaces are ignored: " + out)
        self.assertEqual(self.status(ALICE)["recovery_codes_left"], len(scratch) - 2)

    def test_code_used_under_google_authenticator_stays_used(self):
        secret, scratch = google_authenticator(BOB, "-t", "-d", "-w", "3", "-u")
        self.wait_for_fresh_step()
        used = h.totp(secret)
        # A real login through pam_google_authenticator, which records the step.
        ok, out = self.pam.login("ga-import", BOB, used)
        self.assertTrue(ok, "google-authenticator login: " + out)
        with open(path_of(BOB)) as f:
            self.assertIn(f'" DISALLOW_REUSE {h.step_of()}', f.read())
        rc, data = self.run_import(BOB)
        self.assertEqual((rc, data["imported"]), (0, [BOB]))
        ok, out = self.pam.login("kp-import", BOB, used)
        self.assertFalse(ok, "the code used under google-authenticator: " + out)
        self.assertIn("already used", out)
        ok, out = self.pam.login("kp-import", BOB, h.totp(secret, time.time() + 30))
        self.assertTrue(ok, "the next step's code is fresh: " + out)

        # Still on google-authenticator after the import, a scratch code is
        # used there; the migration's second run retires it here too.
        ok, out = self.pam.login("ga-import", BOB, scratch[0])
        self.assertTrue(ok, "google-authenticator scratch code: " + out)
        rc, data = self.run_import("--remove", BOB)
        self.assertEqual((rc, data["imported"]), (0, [BOB]))
        self.assertFalse(os.path.lexists(path_of(BOB)))
        ok, out = self.pam.login("kp-import", BOB, scratch[0])
        self.assertFalse(ok, "used under google-authenticator: " + out)
        ok, out = self.pam.login("kp-import", BOB, scratch[1])
        self.assertTrue(ok, out)

    def test_step_size_is_imported(self):
        secret, _ = google_authenticator(CAROL, "-t", "-D", "-u", "-S", "60", "-w", "3")
        rc, data = self.run_import(CAROL)
        self.assertEqual((rc, data["imported"]), (0, [CAROL]))
        self.wait_for_fresh_step(60)
        ok, out = self.pam.login("kp-import", CAROL, h.totp(secret, period=60))
        self.assertTrue(ok, out)

    def test_skipped_files_each_say_why_and_remove_only_removes_imported_ones(self):
        google_authenticator(ALICE, "-t", "-d", "-w", "3", "-u")
        google_authenticator(DAVE, "-c", "-w", "3", "-u")          # HOTP
        google_authenticator(ERIN, "-t", "-d", "-w", "3", "-u")    # then a symlink to it
        real = os.path.join(home(ERIN), "real-ga")
        os.rename(path_of(ERIN), real)
        os.symlink(real, path_of(ERIN))
        google_authenticator(FRANK, "-t", "-d", "-w", "3", "-u")   # then not FRANK's
        os.chown(path_of(FRANK), 0, 0)
        self.d.enroll(GINA)                                        # enrolled already
        google_authenticator(GINA, "-t", "-d", "-w", "3", "-u")
        google_authenticator(HANK, "-t", "-d", "-w", "17", "-u")   # wider than window 1
        remove_file(CAROL)                                         # no file at all

        rc, data = self.run_import("--remove", ALICE, DAVE, ERIN, FRANK, GINA, HANK, CAROL)
        self.assertEqual(rc, 1)
        self.assertEqual(data["imported"], [ALICE])
        reasons = {item["user"]: item["reason"] for item in data["skipped"]}
        self.assertEqual(set(data), {"imported", "skipped"})
        self.assertIn("HOTP", reasons[DAVE])
        self.assertIn("symbolic link", reasons[ERIN])
        self.assertIn("owned by uid 0", reasons[FRANK])
        self.assertEqual(reasons[GINA], "already enrolled")
        self.assertIn("WINDOW_SIZE 17", reasons[HANK])
        self.assertIn("no ~/.google_authenticator", reasons[CAROL])
        self.assertFalse(os.path.lexists(path_of(ALICE)), "imported: removed")
        for user in (DAVE, ERIN, FRANK, GINA, HANK):
            self.assertTrue(os.path.lexists(path_of(user)), f"{user}: skipped, kept")
        self.assertTrue(os.path.exists(real), "a symlink's target is never touched")
        for user in (DAVE, ERIN, FRANK, HANK):
            self.assertFalse(self.status(user)["enrolled"], user)

        # A file others may write is not the user's secret alone.
        google_authenticator(HANK, "-t", "-d", "-w", "3", "-u")
        os.chmod(path_of(HANK), 0o620)
        rc, data = self.run_import(HANK)
        self.assertEqual(rc, 1)
        self.assertIn("writable by group or others", data["skipped"][0]["reason"])
        self.assertFalse(self.status(HANK)["enrolled"])

    def test_all_imports_every_account_with_a_file_and_a_second_run_removes(self):
        secret, _ = google_authenticator(ALICE, "-t", "-d", "-w", "3", "-u")
        google_authenticator(CAROL, "-t", "-D", "-u", "-S", "30", "-w", "1")
        google_authenticator(DAVE, "-c", "-w", "3", "-u")
        rc, data = self.run_import("--all")
        self.assertEqual(rc, 1, data)
        self.assertEqual(sorted(data["imported"]), [ALICE, CAROL])
        self.assertEqual(data["skipped"], [{"user": DAVE, "reason": data["skipped"][0]["reason"]}],
                         "accounts without a file are not listed")
        # The migration's last step: the same files again, now removed.
        result = self.d.tool("admin", "import-google-authenticator", "--remove", ALICE, CAROL)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"Imported {ALICE}.", result.stdout)
        self.assertIn(f"Removed {path_of(CAROL)}.", result.stdout)
        self.assertIn("Imported 2, skipped 0.", result.stdout)
        self.assertFalse(os.path.lexists(path_of(ALICE)))
        self.assertFalse(os.path.lexists(path_of(CAROL)))
        self.wait_for_fresh_step()
        ok, out = self.pam.login("kp-import", ALICE, h.totp(secret))
        self.assertTrue(ok, out)

    def test_root_only(self):
        google_authenticator(ALICE, "-t", "-d", "-w", "3", "-u")
        result = self.d.tool("admin", "import-google-authenticator", ALICE, as_user=ALICE)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("root", result.stderr)
        self.assertFalse(self.status(ALICE)["enrolled"])

    def test_usage(self):
        result = self.d.tool("admin", "import-google-authenticator")
        self.assertEqual(result.returncode, 2)
        result = self.d.tool("admin", "import-google-authenticator", "--all", ALICE)
        self.assertEqual(result.returncode, 2)


if __name__ == "__main__":
    unittest.main()
