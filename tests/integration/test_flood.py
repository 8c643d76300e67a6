"""No local user can take logins away. A dozen ordinary enrolled users each
send waves of twelve parallel `disable` requests with a wrong password (a
PAM password check each) and recovery-code-shaped `verify` requests (scrypt
hashes each), for as long as the test runs. Meanwhile root, as the PAM
module inside sshd does, logs users in through real PAM (pamtester and the
module) with right codes: every login must succeed in under a second, and
under `unavailable=ignore` a wrong code must still be refused.

What keeps it so (daemon/net/lanes.hpp): password checks and recovery-code
hashing run in a slow lane with one job per uid in flight (the rest are
answered `busy` at once), root's requests are taken first, and login_check
and TOTP verify run in a fast lane that slow work never occupies.
"""

import json
import os
import pwd
import socket
import subprocess
import threading
import time
import unittest

import kpanel_harness as h
from test_pam import MODULE, Pam

FLOODERS = [f"kpt_fd_{i:02d}" for i in range(12)]
TARGETS = [f"kpt_fd_t{i}" for i in range(6)]
PARALLEL = 12
FLOOD_SECONDS = 20.0
LOGIN_LIMIT = 1.0 * (3 if os.environ.get("KPANEL_SANITIZE") == "1" else 1)
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
with open(os.path.join(SOURCE, "config", "pam.d", "kpanel-totp")) as f:
    PASSWORD_SERVICE = f.read()


def setUpModule():
    h.require_root(None)
    if not MODULE:
        raise unittest.SkipTest("KPANEL_PAM_MODULE not set (run through ctest)")
    h.ensure_users(*FLOODERS, *TARGETS)


def tearDownModule():
    h.remove_users(*FLOODERS, *TARGETS)


def flood(socket_path, user, recovery_shaped, deadline, counts_fd):
    """In a forked child that is `user`: waves of PARALLEL wrong-password
    disables and a recovery-code-shaped verify, until `deadline`. Writes the
    statuses it got, as JSON, to counts_fd."""
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.nice(19)  # the daemon is measured, not how the machine shares CPU with us
    counts = {}
    lock = threading.Lock()

    def one(request):
        try:
            reply = h.call_raw(socket_path, h.encode_frame(request), timeout=30)
            status = reply["status"] if reply else "closed"
        except OSError as e:
            status = type(e).__name__
        with lock:
            counts[status] = counts.get(status, 0) + 1

    disable = {"op": "disable", "user": user, "password": "not-the-password", "code": "000000"}
    verify = h.verify_request(user, recovery_shaped)
    while time.time() < deadline:
        threads = [threading.Thread(target=one, args=(disable,)) for _ in range(PARALLEL)]
        threads += [threading.Thread(target=one, args=(verify,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(0.05)
    os.write(counts_fd, json.dumps(counts).encode())


def wrong(code):
    return "000000" if code != "000000" else "111111"


class SlowWorkCannotDelayLogins(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Short lockouts, so the flood keeps paying for checks all along.
        cls.d = h.Daemon(pam_services={"kpanel-totp": PASSWORD_SERVICE}, max_failures=5,
                         lockout_seconds=1, lockout_max_seconds=1).start()
        cls.secrets = {user: cls.d.enroll(user)[0] for user in TARGETS}
        cls.shaped = {}
        for user in FLOODERS:
            _, codes = cls.d.enroll(user)
            code = codes[0].replace("-", "")
            # Right shape and alphabet, not one of the user's codes.
            cls.shaped[user] = code[1:] + code[0] if code[1:] + code[0] not in codes else code[::-1]
        cls.pam = Pam()
        cls.strict = cls.pam.service("kp-flood", f"socket={cls.d.socket}")
        cls.lenient = cls.pam.service("kp-flood-ignore",
                                      f"socket={cls.d.socket} unavailable=ignore",
                                      then_permit=True)

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        cls.pam.cleanup()

    def login(self, service, user, code):
        started = time.monotonic()
        ok, out = self.pam.authenticate(service, user, code)
        return ok, time.monotonic() - started, out

    def test_root_logins_stay_fast_and_a_wrong_code_stays_refused_under_a_flood(self):
        # Each target's codes for the current and the next step work once
        # each, in that order (the step of its enrollment is used): twelve
        # logins with right codes. Start early in a step, so all fall in one.
        h.wait_for_next_step()
        deadline = time.time() + FLOOD_SECONDS
        children = []
        for user in FLOODERS:
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(read_end)
                    flood(self.d.socket, user, self.shaped[user], deadline, write_end)
                finally:
                    os._exit(0)
            os.close(write_end)
            children.append((pid, read_end))
        try:
            time.sleep(2.0)  # the flood is under way
            now = time.time()
            timings, failures = [], []
            for offset in (0, 30):
                for user in TARGETS:
                    code = h.totp(self.secrets[user], at=now + offset)
                    ok, took, out = self.login(self.strict, user, code)
                    timings.append(took)
                    if not ok or took >= LOGIN_LIMIT:
                        failures.append(f"{user} {offset:+d}s: ok={ok} {took:.3f}s {out!r}")
                    # A wrong code under unavailable=ignore + pam_permit: refused.
                    ok, took, out = self.login(self.lenient, user, wrong(h.totp(self.secrets[user])))
                    if ok:
                        failures.append(f"{user}: wrong code let in under unavailable=ignore: {out!r}")
            still_flooding = time.time() < deadline
        finally:
            totals = {}
            for pid, read_end in children:
                data = b""
                while True:
                    chunk = os.read(read_end, 65536)
                    if not chunk:
                        break
                    data += chunk
                os.close(read_end)
                os.waitpid(pid, 0)
                for status, n in json.loads(data or b"{}").items():
                    totals[status] = totals.get(status, 0) + n
        print(f"flood replies: {totals}; root logins: max {max(timings):.3f}s, "
              f"mean {sum(timings) / len(timings):.3f}s")
        # The flood happened and paid for real checks: wrong passwords were
        # judged, lockouts started, and the rest was turned away at once.
        self.assertGreater(sum(totals.values()), len(FLOODERS) * PARALLEL * 5, totals)
        self.assertGreater(totals.get("wrong_password", 0), 0, totals)
        self.assertGreater(totals.get("busy", 0), 0, totals)
        self.assertEqual(failures, [], f"under the flood ({totals})")
        self.assertTrue(still_flooding, "the logins outlasted the flood: nothing was measured")


if __name__ == "__main__":
    unittest.main()
