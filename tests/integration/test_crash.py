"""Crash consistency ("a crash never resurrects a used code or
recovery code, nor clears a lockout"): mixed load from several threads, the
daemon SIGKILLed at a random moment, restarted on the same state, and after
every round:

- the state database passes `PRAGMA integrity_check` (read-only, right after
  the kill, before the daemon touches it again);
- every TOTP code and recovery code whose "ok" reply was received is refused
  when sent again;
- every user whose "locked" reply was received is still locked;
- no enrollment is half made: each user is enrolled with all recovery codes
  or not enrolled (an enrollment whose confirmation was answered, and not
  reset since, is there and works with its secret; a reset that was answered
  is not undone).

KPANEL_CRASH_ROUNDS sets the number of rounds (CI: 20; a long run: 100).
Many users, each with its own codes, so no round waits for a TOTP step.
"""

import base64
import hashlib
import hmac
import os
import random
import sqlite3
import struct
import threading
import time
import unittest

import kpanel_harness as h

ROUNDS = int(os.environ.get("KPANEL_CRASH_ROUNDS", "20"))
PERIOD = 30
RECOVERY_CODES = 10
MAX_FAILURES = 3

# Disjoint roles, so every expectation below has one writer.
TOTP_USERS = [f"kpt_c_{i:02d}" for i in range(0, 16)]       # right codes and replays
LOCKOUT_USERS = [f"kpt_c_{i:02d}" for i in range(16, 20)]   # wrong codes until locked, unlock
RECOVERY_USERS = [f"kpt_c_{i:02d}" for i in range(20, 24)]  # recovery codes
ENROLL_USERS = [f"kpt_c_{i:02d}" for i in range(24, 30)]    # enroll, confirm, admin reset
ALL_USERS = TOTP_USERS + LOCKOUT_USERS + RECOVERY_USERS + ENROLL_USERS
THREADS = 6


def setUpModule():
    h.require_root(None)
    h.ensure_users(*ALL_USERS)


def tearDownModule():
    h.remove_users(*ALL_USERS)


def code_at(secret, step, digits=6):
    """RFC 6238 with SHA-1; checked against oathtool in setUp. Computed here,
    not by a subprocess, so the load is not limited by forks."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = (struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 10**digits
    return f"{value:0{digits}d}"


def center_step():
    return int(time.time() // PERIOD)


class Lost(Exception):
    """No reply: the daemon died (or was killed) while the request was out."""


class State:
    """What the test knows for certain, per user; only replies received count."""

    def __init__(self):
        self.lock = threading.Lock()
        self.secret = {}             # user -> base32 secret of the active enrollment
        self.accepted_steps = {}     # user -> {step: code} with an "ok" reply
        self.sent_steps = {}         # user -> highest step ever sent
        self.recovery_left = {}      # user -> codes never sent
        self.recovery_accepted = {}  # user -> codes with an "ok" reply
        self.recovery_checked = {}   # user -> how many of those were sent again already
        self.must_be_locked = set()  # "locked" reply received, no unlock sent since
        self.enrolled = {}           # enroll user -> secret (confirm answered ok), None (reset
        #                              answered), or "unknown" (a request went out unanswered)
        self.counts = {"accepted": 0, "recovery_accepted": 0, "locked": 0, "enrolled": 0,
                       "reset": 0, "lost": 0, "refused": 0}


class CrashConsistency(unittest.TestCase):
    def setUp(self):
        self.daemon = h.Daemon(max_failures=MAX_FAILURES, lockout_seconds=3600,
                               lockout_max_seconds=3600, recovery_codes=RECOVERY_CODES)
        self.daemon.start()
        self.state = State()
        self.db = os.path.join(self.daemon.state_dir, "state.db")
        for user in TOTP_USERS + LOCKOUT_USERS + RECOVERY_USERS:
            self.enroll(user)
        secret = self.state.secret[TOTP_USERS[0]]
        at = time.time()
        self.assertEqual(code_at(secret, int(at // PERIOD)), h.totp(secret, at=at))
        for user in ENROLL_USERS:
            self.state.enrolled[user] = None

    def tearDown(self):
        self.daemon.cleanup()

    # ---- requests ---------------------------------------------------------------

    def call(self, request, timeout=20.0):
        """As root, like the PAM module inside sshd."""
        try:
            reply = h.call_raw(self.daemon.socket, h.encode_frame(request), timeout)
        except OSError as e:  # refused, reset, timed out: the daemon is gone
            raise Lost() from e
        if reply is None:
            raise Lost()
        return reply

    def enroll(self, user):
        begun = self.call({"op": "enroll_begin", "user": user})
        self.assertEqual(begun["status"], "ok", begun)
        secret = begun["secret_base32"]
        step = center_step()
        confirmed = self.call({"op": "enroll_confirm", "user": user,
                               "code": code_at(secret, step)})
        self.assertEqual(confirmed["status"], "ok", confirmed)
        s = self.state
        s.secret[user] = secret
        s.sent_steps[user] = step
        s.accepted_steps[user] = {}
        s.recovery_left[user] = list(confirmed["codes"])
        s.recovery_accepted[user] = []
        s.recovery_checked[user] = 0
        return secret

    def verify(self, user, code):
        return self.call(h.verify_request(user, code))

    def note_reply(self, user, reply):
        s = self.state
        with s.lock:
            if reply["status"] == "locked":
                s.must_be_locked.add(user)
                s.counts["locked"] += 1
            elif reply["status"] != "ok":
                s.counts["refused"] += 1

    # ---- the load (one thread per slice of users: one request per user at a time) --

    def load(self, users, stop, rng, errors):
        try:
            while not stop.is_set():
                user = rng.choice(users)
                try:
                    if user in TOTP_USERS:
                        self.load_totp(user, rng)
                    elif user in LOCKOUT_USERS:
                        self.load_lockout(user)
                    elif user in RECOVERY_USERS:
                        self.load_recovery(user, rng)
                    else:
                        self.load_enroll(user)
                except Lost:
                    with self.state.lock:
                        self.state.counts["lost"] += 1
                    if stop.is_set():
                        return
                    time.sleep(0.01)  # killed: wait for the main thread to notice
        except Exception as e:  # an assertion in a thread fails the test
            errors.append(e)

    def load_totp(self, user, rng):
        s = self.state
        accepted = s.accepted_steps[user]
        if accepted and rng.random() < 0.3:  # a replay: must be refused
            step, code = rng.choice(sorted(accepted.items()))
            reply = self.verify(user, code)
            if reply["status"] == "ok":
                raise AssertionError(f"{user}: step {step} accepted twice (during load)")
            self.note_reply(user, reply)
            return
        # A fresh code: a step after every one sent, inside the window (now and
        # the next; never now-1, which may fall out of the daemon's window at a
        # step boundary).
        step = max(s.sent_steps[user] + 1, center_step())
        if step > center_step() + 1:
            time.sleep(0.005)
            return
        s.sent_steps[user] = step
        code = code_at(s.secret[user], step)
        reply = self.verify(user, code)
        if reply["status"] == "ok":
            with s.lock:
                accepted[step] = code
                s.counts["accepted"] += 1
        self.note_reply(user, reply)

    def load_lockout(self, user):
        s = self.state
        if user in s.must_be_locked:
            time.sleep(0.005)
            return
        secret = s.secret[user]
        now = center_step()
        valid = {code_at(secret, st) for st in range(now - 2, now + 3)}
        wrong = next(c for c in (f"{random.randrange(10**6):06d}" for _ in range(100))
                     if c not in valid)
        reply = self.verify(user, wrong)
        if reply["status"] == "ok":
            raise AssertionError(f"{user}: a wrong code was accepted")
        self.note_reply(user, reply)

    def load_recovery(self, user, rng):
        s = self.state
        if not s.recovery_left[user]:
            time.sleep(0.005)
            return
        if s.recovery_accepted[user] and rng.random() < 0.2:
            code = rng.choice(s.recovery_accepted[user])
            reply = self.verify(user, code)
            if reply["status"] == "ok":
                raise AssertionError(f"{user}: recovery code accepted twice (during load)")
            self.note_reply(user, reply)
            return
        code = s.recovery_left[user].pop()  # sent once; unanswered ones are not reused
        reply = self.verify(user, code)
        if reply["status"] == "ok":
            self.assertTrue(reply.get("used_recovery_code"), reply)
            with s.lock:
                s.recovery_accepted[user].append(code)
                s.counts["recovery_accepted"] += 1
        self.note_reply(user, reply)

    def load_enroll(self, user):
        s = self.state
        if s.enrolled[user] is not None:  # enrolled: reset it (the disable)
            s.enrolled[user] = "unknown"
            reply = self.call({"op": "admin_reset", "user": user})
            if reply["status"] in ("ok", "not_enrolled"):
                s.enrolled[user] = None
                with s.lock:
                    s.counts["reset"] += 1
            return
        s.enrolled[user] = "unknown"
        begun = self.call({"op": "enroll_begin", "user": user})
        if begun["status"] != "ok":
            return
        secret = begun["secret_base32"]
        confirmed = self.call({"op": "enroll_confirm", "user": user,
                               "code": code_at(secret, center_step())})
        if confirmed["status"] == "ok":
            self.assertEqual(len(confirmed["codes"]), RECOVERY_CODES)
            s.enrolled[user] = secret
            with s.lock:
                s.counts["enrolled"] += 1

    # ---- one round ------------------------------------------------------------------

    def run_round(self, rng):
        stop = threading.Event()
        errors = []
        slices = [ALL_USERS[i::THREADS] for i in range(THREADS)]
        threads = [threading.Thread(target=self.load,
                                    args=(users, stop, random.Random(rng.random()), errors))
                   for users in slices]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.2, 1.5))
        self.daemon.kill()
        stop.set()
        for t in threads:
            t.join(30)
            self.assertFalse(t.is_alive(), "a load thread hangs")
        if errors:
            raise errors[0]

    def check_integrity(self):
        # Read-only, on the files as the kill left them (with their WAL).
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as db:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
            self.assertEqual(db.execute("PRAGMA foreign_key_check").fetchall(), [])
        db.close()

    def status(self, user):
        reply = self.call({"op": "status", "user": user})
        self.assertEqual(reply["status"], "ok", reply)
        return reply["user_status"]

    def check_after_restart(self, round_number):
        s = self.state
        where = f"round {round_number}"
        # Codes of steps out of every window are refused whatever the state
        # says; the others are sent again.
        oldest = center_step() - 2
        for user in TOTP_USERS:
            for step, code in sorted(s.accepted_steps[user].items()):
                if step < oldest:
                    continue
                reply = self.verify(user, code)
                self.assertNotEqual(reply["status"], "ok",
                                    f"{where}: {user}'s code for step {step} accepted again")
                self.note_reply(user, reply)
        # Recovery codes accepted this round (and one from before), each costing
        # a few scrypt hashes to refuse.
        for user in RECOVERY_USERS:
            accepted = s.recovery_accepted[user]
            for code in accepted[s.recovery_checked.get(user, 0):] + accepted[:1]:
                reply = self.verify(user, code)
                self.assertNotEqual(reply["status"], "ok",
                                    f"{where}: {user}'s recovery code accepted again")
                self.note_reply(user, reply)
            s.recovery_checked[user] = len(accepted)
        for user in sorted(s.must_be_locked):
            self.assertIsNotNone(self.status(user).get("locked_until"),
                                 f"{where}: {user}'s lockout was lost")
        for user in ENROLL_USERS:
            status = self.status(user)
            if status["enrolled"]:
                self.assertEqual(status["recovery_codes_left"], RECOVERY_CODES,
                                 f"{where}: {user} enrolled without its recovery codes")
            expected = s.enrolled[user]
            if expected is None:
                self.assertFalse(status["enrolled"], f"{where}: {user}'s reset was undone")
            elif expected != "unknown":
                self.assertTrue(status["enrolled"], f"{where}: {user}'s enrollment was lost")
                reply = self.verify(user, code_at(expected, center_step() + 1))
                self.assertEqual(reply["status"], "ok",
                                 f"{where}: {user}'s confirmed secret does not verify")

    def tidy_up(self):
        """Between rounds, with the daemon up: every user back to a known state."""
        s = self.state
        for user in TOTP_USERS + LOCKOUT_USERS + RECOVERY_USERS:
            reply = self.call({"op": "admin_unlock", "user": user})
            self.assertEqual(reply["status"], "ok", reply)
            s.must_be_locked.discard(user)
        for user in RECOVERY_USERS:
            if len(s.recovery_left[user]) < 3:
                self.assertEqual(self.call({"op": "admin_reset", "user": user})["status"], "ok")
                self.enroll(user)
        for user in ENROLL_USERS:
            reply = self.call({"op": "admin_reset", "user": user})
            self.assertIn(reply["status"], ("ok", "not_enrolled"), reply)
            s.enrolled[user] = None

    def test_sigkill_under_load_loses_nothing_committed(self):
        rng = random.Random(os.environ.get("KPANEL_CRASH_SEED", str(time.time_ns())))
        started = time.monotonic()
        for round_number in range(1, ROUNDS + 1):
            self.run_round(rng)
            self.check_integrity()
            self.daemon.start()
            self.check_after_restart(round_number)
            self.tidy_up()
        counts = self.state.counts
        print(f"\n{ROUNDS} rounds in {time.monotonic() - started:.1f} s: {counts}")
        # The load did what it is for: codes, recovery codes, lockouts and
        # enrollments were all answered, and kills cut requests short.
        self.assertGreaterEqual(counts["accepted"], len(TOTP_USERS))
        self.assertGreater(counts["recovery_accepted"], 0)
        self.assertGreater(counts["locked"], 0)
        self.assertGreater(counts["enrolled"], 0)
        self.assertGreater(counts["reset"], 0)
        self.assertGreater(counts["lost"], 0)


if __name__ == "__main__":
    unittest.main()
