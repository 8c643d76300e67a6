"""kpanel-totp, the tool, against the real daemon: enrollment (QR in the
terminal, PNG, SVG, JSON), confirm, replace, status, disable, recovery codes,
admin commands, exit codes. Codes from oathtool; QR codes read by zbarimg."""

import os
import re
import struct
import subprocess
import tempfile
import time
import unittest
import zlib

import kpanel_harness as h

ALICE, BOB = "kpt_t_alice", "kpt_t_bob"
PASSWORD = h.password_of(ALICE)
URI_RE = re.compile(
    r"^otpauth://totp/Kapsule:(?P<user>[^?]+)%40(?P<host>[^?]+)\?secret=(?P<secret>[A-Z2-7]{32})"
    r"&issuer=Kapsule&algorithm=SHA1&digits=6&period=30$")
PASSWORD_SERVICE = "auth required pam_unix.so nodelay\naccount required pam_unix.so\n"


def setUpModule():
    h.require_root(None)
    h.ensure_users(ALICE, BOB)


def tearDownModule():
    h.remove_users(ALICE, BOB)


def zbar(path):
    out = subprocess.run(["zbarimg", "--quiet", "--raw", "--nodbus", path], capture_output=True,
                         text=True)
    return out.stdout.strip()


def write_png(path, rows, scale=6):
    """Grayscale PNG from rows of booleans (True = light), `scale` px per module."""
    width = len(rows[0]) * scale
    raw = b""
    for row in rows:
        line = b"\x00" + b"".join((b"\xff" if light else b"\x00") * scale for light in row)
        raw += line * scale
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, len(rows) * scale, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                + chunk(b"IEND", b""))


def rasterize_terminal_qr(text):
    """The half-block QR as the terminal shows it: light modules are drawn."""
    upper = {"█": (True, True), "▀": (True, False), "▄": (False, True), " ": (False, False)}
    lines = [l for l in text.splitlines() if l and set(l) <= set(upper) and set(l) != {" "}]
    rows = []
    for line in lines:
        top = [upper[c][0] for c in line]
        bottom = [upper[c][1] for c in line]
        rows += [top, bottom]
    return rows


class Enrollment(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = h.Daemon(pam_services={"kpanel-totp": PASSWORD_SERVICE}).start()
        cls.tmp = tempfile.mkdtemp(prefix="kpanel-tool-")
        os.chmod(cls.tmp, 0o777)

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        subprocess.run(["rm", "-rf", cls.tmp])

    def setUp(self):
        self.d.tool("admin", "reset", ALICE)
        self.d.tool("admin", "reset", BOB)

    def test_begin_json_then_confirm(self):
        rc, begun, _ = self.d.tool_json("enroll", "--begin", as_user=ALICE)
        self.assertEqual(rc, 0)
        match = URI_RE.match(begun["uri"])
        self.assertIsNotNone(match, begun["uri"])
        self.assertEqual(match["user"], ALICE)
        self.assertEqual(match["secret"], begun["secret"])
        self.assertEqual(match["host"], os.uname().nodename.split(".")[0])
        rc, status, _ = self.d.tool_json("status", as_user=ALICE)
        self.assertFalse(status["enrolled"])
        rc, confirmed, _ = self.d.tool_json("enroll", "--confirm", h.totp(begun["secret"]),
                                            as_user=ALICE)
        self.assertEqual(rc, 0)
        codes = confirmed["recovery_codes"]
        self.assertEqual(len(codes), 10)
        self.assertEqual(len(set(codes)), 10)
        for code in codes:
            self.assertRegex(code, r"^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{2}$")
        rc, status, _ = self.d.tool_json("status", as_user=ALICE)
        self.assertEqual(rc, 0)
        self.assertTrue(status["enrolled"])
        self.assertRegex(status["enrolled_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(status["recovery_codes_left"], 10)
        self.assertIsNone(status["locked_until"])

    def test_png_svg_and_terminal_qr_decode_to_the_uri(self):
        png = os.path.join(self.tmp, "alice.png")
        svg = os.path.join(self.tmp, "alice.svg")
        out = self.d.tool("enroll", "--begin", "--png", png, "--svg", svg, as_user=ALICE)
        self.assertEqual(out.returncode, 0, out.stderr)
        uri = re.search(r"otpauth://\S+", out.stdout).group(0)
        self.assertIsNotNone(URI_RE.match(uri), uri)
        self.assertEqual(zbar(png), uri)
        self.assertEqual(os.stat(png).st_mode & 0o077, 0)
        with open(svg) as f:
            self.assertIn("<svg", f.read())
        key = re.search(r"Key: ((?:[A-Z2-7]{4} ?)+)", out.stdout).group(1).split()
        self.assertEqual("".join(key), URI_RE.match(uri)["secret"])
        rows = rasterize_terminal_qr(out.stdout)
        self.assertGreater(len(rows), 21)
        raster = os.path.join(self.tmp, "terminal.png")
        write_png(raster, rows)
        self.assertEqual(zbar(raster), uri)

    def test_new_begin_replaces_an_unconfirmed_one(self):
        _, first, _ = self.d.tool_json("enroll", "--begin", as_user=ALICE)
        _, second, _ = self.d.tool_json("enroll", "--begin", as_user=ALICE)
        self.assertNotEqual(first["secret"], second["secret"])
        rc, _, _ = self.d.tool_json("enroll", "--confirm", h.totp(first["secret"]), as_user=ALICE)
        self.assertEqual(rc, 1)
        rc, _, _ = self.d.tool_json("enroll", "--confirm", h.totp(second["secret"]), as_user=ALICE)
        self.assertEqual(rc, 0)

    def test_confirm_with_nothing_pending_exits_1(self):
        out = self.d.tool("enroll", "--confirm", "123456", as_user=BOB)
        self.assertEqual(out.returncode, 1)
        self.assertEqual(len(out.stderr.strip().splitlines()), 1, out.stderr)

    def test_replace_keeps_old_phone_until_confirmed_and_keeps_recovery_codes(self):
        old_secret, codes = self.d.enroll(ALICE)
        h.wait_for_next_step()
        rc, begun, result = self.d.tool_json("enroll", "--replace", "--begin", as_user=ALICE,
                                             input_text=h.totp(old_secret) + "\n")
        self.assertEqual(rc, 0, result.stderr)
        new_secret = begun["secret"]
        h.wait_for_next_step()
        # The old phone still works while the new one is unconfirmed.
        self.assertEqual(self.d.call(h.verify_request(ALICE, h.totp(old_secret)))["status"], "ok")
        h.wait_for_next_step()
        rc, _, result = self.d.tool_json("enroll", "--confirm", h.totp(new_secret), as_user=ALICE)
        self.assertEqual(rc, 0, result.stderr)
        h.wait_for_next_step()
        self.assertEqual(self.d.call(h.verify_request(ALICE, h.totp(old_secret)))["status"],
                         "wrong_code")
        rc, status, _ = self.d.tool_json("status", as_user=ALICE)
        self.assertEqual(status["recovery_codes_left"], len(codes))

    def test_disable_needs_password_and_code(self):
        secret, _ = self.d.enroll(ALICE)
        h.wait_for_next_step()
        code = h.totp(secret)
        out = self.d.tool("disable", as_user=ALICE, input_text=f"wrong password\n{code}\n")
        self.assertEqual(out.returncode, 1, out.stderr)
        out = self.d.tool("disable", as_user=ALICE, input_text=f"{PASSWORD}\n000000\n")
        self.assertEqual(out.returncode, 1, out.stderr)
        out = self.d.tool("disable", as_user=ALICE, input_text=f"{PASSWORD}\n{code}\n")
        self.assertEqual(out.returncode, 0, out.stderr)
        rc, status, _ = self.d.tool_json("status", as_user=ALICE)
        self.assertFalse(status["enrolled"])

    def test_regenerate_recovery_codes(self):
        secret, old_codes = self.d.enroll(ALICE)
        h.wait_for_next_step()
        rc, fresh, result = self.d.tool_json("recovery-codes", "--regenerate", as_user=ALICE,
                                             input_text=h.totp(secret) + "\n")
        self.assertEqual(rc, 0, result.stderr)
        self.assertEqual(len(fresh["recovery_codes"]), 10)
        self.assertFalse(set(fresh["recovery_codes"]) & set(old_codes))
        self.assertEqual(self.d.call(h.verify_request(ALICE, old_codes[0]))["status"],
                         "wrong_code")

    def test_admin_commands_as_root(self):
        self.d.enroll(ALICE)
        rc, listed, _ = self.d.tool_json("admin", "list")
        self.assertEqual(rc, 0)
        entry = [u for u in listed["users"] if u["user"] == ALICE][0]
        self.assertTrue(entry["enrolled"])
        self.assertEqual(self.d.tool("admin", "reset", ALICE).returncode, 0)
        rc, status, _ = self.d.tool_json("--user", ALICE, "status")
        self.assertEqual(status["enrolled"], False)
        # Global flags after the command too.
        rc, status, _ = self.d.tool_json("status", "--user", ALICE)
        self.assertEqual(rc, 0)
        self.assertEqual(status["user"], ALICE)


class ExitCodes(unittest.TestCase):
    def test_usage_error_is_2(self):
        out = subprocess.run([h.TOOL, "frobnicate"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 2)

    def test_daemon_unreachable_is_3_with_what_to_do(self):
        out = subprocess.run([h.TOOL, "--socket", "/nonexistent/kpanel.sock", "status"],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 3)
        self.assertEqual(len(out.stderr.strip().splitlines()), 1, out.stderr)
        self.assertIn("kpanel-totpd", out.stderr)



class NoCoreDump(unittest.TestCase):
    def test_the_tool_is_not_dumpable_while_it_may_hold_a_secret(self):
        # As a user: a dumpable process owns its /proc files; a non-dumpable
        # one's belong to root (no core, no ptrace by the user's other processes).
        nobody = 65534
        with tempfile.TemporaryDirectory() as empty:
            tool = subprocess.Popen(
                ["setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups", h.TOOL,
                 "--socket", os.path.join(empty, "none.sock"), "disable"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                deadline = time.time() + 10
                while time.time() < deadline:  # until setpriv has become the tool
                    with open(f"/proc/{tool.pid}/status") as f:
                        status = f.read()
                    if f"\nUid:\t{nobody}\t" in status and "kpanel-totp" in status:
                        break
                    time.sleep(0.01)
                self.assertIn(f"\nUid:\t{nobody}\t", status)
                # It waits for the password on stdin, past main()'s first line.
                time.sleep(0.2)
                self.assertEqual(os.stat(f"/proc/{tool.pid}/status").st_uid, 0, "dumpable")
            finally:
                tool.stdin.close()
                tool.wait(10)

if __name__ == "__main__":
    unittest.main(verbosity=2)
