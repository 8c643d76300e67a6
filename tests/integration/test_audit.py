"""The audit log under a flood: one local user sending thousands of requests
that are refused costs the log a bounded number of lines (then a summary of
what was counted), and another user's refused verify is still written."""

import os
import pwd
import re
import time
import unittest

import kpanel_harness as h

FLOOD, ALICE = "kpt_l_flood", "kpt_l_alice"
REQUESTS = 5000


def setUpModule():
    h.require_root(None)
    h.ensure_users(FLOOD, ALICE)


def tearDownModule():
    h.remove_users(FLOOD, ALICE)


def flood_as(user, socket_path, request, count):
    """`count` requests, one connection each, from one child running as `user`;
    returns how many were answered forbidden."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        forbidden = 0
        try:
            os.close(read_end)
            entry = pwd.getpwnam(user)
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            frame = h.encode_frame(request)
            for _ in range(count):
                reply = h.call_raw(socket_path, frame)
                forbidden += 1 if reply and reply.get("status") == "forbidden" else 0
            os.write(write_end, str(forbidden).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        answer = f.read()
    os.waitpid(pid, 0)
    return int(answer or 0)


class AuditFlood(unittest.TestCase):
    def setUp(self):
        self.d = h.Daemon().start()

    def tearDown(self):
        self.d.cleanup()

    def test_one_uids_flood_is_summarized_and_others_are_still_written(self):
        secret, _ = self.d.enroll_raw(ALICE)
        flood_uid = h.uid_of(FLOOD)
        started = time.monotonic()
        forbidden = flood_as(FLOOD, self.d.socket, {"op": "status", "user": "root"}, REQUESTS)
        elapsed = time.monotonic() - started
        self.assertEqual(forbidden, REQUESTS)

        wrong = "000000" if h.totp(secret) != "000000" else "111111"
        reply = self.d.call(h.verify_request(ALICE, wrong), as_user=ALICE)
        self.assertEqual(reply["status"], "wrong_code")

        flood_line = re.compile(rf"audit: event=status user=root peer_uid={flood_uid} "
                                r"outcome=forbidden$", re.M)
        summary_line = re.compile(rf"audit: event=audit_suppressed peer_uid={flood_uid} "
                                  r"suppressed=(\d+) seconds=\d+ counts=status/forbidden:(\d+)$",
                                  re.M)
        # Every request is accounted for: written, or counted in a summary
        # (the last one comes once its period is over).
        deadline = time.monotonic() + 30
        while True:
            log = self.d.log()
            written = len(flood_line.findall(log))
            summarized = sum(int(n) for n, _ in summary_line.findall(log))
            if written + summarized == REQUESTS or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(written + summarized, REQUESTS, log[-3000:])
        # A burst of 20, then about 2 a second.
        self.assertLessEqual(written, 20 + 2 * (elapsed + 2), f"{written} lines in {elapsed:.1f} s")
        self.assertGreater(summarized, 0)
        self.assertRegex(log, rf"audit: event=verify user={ALICE} peer_uid={h.uid_of(ALICE)} "
                              r"service=sshd rhost=127.0.0.1 tty=ssh outcome=wrong_code")


if __name__ == "__main__":
    unittest.main()
