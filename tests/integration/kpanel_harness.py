"""Shared pieces of the integration tests: a throwaway kpanel-totpd (its own
config, socket, state dir and key under a temp dir), test users, the tool run
as a given user, a raw protocol client (common/PROTOCOL.md) that can speak as
any uid, and TOTP codes from oathtool, an independent implementation.

The tests run as root (CI does): they create system users with a prefix
unique to each test file and remove them afterwards.
"""

import json
import os
import pwd
import grp
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

TOTPD = os.environ.get("KPANEL_TOTPD", "kpanel-totpd")
TOOL = os.environ.get("KPANEL_TOOL", "kpanel-totp")

_REACHABLE_COPIES = {}


def runnable_by_anyone(path):
    """`path`, or a copy of it that every user can run. A build tree inside a
    private directory (a clone in /root, mode 0700) cannot be reached by a
    test user, so a test that execs a binary as that user (subprocess's
    user=, os.setuid then exec) runs this copy, made once in a world-readable
    temp directory and removed when the tests exit. Runs through `setpriv
    --reuid` need none: setpriv still reaches the file when it execs it (as
    measured on Debian 12), as Daemon.run_as and Daemon.tool rely on."""
    path = os.path.abspath(path)
    if path in _REACHABLE_COPIES:
        return _REACHABLE_COPIES[path]
    reachable = bool(os.stat(path).st_mode & 0o001)
    directory = os.path.dirname(path)
    while reachable and directory != "/":
        reachable = bool(os.stat(directory).st_mode & 0o001)
        directory = os.path.dirname(directory)
    if reachable:
        _REACHABLE_COPIES[path] = path
        return path
    import atexit
    copy_dir = tempfile.mkdtemp(prefix="kpanel-bin-")
    os.chmod(copy_dir, 0o755)
    atexit.register(shutil.rmtree, copy_dir, True)
    copy = os.path.join(copy_dir, os.path.basename(path))
    shutil.copyfile(path, copy)
    os.chmod(copy, 0o755)
    _REACHABLE_COPIES[path] = copy
    return copy


MAGIC = b"KP"
VERSION = 1


def require_root(test_case):
    if os.geteuid() != 0:
        raise unittest.SkipTest("integration tests need root (users, setuid peers)")


# ---- users -------------------------------------------------------------------

# Every throwaway account the integration tests use: name -> (password or
# None, supplementary groups). Under CTest one fixture creates them all before
# any test runs and another removes them after the last, so no test changes
# /etc/passwd while others read it (KPANEL_USERS_FIXTURE=1); run by hand, a
# test module creates and removes its own.
TEST_USERS = {
    "kpt_d_alice": (None, []), "kpt_d_bob": (None, []), "kpt_d_admin": (None, ["kpt_d_admins"]),
    "kpt_p_alice": (None, []), "kpt_p_bob": (None, []),
    "kpt_t_alice": ("correct horse battery staple", []),
    "kpt_t_bob": ("correct horse battery staple", []),
    "kpt_s_alice": ("Tr0ub4dor&3-kpanel", []),
    "kpt_r_newbie": ("Kpanel-rollout-9", []),
    "kpt_r_glass": ("Kpanel-rollout-9", ["kpt_r_exempt"]),
    "kpt_o_alice": (None, []),
    # the daemon's own account in the hardening test (like kpanel-totp: group shadow)
    "kpt_k_daemon": (None, ["shadow"]),
    "kpt_k_alice": ("Kpanel-hardened-7", []),
    # crash consistency (many users: each one's codes are used once per step)
    **{f"kpt_c_{i:02d}": (None, []) for i in range(30)},
    # abuse: abusive clients spread over several uids, one legitimate user
    **{f"kpt_a_{i:02d}": (None, []) for i in range(20)},
    "kpt_a_alice": (None, []),
    # storage faults
    "kpt_f_alice": (None, []),
    # the crash fence
    "kpt_fn_alice": (None, []),
    # clock jumps (faketime)
    "kpt_cj_alice": (None, []),
    # slow-lane flood: a dozen local users with passwords, and the accounts root logs in
    **{f"kpt_fd_{i:02d}": ("Kpanel-flood-5", []) for i in range(12)},
    **{f"kpt_fd_t{i}": (None, []) for i in range(6)},
    # fleet: two daemons on one PostgreSQL database
    **{f"kpt_fl_{name}": (None, []) for name in ("alice", "bob", "carol", "dave", "erin", "race",
                                                       "frank", "grace")},
    # accounts: one account under two names (see ALIASES); audit rate limit
    "kpt_n_alice": (None, []),
    "kpt_l_flood": (None, []), "kpt_l_alice": (None, []),
    # backup and restore
    "kpt_b_alice": (None, []), "kpt_b_bob": (None, []), "kpt_b_carol": (None, []),
    "kpt_b_daemon": (None, []),
    # admin list --all and admin stats: enrolled, not enrolled, exempt, an
    # admin, a user who is neither, the daemon's own account (unprivileged)
    "kpt_st_alice": (None, []), "kpt_st_bob": (None, []),
    "kpt_st_glass": (None, ["kpt_st_exempt"]), "kpt_st_admin": (None, ["kpt_st_admins"]),
    "kpt_st_eve": (None, []), "kpt_st_daemon": (None, []),
    # import of google-authenticator files
    **{f"kpt_i_{name}": (None, []) for name in ("alice", "bob", "carol", "dave", "erin", "frank",
                                                "gina", "hank")},
    # remembered logins (one with a password: the sshd test)
    "kpt_rm_alice": (None, []), "kpt_rm_bob": (None, []),
    "kpt_rm_ssh": ("Kpanel-remember-4", []),
    # a stored record that does not read: one good user, one bad
    "kpt_br_good": (None, []), "kpt_br_bad": (None, []),
}
# Second passwd entries for an account above (useradd -o: same uid, another
# name), made after and removed before the accounts themselves.
ALIASES = {"kpt_n_alias": "kpt_n_alice"}
FIXTURE = os.environ.get("KPANEL_USERS_FIXTURE") == "1"


def password_of(name):
    return TEST_USERS[name][0]


def _create_user(name):
    password, groups = TEST_USERS[name]
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
    for group in groups:
        try:
            grp.getgrnam(group)
        except KeyError:
            subprocess.run(["groupadd", "--system", group], check=True)
        subprocess.run(["usermod", "-aG", group, name], check=True)
    if password is not None:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)


def _delete_user(name):
    subprocess.run(["userdel", "--remove", name], stderr=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL)
    for group in TEST_USERS[name][1]:
        if group.startswith("kpt_"):  # never a system group such as shadow
            subprocess.run(["groupdel", group], stderr=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL)


def _create_alias(name):
    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    account = pwd.getpwnam(ALIASES[name])
    subprocess.run(["useradd", "--non-unique", "--uid", str(account.pw_uid), "--gid",
                    str(account.pw_gid), "--no-create-home", "--shell", "/bin/bash", name],
                   check=True)


def _delete_alias(name):
    subprocess.run(["userdel", name], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def ensure_users(*names):
    """setUpModule: the accounts exist (made here unless the fixture made them)."""
    for name in names:
        if FIXTURE:
            pwd.getpwnam(name)  # KeyError: the fixture list is missing it
        elif name in ALIASES:
            _create_alias(name)
        else:
            _create_user(name)


def remove_users(*names):
    """tearDownModule: removes them unless the CTest fixture owns them."""
    if not FIXTURE:
        for name in names:
            if name in ALIASES:
                _delete_alias(name)
            else:
                _delete_user(name)


def uid_of(name):
    return pwd.getpwnam(name).pw_uid


# ---- codes -------------------------------------------------------------------

def totp(secret, at=None, algorithm="SHA1", digits=6, period=30):
    """The code for `secret` at unix time `at` (default now), from oathtool."""
    at = time.time() if at is None else at
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    args = ["oathtool", "--base32", f"--totp={algorithm.lower()}", f"--digits={digits}",
            f"--time-step-size={period}s", f"--now={stamp}", secret]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def step_of(at=None, period=30):
    return int((time.time() if at is None else at) // period)


def wait_for_next_step(period=30):
    """Sleeps into a fresh step, so a test gets a code never used before."""
    now = time.time()
    time.sleep(period - (now % period) + 0.05)


# ---- raw protocol client -----------------------------------------------------

def encode_frame(obj, version=VERSION):
    body = json.dumps(obj).encode()
    return MAGIC + struct.pack(">BBI", version, 0, len(body)) + body


def read_frame(sock):
    header = _read_exactly(sock, 8)
    if header is None:
        return None
    if header[:2] != MAGIC:
        raise AssertionError(f"bad magic in reply: {header!r}")
    (length,) = struct.unpack(">I", header[4:8])
    body = _read_exactly(sock, length)
    return json.loads(body)


def _read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None if not data else data
        data += chunk
    return data


def connect(socket_path, timeout=10.0):
    """connect() as the module and the tool do: while the daemon's listen
    backlog is full, AF_UNIX connect fails with EAGAIN at once (a socket with
    a timeout is non-blocking); they retry until their deadline, so do we."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
            return sock
        except BlockingIOError:
            sock.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.002)
        except BaseException:
            sock.close()
            raise


def call_raw(socket_path, payload: bytes, timeout=10.0):
    """Sends raw bytes, returns the decoded reply or None when the daemon closed."""
    with connect(socket_path, timeout) as sock:
        sock.sendall(payload)
        try:
            return read_frame(sock)
        except (ConnectionResetError, BrokenPipeError):
            return None


def call(socket_path, request, as_user=None, timeout=10.0, version=VERSION):
    """One request as root, or as `as_user` (a forked child drops to that uid,
    so the daemon sees it in SO_PEERCRED), in a frame of `version`."""
    if as_user is None:
        return call_raw(socket_path, encode_frame(request, version), timeout)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_end)
            entry = pwd.getpwnam(as_user)
            os.setgroups(os.getgrouplist(as_user, entry.pw_gid))
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            reply = call_raw(socket_path, encode_frame(request, version), timeout)
            os.write(write_end, json.dumps(reply).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks) or b"null")


# ---- the daemon --------------------------------------------------------------

class Daemon:
    """A kpanel-totpd on its own socket/state/key. Use as a context manager."""

    def __init__(self, pam_services=None, **config):
        # pam_services: {name: text}; the daemon then runs under pam_wrapper and
        # checks passwords through these service files instead of /etc/pam.d.
        self.pam_services = pam_services
        self.dir = tempfile.mkdtemp(prefix="kpanel-it-")
        os.chmod(self.dir, 0o755)  # test users must reach the socket
        self.socket = os.path.join(self.dir, "run", "kpanel-totpd.sock")
        self.state_dir = os.path.join(self.dir, "state")
        self.key_file = os.path.join(self.dir, "state.key")
        self.config_path = os.path.join(self.dir, "kpanel-totpd.conf")
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.config = {
            "socket": self.socket,
            "state_dir": self.state_dir,
            "key_file": self.key_file,
        }
        self.config.update({k: str(v) for k, v in config.items()})
        self.write_config()
        self.process = None

    def write_config(self, extra_text=""):
        with open(self.config_path, "w") as f:
            for key, value in self.config.items():
                f.write(f"{key} = {value}\n")
            f.write(extra_text)
        os.chmod(self.config_path, 0o644)

    def run_as(self, user):
        """Runs the daemon as `user` (its groups, no capabilities, no-new-privs),
        as the hardened systemd unit does; state, key and socket dirs are its own."""
        entry = pwd.getpwnam(user)
        owned = os.path.join(self.dir, "owned")
        os.makedirs(owned, exist_ok=True)
        os.makedirs(os.path.dirname(self.socket), exist_ok=True)
        for path in (owned, os.path.dirname(self.socket)):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(owned, 0o700)
        self.state_dir = os.path.join(owned, "state")
        self.key_file = os.path.join(owned, "state.key")
        self.config.update(state_dir=self.state_dir, key_file=self.key_file)
        self.write_config()
        self.user = user
        return self

    def start(self, wait=True):
        env = dict(os.environ)
        if self.pam_services is not None:
            service_dir = os.path.join(self.dir, "pam.d")
            os.makedirs(service_dir, exist_ok=True)
            for name, text in {"other": "auth required pam_deny.so\n",
                               **self.pam_services}.items():
                with open(os.path.join(service_dir, name), "w") as f:
                    f.write(text)
            env.update(pam_wrapper_env(service_dir))
        log = open(self.log_path, "ab")
        command = [TOTPD, "--config", self.config_path]
        if getattr(self, "user", None):
            command = ["setpriv", f"--reuid={self.user}", f"--regid={self.user}",
                       "--init-groups", "--inh-caps=-all", "--bounding-set=-all",
                       "--no-new-privs", *command]
        boot_id = getattr(self, "boot_id", None)
        if boot_id:
            # As after a reboot: the kernel's boot id reads as `boot_id` in a
            # private mount namespace of the daemon's own (needs root).
            path = os.path.join(self.dir, "boot_id")
            with open(path, "w") as f:
                f.write(boot_id + "\n")
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                       'mount --bind "$0" /proc/sys/kernel/random/boot_id && exec "$@"', path,
                       *command]
        self.process = subprocess.Popen(command, stdout=log, stderr=log, env=env)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"kpanel-totpd exited {self.process.returncode}:\n{self.log()}")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.connect(self.socket)
                    return
            except OSError:
                time.sleep(0.02)
        raise AssertionError(f"kpanel-totpd did not listen within {timeout}s:\n{self.log()}")

    def stop(self, timeout=10.0):
        """SIGTERM; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def restart(self):
        self.stop()
        return self.start()

    def log(self):
        """The daemon's stderr so far. It writes a request's audit line just
        after the reply, so this waits until the file has stopped growing for
        a moment (a client can see the reply before the line is written)."""
        def read():
            try:
                with open(self.log_path, errors="replace") as f:
                    return f.read()
            except OSError:
                return ""
        text = read()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            time.sleep(0.02)
            again = read()
            if again == text:
                break
            text = again
        return text

    def call(self, request, as_user=None, timeout=10.0, version=VERSION):
        return call(self.socket, request, as_user, timeout, version)

    def tool(self, *args, as_user=None, input_text=None, timeout=30):
        """Runs kpanel-totp against this daemon; returns CompletedProcess."""
        command = [TOOL, "--socket", self.socket, *args]
        if as_user is not None:
            command = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--init-groups",
                       "--reset-env", *command]
        return subprocess.run(command, input=input_text if input_text is not None else "",
                              capture_output=True, text=True, timeout=timeout)

    def tool_json(self, *args, **kwargs):
        result = self.tool("--json", *args, **kwargs)
        try:
            data = json.loads(result.stdout) if result.stdout.strip() else None
        except json.JSONDecodeError as e:
            raise AssertionError(f"not JSON: {result.stdout!r} (stderr {result.stderr!r})") from e
        return result.returncode, data, result

    def enroll(self, user):
        """Enrolls `user` through the tool; returns (secret, recovery codes)."""
        rc, begun, result = self.tool_json("enroll", "--begin", as_user=user)
        assert rc == 0, f"enroll --begin: {rc} {result.stderr}"
        secret = begun["secret"]
        rc, confirmed, result = self.tool_json("enroll", "--confirm", totp(secret), as_user=user)
        assert rc == 0, f"enroll --confirm: {rc} {result.stderr}"
        return secret, confirmed["recovery_codes"]

    def enroll_raw(self, user):
        """Enrolls through raw frames (no trust check: for a daemon under a test
        uid, whose socket the tool rightly refuses); returns (secret, codes)."""
        begun = self.call({"op": "enroll_begin", "user": user}, as_user=user)
        assert begun["status"] == "ok", begun
        secret = begun["secret_base32"]
        confirmed = self.call({"op": "enroll_confirm", "user": user, "code": totp(secret)},
                              as_user=user)
        assert confirmed["status"] == "ok", confirmed
        return secret, confirmed["codes"]

    def cleanup(self):
        self.kill()
        log = self.log()
        shutil.rmtree(self.dir, ignore_errors=True)
        # Sanitizer builds: any finding in the daemon fails the test that ran it.
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if marker in log:
                raise AssertionError(f"kpanel-totpd reported {marker}:\n{log}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


def preload_into_ours(library):
    """LD_PRELOAD value for running one of our own binaries with `library`
    (a test shim): in sanitizer builds ASan's runtime must come first."""
    if os.environ.get("KPANEL_SANITIZE") == "1":
        return os.environ["KPANEL_PAM_PRELOAD"].split(":")[0] + ":" + library
    return library


def verify_request(user, code, service="sshd", rhost="127.0.0.1", tty="ssh"):
    return {"op": "verify", "user": user, "code": code, "service": service, "rhost": rhost,
            "tty": tty}


# ---- PAM ---------------------------------------------------------------------

def pam_wrapper_env(service_dir):
    """Environment that makes pam_start() read service files from `service_dir`.
    KPANEL_PAM_PRELOAD (set by CMake) puts libasan first in sanitizer builds."""
    env = {
        "LD_PRELOAD": os.environ.get("KPANEL_PAM_PRELOAD", "libpam_wrapper.so"),
        "PAM_WRAPPER": "1",
        "PAM_WRAPPER_SERVICE_DIR": service_dir,
    }
    if os.environ.get("KPANEL_SANITIZE") == "1":
        env["PAM_WRAPPER_DISABLE_DEEPBIND"] = "1"
        # pamtester and sshd are not ours; their own leaks are not findings.
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    return env


# Runs in a private mount namespace: /tmp becomes a fresh tmpfs, and each
# directory named in KPANEL_KEEP_TMP (colon-separated, under /tmp) is bound
# back from the real /tmp at its own path. "$@" is NAME=VALUE… then the
# command, for env(1).
_PRIVATE_TMP_SCRIPT = r"""
set -e
hold=$(mktemp -d /run/kpanel-tmp-hold.XXXXXX)
trap 'umount -l "$hold" 2>/dev/null; rmdir "$hold"' EXIT
mount --bind /tmp "$hold"
mount -t tmpfs -o mode=1777,size=64m kpanel-private-tmp /tmp
IFS=:
for path in $KPANEL_KEEP_TMP; do
  mkdir -p "$path"
  mount --bind "$hold${path#/tmp}" "$path"
done
unset IFS
umount -l "$hold"
rmdir "$hold"
trap - EXIT
exec env "$@"
"""


def with_private_tmp(command, keep, env, command_env):
    """`command` (an argv list) to run with a /tmp of its own in which only
    the directories `keep` are the real ones, with `command_env` (a dict)
    added to its environment only: pam_wrapper's variables must not reach
    the programs that set up the namespace (pam_wrapper sets itself up in
    every process it is preloaded into, and exits when it cannot). Sets what
    the set-up needs in `env`.

    For sshd under pam_wrapper: pam_wrapper gives each process its service
    files in /tmp/pam.<one character> and removes a directory it finds there
    whose process is gone. sshd's per-connection processes end with _exit and
    leave theirs behind, and two processes cleaning the same stale directory
    can remove the one a third has just made under that name (a race inside
    pam_wrapper): sshd then fails "PAM: initialisation failed" and closes the
    connection without a word. With its own /tmp, sshd's directories neither
    collide with other tests' nor are cleaned by them. Needs root."""
    # Anything outside /tmp is the real one anyway.
    under_tmp = [os.path.abspath(path) for path in keep
                 if os.path.abspath(path).startswith("/tmp/")]
    env["KPANEL_KEEP_TMP"] = ":".join(under_tmp)
    assignments = [f"{name}={value}" for name, value in command_env.items()]
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            _PRIVATE_TMP_SCRIPT, "sh", *assignments, *command]


if __name__ == "__main__":
    # CTest fixtures: `kpanel_harness.py setup` / `kpanel_harness.py cleanup`.
    import sys
    action = sys.argv[1] if len(sys.argv) > 1 else ""
    if action == "setup":
        for user in TEST_USERS:
            _create_user(user)
        for alias in ALIASES:
            _create_alias(alias)
    elif action == "cleanup":
        for alias in ALIASES:
            _delete_alias(alias)
        for user in TEST_USERS:
            _delete_user(user)
    else:
        sys.exit("usage: kpanel_harness.py setup|cleanup")
