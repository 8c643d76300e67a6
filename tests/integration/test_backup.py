"""Backup and restore: `kpanel-totp admin backup FILE` while the daemon runs,
and `kpanel-totpd --restore FILE` with it stopped.

- The backup is a consistent snapshot: mode 0600, a valid SQLite database
  marked with the snapshot table, every user in it, including an enrollment
  confirmed just before that is still only in the -wal (copying state.db alone
  loses it). It is root's alone, never written through a symbolic link, and
  a failed write leaves neither a temporary file nor a partial FILE.
- The restore refuses while a daemon runs, a file that is not a snapshot, and
  goes ahead only on a terminal's yes or --yes. It lists, from the audit log,
  what happened after the snapshot (a reset, a recovery code used): after the
  restore those are undone (the reset user's old secret works again), which
  is why the list exists.
"""

import datetime
import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import time
import unittest

import kpanel_harness as h

ALICE, BOB, CAROL = "kpt_b_alice", "kpt_b_bob", "kpt_b_carol"
DAEMON_USER = "kpt_b_daemon"


def setUpModule():
    h.require_root(None)
    h.ensure_users(ALICE, BOB, CAROL, DAEMON_USER)


def tearDownModule():
    h.remove_users(ALICE, BOB, CAROL, DAEMON_USER)


def users_in(path):
    """The enrolled users in the database at `path` (none when it has no users table yet)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT user FROM users WHERE active_secret IS NOT NULL").fetchall()
    except sqlite3.OperationalError as e:
        if "no such table" not in str(e):
            raise
        rows = []
    finally:
        db.close()
    return {row[0] for row in rows}


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


class BackupRestore(unittest.TestCase):
    def setUp(self):
        self.d = h.Daemon().start()
        self.addCleanup(self.d.cleanup)
        self.tmp = tempfile.mkdtemp(prefix="kpanel-backup-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.database = os.path.join(self.d.state_dir, "state.db")

    def backup(self, path, *extra, **kwargs):
        return self.d.tool(*extra, "admin", "backup", "--config", self.d.config_path, path,
                           **kwargs)

    def restore(self, path, *extra, input_text=""):
        return subprocess.run([h.TOTPD, "--config", self.d.config_path, "--restore", path, *extra],
                              input=input_text, capture_output=True, text=True, timeout=60)

    # ---- backup ------------------------------------------------------------

    def test_backup_while_running_is_a_private_consistent_snapshot(self):
        self.d.enroll(ALICE)
        self.d.enroll(BOB)
        target = os.path.join(self.tmp, "state.backup")
        before = int(time.time())
        rc, out, result = self.d.tool_json("admin", "backup", "--config", self.d.config_path,
                                           target)
        self.assertEqual(rc, 0, result.stderr)
        self.assertEqual(out["file"], target)
        self.assertEqual(out["users"], 2)
        self.assertEqual(out["key_file"], self.d.key_file)
        info = os.lstat(target)
        self.assertTrue(stat.S_ISREG(info.st_mode))
        self.assertEqual(stat.S_IMODE(info.st_mode), 0o600)
        db = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
        self.addCleanup(db.close)
        self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        (taken_at,), = db.execute("SELECT taken_at FROM snapshot").fetchall()
        self.assertTrue(before <= taken_at <= time.time() + 1)
        self.assertEqual(users_in(target), {ALICE, BOB})
        # The human form says where the key is and that it is not in the file.
        out = self.backup(target)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(self.d.key_file, out.stdout)
        self.assertIn("does not contain the key", out.stdout)
        self.assertEqual(os.listdir(self.tmp), ["state.backup"])
        # The daemon kept serving throughout.
        self.assertEqual(self.d.tool_json("status", as_user=ALICE)[0], 0)

    def test_an_enrollment_still_in_the_wal_is_in_the_backup(self):
        self.d.enroll(ALICE)
        self.d.enroll(CAROL)  # just before the backup: in state.db-wal only
        self.assertGreater(os.path.getsize(self.database + "-wal"), 0)
        copied = os.path.join(self.tmp, "copied.db")
        shutil.copyfile(self.database, copied)  # what used to be done, and lost it
        self.assertNotIn(CAROL, users_in(copied))
        target = os.path.join(self.tmp, "state.backup")
        out = self.backup(target)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(users_in(target), {ALICE, CAROL})

    def test_backup_needs_root(self):
        os.chmod(self.tmp, 0o777)
        target = os.path.join(self.tmp, "state.backup")
        out = self.backup(target, as_user=ALICE)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn("needs root", out.stderr)
        self.assertEqual(len(out.stderr.strip().splitlines()), 1, out.stderr)
        rc, err, _ = self.d.tool_json("admin", "backup", "--config", self.d.config_path, target,
                                      as_user=ALICE)
        self.assertEqual((rc, err["error"]), (1, "forbidden"))
        self.assertFalse(os.path.exists(target))

    def test_a_symlink_at_file_is_refused_and_its_target_untouched(self):
        victim = os.path.join(self.tmp, "victim")
        with open(victim, "w") as f:
            f.write("keep me\n")
        os.chmod(victim, 0o644)
        link = os.path.join(self.tmp, "state.backup")
        os.symlink(victim, link)
        out = self.backup(link)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn("symbolic link", out.stderr)
        self.assertTrue(os.path.islink(link))
        with open(victim) as f:
            self.assertEqual(f.read(), "keep me\n")
        self.assertEqual(stat.S_IMODE(os.stat(victim).st_mode), 0o644)
        self.assertEqual(sorted(os.listdir(self.tmp)), ["state.backup", "victim"])

    def test_a_failed_write_leaves_no_temporary_and_no_partial_file(self):
        self.d.enroll(ALICE)
        out = self.backup(os.path.join(self.tmp, "missing", "state.backup"))
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertEqual(os.listdir(self.tmp), [])
        # A write that fails after the temporary file exists (fsync: EIO):
        # the old FILE stays whole and nothing else is left.
        shim = os.environ.get("KPANEL_FAIL_FSYNC_SHIM")
        if not shim:
            self.skipTest("KPANEL_FAIL_FSYNC_SHIM not set (CTest sets it)")
        target = os.path.join(self.tmp, "state.backup")
        with open(target, "w") as f:
            f.write("the previous backup\n")
        flag = os.path.join(self.tmp, "fail-fsync")
        open(flag, "w").close()
        env = dict(os.environ, LD_PRELOAD=h.preload_into_ours(shim), KPANEL_FAIL_FSYNC=flag)
        result = subprocess.run([h.TOOL, "admin", "backup", "--config", self.d.config_path,
                                 target], env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("cannot sync", result.stderr)
        self.assertEqual(sorted(os.listdir(self.tmp)), ["fail-fsync", "state.backup"])
        with open(target) as f:
            self.assertEqual(f.read(), "the previous backup\n")

    def test_a_backup_by_root_leaves_the_daemons_files_its_own(self):
        # The daemon under its own uid, as on a real host: root's read-only
        # connection must not leave a -wal or -shm the daemon cannot write.
        self.d.cleanup()
        self.d = h.Daemon().run_as(DAEMON_USER).start()
        self.addCleanup(self.d.cleanup)
        self.d.enroll_raw(ALICE)
        target = os.path.join(self.tmp, "state.backup")
        out = self.backup(target)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(users_in(target), {ALICE})
        uid = pwd.getpwnam(DAEMON_USER).pw_uid
        for name in os.listdir(self.d.state_dir):
            self.assertEqual(os.lstat(os.path.join(self.d.state_dir, name)).st_uid, uid, name)
        self.d.enroll_raw(BOB)  # still writes, then again after a restart
        self.d.restart()
        self.d.enroll_raw(CAROL)

    # ---- restore -----------------------------------------------------------

    def take_backup(self):
        target = os.path.join(self.tmp, "state.backup")
        out = self.backup(target)
        self.assertEqual(out.returncode, 0, out.stderr)
        return target

    def test_restore_refuses_while_the_daemon_runs(self):
        self.d.enroll(ALICE)
        target = self.take_backup()
        out = self.restore(target, "--yes")
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn("stop kpanel-totpd", out.stderr)
        self.assertEqual(self.d.tool_json("status", as_user=ALICE)[0], 0)

    def test_restore_refuses_what_is_not_a_snapshot(self):
        self.d.enroll(ALICE)
        self.d.stop()
        copied = os.path.join(self.tmp, "copied.db")
        shutil.copyfile(self.database, copied)
        before = read_bytes(self.database)
        for path, why in ((copied, "not a kpanel-totp snapshot"),
                          (self.d.config_path, "not a SQLite database"),
                          (os.path.join(self.tmp, "nothing"), "cannot be opened")):
            out = self.restore(path, "--yes")
            self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
            self.assertIn(why, out.stderr)
        self.assertEqual(read_bytes(self.database), before)

    def test_restore_asks_and_a_no_changes_nothing(self):
        self.d.enroll(ALICE)
        target = self.take_backup()
        self.d.tool("admin", "reset", ALICE)
        self.d.stop()
        # Not a terminal and no --yes: refused after the report.
        out = self.restore(target, "--audit-log", os.devnull)
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn("--yes", out.stderr)
        self.assertNotIn(ALICE, users_in(self.database))
        # A terminal: the question, and "n".
        import pexpect
        child = pexpect.spawn(h.TOTPD, ["--config", self.d.config_path, "--restore", target,
                                        "--audit-log", os.devnull], timeout=30, encoding="utf-8")
        child.expect_exact("Restore this snapshot? [y/N] ")
        child.sendline("n")
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 1, child.before)
        self.assertNotIn(ALICE, users_in(self.database))

    def test_restore_lists_what_it_undoes_and_brings_the_old_state_back(self):
        self.d.enroll(ALICE)
        bob_secret, bob_codes = self.d.enroll(BOB)
        target = self.take_backup()
        # After the backup bob logs in with the current code: the restored
        # state never saw it used, and it must not work again.
        bob_code = h.totp(bob_secret, at=time.time() + 30)  # enrolling used this step
        self.assertEqual(self.d.call(h.verify_request(BOB, bob_code))["status"], "ok")
        # After the backup: an admin resets alice (her phone was stolen), bob
        # uses a recovery code. The daemon's audit lines (stderr here) are
        # stamped the way rsyslog writes them into /var/log/auth.log.
        log_offset = len(self.d.log())
        self.assertEqual(self.d.tool("admin", "reset", ALICE).returncode, 0)
        self.assertEqual(self.d.call(h.verify_request(BOB, bob_codes[0]))["status"], "ok")
        now = datetime.datetime.now(datetime.timezone.utc)
        stamp = now.isoformat(timespec="microseconds")
        earlier = (now - datetime.timedelta(minutes=5)).isoformat(timespec="microseconds")
        audit_log = os.path.join(self.tmp, "auth.log")
        with open(audit_log, "w") as f:
            # The log reaches back before the snapshot, so it covers it all.
            f.write(f"{earlier} host sshd[7]: Accepted publickey for root\n")
            for line in self.d.log()[log_offset:].splitlines():
                if line.startswith("audit: "):
                    f.write(f"{stamp} host kpanel-totpd[{self.d.process.pid}]: {line[7:]}\n")
        self.d.stop()
        # The current state's owner is kept (the daemon's user on a real host).
        # key_file is read as that user, as the daemon reads it.
        bob_uid = pwd.getpwnam(BOB).pw_uid
        for path in (self.database, self.d.key_file):
            os.chown(path, bob_uid, bob_uid)
        out = self.restore(target, "--audit-log", audit_log, "--yes")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        report = out.stdout
        self.assertIn(f"{ALICE}: enrollment reset by an admin", report)
        self.assertIn(f"kpanel-totp admin reset {ALICE}", report)
        self.assertIn(f"{BOB}: used a recovery code", report)
        self.assertIn("start kpanel-totpd", report)
        self.assertNotIn("Warning", report)
        self.assertEqual(report.count("kpanel-totp admin reset"), 1, report)
        info = os.lstat(self.database)
        self.assertEqual((stat.S_IMODE(info.st_mode), info.st_uid), (0o600, bob_uid))
        for suffix in ("-wal", "-shm"):
            self.assertFalse(os.path.exists(self.database + suffix))
        for path in (self.database, self.d.key_file):
            os.chown(path, 0, 0)
        # Backed up again before the daemon opened it (so it still has its
        # mark): the new snapshot gets its own.
        again = os.path.join(self.tmp, "again.backup")
        out = self.backup(again)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(users_in(again), {ALICE, BOB})
        self.d.start()
        # The restore fences TOTP codes as after a host crash: the code bob
        # used after the backup is refused (and not counted as a guess).
        fences = [line for line in self.d.log().splitlines() if "event=fence" in line]
        self.assertEqual(len(fences), 1, fences)
        self.assertIn("cause=restored_backup", fences[0])
        answer = self.d.call(h.verify_request(BOB, bob_code))
        self.assertEqual(answer["status"], "replayed", answer)
        # What the report is for: the reset is undone, the old secret is back.
        rc, status, _ = self.d.tool_json("status", as_user=ALICE)
        self.assertEqual((rc, status["enrolled"]), (0, True))
        self.assertEqual(self.d.call(h.verify_request(BOB, bob_codes[0]))["status"], "ok")
        self.assertEqual(self.d.tool("admin", "reset", ALICE).returncode, 0)

    def test_restore_without_an_audit_log_says_so(self):
        self.d.enroll(ALICE)
        target = self.take_backup()
        self.d.stop()
        out = self.restore(target, "--audit-log", os.path.join(self.tmp, "absent.log"), "--yes")
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn("cannot read the audit log", out.stderr)
        if not os.path.exists("/var/log/auth.log"):
            out = self.restore(target, "--yes")
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertIn("cannot tell what changed since", out.stdout)


class NeverStarted(unittest.TestCase):
    def test_restore_leaves_making_state_dir_to_the_daemon(self):
        # Root making it would leave it root's, and the daemon's user locked out.
        with h.Daemon() as d:
            snapshot = os.path.join(d.dir, "state.backup")
            with open(snapshot, "wb") as f:
                f.write(b"SQLite format 3\0" + bytes(100))
            out = subprocess.run([h.TOTPD, "--config", d.config_path, "--restore", snapshot,
                                  "--yes"], capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 1, out.stderr)
            self.assertIn("start kpanel-totpd once", out.stderr)
            self.assertFalse(os.path.exists(d.state_dir))


class Usage(unittest.TestCase):
    def test_restore_flags_without_restore_are_usage_errors(self):
        for args in (["--yes"], ["--audit-log", "/var/log/auth.log"], ["--restore"]):
            out = subprocess.run([h.TOTPD, *args], capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 2, args)
            self.assertIn("usage", out.stderr)


class Postgresql(unittest.TestCase):
    def test_a_fleet_store_is_backed_up_with_pg_dump(self):
        # Never started: both read only the configuration.
        with h.Daemon(store="postgresql", postgresql_dsn="host=/nonexistent dbname=x") as d:
            target = os.path.join(d.dir, "state.backup")
            out = d.tool("admin", "backup", "--config", d.config_path, target)
            self.assertEqual(out.returncode, 1, out.stderr)
            self.assertIn("pg_dump", out.stderr)
            self.assertFalse(os.path.exists(target))
            out = subprocess.run([h.TOTPD, "--config", d.config_path, "--restore", target,
                                  "--yes"], capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 1, out.stderr)
            self.assertIn("pg_dump", out.stderr)


if __name__ == "__main__":
    unittest.main()
