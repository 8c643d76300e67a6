"""A throwaway PostgreSQL cluster for the tests of the shared (fleet) store:
initdb + pg_ctl from Debian's postgresql package under a temp dir, listening
on 127.0.0.1 at a free port, run as an unprivileged user when we are root
(postgres refuses to run as root). The daemon's role `kpanel_totp` owns the
database `kpanel_totp` and is no superuser, as in production.

CTest fixture (tests/CMakeLists.txt):
  pg_cluster.py start STATE_DIR   cluster up; STATE_DIR/dsn holds the DSN
  pg_cluster.py stop STATE_DIR    cluster stopped and removed
Tests that need to stop and restart a database (outages) make their own
Cluster() instead of touching the shared one.
"""

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROLE = "kpanel_totp"
DATABASE = "kpanel_totp"
# Who runs postgres when we are root (CI): nobody owns nothing else here.
UNPRIVILEGED = "nobody"


def bin_dir():
    """The newest /usr/lib/postgresql/N/bin with initdb, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, directory=None, port=None):
        self.bin = bin_dir()
        if self.bin is None:
            raise RuntimeError("PostgreSQL server not installed: apt-get install postgresql")
        # Under /tmp when root: the unprivileged owner must reach it, which a
        # root-only $TMPDIR would not let it. KPANEL_PG_PARENT overrides (the
        # benchmark puts its cluster on disk, where /tmp may be tmpfs).
        parent = os.environ.get("KPANEL_PG_PARENT") or ("/tmp" if os.geteuid() == 0 else None)
        self.dir = directory or tempfile.mkdtemp(prefix="kpanel-pg-", dir=parent)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgresql.log")
        self.port = port
        self.settings = {}  # more -c name=value for the server (a standby's cluster_name)

    # -- running as the unprivileged owner ------------------------------------
    def _as_owner(self, args, **kwargs):
        if os.geteuid() == 0:
            entry = pwd.getpwnam(UNPRIVILEGED)
            args = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}",
                    "--clear-groups", *args]
        return subprocess.run(args, capture_output=True, text=True, **kwargs)

    def _chown_to_owner(self):
        if os.geteuid() == 0:
            entry = pwd.getpwnam(UNPRIVILEGED)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        os.chmod(self.dir, 0o700)

    def init(self):
        self._chown_to_owner()
        result = self._as_owner([os.path.join(self.bin, "initdb"), "-D", self.data, "-U",
                                 "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"],
                                cwd="/")
        if result.returncode != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError(f"initdb failed:\n{result.stdout}{result.stderr}")
        return self

    def start(self, attempts=5):
        """Starts the server (at a new free port unless it had one)."""
        for _ in range(attempts):
            port = self.port or free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {port} "
                       f"-c unix_socket_directories={self.dir} -c max_connections=200")
            options += "".join(f" -c {k}={v}" for k, v in self.settings.items())
            result = self._as_owner([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l",
                                     self.log, "-w", "-t", "60", "-o", options, "start"], cwd="/")
            if result.returncode == 0:
                self.port = port
                return self
            if self.port:  # a fixed port (restart) that will not start: no point retrying
                break
            time.sleep(0.2)
        raise RuntimeError(f"pg_ctl start failed:\n{result.stdout}{result.stderr}\n{self.server_log()}")

    def stop(self, mode="fast"):
        """Stops the server (fast: sessions are terminated, as in a failover)."""
        self._as_owner([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", mode, "-w",
                        "-t", "60", "stop"], cwd="/")

    def server_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def psql(self, sql, database="postgres", user="postgres"):
        result = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-v", "ON_ERROR_STOP=1",
                                 "-q", "-At", "-h", "127.0.0.1", "-p", str(self.port), "-U", user,
                                 "-d", database, "-c", sql],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr}")
        return result.stdout

    def create_role_and_database(self):
        # The daemon's role: no superuser, no CREATEDB; it owns its database.
        self.psql(f"CREATE ROLE {ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
        self.psql(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        return self

    def dsn(self, **extra):
        words = [f"host=127.0.0.1 port={self.port} user={ROLE} dbname={DATABASE}",
                 "sslmode=disable connect_timeout=5"]
        words += [f"{k}={v}" for k, v in extra.items()]
        return " ".join(words)

    def destroy(self):
        self.stop(mode="immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- a streaming standby ----------------------------------------------------
    def add_standby(self, name, synchronous=True, timeout=60):
        """A streaming standby of this (running) primary, copied with
        pg_basebackup and started; it connects as application_name `name`
        (its cluster_name). synchronous: the primary's
        synchronous_standby_names becomes `name`, and this returns once the
        standby is streaming as synchronous. Returns the standby's Cluster."""
        standby = Cluster()
        standby._chown_to_owner()
        # -R: standby.signal and primary_conninfo (initdb's pg_hba lets
        # replication connections from 127.0.0.1 in with trust).
        result = standby._as_owner([os.path.join(self.bin, "pg_basebackup"), "-h", "127.0.0.1",
                                    "-p", str(self.port), "-U", "postgres", "-D", standby.data,
                                    "-R", "-X", "stream", "--checkpoint=fast"], cwd="/")
        if result.returncode != 0:
            shutil.rmtree(standby.dir, ignore_errors=True)
            raise RuntimeError(f"pg_basebackup failed:\n{result.stdout}{result.stderr}")
        standby.settings["cluster_name"] = name  # the walreceiver's application_name
        standby.start()
        if synchronous:
            self.psql(f"ALTER SYSTEM SET synchronous_standby_names = '{name}'")
            self.psql("SELECT pg_reload_conf()")
        wanted = "sync" if synchronous else "async"
        deadline = time.time() + timeout
        while True:
            state = self.psql("SELECT sync_state FROM pg_stat_replication"
                              f" WHERE application_name = '{name}' AND state = 'streaming'")
            if state.strip() == wanted:
                return standby
            if time.time() > deadline:
                raise RuntimeError(f"standby {name} not {wanted} after {timeout}s: {state!r}\n"
                                   + standby.server_log())
            time.sleep(0.2)


def fixture_start(state_dir):
    os.makedirs(state_dir, exist_ok=True)
    cluster = Cluster().init()
    try:
        cluster.start().create_role_and_database()
    except Exception:
        cluster.destroy()
        raise
    with open(os.path.join(state_dir, "cluster.json"), "w") as f:
        json.dump({"dir": cluster.dir, "port": cluster.port}, f)
    with open(os.path.join(state_dir, "dsn"), "w") as f:
        f.write(cluster.dsn() + "\n")
    print(f"postgresql test cluster at 127.0.0.1:{cluster.port} ({cluster.dir})")


def fixture_stop(state_dir):
    path = os.path.join(state_dir, "cluster.json")
    try:
        with open(path) as f:
            state = json.load(f)
    except OSError:
        print("no postgresql test cluster to stop")
        return
    Cluster(state["dir"], state["port"]).destroy()
    shutil.rmtree(state_dir, ignore_errors=True)
    print("postgresql test cluster stopped")


def fixture_dsn():
    """The fixture's DSN (env KPANEL_TEST_POSTGRESQL_DSN_FILE), or None."""
    path = os.environ.get("KPANEL_TEST_POSTGRESQL_DSN_FILE", "")
    if not path:
        return os.environ.get("KPANEL_TEST_POSTGRESQL_DSN") or None
    with open(path) as f:  # set but missing: the fixture failed, which is an error
        return f.read().strip()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit("usage: pg_cluster.py start|stop STATE_DIR")
    (fixture_start if sys.argv[1] == "start" else fixture_stop)(sys.argv[2])
