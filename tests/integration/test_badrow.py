"""One stored record that does not read (its sealed secret does not open, or
its enrollment time was changed so the binding to key_file fails) against the
real daemon, tool and module: `admin list` lists everyone else and names it,
the user's own logins are refused (never passed, never PAM_IGNORE),
`admin reset` clears it and says so in the log, and the user enrolls again."""

import json
import os
import re
import sqlite3
import time
import unittest

import kpanel_harness as h
from test_pam import Pam

GOOD, BAD = "kpt_br_good", "kpt_br_bad"
USERS = (GOOD, BAD)

# Ways a row can stop decoding: changed outside the daemon.
DAMAGE = {
    "secret": f"UPDATE users SET active_secret = randomblob(60) WHERE user = '{BAD}'",
    "binding": f"UPDATE users SET enrolled_at = enrolled_at + 1 WHERE user = '{BAD}'",
}


def setUpModule():
    h.require_root(None)
    h.ensure_users(*USERS)


def tearDownModule():
    h.remove_users(*USERS)


class UnreadableRecord(unittest.TestCase):
    def setUp(self):
        self.d = h.Daemon().start()
        self.pam = Pam()
        self.plain = self.pam.service("kp-br-plain", f"socket={self.d.socket}")
        # The most lenient stack: a PAM_IGNORE or a pass would reach pam_permit.
        self.lenient = self.pam.service(
            "kp-br-lenient", f"socket={self.d.socket} nullok unavailable=ignore", then_permit=True)

    def tearDown(self):
        self.d.cleanup()
        self.pam.cleanup()

    def damage(self, sql):
        db = sqlite3.connect(os.path.join(self.d.state_dir, "state.db"))
        try:
            with db:
                self.assertEqual(db.execute(sql).rowcount, 1)
        finally:
            db.close()

    def check(self, how):
        good_secret, _ = self.d.enroll(GOOD)
        self.d.enroll(BAD)
        self.damage(DAMAGE[how])

        # The list is delivered (exit 0): the good user, the bad one named.
        rc, listing, result = self.d.tool_json("admin", "list")
        self.assertEqual(rc, 0, result.stderr)
        self.assertEqual([u["user"] for u in listing["users"]], [GOOD])
        self.assertEqual(listing["unreadable"], [BAD])
        result = self.d.tool("admin", "list")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(GOOD, result.stdout)
        self.assertNotIn(BAD, result.stdout)
        self.assertIn(f"the stored record of {BAD} cannot be read", result.stderr)
        self.assertIn(f"kpanel-totp admin reset {BAD}", result.stderr)
        rc, stats, result = self.d.tool_json("admin", "stats")
        self.assertEqual(rc, 0, result.stderr)
        self.assertEqual(stats["users_enrolled"], 1)
        self.assertRegex(self.d.log(), rf"user '{BAD}' cannot be read")

        # The bad user's logins and status stay refused, on every stack.
        for service in (self.plain, self.lenient):
            ok, out = self.pam.authenticate(service, BAD, "123456")
            self.assertFalse(ok, f"{service}: an unreadable record let the login through: {out}")
        rc, _, result = self.d.tool_json("status", as_user=BAD)
        self.assertEqual(rc, 1, result.stdout)
        # Everyone else logs in as before.
        # The next step's code: enrolling used this one (no wait for a fresh step).
        ok, out = self.pam.authenticate(self.plain, GOOD, h.totp(good_secret, at=time.time() + 30))
        self.assertTrue(ok, out)

        # admin reset clears it (logged, audited as a reset) ...
        result = self.d.tool("admin", "reset", BAD)
        self.assertEqual(result.returncode, 0, result.stderr)
        log = self.d.log()
        self.assertRegex(log, rf"admin reset of user '{BAD}': removed a stored record that "
                              r"could not be read")
        self.assertRegex(log, rf"audit: event=reset user={BAD} ")
        for line in log.splitlines():  # no secret material in what it says
            if "removed a stored record" in line:
                self.assertNotRegex(line, r"[A-Z2-7]{32}")
        rc, listing, result = self.d.tool_json("admin", "list")
        self.assertEqual(rc, 0, result.stderr)
        self.assertNotIn("unreadable", listing)
        self.assertEqual([u["user"] for u in listing["users"]], [GOOD])
        db = sqlite3.connect(f"file:{os.path.join(self.d.state_dir, 'state.db')}?mode=ro",
                             uri=True)
        try:
            for table in ("users", "recovery_codes"):
                count = db.execute(f"SELECT count(*) FROM {table} WHERE user = ?",
                                   (BAD,)).fetchone()[0]
                self.assertEqual(count, 0, table)
        finally:
            db.close()

        # ... and the user enrolls again and logs in with a code.
        secret, _ = self.d.enroll(BAD)
        ok, out = self.pam.authenticate(self.plain, BAD, h.totp(secret, at=time.time() + 30))
        self.assertTrue(ok, out)
        rc, status, result = self.d.tool_json("status", as_user=BAD)
        self.assertEqual(rc, 0, result.stderr)
        self.assertTrue(status["enrolled"], json.dumps(status))

    def test_a_secret_that_does_not_open(self):
        self.check("secret")

    def test_a_row_whose_binding_fails(self):
        self.check("binding")


class ResetOfANameWithNothingStored(unittest.TestCase):
    """The fallback is for an unreadable record only: nothing stored is still
    not_enrolled, and nothing is logged as removed."""

    def test_not_enrolled_stays_a_refusal(self):
        with h.Daemon() as d:
            d.start()
            result = d.tool("admin", "reset", GOOD)
            self.assertEqual(result.returncode, 1, result.stdout)
            self.assertNotIn("removed a stored record", d.log())


if __name__ == "__main__":
    unittest.main()
