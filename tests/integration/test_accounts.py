"""One account, one enrollment: a second passwd entry with an enrolled user's
uid (useradd -o) logs in to that account, through real Linux-PAM (pamtester
under pam_wrapper) and the real daemon; a name NSS does not know is refused."""

import os
import time
import unittest

import kpanel_harness as h
from test_pam import DaemonAndTwoStacks

ALICE, ALIAS = "kpt_n_alice", "kpt_n_alias"
GHOST = "kpt_n_ghost"  # never created
MODULE = os.environ.get("KPANEL_PAM_MODULE", "")


def setUpModule():
    h.require_root(None)
    if not MODULE:
        raise unittest.SkipTest("KPANEL_PAM_MODULE not set (run through ctest)")
    h.ensure_users(ALICE, ALIAS)


def tearDownModule():
    h.remove_users(ALIAS, ALICE)


class OneAccountTwoNames(DaemonAndTwoStacks):
    @classmethod
    def setUpClass(cls):
        assert h.uid_of(ALIAS) == h.uid_of(ALICE)
        super().setUpClass()

    def setUp(self):
        self.d.tool("admin", "reset", ALICE)

    def test_the_alias_needs_the_accounts_code_and_gets_no_nullok_pass(self):
        secret, _ = self.d.enroll(ALICE)
        ok, out = self.pam.authenticate(self.nullok, ALIAS)
        self.assertFalse(ok, "an alias of an enrolled account passed without a code: " + out)
        self.assertIn("Verification code", out)
        code = h.totp(secret, at=time.time() + 30)  # enrolling used this step's
        ok, out = self.pam.authenticate(self.svc, ALIAS, code)
        self.assertTrue(ok, out)
        # That code is spent for the account, whichever name used it.
        ok, out = self.pam.authenticate(self.svc, ALICE, code)
        self.assertFalse(ok, out)
        # Nothing was stored under the alias.
        rc, listed, _ = self.d.tool_json("admin", "list")
        self.assertEqual(rc, 0)
        self.assertEqual([u["user"] for u in listed["users"]], [ALICE])

    def test_the_aliases_wrong_codes_lock_the_account(self):
        secret, _ = self.d.enroll(ALICE)
        for _ in range(3):
            ok, out = self.pam.authenticate(self.svc, ALIAS, "000000")
            self.assertFalse(ok, out)
        rc, status, result = self.d.tool_json("--user", ALICE, "status")
        self.assertEqual(rc, 0, result.stderr)
        self.assertIsNotNone(status["locked_until"], status)
        ok, out = self.pam.authenticate(self.svc, ALICE, h.totp(secret))
        self.assertFalse(ok, out)
        self.assertIn("Too many failed attempts", out)

    def test_the_tool_naming_the_alias_acts_on_the_account(self):
        # The daemon sees only the uid: the user naming herself by the alias
        # acts on her own account, and so does root.
        for as_user in (ALICE, None):
            rc, status, result = self.d.tool_json("--user", ALIAS, "status", as_user=as_user)
            self.assertEqual(rc, 0, result.stderr)
            self.assertEqual(status["user"], ALICE)

    def test_a_name_nss_does_not_know_is_refused(self):
        reply = self.d.call(h.verify_request(GHOST, "123456"))
        self.assertEqual(reply["status"], "no_such_user")
        reply = self.d.call({"op": "login_check", "user": GHOST, "service": "sshd",
                             "nullok": True})
        self.assertEqual(reply["status"], "no_such_user")
        ok, out = self.pam.authenticate(self.nullok, GHOST)
        self.assertFalse(ok, "an unknown name passed under nullok: " + out)
        rc, _, _ = self.d.tool_json("--user", GHOST, "status")
        self.assertEqual(rc, 1)
        self.assertIn(f"user={GHOST}", self.d.log())
        self.assertIn("outcome=no_such_user", self.d.log())


if __name__ == "__main__":
    unittest.main()
