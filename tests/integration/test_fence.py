"""The crash fence: accepted TOTP steps are committed without waiting for the
disk, so a host that stops uncleanly may lose the last few seconds of them.
After such a stop (told from a daemon crash by the kernel's boot id) and
after a restored backup, the daemon refuses every TOTP code whose step is
not later than the fence (now, or the durable high-water time plus what was
not yet synced, plus `window`): a code accepted before the crash never works
again. The refusal is `replayed` (the user is told to wait for the next
code) and counts toward no lockout; recovery codes work meanwhile.

A host crash is simulated: the state files are copied while the daemon is
stopped with SIGSTOP right after a durable change (what was on disk at the
last sync), a code is then verified (a deferred write), the daemon is
killed, the copy is put back (the deferred write is lost, as in a power
loss) and the daemon starts under another boot id (a bind mount over
/proc/sys/kernel/random/boot_id in a private mount namespace; root only).
"""

import calendar
import os
import re
import shutil
import signal
import sqlite3
import time
import unittest
import uuid

import kpanel_harness as h

ALICE = "kpt_fn_alice"
PERIOD = 15  # the shortest the config allows: less waiting for the fence's end
FILES = ("state.db", "state.db-wal", "state.db-shm")


def setUpModule():
    h.require_root(None)
    h.ensure_users(ALICE)


def tearDownModule():
    h.remove_users(ALICE)


def code(secret, at):
    return h.totp(secret, at=at, period=PERIOD)


class Fence(unittest.TestCase):
    def setUp(self):
        self.daemon = h.Daemon(period=PERIOD, max_failures=3)
        self.addCleanup(self.daemon.cleanup)
        self.daemon.start()

    def call(self, request):
        reply = self.daemon.call(request)
        self.assertIsNotNone(reply, f"no reply to {request['op']}:\n{self.daemon.log()}")
        return reply

    def verify(self, code_text):
        return self.call(h.verify_request(ALICE, code_text))

    def enroll(self):
        begun = self.call({"op": "enroll_begin", "user": ALICE})
        self.assertEqual(begun["status"], "ok", begun)
        secret = begun["secret_base32"]
        now = time.time()
        confirmed = self.call({"op": "enroll_confirm", "user": ALICE, "code": code(secret, now)})
        self.assertEqual(confirmed["status"], "ok", confirmed)
        self.confirmed_step = int(now // PERIOD)  # spent: its code is a real replay
        return secret, confirmed["codes"]

    def state_path(self, name):
        return os.path.join(self.daemon.state_dir, name)

    def copy_state(self):
        """The files as they are now, with the daemon held still meanwhile."""
        copy = os.path.join(self.daemon.dir, "copy")
        os.makedirs(copy)
        self.daemon.process.send_signal(signal.SIGSTOP)
        try:
            for name in FILES:
                if os.path.exists(self.state_path(name)):
                    shutil.copy2(self.state_path(name), os.path.join(copy, name))
        finally:
            self.daemon.process.send_signal(signal.SIGCONT)
        return copy

    def put_back(self, copy):
        for name in FILES:
            if os.path.exists(self.state_path(name)):
                os.unlink(self.state_path(name))
            if os.path.exists(os.path.join(copy, name)):
                shutil.copy2(os.path.join(copy, name), self.state_path(name))

    def fence_lines(self):
        return [line for line in self.daemon.log().splitlines() if "event=fence" in line]

    def fence_until(self):
        lines = self.fence_lines()
        self.assertEqual(len(lines), 1, self.daemon.log())
        stamp = re.search(r"fence_until=(\S+)", lines[0]).group(1)
        return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))

    def assert_fenced(self, code_text):
        reply = self.verify(code_text)
        self.assertEqual(reply["status"], "replayed", reply)
        self.assertNotIn("failures_left", reply)  # not counted

    def assert_not_locked(self):
        status = self.call({"op": "status", "user": ALICE})["user_status"]
        self.assertIsNone(status.get("locked_until"), status)

    def test_a_host_crash_fences_the_codes_it_may_have_lost_and_nothing_else(self):
        secret, recovery = self.enroll()
        copy = self.copy_state()  # the enrollment was fsync'd before its reply
        used = code(secret, time.time() + PERIOD)
        self.assertEqual(self.verify(used)["status"], "ok")
        self.daemon.kill()
        self.put_back(copy)  # the accepted step was not yet on disk
        self.daemon.boot_id = str(uuid.uuid4())
        self.daemon.start()

        until = self.fence_until()
        self.assertIn("cause=unclean_host_stop", self.fence_lines()[0])
        self.assertIn("users must wait for their next code", self.daemon.log())
        now = time.time()
        self.assertGreaterEqual(until, int(now) - 1)
        # The code used before the crash, and every other code of the window
        # the state on disk has not seen used, more times than max_failures:
        # refused, never counted.
        candidates = [used, used, used]
        candidates += [code(secret, at) for at in (now, now + PERIOD)
                       if int(at // PERIOD) > self.confirmed_step]
        for candidate in candidates:
            self.assert_fenced(candidate)
        self.assert_not_locked()
        # Recovery codes work during the fence.
        reply = self.verify(recovery[0])
        self.assertEqual((reply["status"], reply.get("used_recovery_code")), ("ok", True), reply)
        # A restart during the fence keeps it, and does not announce it again.
        self.daemon.kill()
        self.daemon.start()
        self.assertEqual(len(self.fence_lines()), 1)
        self.assert_fenced(used)

        # The first step after the fence works once its time has come.
        first_open = until // PERIOD + 1 + 1  # window 1
        time.sleep(max(0.0, (first_open - 1) * PERIOD - time.time() + 0.2))
        fresh = code(secret, first_open * PERIOD)
        reply = self.verify(fresh)
        self.assertEqual(reply["status"], "ok", f"{reply}\n{self.daemon.log()}")
        self.assertNotEqual(self.verify(fresh)["status"], "ok")
        self.assert_not_locked()

    def test_a_daemon_crash_fences_nothing(self):
        secret, _ = self.enroll()
        used = code(secret, time.time() + PERIOD)
        self.assertEqual(self.verify(used)["status"], "ok")
        self.daemon.kill()
        self.daemon.start()  # the same boot: the page cache kept the step
        self.assertEqual(self.fence_lines(), [])
        self.assertIn("did not stop cleanly, but the host did not restart", self.daemon.log())
        reply = self.verify(used)
        self.assertEqual(reply["status"], "replayed", reply)
        self.assertIn("failures_left", reply)  # a real replay, counted
        # No fence: the next step's code works as soon as it is in the window.
        h.wait_for_next_step(PERIOD)
        fresh = code(secret, time.time() + PERIOD)
        self.assertEqual(self.verify(fresh)["status"], "ok")

    def test_a_restored_snapshot_is_fenced_and_its_table_dropped(self):
        secret, recovery = self.enroll()
        self.assertEqual(self.daemon.stop(), 0)
        # What `kpanel-totp admin backup` makes: the database plus one table.
        backup = os.path.join(self.daemon.dir, "backup.db")
        with sqlite3.connect(self.state_path("state.db")) as source, \
                sqlite3.connect(backup) as target:
            source.backup(target)
            taken_at = int(time.time())
            target.execute("CREATE TABLE snapshot(taken_at INTEGER NOT NULL)")
            target.execute("INSERT INTO snapshot VALUES (?)", (taken_at,))
        source.close()
        target.close()
        for name in FILES:
            if os.path.exists(self.state_path(name)):
                os.unlink(self.state_path(name))
        shutil.copy(backup, self.state_path("state.db"))
        os.chmod(self.state_path("state.db"), 0o600)

        self.daemon.start()
        line = self.fence_lines()
        self.assertEqual(len(line), 1, self.daemon.log())
        self.assertIn("cause=restored_backup", line[0])
        self.assertIn("snapshot_taken_at=" + time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                           time.gmtime(taken_at)), line[0])
        self.assert_fenced(code(secret, time.time() + PERIOD))
        reply = self.verify(recovery[0])
        self.assertEqual(reply["status"], "ok", reply)
        self.assertEqual(self.daemon.stop(), 0)
        with sqlite3.connect(f"file:{self.state_path('state.db')}?mode=ro", uri=True) as db:
            tables = [row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
        db.close()
        self.assertNotIn("snapshot", tables)
        # Applied once: a restart does not announce it again.
        self.daemon.start()
        self.assertEqual(len(self.fence_lines()), 1)


if __name__ == "__main__":
    unittest.main()
