"""Clock jumps: the real daemon under a shifted clock (Debian's libfaketime,
preloaded, reading its offset from a file on every call so the test can move
the daemon's clock while it runs). A host clock that jumped ahead and came
back, or stepped back alone, locks nobody out, lets no used code work twice,
and is logged (event=clock_moved naming the user)."""

import os
import shutil
import tempfile
import time
import unittest

import kpanel_harness as h

ALICE = "kpt_cj_alice"
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
DAY = 86400


def setUpModule():
    h.require_root(None)
    h.ensure_users(ALICE)


def tearDownModule():
    h.remove_users(ALICE)


class ClockJump(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(LIBFAKETIME):
            raise unittest.SkipTest("faketime not installed (apt-get install faketime)")
        root = tempfile.mkdtemp(prefix="kpanel-cj-")
        self.addCleanup(shutil.rmtree, root, True)
        self.offset_file = os.path.join(root, "faketimerc")
        self.shift(0)
        self.daemon = h.Daemon()
        self.addCleanup(self.daemon.cleanup)
        # A sanitizer build's daemon needs ASan's runtime first in the list
        # (CMake passes its path first in KPANEL_PAM_PRELOAD).
        preload = LIBFAKETIME
        if os.environ.get("KPANEL_SANITIZE") == "1":
            asan = os.environ.get("KPANEL_PAM_PRELOAD", "").split(":")[0]
            preload = f"{asan}:{LIBFAKETIME}"
        env = {"LD_PRELOAD": preload, "FAKETIME_TIMESTAMP_FILE": self.offset_file,
               "FAKETIME_NO_CACHE": "1",
               # Timers and deadlines keep real time; only the wall clock moves.
               "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)  # the daemon's environment is copied from ours at start
        try:
            self.daemon.start()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def shift(self, seconds):
        """Moves the daemon's wall clock to real time + seconds."""
        with open(self.offset_file, "w") as f:
            f.write(f"{seconds:+d}s\n")
        self.offset = seconds

    def verify(self, code):
        reply = self.daemon.call(h.verify_request(ALICE, code))
        self.assertIsNotNone(reply, self.daemon.log())
        return reply

    def code(self, shift=None):
        """The code of the daemon's clock now (or of real time + shift)."""
        return h.totp(self.secret, at=time.time() + (self.offset if shift is None else shift))

    def enroll(self):
        begun = self.daemon.call({"op": "enroll_begin", "user": ALICE})
        self.assertEqual(begun["status"], "ok", begun)
        self.secret = begun["secret_base32"]
        confirmed = self.daemon.call({"op": "enroll_confirm", "user": ALICE,
                                      "code": self.code()})
        self.assertEqual(confirmed["status"], "ok", confirmed)

    def clock_moved_lines(self):
        return [line for line in self.daemon.log().splitlines() if "event=clock_moved" in line]

    def assert_not_locked(self):
        status = self.daemon.call({"op": "status", "user": ALICE})
        self.assertEqual(status["status"], "ok", status)
        self.assertIsNone(status["user_status"].get("locked_until"), status)

    def test_the_daemon_runs_on_the_shifted_clock(self):
        self.enroll()
        self.shift(DAY)
        self.assertNotEqual(self.verify(self.code(shift=0))["status"], "ok")  # real time: refused
        self.assertEqual(self.verify(self.code())["status"], "ok", self.daemon.log())

    def test_forward_a_day_then_back(self):
        self.enroll()
        self.shift(DAY)
        ahead = self.code()
        self.assertEqual(self.verify(ahead)["status"], "ok", self.daemon.log())
        self.shift(0)
        h.wait_for_next_step()  # past the confirming code's step
        now = self.code()
        reply = self.verify(now)
        self.assertEqual(reply["status"], "ok", f"{reply}\n{self.daemon.log()}")
        self.assertEqual(self.verify(now)["status"], "replayed")
        lines = self.clock_moved_lines()
        self.assertEqual(len(lines), 1, self.daemon.log())
        self.assertIn(f"user={ALICE}", lines[0])
        moved = int(lines[0].split("clock_moved_seconds=")[1].split()[0])
        self.assertLess(moved, -DAY + 120)
        self.assert_not_locked()
        self.shift(DAY)  # the day-ahead code stays used
        self.assertNotEqual(self.verify(ahead)["status"], "ok")

    def test_back_five_minutes(self):
        self.enroll()
        h.wait_for_next_step()
        used = self.code()
        self.assertEqual(self.verify(used)["status"], "ok")
        self.shift(-300)
        now = self.code()
        reply = self.verify(now)
        self.assertEqual(reply["status"], "ok", f"{reply}\n{self.daemon.log()}")
        self.assertEqual(self.verify(now)["status"], "replayed")
        self.assertNotEqual(self.verify(used)["status"], "ok")
        self.assertEqual(len(self.clock_moved_lines()), 1, self.daemon.log())
        self.assert_not_locked()


if __name__ == "__main__":
    unittest.main()
