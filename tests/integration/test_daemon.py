"""kpanel-totpd end to end: the real daemon on a temp socket, driven by the
real tool and by raw protocol frames from real uids (SO_PEERCRED)."""

import os
import resource
import signal
import socket
import stat
import struct
import subprocess
import time
import unittest

import kpanel_harness as h

ALICE, BOB, ADMIN = "kpt_d_alice", "kpt_d_bob", "kpt_d_admin"
ADMIN_GROUP = "kpt_d_admins"


def setUpModule():
    h.require_root(None)
    h.ensure_users(ALICE, BOB, ADMIN)


def tearDownModule():
    h.remove_users(ALICE, BOB, ADMIN)


class CommandLine(unittest.TestCase):
    def test_version(self):
        out = subprocess.run([h.TOTPD, "--version"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0)
        self.assertRegex(out.stdout, r"^kpanel-totpd \d+\.\d+\.\d+")

    def test_output_that_cannot_be_written_is_an_error(self):
        # The output is the answer: `--check-config > /dev/full` must not say 0.
        with h.Daemon() as d, open("/dev/full", "w") as full:
            for args in (["--version"], ["--help"],
                         ["--config", d.config_path, "--check-config"]):
                out = subprocess.run([h.TOTPD, *args], stdout=full, stderr=subprocess.PIPE)
                self.assertEqual(out.returncode, 1, args)

    def test_unknown_argument_is_a_usage_error(self):
        out = subprocess.run([h.TOTPD, "--frobnicate"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 2)
        self.assertIn("usage", out.stderr)

    def test_check_config_valid_and_invalid(self):
        with h.Daemon(max_failures=3) as d:
            ok = subprocess.run([h.TOTPD, "--config", d.config_path, "--check-config"],
                                capture_output=True, text=True)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            self.assertIn("max_failures = 3", ok.stdout)
            d.write_config("windwo = 2\ndigits = 9\n")
            bad = subprocess.run([h.TOTPD, "--config", d.config_path, "--check-config"],
                                 capture_output=True, text=True)
            self.assertEqual(bad.returncode, 1)
            lines = len(d.config) + 1
            self.assertIn(f"{d.config_path}:{lines}:", bad.stderr)
            self.assertIn(f"{d.config_path}:{lines + 1}:", bad.stderr)

    def test_bad_config_refused_at_start(self):
        with h.Daemon() as d:
            d.write_config("bogus_key = 1\n")
            d.start(wait=False)
            self.assertEqual(d.process.wait(10), 1)
            self.assertIn("bogus_key", d.log())


class Lifecycle(unittest.TestCase):
    def test_creates_state_dir_and_key_with_safe_modes(self):
        with h.Daemon() as d:
            d.start()
            self.assertEqual(stat.S_IMODE(os.stat(d.state_dir).st_mode), 0o700)
            key = os.stat(d.key_file)
            self.assertEqual(stat.S_IMODE(key.st_mode), 0o600)
            self.assertEqual(key.st_size, 32)
            self.assertEqual(stat.S_IMODE(os.stat(d.socket).st_mode), 0o666)
            for name in os.listdir(d.state_dir):
                mode = stat.S_IMODE(os.stat(os.path.join(d.state_dir, name)).st_mode)
                self.assertEqual(mode & 0o077, 0, name)

    def test_the_default_store_never_loads_libpq(self):
        # libpq (and GSSAPI, LDAP, GnuTLS behind it) is loaded for store =
        # postgresql only: ~3.6 MiB of RSS a SQLite host does not pay.
        with h.Daemon() as d:
            d.start()
            self.assertEqual(d.call(h.verify_request("root", "123456"))["status"], "not_enrolled")
            with open(f"/proc/{d.process.pid}/maps") as f:
                maps = f.read()
            self.assertNotIn("libpq.so", maps)
            self.assertIn("libsqlite3.so", maps)

    def test_refuses_a_key_file_others_can_read(self):
        with h.Daemon() as d:
            with open(d.key_file, "wb") as f:
                f.write(os.urandom(32))
            os.chmod(d.key_file, 0o644)
            d.start(wait=False)
            self.assertEqual(d.process.wait(10), 1)
            self.assertIn(d.key_file, d.log())

    def test_a_missing_key_with_sealed_secrets_is_refused_and_no_key_is_made(self):
        with h.Daemon() as d:
            d.start()
            d.enroll_raw("root")  # no test user: root is always there
            self.assertEqual(d.stop(), 0)
            os.unlink(d.key_file)
            d.start(wait=False)
            self.assertEqual(d.process.wait(20), 1, d.log())
            self.assertFalse(os.path.exists(d.key_file), "made a key that cannot open the secrets")
            last = d.log().strip().splitlines()[-1]
            self.assertIn(d.key_file, last)
            self.assertIn("sealed", last)
            self.assertIn("restore", last)
            self.assertFalse(os.path.exists(d.socket))

    def test_no_core_dump_holds_its_secrets(self):
        # Not root, as under the unit: a dumpable process would own its /proc
        # entries; a non-dumpable one's belong to root.
        with h.Daemon() as d:
            nobody = 65534  # no test user: others' fixtures add and remove those
            owned = os.path.join(d.dir, "owned")
            os.makedirs(owned, mode=0o700)
            os.makedirs(os.path.dirname(d.socket))
            for path in (owned, os.path.dirname(d.socket)):
                os.chown(path, nobody, nobody)
            d.config.update(state_dir=os.path.join(owned, "state"),
                            key_file=os.path.join(owned, "state.key"))
            d.write_config()
            # Started allowed to dump core: the daemon itself must say no.
            limits = resource.getrlimit(resource.RLIMIT_CORE)
            resource.setrlimit(resource.RLIMIT_CORE,
                               (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            try:
                with open(d.log_path, "ab") as log:
                    d.process = subprocess.Popen(
                        ["setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups",
                         "--no-new-privs", h.TOTPD, "--config", d.config_path],
                        stdout=log, stderr=log)
            finally:
                resource.setrlimit(resource.RLIMIT_CORE, limits)
            d.wait_ready()
            pid = d.process.pid
            with open(f"/proc/{pid}/limits") as f:
                core = next(line for line in f if line.startswith("Max core file size"))
            self.assertEqual(core.split()[4:6], ["0", "0"], core)
            with open(f"/proc/{pid}/status") as f:  # still readable (RSS in bench/)
                status = f.read()
            self.assertIn("VmRSS:", status)
            self.assertIn(f"\nUid:\t{nobody}\t", status)
            self.assertEqual(os.stat(f"/proc/{pid}/status").st_uid, 0, "dumpable")
            self.assertEqual(d.call({"op": "status", "user": ""})["status"], "ok")

    def test_sigterm_exits_zero_and_removes_socket(self):
        with h.Daemon() as d:
            d.start()
            self.assertEqual(d.stop(), 0)
            self.assertFalse(os.path.exists(d.socket))

    def test_sigterm_right_after_listening_still_exits_zero(self):
        # The socket accepts before the daemon is fully up; a SIGTERM in that
        # moment (systemd stopping a unit it just started) must still be a
        # clean stop, not death by the default action.
        for _ in range(20):
            with h.Daemon() as d:
                d.start(wait=False)
                deadline = time.time() + 10
                while not os.path.exists(d.socket) and time.time() < deadline:
                    self.assertIsNone(d.process.poll(), d.log())
                    time.sleep(0.0005)
                d.process.send_signal(signal.SIGTERM)
                self.assertEqual(d.process.wait(10), 0, d.log())

    def test_replaces_stale_socket_but_never_a_live_one(self):
        with h.Daemon() as d, h.Daemon() as other_state:
            d.start()
            d.kill()  # leaves the socket file behind
            self.assertTrue(os.path.exists(d.socket))
            d.start()  # stale: replaced
            # Its own state, the same socket: the socket check refuses it.
            other_state.config["socket"] = d.socket
            other_state.write_config()
            second = subprocess.run([h.TOTPD, "--config", other_state.config_path],
                                    capture_output=True, text=True, timeout=10)
            self.assertEqual(second.returncode, 1)
            self.assertIn("already listening", second.stderr)
            self.assertEqual(d.call({"op": "status", "user": ""})["status"], "ok")

    def test_a_second_daemon_on_one_state_refuses_naming_the_first(self):
        with h.Daemon() as d, h.Daemon() as second:
            d.start()
            # Its own socket, the same state: only the state lock can tell.
            second.config.update(state_dir=d.state_dir, key_file=d.key_file)
            second.write_config()
            started = time.time()
            second.start(wait=False)
            self.assertEqual(second.process.wait(20), 1, second.log())
            self.assertLess(time.time() - started, 5, "a running first daemon is no reason to wait")
            lines = [line for line in second.log().splitlines() if line.strip()]
            self.assertEqual(len(lines), 1, lines)
            self.assertIn(f"pid {d.process.pid}", lines[0])
            self.assertIn(d.state_dir, lines[0])
            self.assertFalse(os.path.exists(second.socket))
            self.assertEqual(d.call({"op": "status", "user": ""})["status"], "ok")

    def test_a_restart_during_the_old_daemons_stop_ends_with_the_new_one_reachable(self):
        # An admin's hurried restart: the old daemon, told to stop, waits for
        # an idle client's io deadline (5 s) while the new one starts.
        with h.Daemon() as old, h.Daemon() as new:
            old.start()
            new.config = dict(old.config)
            new.socket = old.socket
            new.write_config()
            idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            idle.connect(old.socket)
            try:
                old.process.send_signal(signal.SIGTERM)
                time.sleep(0.3)
                new.start(wait=False)
                started = time.time()
                self.assertEqual(old.process.wait(20), 0, old.log())
                old_ran_on = time.time() - started
                new.wait_ready(timeout=20)
                time.sleep(0.3)
                self.assertIsNone(new.process.poll(), new.log())
                self.assertEqual(new.call({"op": "status", "user": ""})["status"], "ok")
                if old_ran_on > 1:  # the new one met it stopping, and waited
                    self.assertIn(f"waiting for kpanel-totpd (pid {old.process.pid})",
                                  new.log())
            finally:
                idle.close()

    def test_migrating_the_state_of_a_running_daemon_is_refused(self):
        with h.Daemon() as d:
            d.start()
            # Refused before any database is contacted: port 1 is never asked.
            out = subprocess.run([h.TOTPD, "--config", d.config_path, "--migrate-to-postgresql",
                                  "host=127.0.0.1 port=1 dbname=x user=x connect_timeout=1"],
                                 capture_output=True, text=True, timeout=20)
            self.assertEqual(out.returncode, 1, out.stderr)
            self.assertIn(f"pid {d.process.pid}", out.stderr)
            self.assertIn("stop kpanel-totpd", out.stderr)
            self.assertEqual(d.call({"op": "status", "user": ""})["status"], "ok")

    def test_migrating_to_another_host_needs_a_verified_tls_connection(self):
        with h.Daemon() as d:
            d.start()
            d.stop()
            # 192.0.2.10 (TEST-NET-1) is never reached: refused before connecting.
            out = subprocess.run([h.TOTPD, "--config", d.config_path, "--migrate-to-postgresql",
                                  "-"], input="host=192.0.2.10 dbname=x user=x password=Zq9-migrate-secret\n",
                                 capture_output=True, text=True, timeout=20)
            self.assertEqual(out.returncode, 1, out.stderr)
            self.assertIn("sslmode=verify-full", out.stderr)
            self.assertIn("postgresql_allow_unverified", out.stderr)
            self.assertNotIn("Zq9-migrate-secret", out.stderr)

    def test_on_exit_a_socket_path_bound_by_another_is_left_alone(self):
        with h.Daemon() as d:
            d.start()
            os.unlink(d.socket)
            successor = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            successor.bind(d.socket)
            successor.listen(1)
            try:
                self.assertEqual(d.stop(), 0)
                self.assertTrue(os.path.exists(d.socket), "removed a socket not its own")
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                    client.connect(d.socket)
            finally:
                successor.close()

    def test_socket_activation_and_ready_notification(self):
        with h.Daemon() as d:
            notify_path = os.path.join(d.dir, "notify.sock")
            notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            notify.bind(notify_path)
            notify.settimeout(10)
            activated = os.path.join(d.dir, "activated.sock")
            with open(d.log_path, "ab") as log:
                proc = subprocess.Popen(
                    ["systemd-socket-activate", "-l", activated, "-E",
                     f"NOTIFY_SOCKET={notify_path}", h.TOTPD, "--config", d.config_path],
                    stdout=log, stderr=log)
            try:
                deadline = time.time() + 10
                while not os.path.exists(activated) and time.time() < deadline:
                    time.sleep(0.02)
                # The first connection starts the daemon on systemd's socket.
                reply = h.call(activated, {"op": "status", "user": ""})
                self.assertEqual(reply["status"], "ok", d.log())
                self.assertIn(b"READY=1", notify.recv(4096))
                self.assertFalse(os.path.exists(d.socket), "bound its own socket too")
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(10), 0, d.log())
                # systemd owns that socket file: the daemon leaves it alone.
                self.assertTrue(os.path.exists(activated))
            finally:
                if proc.poll() is None:
                    proc.kill()
                notify.close()

    def test_sighup_reloads_and_keeps_old_config_when_bad(self):
        with h.Daemon(max_failures=5) as d:
            d.start()
            secret, _ = d.enroll(ALICE)
            d.config["max_failures"] = "2"
            d.write_config()
            d.process.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            reply = d.call(h.verify_request(ALICE, "000000"))
            self.assertEqual(reply.get("failures_left"), 1, reply)
            d.write_config("nonsense\n")
            d.process.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            self.assertIsNone(d.process.poll())
            self.assertIn("keeping the running configuration", d.log())
            reply = d.call(h.verify_request(ALICE, "000001"))
            self.assertEqual(reply["status"], "locked", reply)
            d.tool("admin", "reset", ALICE)


class Verification(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = h.Daemon(max_failures=3, lockout_seconds=60, admin_group=ADMIN_GROUP).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def setUp(self):
        self.d.tool("admin", "reset", ALICE)
        self.d.tool("admin", "reset", BOB)

    def test_right_code_once_then_replay_refused(self):
        secret, _ = self.d.enroll(ALICE)
        code = h.totp(secret, at=time.time() + 30)  # confirming used this step's
        self.assertEqual(self.d.call(h.verify_request(ALICE, code))["status"], "ok")
        replay = self.d.call(h.verify_request(ALICE, code))
        self.assertEqual(replay, {"status": "replayed", "result": "empty", "failures_left": 2})
        self.assertIn(f"event=verify user={ALICE} ", self.d.log())
        self.assertIn("outcome=replayed failures_left=2", self.d.log())

    def test_confirming_code_counts_as_used(self):
        rc, begun, _ = self.d.tool_json("enroll", "--begin", as_user=ALICE)
        self.assertEqual(rc, 0)
        code = h.totp(begun["secret"])
        rc, _, _ = self.d.tool_json("enroll", "--confirm", code, as_user=ALICE)
        self.assertEqual(rc, 0)
        self.assertEqual(self.d.call(h.verify_request(ALICE, code))["status"], "replayed")

    def test_wrong_codes_lock_then_admin_unlock(self):
        secret, _ = self.d.enroll(ALICE)
        for left in (2, 1):
            reply = self.d.call(h.verify_request(ALICE, "000000"))
            self.assertEqual(reply, {"status": "wrong_code", "result": "empty",
                                     "failures_left": left})
        locked = self.d.call(h.verify_request(ALICE, "000000"))
        self.assertEqual(locked["status"], "locked")
        self.assertGreater(locked["locked_until"], time.time() + 50)
        # While locked even the right code is not checked.
        right = h.totp(secret, at=time.time() + 30)  # confirming used this step's
        self.assertEqual(self.d.call(h.verify_request(ALICE, right))["status"], "locked")
        rc, status, _ = self.d.tool_json("status", as_user=ALICE)
        self.assertEqual(rc, 0)
        self.assertIsNotNone(status["locked_until"])
        self.assertEqual(self.d.tool("admin", "unlock", ALICE, as_user=ADMIN).returncode, 0)
        self.assertEqual(self.d.call(h.verify_request(ALICE, right))["status"], "ok")

    def test_recovery_code_works_once(self):
        _, codes = self.d.enroll(ALICE)
        self.assertEqual(len(codes), 10)
        typed = codes[0].lower().replace("-", " ")
        first = self.d.call(h.verify_request(ALICE, typed))
        self.assertEqual(first, {"status": "ok", "result": "verify", "used_recovery_code": True,
                                 "recovery_codes_left": 9})
        again = self.d.call(h.verify_request(ALICE, codes[0]))
        self.assertEqual(again["status"], "wrong_code")
        rc, status, _ = self.d.tool_json("status", as_user=ALICE)
        self.assertEqual(status["recovery_codes_left"], 9)

    def test_not_enrolled(self):
        self.assertEqual(self.d.call(h.verify_request(BOB, "123456"))["status"], "not_enrolled")
        rc, status, _ = self.d.tool_json("status", as_user=BOB)
        self.assertEqual(rc, 0)
        # The documented keys, the clock offset (null: nothing seen, and
        # the daemon tells it only to root and admins) and no remembered logins.
        self.assertEqual(status, {"user": BOB, "enrolled": False, "enrolled_at": None,
                                  "recovery_codes_left": 0, "locked_until": None,
                                  "clock_offset_seconds": None, "remembered": []})


class ProtocolVersions(unittest.TestCase):
    """After an upgrade sshd keeps the old (protocol version 1) module loaded
    until it restarts: the new daemon must answer its frames, byte for byte,
    in version 1. The tool and the new module speak version 2."""

    @classmethod
    def setUpClass(cls):
        cls.d = h.Daemon(max_failures=3, lockout_seconds=60).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def setUp(self):
        self.d.tool("admin", "reset", ALICE)

    def exchange(self, frame):
        """Raw bytes in, (header version, body bytes) out."""
        with h.connect(self.d.socket) as sock:
            sock.sendall(frame)
            header = sock.recv(8, socket.MSG_WAITALL)
            self.assertEqual(header[:2], b"KP")
            (length,) = struct.unpack(">I", header[4:8])
            return header[2], sock.recv(length, socket.MSG_WAITALL)

    @staticmethod
    def v1(body):
        """A frame exactly as the version 1 module writes it (nlohmann-json's
        compact dump: sorted keys, no spaces)."""
        return b"KP\x01\x00" + struct.pack(">I", len(body)) + body

    def test_a_version_1_module_logs_in_against_the_new_daemon(self):
        secret, _ = self.d.enroll(ALICE)
        login_check = (b'{"enroll":false,"nullok":false,"op":"login_check","rhost":"192.0.2.7",'
                       b'"service":"sshd","tty":"ssh","user":"' + ALICE.encode() + b'"}')
        version, body = self.exchange(self.v1(login_check))
        self.assertEqual(version, 1)
        self.assertEqual(body, b'{"decision":"prompt","notice":"","result":"login_check",'
                               b'"status":"ok"}')

        wrong = (b'{"code":"000000","op":"verify","rhost":"192.0.2.7","service":"sshd",'
                 b'"tty":"ssh","user":"' + ALICE.encode() + b'"}')
        version, body = self.exchange(self.v1(wrong))
        self.assertEqual(version, 1)
        self.assertEqual(body, b'{"failures_left":2,"result":"empty","status":"wrong_code"}')

        # The next step's code: the confirming code's step is spent.
        code = h.totp(secret, at=time.time() + 30)
        right = (b'{"code":"' + code.encode() + b'","op":"verify","rhost":"192.0.2.7",'
                 b'"service":"sshd","tty":"ssh","user":"' + ALICE.encode() + b'"}')
        version, body = self.exchange(self.v1(right))
        self.assertEqual(version, 1)
        self.assertEqual(body, b'{"recovery_codes_left":10,"result":"verify","status":"ok",'
                               b'"used_recovery_code":false}')
        self.assertIn(f"event=verify user={ALICE} ", self.d.log())

    def test_enrollment_settings_only_in_version_2(self):
        request = {"op": "enroll_begin", "user": ALICE}
        version, body = self.exchange(h.encode_frame(request, version=1))
        self.assertEqual(version, 1)
        self.assertNotIn(b'"digits"', body)
        version, body = self.exchange(h.encode_frame(request, version=2))
        self.assertEqual(version, 2)
        self.assertIn(b'"algorithm":"SHA1","digits":6', body)
        self.assertIn(b'"period":30', body)


class Authorization(unittest.TestCase):
    """Authorization as a table: every operation x (root, the user, another user,
    an admin_group member), decided from SO_PEERCRED, never from a field."""

    ROLES = {"root": None, "self": ALICE, "other": BOB, "admin": ADMIN}
    # op -> roles allowed to act on ALICE's account
    TABLE = {
        "login_check": {"root", "self"},
        "verify": {"root", "self"},
        "status": {"root", "self", "admin"},
        "enroll_begin": {"root", "self", "admin"},
        "enroll_confirm": {"root", "self", "admin"},
        "disable": {"root", "self", "admin"},
        "recovery_regenerate": {"root", "self", "admin"},
        "admin_list": {"root", "admin"},
        "admin_reset": {"root", "admin"},
        "admin_unlock": {"root", "admin"},
    }

    @classmethod
    def setUpClass(cls):
        cls.d = h.Daemon(admin_group=ADMIN_GROUP, max_failures=100).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    @staticmethod
    def request(op):
        fields = {"user": ALICE}
        if op in ("verify", "enroll_confirm", "recovery_regenerate"):
            fields["code"] = "000000"
        if op == "disable":
            fields.update(code="000000", password="not-the-password")
        if op == "admin_list":
            fields = {}
        return {"op": op, **fields}

    def test_every_operation_for_every_kind_of_peer(self):
        self.assertEqual(set(self.TABLE), {"login_check", "verify", "status", "enroll_begin",
                                           "enroll_confirm", "disable", "recovery_regenerate",
                                           "admin_list", "admin_reset", "admin_unlock"})
        for op, allowed in self.TABLE.items():
            for role, peer in self.ROLES.items():
                with self.subTest(op=op, peer=role):
                    reply = self.d.call(self.request(op), as_user=peer)
                    self.assertIsNotNone(reply)
                    if role in allowed:
                        self.assertNotEqual(reply["status"], "forbidden", reply)
                    else:
                        self.assertEqual(reply["status"], "forbidden", reply)

    def test_empty_user_means_the_peer_itself(self):
        self.d.tool("admin", "reset", ALICE)
        self.d.enroll(ALICE)
        own = self.d.call({"op": "status", "user": ""}, as_user=ALICE)
        self.assertEqual(own["user_status"]["user"], ALICE)
        self.assertTrue(own["user_status"]["enrolled"])
        bob = self.d.call({"op": "status", "user": ""}, as_user=BOB)
        self.assertEqual(bob["user_status"]["user"], BOB)
        self.assertFalse(bob["user_status"]["enrolled"])

    def test_tool_user_flag_needs_admin(self):
        rc, _, _ = self.d.tool_json("--user", ALICE, "status", as_user=BOB)
        self.assertEqual(rc, 1)
        rc, status, _ = self.d.tool_json("--user", ALICE, "status", as_user=ADMIN)
        self.assertEqual(rc, 0)
        self.assertEqual(status["user"], ALICE)


class Robustness(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = h.Daemon().start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def assert_still_serving(self):
        self.assertEqual(self.d.call({"op": "status", "user": ""})["status"], "ok")

    def test_garbage_and_oversized_frames_are_dropped(self):
        self.assertIsNone(h.call_raw(self.d.socket, b"GET / HTTP/1.0\r\n\r\n"))
        huge = b"KP\x01\x00" + struct.pack(">I", 1 << 30)
        self.assertIsNone(h.call_raw(self.d.socket, huge))
        self.assert_still_serving()

    def test_unsupported_version_and_bad_request_are_answered(self):
        reply = h.call_raw(self.d.socket, h.encode_frame({"op": "status"}, version=9))
        self.assertEqual(reply["status"], "unsupported_version")
        reply = h.call_raw(self.d.socket, h.encode_frame({"op": "status", "evil": 1}))
        self.assertEqual(reply["status"], "bad_request")
        self.assert_still_serving()

    def test_idle_connections_do_not_block_others(self):
        idle = []
        for _ in range(50):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.d.socket)
            s.sendall(b"KP")  # half a header, then nothing
            idle.append(s)
        started = time.monotonic()
        self.assert_still_serving()
        self.assertLess(time.monotonic() - started, 1.0)
        for s in idle:
            s.close()


class Durability(unittest.TestCase):
    def test_state_survives_sigkill_and_secrets_are_not_in_clear(self):
        with h.Daemon() as d:
            d.start()
            secret, codes = d.enroll(ALICE)
            d.enroll(BOB)
            code = h.totp(secret, at=time.time() + 30)  # confirming used this step's
            self.assertEqual(d.call(h.verify_request(ALICE, code))["status"], "ok")
            self.assertEqual(d.call(h.verify_request(ALICE, codes[1]))["status"], "ok")
            for _ in range(5):  # max_failures = 5: the fifth starts a lockout
                d.call(h.verify_request(BOB, "000000"))
            locked = d.call(h.verify_request(BOB, "000000"))
            self.assertEqual(locked["status"], "locked")
            d.kill()  # no chance to flush anything after the replies
            d.start()
            self.assertEqual(d.call(h.verify_request(ALICE, code))["status"], "replayed")
            self.assertEqual(d.call(h.verify_request(ALICE, codes[1]))["status"], "wrong_code")
            after = d.call(h.verify_request(BOB, "000000"))
            self.assertEqual(after["status"], "locked")
            self.assertEqual(after["locked_until"], locked["locked_until"])
            rc, status, _ = d.tool_json("status", as_user=ALICE)
            self.assertTrue(status["enrolled"])
            self.assertEqual(status["recovery_codes_left"], 9)
            d.stop()
            import base64
            raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
            for name in os.listdir(d.state_dir):
                with open(os.path.join(d.state_dir, name), "rb") as f:
                    content = f.read()
                self.assertNotIn(secret.encode(), content, name)
                self.assertNotIn(raw, content, name)
                for recovery in codes:
                    self.assertNotIn(recovery.replace("-", "").encode(), content, name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
