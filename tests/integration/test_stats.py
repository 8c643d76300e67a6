"""`kpanel-totp admin list --all` (every account that can log in, enrolled or
not, exempt or not) and `kpanel-totp admin stats` (counters moved by real
logins through the module under pamtester; --json, and --prometheus read back
by prometheus_client's own parser), against the real daemon."""

import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import kpanel_harness as h
from test_pam import Pam, MODULE

ALICE, BOB, GLASS = "kpt_st_alice", "kpt_st_bob", "kpt_st_glass"
ADMIN, EVE, DAEMON_USER = "kpt_st_admin", "kpt_st_eve", "kpt_st_daemon"
USERS = (ALICE, BOB, GLASS, ADMIN, EVE, DAEMON_USER)
EXEMPT_GROUP, ADMIN_GROUP = "kpt_st_exempt", "kpt_st_admins"
# Debian's own accounts: nobody's uid is above UID_MIN but its shell is
# nologin; daemon's uid is below UID_MIN.
NOLOGIN_ACCOUNT, SYSTEM_ACCOUNT = "nobody", "daemon"

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # python3-prometheus-client (scripts/deps.sh)
    text_string_to_metric_families = None


def setUpModule():
    h.require_root(None)
    h.ensure_users(*USERS)


def tearDownModule():
    h.remove_users(*USERS)


def by_user(listing):
    return {entry["user"]: entry for entry in listing["users"]}


class ListAll(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = h.Daemon(exempt_group=EXEMPT_GROUP, admin_group=ADMIN_GROUP).start()
        cls.d.enroll(ALICE)
        # Root's uid is below UID_MIN: enrolled, it is listed all the same.
        cls.d.enroll("root")

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def list_all(self, as_user=None):
        rc, listing, result = self.d.tool_json("admin", "list", "--all", as_user=as_user)
        self.assertEqual(rc, 0, result.stderr)
        return by_user(listing)

    def test_enrolled_not_enrolled_exempt_and_no_login_accounts(self):
        users = self.list_all()
        self.assertTrue(users[ALICE]["enrolled"])
        self.assertIs(users[ALICE]["exempt"], False)
        self.assertIs(users[BOB]["enrolled"], False)
        self.assertIsNone(users[BOB]["enrolled_at"])
        self.assertEqual(users[BOB]["recovery_codes_left"], 0)
        self.assertIs(users[BOB]["exempt"], False)
        self.assertIs(users[GLASS]["exempt"], True)
        self.assertIs(users[GLASS]["enrolled"], False)
        self.assertTrue(users["root"]["enrolled"], "enrolled below UID_MIN: still listed")
        self.assertNotIn(NOLOGIN_ACCOUNT, users)
        self.assertNotIn(SYSTEM_ACCOUNT, users)
        # The status objects are `status --json`'s, plus exempt (status alone
        # lists the user's remembered logins).
        rc, status, _ = self.d.tool_json("status", as_user=BOB)
        self.assertEqual(rc, 0)
        self.assertEqual(set(users[BOB]), (set(status) - {"remembered"}) | {"exempt"})

    def test_without_all_only_the_known_users_and_no_exempt_key(self):
        rc, listing, result = self.d.tool_json("admin", "list")
        self.assertEqual(rc, 0, result.stderr)
        users = by_user(listing)
        self.assertIn(ALICE, users)
        self.assertNotIn(BOB, users)
        self.assertNotIn("exempt", users[ALICE])

    def test_the_table_makes_the_rollout_obvious(self):
        result = self.d.tool("admin", "list", "--all")
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertRegex(lines[0], r"^USER\s+ENROLLED\s+EXEMPT\s+CODES")
        rows = {line.split()[0]: line.split() for line in lines[1:] if line.strip()}
        self.assertEqual(rows[BOB][1:3], ["no", "no"])
        self.assertEqual(rows[GLASS][1:3], ["no", "yes"])
        summary = re.search(r"^(\d+) accounts: (\d+) enrolled, (\d+) not enrolled, (\d+) exempt\.$",
                            result.stdout, re.M)
        self.assertIsNotNone(summary, result.stdout)
        total, enrolled, missing, _ = map(int, summary.groups())
        self.assertEqual(total, enrolled + missing)
        self.assertGreaterEqual(enrolled, 2)
        self.assertRegex(result.stdout, r"neither enrolled nor exempt")

    def test_admin_group_may_and_others_may_not(self):
        self.assertIn(GLASS, self.list_all(as_user=ADMIN))
        rc, error, result = self.d.tool_json("admin", "list", "--all", as_user=EVE)
        self.assertEqual(rc, 1, result.stdout)
        self.assertIn("error", error)

    def test_a_daemon_without_privileges_reads_the_login_rules(self):
        # As the hardened unit runs it: its own uid, no capabilities. NSS,
        # /etc/login.defs and /etc/shells must be readable from there.
        with h.Daemon(exempt_group=EXEMPT_GROUP).run_as(DAEMON_USER) as d:
            d.start()
            reply = h.call_raw(d.socket, h.encode_frame({"op": "admin_list", "all": True}, 3))
            self.assertEqual(reply["status"], "ok", reply)
            users = by_user(reply)
            self.assertIs(users[BOB]["enrolled"], False)
            self.assertIs(users[GLASS]["exempt"], True)
            self.assertNotIn(NOLOGIN_ACCOUNT, users)
            self.assertNotIn(SYSTEM_ACCOUNT, users)


class Stats(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not MODULE:
            raise unittest.SkipTest("KPANEL_PAM_MODULE not set (run through ctest)")
        cls.d = h.Daemon(max_failures=3, lockout_seconds=120, admin_group=ADMIN_GROUP).start()
        cls.pam = Pam()
        cls.svc = cls.pam.service("kp-stats", f"socket={cls.d.socket}")

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        cls.pam.cleanup()

    def stats(self, as_user=None):
        rc, stats, result = self.d.tool_json("admin", "stats", as_user=as_user)
        self.assertEqual(rc, 0, result.stderr)
        return stats

    def prometheus(self):
        result = self.d.tool("admin", "stats", "--prometheus")
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def login(self, *answers):
        ok, _ = self.pam.authenticate(self.svc, ALICE, *answers)
        return ok

    def test_counters_follow_real_logins(self):
        before = self.stats()
        self.assertEqual(before["verifications"]["ok"], 0)
        self.assertRegex(before["started_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

        secret, codes = self.d.enroll(ALICE)
        code = h.totp(secret, at=time.time() + 30)  # the confirming code's step is spent
        self.assertTrue(self.login(code))
        self.assertFalse(self.login(code), "replayed")
        self.assertTrue(self.login(codes[0]), "recovery code")
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(3):  # max_failures: the third starts a lockout
            self.assertFalse(self.login(wrong))
        # Locked: the module no longer prompts; a verify that still arrives
        # (a prompt answered while the lockout began) is refused unchecked.
        locked = h.call(self.d.socket, h.verify_request(ALICE, h.totp(secret)))
        self.assertEqual(locked["status"], "locked")

        after = self.stats()
        v = after["verifications"]
        self.assertEqual(v["ok"], 1)
        self.assertEqual(v["replayed"], 1)
        self.assertEqual(v["recovery"], 1)
        self.assertEqual(v["wrong_code"] + v["locked"], 4, v)
        self.assertGreaterEqual(v["locked"], 1)
        self.assertEqual(after["lockouts"], 1)
        self.assertEqual(after["enrollments"], 1)
        self.assertEqual(after["users_enrolled"], 1)
        self.assertEqual(after["users_locked"], 1)
        self.assertEqual(after["started_at"], before["started_at"])
        self.assertGreaterEqual(after["in_flight"]["fast"] + after["in_flight"]["slow"], 0)

        # The same numbers in the Prometheus text format, read by a real parser.
        if text_string_to_metric_families is None:
            self.skipTest("python3-prometheus-client is not installed")
        text = self.prometheus()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        samples = {}
        for family in families.values():
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        self.assertEqual(families["kpanel_totp_verifications"].type, "counter")
        self.assertEqual(families["kpanel_totp_users_enrolled"].type, "gauge")
        for outcome, count in v.items():
            self.assertEqual(
                samples[("kpanel_totp_verifications_total", (("outcome", outcome),))], count)
        self.assertEqual(samples[("kpanel_totp_lockouts_total", ())], 1)
        self.assertEqual(samples[("kpanel_totp_enrollments_total", ())], 1)
        self.assertEqual(samples[("kpanel_totp_users_locked", ())], 1)
        self.assertIn(("kpanel_totp_requests_in_flight", (("lane", "slow"),)), samples)
        self.assertIn(("kpanel_totp_logins_without_code_total", (("reason", "remembered"),)),
                      samples)
        for name in families:
            self.assertTrue(name.startswith("kpanel_totp_"), name)
        promtool = shutil.which("promtool")
        if promtool:
            checked = subprocess.run([promtool, "check", "metrics"], input=text,
                                     capture_output=True, text=True)
            self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)

    def test_readable_by_root_and_admin_group_only(self):
        self.assertIn("verifications", self.stats(as_user=ADMIN))
        rc, error, result = self.d.tool_json("admin", "stats", as_user=EVE)
        self.assertEqual(rc, 1, result.stdout)
        self.assertIn("error", error)
        refused = self.d.tool("admin", "stats", "--prometheus", as_user=EVE)
        self.assertEqual(refused.returncode, 1)
        self.assertEqual(refused.stdout, "", "nothing a textfile collector could read")

    def test_an_older_frame_does_not_know_the_op(self):
        for version in (1, 2):
            reply = h.call_raw(self.d.socket, h.encode_frame({"op": "admin_stats"}, version))
            self.assertEqual(reply["status"], "bad_request", reply)
        reply = h.call_raw(self.d.socket, h.encode_frame({"op": "admin_stats"}, 3))
        self.assertEqual(reply["status"], "ok", reply)

    def test_the_readme_example_writes_the_textfile_atomically(self):
        # The README's line, with its paths swapped for a temp dir.
        directory = tempfile.mkdtemp(prefix="kpanel-textfile-")
        try:
            target = f"{directory}/kpanel_totp.prom"
            command = (f"{h.TOOL} --socket {self.d.socket} admin stats --prometheus "
                       f"> {target}.$$ && mv {target}.$$ {target}")
            subprocess.run(["sh", "-c", command], check=True)
            with open(target) as f:
                text = f.read()
            self.assertIn("# TYPE kpanel_totp_verifications_total counter", text)
            self.assertEqual(os.listdir(directory), ["kpanel_totp.prom"])
        finally:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
