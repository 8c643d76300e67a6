"""Storage faults: state that cannot be written. The daemon must fail closed
(a verify it cannot record, right code or wrong, is refused with
store_unavailable: never accepted), say so in one log line rather than one
per request, keep answering reads (status), and recover by itself once the
fault clears: no restart, nothing committed lost or corrupted.

- FullDisk: the state directory on a tiny tmpfs of its own, filled up, then
  freed. Needs root (mount); unmounted however the test ends.
- FailingFsync: fsync()/fdatasync() fail with EIO (a test-only LD_PRELOAD
  shim, fail_fsync.c, built by CMake) while a flag file exists. A TOTP
  verify is committed without waiting for the disk (a host crash's loss of
  it is covered by the crash fence), so it goes on working; what must be on
  disk before its reply (a recovery code, new recovery codes) is refused.
- ReadOnlyStateDir: the daemon, run as an unprivileged user, starts while
  its state directory is read-only to it (chmod 0500: root would not be
  stopped by a mode), then the directory becomes writable.
- A read-only remount is not tested: Linux refuses `mount -o remount,ro`
  (EBUSY) while any process holds a file on it open for writing, which the
  running daemon always does, so that fault cannot reach a running daemon.
"""

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest

import kpanel_harness as h

ALICE = "kpt_f_alice"
DAEMON_USER = "kpt_k_daemon"  # an unprivileged account of its own for the daemon
FAILURE_LINE = "state store failed"


def setUpModule():
    h.require_root(None)
    h.ensure_users(ALICE, DAEMON_USER)


def tearDownModule():
    h.remove_users(ALICE, DAEMON_USER)


def fill(directory):
    """Writes a file until the file system has not one byte left."""
    path = os.path.join(directory, "filler")
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass
    return path


class StorageFault:
    """The scenario; subclasses say how the fault starts and ends."""

    expected_in_log = ""
    # False when the fault hits only fsync: a TOTP verify does not wait for it.
    totp_verify_fails = True

    def start_fault(self):
        raise NotImplementedError

    def end_fault(self):
        raise NotImplementedError

    def start_daemon(self, state_dir, preload=None):
        self.state_dir = state_dir
        self.daemon = h.Daemon(state_dir=state_dir)
        self.addCleanup(self.daemon.cleanup)
        self.preload = preload
        self.restart_daemon()

    def restart_daemon(self):
        saved = os.environ.get("LD_PRELOAD")
        if self.preload:  # the daemon's environment is copied from ours at start
            os.environ["LD_PRELOAD"] = self.preload
        try:
            self.daemon.start()
        finally:
            if saved is None:
                os.environ.pop("LD_PRELOAD", None)
            else:
                os.environ["LD_PRELOAD"] = saved

    def call(self, request):
        reply = self.daemon.call(request)
        self.assertIsNotNone(reply, f"no reply to {request['op']}:\n{self.daemon.log()}")
        return reply

    def enroll(self):
        begun = self.call({"op": "enroll_begin", "user": ALICE})
        self.assertEqual(begun["status"], "ok", begun)
        secret = begun["secret_base32"]
        confirmed = self.call({"op": "enroll_confirm", "user": ALICE, "code": h.totp(secret)})
        self.assertEqual(confirmed["status"], "ok", confirmed)
        return secret, confirmed["codes"]

    def failure_lines(self):
        return [line for line in self.daemon.log().splitlines() if FAILURE_LINE in line]

    def integrity(self):
        db = os.path.join(self.state_dir, "state.db")
        # Stopped cleanly, the daemon left no WAL; read-only SQLite then needs
        # to be told the file will not change under it.
        flags = "mode=ro" if os.path.exists(db + "-wal") else "mode=ro&immutable=1"
        with sqlite3.connect(f"file:{db}?{flags}", uri=True) as connection:
            result = connection.execute("PRAGMA integrity_check").fetchall()
        connection.close()
        return result

    def test_fails_closed_logs_once_and_recovers_without_restart(self):
        secret, recovery = self.enroll()
        accepted = h.totp(secret, at=time.time() + 30)  # the confirming code used this step
        self.assertEqual(self.call(h.verify_request(ALICE, accepted))["status"], "ok")

        self.start_fault()
        # Nothing that must be recorded is answered as if it were.
        attempts = 0
        if not self.totp_verify_fails:
            # Committed without the disk: answered, and counted.
            reply = self.call(h.verify_request(ALICE, "000000"))
            self.assertEqual(reply["status"], "wrong_code", reply)
            self.assertEqual(self.failure_lines(), [])
        # A recovery code's failure is counted on disk before the reply.
        wrong = "000000" if self.totp_verify_fails else "zzzzz-zzzzz"
        for _ in range(10 if self.totp_verify_fails else 3):
            attempts += 1
            reply = self.call(h.verify_request(ALICE, wrong))
            self.assertEqual(reply["status"], "store_unavailable", reply)
        # The reply names the configured store, and so does the tool.
        where = "the SQLite database in " + self.state_dir
        self.assertEqual(reply.get("store"), where, reply)
        attempts += 1
        tool = self.daemon.tool("--user", ALICE, "recovery-codes", "--regenerate",
                                input_text="000000\n")
        self.assertEqual(tool.returncode, 1, tool.stderr)
        self.assertIn(f"cannot use its state store ({where})", tool.stderr)
        h.wait_for_next_step()
        fresh = h.totp(secret, at=time.time() + 30)
        for code in (fresh, recovery[0]) if self.totp_verify_fails else (recovery[0],):
            attempts += 1
            reply = self.call(h.verify_request(ALICE, code))
            self.assertEqual(reply["status"], "store_unavailable", reply)
        # Reads go on.
        status = self.call({"op": "status", "user": ALICE})
        self.assertEqual(status["status"], "ok", status)
        self.assertTrue(status["user_status"]["enrolled"])
        # One line says what is wrong, not one per request.
        lines = self.failure_lines()
        self.assertEqual(len(lines), 1, f"{attempts} refused requests:\n" + "\n".join(lines))
        self.assertIn(self.expected_in_log, lines[0])

        self.end_fault()
        # By itself: the same fresh code and recovery code now work (refusing
        # them spent nothing), once each.
        self.assertEqual(self.call(h.verify_request(ALICE, fresh))["status"], "ok")
        self.assertNotEqual(self.call(h.verify_request(ALICE, fresh))["status"], "ok")
        reply = self.call(h.verify_request(ALICE, recovery[0]))
        self.assertEqual((reply["status"], reply.get("used_recovery_code")), ("ok", True), reply)
        self.assertNotEqual(self.call(h.verify_request(ALICE, recovery[0]))["status"], "ok")
        self.assertIn("recovered", self.daemon.log())
        self.assertEqual(len(self.failure_lines()), 1)

        # Nothing committed before, during or after the fault is lost.
        self.assertEqual(self.daemon.stop(), 0)
        self.assertEqual(self.integrity(), [("ok",)])
        self.restart_daemon()
        for code in (accepted, fresh, recovery[0]):
            self.assertNotEqual(self.call(h.verify_request(ALICE, code))["status"], "ok")
        status = self.call({"op": "status", "user": ALICE})["user_status"]
        self.assertEqual((status["enrolled"], status["recovery_codes_left"]),
                         (True, len(recovery) - 1))


class FullDisk(StorageFault, unittest.TestCase):
    expected_in_log = "database or disk is full"

    def setUp(self):
        root = tempfile.mkdtemp(prefix="kpanel-sf-")
        self.addCleanup(shutil.rmtree, root, True)
        self.mount = os.path.join(root, "mnt")
        os.makedirs(self.mount)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "kpanel-sf",
                        self.mount], check=True)
        self.addCleanup(subprocess.run, ["umount", "--lazy", self.mount], check=False)
        self.start_daemon(os.path.join(self.mount, "state"))

    def start_fault(self):
        self.filler = fill(self.mount)
        self.assertEqual(shutil.disk_usage(self.mount).free, 0)

    def end_fault(self):
        os.unlink(self.filler)


class FailingFsync(StorageFault, unittest.TestCase):
    expected_in_log = "disk I/O error"
    totp_verify_fails = False

    def setUp(self):
        shim = os.environ.get("KPANEL_FAIL_FSYNC_SHIM")
        if not shim:
            raise unittest.SkipTest("KPANEL_FAIL_FSYNC_SHIM not set (CTest sets it)")
        root = tempfile.mkdtemp(prefix="kpanel-sf-")
        self.addCleanup(shutil.rmtree, root, True)
        self.flag = os.path.join(root, "fail-fsync")
        os.environ["KPANEL_FAIL_FSYNC"] = self.flag
        self.addCleanup(os.environ.pop, "KPANEL_FAIL_FSYNC", None)
        state = os.path.join(root, "state")
        self.start_daemon(state, h.preload_into_ours(shim))

    def start_fault(self):
        open(self.flag, "w").close()

    def end_fault(self):
        os.unlink(self.flag)


class ReadOnlyStateDir(unittest.TestCase):
    """A state directory read-only when the daemon starts (a mount not yet
    writable, a mode set wrong) and writable later: the daemon serves reads,
    refuses what it cannot record, and recovers by itself like from a full disk."""

    def call(self, request):
        reply = self.daemon.call(request)
        self.assertIsNotNone(reply, f"no reply to {request['op']}:\n{self.daemon.log()}")
        return reply

    def make_writable(self, files):
        os.chmod(self.daemon.state_dir, 0o700)
        for path in files:
            os.chmod(path, 0o600)

    def test_recovers_without_restart_once_the_directory_is_writable(self):
        self.daemon = h.Daemon().run_as(DAEMON_USER)
        self.addCleanup(self.daemon.cleanup)
        self.daemon.start()
        begun = self.call({"op": "enroll_begin", "user": ALICE})
        self.assertEqual(begun["status"], "ok", begun)
        secret = begun["secret_base32"]
        confirmed = self.call({"op": "enroll_confirm", "user": ALICE, "code": h.totp(secret)})
        self.assertEqual(confirmed["status"], "ok", confirmed)
        self.assertEqual(self.daemon.stop(), 0)

        # What a read-only mount does to the daemon's user, by modes: nothing
        # in the directory can be written, nothing can be created in it.
        files = [os.path.join(self.daemon.state_dir, name)
                 for name in os.listdir(self.daemon.state_dir)]
        for path in files:
            os.chmod(path, 0o400)
        os.chmod(self.daemon.state_dir, 0o500)
        self.addCleanup(self.make_writable, files)
        self.daemon.start()
        h.wait_for_next_step()
        fresh = h.totp(secret)
        reply = self.call(h.verify_request(ALICE, fresh))
        self.assertEqual(reply["status"], "store_unavailable", reply)
        status = self.call({"op": "status", "user": ALICE})
        self.assertEqual(status["status"], "ok", status)
        self.assertTrue(status["user_status"]["enrolled"])

        self.make_writable(files)
        reply = self.call(h.verify_request(ALICE, fresh))
        self.assertEqual(reply["status"], "ok", f"{reply}\n{self.daemon.log()}")
        self.assertNotEqual(self.call(h.verify_request(ALICE, fresh))["status"], "ok")
        self.assertIn("recovered", self.daemon.log())
        self.assertEqual(self.daemon.stop(), 0)
        self.daemon.start()
        self.assertNotEqual(self.call(h.verify_request(ALICE, fresh))["status"], "ok")


if __name__ == "__main__":
    unittest.main()
