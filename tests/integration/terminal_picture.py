"""A terminal transcript as a picture, the way a terminal draws it, for
zbarimg: every character cell in the foreground colour where its glyph has
ink, the background elsewhere. Both themes: light on dark (most terminal
emulators' default) and dark on light. Half and full blocks fill exactly their
part of the cell; any other visible character is drawn as a few strokes, so
the text around a QR code is there as it is on a screen (readers must cope
with it) without needing a font."""

import struct
import subprocess
import zlib

CELL_W, CELL_H = 6, 12  # a cell is twice as tall as wide: half blocks are square

BLOCKS = {"█": (0, CELL_H), "▀": (0, CELL_H // 2), "▄": (CELL_H // 2, CELL_H)}


def _glyph_rows(char):
    """Rows of ink (set of x) for a character that is not a block: a letter-sized
    box outline with a stroke through it, varied by the character."""
    if char.isspace():
        return {}
    code = ord(char)
    rows = {}
    for y in range(3, CELL_H - 2):
        ink = set()
        if y in (3, CELL_H - 3):
            ink.update(range(1, CELL_W - 1))
        else:
            ink.update((1, CELL_W - 2))
        if y == 3 + code % (CELL_H - 6):
            ink.update(range(1, CELL_W - 1))
        rows[y] = ink
    return rows


def render(text, dark_on_light):
    """Grayscale rows (bytes) of `text` as a terminal shows it."""
    fg, bg = (0, 255) if dark_on_light else (255, 0)
    lines = [line.rstrip("\r") for line in text.replace("\r\n", "\n").split("\n")]
    width = max(len(line) for line in lines) + 4
    rows = []
    margin = bytes([bg]) * (width * CELL_W)
    rows += [margin] * CELL_H
    for line in lines:
        cells = [[bg] * (width * CELL_W) for _ in range(CELL_H)]
        for column, char in enumerate(line, start=2):
            x0 = column * CELL_W
            if char in BLOCKS:
                top, bottom = BLOCKS[char]
                for y in range(top, bottom):
                    cells[y][x0:x0 + CELL_W] = [fg] * CELL_W
                continue
            for y, ink in _glyph_rows(char).items():
                for x in ink:
                    cells[y][x0 + x] = fg
        rows += [bytes(row) for row in cells]
    rows += [margin] * CELL_H
    return rows


def write_png(path, rows):
    width = len(rows[0])
    raw = b"".join(b"\x00" + row for row in rows)

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, len(rows), 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                + chunk(b"IEND", b""))


def decode(path):
    """What zbarimg reads in the picture: a list of the symbols' texts."""
    out = subprocess.run(["zbarimg", "--quiet", "--raw", "--nodbus", path],
                         capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line]


def decode_both_themes(text, directory, name):
    """{"dark": [...], "light": [...]}: what a phone would read on each theme."""
    found = {}
    for theme, dark_on_light in (("dark", False), ("light", True)):
        path = f"{directory}/{name}-{theme}.png"
        write_png(path, render(text, dark_on_light))
        found[theme] = decode(path)
    return found
