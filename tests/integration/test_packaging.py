"""What ships around the binaries: the systemd units pass systemd-analyze
(verify prints nothing, security exposure <= 0.5), and the daemon still checks
a password through pam_unix when it runs as the unit runs it: its own user in
group shadow, no capabilities, no-new-privs. A user's plain configure treats
warnings as warnings; KPANEL_WERROR=ON (scripts/test.sh) makes them errors."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import kpanel_harness as h

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNITS = os.path.join(SOURCE, "systemd")
DAEMON_USER, ALICE = "kpt_k_daemon", "kpt_k_alice"


def setUpModule():
    h.require_root(None)
    h.ensure_users(DAEMON_USER, ALICE)


def tearDownModule():
    h.remove_users(DAEMON_USER, ALICE)


class SystemdUnits(unittest.TestCase):
    def setUp(self):
        # verify wants ExecStart's binary to exist: point it at the build's.
        self.dir = tempfile.mkdtemp(prefix="kpanel-units-")
        with open(os.path.join(UNITS, "kpanel-totpd.service")) as f:
            text = f.read().replace("ExecStart=/usr/sbin/kpanel-totpd",
                                    f"ExecStart={os.path.abspath(h.TOTPD)}")
        with open(os.path.join(self.dir, "kpanel-totpd.service"), "w") as f:
            f.write(text)
        shutil.copy(os.path.join(UNITS, "kpanel-totpd.socket"), self.dir)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_verify_prints_nothing(self):
        out = subprocess.run(["systemd-analyze", "verify", "--man=no", "kpanel-totpd.service",
                              "kpanel-totpd.socket"], cwd=self.dir, capture_output=True,
                             text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout + out.stderr, "")

    def test_security_exposure_at_most_0_5(self):
        # --threshold takes ten times the score shown.
        out = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                              "--threshold=5", "kpanel-totpd.service"], cwd=self.dir,
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertRegex(out.stdout, r"Overall exposure level for kpanel-totpd.service: 0\.[0-5]")


    def test_no_core_dumps(self):
        # A core would hold the key and secrets being checked.
        out = subprocess.run(["systemd-analyze", "verify", "--man=no", "kpanel-totpd.service"],
                             cwd=self.dir, capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        with open(os.path.join(self.dir, "kpanel-totpd.service")) as f:
            settings = [line.strip() for line in f if not line.startswith("#")]
        self.assertIn("LimitCORE=0", settings)


class WarningsAreErrorsOnlyWhenAsked(unittest.TestCase):
    """A plain `cmake -S . -B build -DCMAKE_BUILD_TYPE=Release` must build
    with whatever compiler and level the user has (g++ 12 at -O3 warns
    falsely inside libstdc++): no -Werror unless KPANEL_WERROR=ON."""

    def flags(self, *options):
        with tempfile.TemporaryDirectory(prefix="kpanel-configure-") as build:
            out = subprocess.run(["cmake", "-S", SOURCE, "-B", build,
                                  "-DCMAKE_BUILD_TYPE=Release", *options],
                                 capture_output=True, text=True, timeout=300)
            self.assertEqual(out.returncode, 0, out.stdout[-3000:] + out.stderr[-3000:])
            with open(os.path.join(build, "compile_commands.json")) as f:
                commands = json.load(f)
        self.assertTrue(commands)
        return [entry["command"] for entry in commands if "/tests/" not in entry["file"]
                or entry["file"].endswith(".cpp")]

    def test_plain_release_configure_has_no_werror(self):
        commands = self.flags()
        for command in commands:
            self.assertNotIn("-Werror", command.split())
        self.assertTrue(any("-Wall" in c.split() and "-O3" in c.split() for c in commands))

    def test_kpanel_werror_turns_warnings_into_errors_everywhere(self):
        commands = self.flags("-DKPANEL_WERROR=ON")
        ours = [c for c in commands if "-Wall" in c.split()]
        self.assertTrue(ours)
        for command in ours:
            self.assertIn("-Werror", command.split())

    def test_test_script_turns_it_on(self):
        with open(os.path.join(SOURCE, "scripts", "test.sh")) as f:
            self.assertIn("-DKPANEL_WERROR=ON", f.read())


class HardenedDaemon(unittest.TestCase):
    def test_checks_a_password_through_pam_unix_without_privileges(self):
        with h.Daemon(pam_services={"kpanel-totp": "auth required pam_unix.so nodelay\n"
                                                    "account required pam_unix.so\n"}) as d:
            d.run_as(DAEMON_USER).start()
            status = subprocess.run(["ps", "-o", "user=", "-p", str(d.process.pid)],
                                    capture_output=True, text=True).stdout.strip()
            self.assertIn(status, (DAEMON_USER, str(h.uid_of(DAEMON_USER))))
            secret, _ = d.enroll_raw(ALICE)
            h.wait_for_next_step()
            code = h.totp(secret)
            wrong = d.call({"op": "disable", "user": ALICE, "password": "not it", "code": code},
                           as_user=ALICE)
            self.assertEqual(wrong["status"], "wrong_password", d.log())
            right = d.call({"op": "disable", "user": ALICE, "password": h.password_of(ALICE),
                            "code": code}, as_user=ALICE)
            self.assertEqual(right["status"], "ok", d.log())
            # Key and state were made by the daemon's user, private to it.
            self.assertEqual(os.stat(d.key_file).st_uid, h.uid_of(DAEMON_USER))
            self.assertEqual(os.stat(d.key_file).st_mode & 0o077, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
