"""A fleet: two daemons ("host A", "host B": own sockets, state dirs, the same
key) on one PostgreSQL database. Enrollment, replay state, lockouts and
recovery codes hold across hosts; one code raced to both hosts is accepted
once; a database outage refuses logins cleanly and heals without restarting
the daemons; --migrate-to-postgresql brings a host's SQLite state along.

Runs against the CTest fixture's cluster (tests/CMakeLists.txt:
postgresql_setup); the outage test starts a cluster of its own, so stopping
it disturbs no other test."""

import base64
import hashlib
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import threading
import time
import unittest

import kpanel_harness as h
import pg_cluster
from test_pam import MODULE, Pam

ALICE, BOB, CAROL, DAVE, ERIN, RACE, FRANK, GRACE = (
    "kpt_fl_alice", "kpt_fl_bob", "kpt_fl_carol", "kpt_fl_dave", "kpt_fl_erin", "kpt_fl_race",
    "kpt_fl_frank", "kpt_fl_grace")
USERS = (ALICE, BOB, CAROL, DAVE, ERIN, RACE, FRANK, GRACE)
RACE_ROUNDS = 100
DSN = None


def setUpModule():
    global DSN
    h.require_root(None)
    if not MODULE:
        raise unittest.SkipTest("KPANEL_PAM_MODULE not set (run through ctest)")
    DSN = pg_cluster.fixture_dsn()
    if DSN is None:
        print("\n*** test_fleet SKIPPED: no PostgreSQL server (run through ctest, whose "
              "postgresql_setup fixture starts one, or set KPANEL_TEST_POSTGRESQL_DSN)")
        raise unittest.SkipTest("no PostgreSQL server")
    h.ensure_users(*USERS)


def tearDownModule():
    h.remove_users(*USERS)


def psql(dsn, sql):
    result = subprocess.run([os.path.join(pg_cluster.bin_dir(), "psql"), "-X", "-q", "-At",
                             "-v", "ON_ERROR_STOP=1", dsn, "-c", sql],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"psql: {result.stderr}")
    return result.stdout


def fresh_schema(dsn):
    """A schema of this test's own in the database; the DSN that uses it."""
    name = "fleet_" + secrets.token_hex(6)
    psql(dsn, f"CREATE SCHEMA {name}")
    return f"{dsn} options='-csearch_path={name}'"


def code_after(secret, step):
    """The code of the first step after `step` that is not in the past."""
    return h.totp(secret, at=max(h.step_of(), step + 1) * 30 + 1)


def wrong_code(secret):
    """A code that is right for no step near now."""
    near = {h.totp(secret, at=time.time() + 30 * offset) for offset in range(-3, 4)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in near)


def fleet(dsn, **config):
    """Host A and host B on `dsn`, sharing A's key; both started."""
    a = h.Daemon(store="postgresql", postgresql_dsn=dsn, **config).start()
    b = h.Daemon(store="postgresql", postgresql_dsn=dsn, **config)
    shutil.copy(a.key_file, b.key_file)  # every host of a fleet has the same key
    os.chmod(b.key_file, 0o600)
    return a, b.start()


def enroll_root(daemon, user):
    """Enrolls through raw frames as root; returns (secret, recovery codes, step used)."""
    begun = daemon.call({"op": "enroll_begin", "user": user})
    assert begun["status"] == "ok", begun
    secret = begun["secret_base32"]
    step = h.step_of()
    confirmed = daemon.call({"op": "enroll_confirm", "user": user,
                             "code": h.totp(secret, at=step * 30 + 1)})
    assert confirmed["status"] == "ok", confirmed
    return secret, confirmed["codes"], step


class TwoHosts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dsn = fresh_schema(DSN)
        cls.a, cls.b = fleet(cls.dsn, max_failures=3, lockout_seconds=120, recovery_codes=3)
        cls.pam = Pam()
        cls.svc_b = cls.pam.service("kp-fleet-b", f"socket={cls.b.socket}")

    @classmethod
    def tearDownClass(cls):
        cls.a.cleanup()
        cls.b.cleanup()
        cls.pam.cleanup()

    def setUp(self):
        for user in USERS:
            self.a.tool("admin", "reset", user)

    def test_enrolled_on_a_logs_in_through_pam_on_b_and_the_code_is_spent_on_both(self):
        secret, _ = self.a.enroll(ALICE)
        # The confirming code's step is spent; the next one is fresh.
        code = code_after(secret, h.step_of())
        ok, out = self.pam.authenticate(self.svc_b, ALICE, code)
        self.assertTrue(ok, out)
        self.assertIn("Verification code", out)
        reply = self.a.call(h.verify_request(ALICE, code))
        self.assertEqual(reply["status"], "replayed", "code used on B accepted on A")
        ok, out = self.pam.authenticate(self.svc_b, ALICE, code)
        self.assertFalse(ok, "code replayed on B: " + out)

    def test_the_postgresql_store_loads_libpq(self):
        for daemon in (self.a, self.b):
            with open(f"/proc/{daemon.process.pid}/maps") as f:
                self.assertIn("libpq.so.5", f.read())

    def test_a_code_accepted_on_a_is_refused_on_b(self):
        secret, _, step = enroll_root(self.a, CAROL)
        code = code_after(secret, step)
        self.assertEqual(self.a.call(h.verify_request(CAROL, code))["status"], "ok")
        self.assertEqual(self.b.call(h.verify_request(CAROL, code))["status"], "replayed")

    def test_failures_on_a_and_b_add_up_to_one_lockout(self):
        secret, _, step = enroll_root(self.a, BOB)
        wrong = wrong_code(secret)
        for daemon in (self.a, self.b):
            self.assertEqual(daemon.call(h.verify_request(BOB, wrong))["status"], "wrong_code")
        third = self.a.call(h.verify_request(BOB, wrong))["status"]
        self.assertIn(third, ("wrong_code", "locked"))
        # Locked everywhere: even the right code is refused on B.
        reply = self.b.call(h.verify_request(BOB, code_after(secret, step)))
        self.assertEqual(reply["status"], "locked", reply)
        rc, status, _ = self.b.tool_json("--user", BOB, "status")
        self.assertEqual(rc, 0)
        self.assertIsNotNone(status["locked_until"])

    def test_a_host_without_the_key_is_refused_and_makes_no_key(self):
        # The database holds the fleet's sealed key check: a new key could
        # open nothing, so the host says where the key belongs instead.
        c = h.Daemon(store="postgresql", postgresql_dsn=self.dsn)
        try:
            c.start(wait=False)
            self.assertEqual(c.process.wait(20), 1, c.log())
            self.assertFalse(os.path.exists(c.key_file), "made a key the fleet cannot use")
            self.assertIn(c.key_file, c.log())
            self.assertIn("restore", c.log())
        finally:
            c.cleanup()

    def test_a_recovery_code_used_on_b_is_gone_on_a(self):
        _, codes, _ = enroll_root(self.a, DAVE)
        reply = self.b.call(h.verify_request(DAVE, codes[0]))
        self.assertEqual(reply["status"], "ok", reply)
        self.assertEqual(reply["recovery_codes_left"], 2)
        self.assertEqual(self.a.call(h.verify_request(DAVE, codes[0]))["status"], "wrong_code")
        rc, status, _ = self.a.tool_json("--user", DAVE, "status")
        self.assertEqual((rc, status["recovery_codes_left"]), (0, 2))

    def test_one_code_raced_to_both_hosts_is_accepted_exactly_once(self):
        started = time.time()
        for round_ in range(RACE_ROUNDS):
            self.a.call({"op": "admin_reset", "user": RACE})
            secret, _, step = enroll_root(self.a if round_ % 2 else self.b, RACE)
            request = h.encode_frame(h.verify_request(RACE, code_after(secret, step)))
            replies = [None, None]
            barrier = threading.Barrier(2)

            def send(index, daemon):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(10)
                    sock.connect(daemon.socket)
                    barrier.wait()
                    sock.sendall(request)
                    replies[index] = h.read_frame(sock)

            threads = [threading.Thread(target=send, args=(i, d))
                       for i, d in enumerate((self.a, self.b))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            statuses = sorted(r["status"] for r in replies)
            self.assertEqual(statuses, ["ok", "replayed"], f"round {round_}: {replies}")
        print(f"{RACE_ROUNDS} races in {time.time() - started:.1f}s", flush=True)


class Outage(unittest.TestCase):
    """PostgreSQL stops under running daemons, then comes back."""

    def setUp(self):
        self.cluster = pg_cluster.Cluster().init().start().create_role_and_database()
        self.a, self.b = fleet(self.cluster.dsn(), recovery_codes=1)
        self.pam = Pam()
        self.svc_b = self.pam.service("kp-fleet-outage", f"socket={self.b.socket}")

    def tearDown(self):
        self.a.cleanup()
        self.b.cleanup()
        self.pam.cleanup()
        self.cluster.destroy()

    def test_logins_are_refused_while_the_database_is_down_and_work_again_after(self):
        secret, _, step = enroll_root(self.a, ERIN)
        self.cluster.stop()
        code = code_after(secret, step)
        ok, out = self.pam.authenticate(self.svc_b, ERIN, code)
        self.assertFalse(ok, "login let through while the database is down: " + out)
        self.assertIn("two-factor authentication store is unavailable", out)
        for daemon in (self.a, self.b):
            started = time.time()
            reply = daemon.call(h.verify_request(ERIN, code))
            self.assertEqual(reply["status"], "store_unavailable", reply)
            self.assertLess(time.time() - started, 5.0, "a refusal waited on the database")
        rc, _, result = self.a.tool_json("--user", ERIN, "status")
        self.assertEqual(rc, 1, result.stderr)
        for daemon in (self.a, self.b):
            self.assertIsNone(daemon.process.poll(), "daemon exited:\n" + daemon.log())
        self.assertIn("refusing logins until the database is back", self.b.log())
        self.assertNotIn(secret, self.a.log() + self.b.log())

        self.cluster.start()  # same port, same data: as after a failover or restart
        deadline = time.time() + 30
        while True:
            ok, out = self.pam.authenticate(self.svc_b, ERIN, code_after(secret, step))
            if ok or time.time() > deadline:
                break
            self.assertIn("unavailable", out)  # never a wrong code meanwhile
            time.sleep(0.5)
        self.assertTrue(ok, "no login after the database came back: " + out + self.b.log())
        self.assertIn("connected again", self.b.log())
        rc, status, result = self.a.tool_json("--user", ERIN, "status")
        self.assertEqual((rc, status and status["enrolled"]), (0, True), result.stderr)

    def test_a_daemon_started_while_the_database_is_down_comes_up_and_serves_once_it_is_back(self):
        _, codes, _ = enroll_root(self.a, ERIN)
        self.cluster.stop()
        c = h.Daemon(store="postgresql", postgresql_dsn=self.cluster.dsn())
        try:
            shutil.copy(self.a.key_file, c.key_file)
            os.chmod(c.key_file, 0o600)
            c.start()  # listening, not exited
            self.assertEqual(c.call(h.verify_request(ERIN, codes[0]))["status"],
                             "store_unavailable")
            self.cluster.start()
            deadline = time.time() + 30
            while True:
                reply = c.call(h.verify_request(ERIN, codes[0]))
                if reply["status"] != "store_unavailable" or time.time() > deadline:
                    break
                time.sleep(0.5)
            self.assertEqual(reply["status"], "ok", c.log())
            self.assertEqual(self.b.call(h.verify_request(ERIN, codes[0]))["status"],
                             "wrong_code")
        finally:
            c.cleanup()


class LostSynchronousStandby(unittest.TestCase):
    """A primary whose one synchronous standby goes away: every COMMIT waits
    for an acknowledgement that never comes, which statement_timeout does not
    end. The daemon must refuse within its own budget, not hang."""

    def setUp(self):
        self.cluster = pg_cluster.Cluster().init().start().create_role_and_database()
        self.standby = None
        self.a = self.pam = None
        try:
            self.standby = self.cluster.add_standby("s1")
            self.a = h.Daemon(store="postgresql", postgresql_dsn=self.cluster.dsn(),
                              max_failures=10).start()
            self.pam = Pam()
            # unavailable=ignore, and a permissive line after the module: only
            # PAM_IGNORE from the module would let a login through here.
            self.svc = self.pam.service("kp-fleet-sync", f"socket={self.a.socket} "
                                        "unavailable=ignore", then_permit=True)
        except Exception:
            self.tearDown()
            raise

    def tearDown(self):
        for part in (self.a, self.pam):
            if part is not None:
                part.cleanup()
        if self.standby is not None:
            self.standby.destroy()
        self.cluster.destroy()

    def test_a_lost_standby_is_a_quick_refusal_logged_once_never_an_open_door(self):
        secret, _, step = enroll_root(self.a, FRANK)
        self.standby.stop(mode="immediate")
        # Each wrong code is counted, so each verify COMMITs.
        for attempt in range(3):
            started = time.monotonic()
            reply = self.a.call(h.verify_request(FRANK, wrong_code(secret)))
            waited = time.monotonic() - started
            self.assertEqual(reply["status"], "store_unavailable", reply)
            self.assertLess(waited, 2.0, f"attempt {attempt}: refused after {waited:.2f}s")
        started = time.monotonic()
        ok, out = self.pam.authenticate(self.svc, FRANK, code_after(secret, step))
        self.assertFalse(ok, "login through with the standby gone: " + out)
        self.assertIn("two-factor authentication store is unavailable", out)
        self.assertIn("Authentication failure", out)  # PAM_AUTH_ERR, not PAM_IGNORE
        self.assertLess(time.monotonic() - started, 5.0)
        # Reads do not wait for the standby: the login got as far as the prompt.
        self.assertEqual(self.a.call({"op": "login_check", "user": FRANK})["status"], "ok")
        log = self.a.log()
        failed = [line for line in log.splitlines() if "state store failed" in line]
        self.assertEqual(len(failed), 1, log)
        self.assertIn("synchronous standby", failed[0])
        self.assertNotIn(secret, log)
        # The cancelled COMMITs released their row locks: the standby back,
        # the user logs in again.
        self.standby.start()
        deadline = time.time() + 30
        while True:
            reply = self.a.call(h.verify_request(FRANK, code_after(secret, h.step_of())))
            if reply["status"] in ("ok", "replayed") or time.time() > deadline:
                break
            time.sleep(0.5)
        self.assertIn(reply["status"], ("ok", "replayed"), self.a.log())


def b64(data):
    return base64.b64encode(data).decode().rstrip("=")


def normalized(code):
    return code.upper().replace("-", "").replace(" ", "").replace("O", "0")


class DatabaseWriter(unittest.TestCase):
    """Someone who can write to the database but has no key_file: recovery-code
    rows are bound to user, enrollment and position by a MAC under the key,
    sealed secrets to their enrollment. Nothing they write logs anyone in."""

    @classmethod
    def setUpClass(cls):
        cls.dsn = fresh_schema(DSN)
        cls.a = h.Daemon(store="postgresql", postgresql_dsn=cls.dsn, recovery_codes=3,
                         max_failures=10).start()

    @classmethod
    def tearDownClass(cls):
        cls.a.cleanup()

    def setUp(self):
        # Not admin reset: it reads the row first, which a forged one fails.
        self.sql(f"DELETE FROM kpanel_totp_users WHERE name IN ('{FRANK}', '{GRACE}')")

    def sql(self, statement):
        return psql(self.dsn, statement).strip()

    def refused(self, user, code):
        reply = self.a.call(h.verify_request(user, code))
        self.assertNotEqual(reply["status"], "ok", f"{user} logged in with {code}: {reply}")
        return reply

    def test_copied_or_forged_recovery_code_rows_are_refused(self):
        _, frank_codes, _ = enroll_root(self.a, FRANK)
        _, grace_codes, _ = enroll_root(self.a, GRACE)
        # Frank's rows copied over Grace's: Frank's codes do not log Grace in.
        self.sql(f"DELETE FROM kpanel_totp_recovery_codes WHERE name = '{GRACE}'; "
                 "INSERT INTO kpanel_totp_recovery_codes (name, idx, hash, used) "
                 f"SELECT '{GRACE}', idx, hash, used FROM kpanel_totp_recovery_codes "
                 f"WHERE name = '{FRANK}'")
        self.refused(GRACE, frank_codes[0])
        # A hash computed without the daemon, in the stored format (checked
        # first against a stored one: same salt, same code, same hash).
        stored = self.sql(f"SELECT hash FROM kpanel_totp_recovery_codes WHERE name = '{FRANK}'"
                          " AND idx = 0")
        scheme, params, salt, digest = stored.split("$mac=")[0].split("$")
        self.assertEqual((scheme, params), ("scrypt", "ln=12,r=8,p=1"))
        raw_salt = base64.b64decode(salt + "=" * (-len(salt) % 4))
        ours = hashlib.scrypt(normalized(frank_codes[0]).encode(), salt=raw_salt, n=1 << 12,
                              r=8, p=1, dklen=32)
        self.assertEqual(b64(ours), digest)
        chosen = normalized(frank_codes[1])
        forged = hashlib.scrypt(chosen.encode(), salt=raw_salt, n=1 << 12, r=8, p=1, dklen=32)
        for row in (f"scrypt$ln=12,r=8,p=1${salt}${b64(forged)}",
                    f"scrypt$ln=12,r=8,p=1${salt}${b64(forged)}$mac=" + "0" * 64):
            self.sql(f"DELETE FROM kpanel_totp_recovery_codes WHERE name = '{GRACE}'; "
                     "INSERT INTO kpanel_totp_recovery_codes (name, idx, hash, used) "
                     f"VALUES ('{GRACE}', 0, '{row}', false)")
            self.refused(GRACE, chosen)
        self.assertIn("not bound to it by key_file", self.a.log())
        # Frank, untouched, still logs in with his own code.
        self.assertEqual(self.a.call(h.verify_request(FRANK, frank_codes[2]))["status"], "ok")
        del grace_codes

    def test_an_old_sealed_secret_written_back_after_a_reset_is_refused(self):
        old_secret, _, step = enroll_root(self.a, GRACE)
        old_sealed = self.sql(f"SELECT encode(active_secret, 'hex') FROM kpanel_totp_users"
                              f" WHERE name = '{GRACE}'")
        self.a.tool("admin", "reset", GRACE)
        time.sleep(1.1)  # a new enrollment, a new enrolled_at
        enroll_root(self.a, GRACE)
        self.sql(f"UPDATE kpanel_totp_users SET active_secret = decode('{old_sealed}', 'hex')"
                 f" WHERE name = '{GRACE}'")
        self.refused(GRACE, code_after(old_secret, max(step, h.step_of())))


class SaturatedServer(unittest.TestCase):
    """Another application takes every connection slot of the server: a
    daemon whose pool already holds a connection keeps serving on it."""

    def setUp(self):
        self.cluster = pg_cluster.Cluster().init()
        # 3 slots are reserved for superusers: 5 for everyone else.
        self.cluster.settings["max_connections"] = 8
        self.cluster.start().create_role_and_database()
        self.hogs = []
        self.a = None

    def tearDown(self):
        for hog in self.hogs:
            hog.kill()
            hog.wait()
        if self.a is not None:
            self.a.cleanup()
        self.cluster.destroy()

    def fill_slots(self):
        """Sessions of the daemon's role that sleep until every slot is taken."""
        for _ in range(10):
            hog = subprocess.Popen(
                [os.path.join(pg_cluster.bin_dir(), "psql"), "-X", "-q", self.cluster.dsn(),
                 "-c", "SELECT pg_sleep(600)"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(0.3)
            if hog.poll() is not None:  # refused: the server is full
                self.assertRegex(hog.stderr.read(), "too many clients|slots are reserved")
                return
            self.hogs.append(hog)
        self.fail("the server never filled up")

    def test_a_host_with_pooled_connections_keeps_serving_when_the_server_is_full(self):
        self.a = h.Daemon(store="postgresql", postgresql_dsn=self.cluster.dsn(),
                          max_failures=10).start()
        secret, _, step = enroll_root(self.a, FRANK)
        self.fill_slots()
        # Bursts that need more connections than the pool has: each new
        # connect fails; the requests are served on the open ones.
        request = h.verify_request(FRANK, wrong_code(secret))
        for _ in range(3):
            replies = [None] * 4

            def send(index):
                replies[index] = self.a.call({"op": "login_check", "user": FRANK})

            threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual([r["status"] for r in replies], ["ok"] * 4, replies)
        for _ in range(5):
            self.assertEqual(self.a.call(request)["status"], "wrong_code")
        reply = self.a.call(h.verify_request(FRANK, code_after(secret, step)))
        self.assertEqual(reply["status"], "ok", reply)
        self.assertIn("connection(s) already open", self.a.log())


class FakeServer:
    """A PostgreSQL server on 127.0.0.1 that declines TLS (answers an
    SSLRequest with 'N') and asks for the password in clear text: what a host
    on the path could do. Records every byte it receives."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.received = b""
        self.connections = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(5)
                try:
                    self.exchange(conn)
                except OSError:
                    pass

    def read(self, conn, size):
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        self.received += data
        return data

    def exchange(self, conn):
        length, code = struct.unpack("!ii", self.read(conn, 8))
        if length == 8 and code == 80877103:  # SSLRequest: no TLS here
            conn.sendall(b"N")
            length, code = struct.unpack("!ii", self.read(conn, 8))
        self.read(conn, length - 8)  # the rest of the startup packet
        conn.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
        kind = self.read(conn, 1)
        (length,) = struct.unpack("!i", self.read(conn, 4))
        self.read(conn, length - 4)
        del kind

    def close(self):
        self.listener.close()


class Transport(unittest.TestCase):
    """A DSN that leaves this machine must verify the server: refused before
    any connection otherwise; with verify-full, a server that declines TLS
    never sees the password. Traffic goes to 127.0.0.1 only (hostaddr=); the
    host name is what the rule and the certificate check look at."""

    PASSWORD = "kpt-fl-Secret-771"

    def setUp(self):
        self.server = FakeServer()

    def tearDown(self):
        self.server.close()

    @staticmethod
    def with_key(daemon):
        """A key_file of its own: with the database out of reach, the daemon
        cannot tell whether it may make one."""
        with open(daemon.key_file, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(daemon.key_file, 0o600)
        os.chmod(daemon.config_path, 0o600)
        return daemon

    def dsn(self, sslmode):
        return (f"host=db.example.net hostaddr=127.0.0.1 port={self.server.port} "
                f"user=kpanel_totp dbname=kpanel_totp password={self.PASSWORD} "
                f"sslmode={sslmode} connect_timeout=2")

    def test_a_remote_dsn_without_verify_full_is_refused_before_connecting(self):
        with h.Daemon(store="postgresql", postgresql_dsn=self.dsn("prefer")) as d:
            os.chmod(d.config_path, 0o600)
            check = subprocess.run([h.TOTPD, "--config", d.config_path, "--check-config"],
                                   capture_output=True, text=True, timeout=30)
            self.assertEqual(check.returncode, 1, check.stdout + check.stderr)
            lines = check.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, check.stderr)
            self.assertRegex(lines[0], rf"^{re.escape(d.config_path)}:\d+: postgresql_dsn: "
                             "reaches db.example.net, not this machine, with sslmode=prefer")
            self.assertNotIn(self.PASSWORD, check.stdout + check.stderr)
            d.start(wait=False)
            self.assertEqual(d.process.wait(20), 1, d.log())
            self.assertIn("postgresql_dsn: reaches db.example.net", d.log())
            self.assertNotIn(self.PASSWORD, d.log())
        self.assertEqual(self.server.connections, 0, "a connection was tried")

    def test_check_config_asks_libpq_whether_the_dsn_parses(self):
        with h.Daemon(store="postgresql",
                      postgresql_dsn="host=/run/postgresql dbname='unterminated") as d:
            check = subprocess.run([h.TOTPD, "--config", d.config_path, "--check-config"],
                                   capture_output=True, text=True, timeout=30)
            self.assertEqual(check.returncode, 1, check.stdout + check.stderr)
            self.assertIn(f"{d.config_path}: postgresql_dsn: postgresql store: postgresql_dsn "
                          "is not a valid libpq connection string", check.stderr)
            self.assertNotIn("unterminated", check.stderr)

    def test_under_verify_full_a_server_declining_tls_never_gets_the_password(self):
        with h.Daemon(store="postgresql", postgresql_dsn=self.dsn("verify-full")) as d:
            self.with_key(d).start()  # up, refusing: the database "is unreachable"
            reply = d.call(h.verify_request(FRANK, "123456"))
            self.assertEqual(reply["status"], "store_unavailable", reply)
        self.assertGreater(self.server.connections, 0)
        self.assertNotIn(self.PASSWORD.encode(), self.server.received)
        self.assertNotIn(b"kpanel_totp", self.server.received, "the startup packet was sent")

    def test_the_fake_server_does_get_the_password_without_tls_in_a_lab(self):
        # What the rule prevents, shown with its override: sslmode=prefer
        # falls back to clear text and hands the password over.
        with h.Daemon(store="postgresql", postgresql_dsn=self.dsn("prefer"),
                      postgresql_allow_unverified="yes") as d:
            self.with_key(d).start()
            d.call(h.verify_request(FRANK, "123456"))
        self.assertIn(self.PASSWORD.encode(), self.server.received)


class Migration(unittest.TestCase):
    def test_a_sqlite_host_joins_the_fleet_without_enrolling_again(self):
        dsn = fresh_schema(DSN)
        with h.Daemon(recovery_codes=2) as local:
            local.start()
            secret, codes, step = enroll_root(local, ERIN)
            self.assertEqual(local.call(h.verify_request(ERIN, codes[0]))["status"], "ok")
            local.stop()
            migrate = [h.TOTPD, "--config", local.config_path, "--migrate-to-postgresql"]
            # The DSN from stdin, then from a file: never on the command line.
            first = subprocess.run(migrate + ["-"], input=dsn + "\n", capture_output=True,
                                   text=True, timeout=60)
            self.assertEqual(first.returncode, 0, first.stderr)
            self.assertIn("1 copied", first.stdout)
            dsn_file = os.path.join(local.dir, "dsn")
            with open(dsn_file, "w") as f:
                f.write(dsn + "\n")
            os.chmod(dsn_file, 0o644)
            refused = subprocess.run(migrate + [dsn_file], capture_output=True, text=True,
                                     timeout=60)
            self.assertEqual(refused.returncode, 1, refused.stderr)
            self.assertIn(f"chmod 600 {dsn_file}", refused.stderr)
            os.chmod(dsn_file, 0o600)
            again = subprocess.run(migrate + [dsn_file], capture_output=True, text=True,
                                   timeout=60)
            self.assertEqual(again.returncode, 0, again.stderr)
            self.assertIn("0 copied, 1 already there", again.stdout)
            self.assertNotIn("password", first.stdout + first.stderr)

            local.config.update(store="postgresql", postgresql_dsn=dsn)
            local.write_config()
            local.start()
            # The step and recovery code used before the move stay used.
            self.assertEqual(local.call(h.verify_request(ERIN, codes[0]))["status"],
                             "wrong_code")
            # Replayed while that step is still inside the window, wrong after.
            self.assertIn(
                local.call(h.verify_request(ERIN, h.totp(secret, at=step * 30 + 1)))["status"],
                ("replayed", "wrong_code"))
            self.assertEqual(
                local.call(h.verify_request(ERIN, code_after(secret, step)))["status"], "ok")

            # Another host (same key) where the same user enrolled another phone:
            # the shared enrollment is kept and the conflict named.
            with h.Daemon() as other:
                shutil.copy(local.key_file, other.key_file)
                os.chmod(other.key_file, 0o600)
                other.start()
                enroll_root(other, ERIN)
                other.stop()
                result = subprocess.run(
                    [h.TOTPD, "--config", other.config_path, "--migrate-to-postgresql", dsn],
                    capture_output=True, text=True, timeout=60)
                self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
                self.assertIn(f"{ERIN}: enrolled in the shared store with another secret",
                              result.stderr)
                self.assertIn("1 conflicting", result.stdout)

if __name__ == "__main__":
    unittest.main()
