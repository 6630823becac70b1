#!/usr/bin/env python3
"""dev/ckpt_checksum.py -- the checksums of train_gpt's checkpoint files, for tests that craft files.

Model and state files record a CRC-32C of their whole contents, with the two checksum slots read
as 0 (gptc/checkpoint.h: model file int32 slots 8, 9; state file int64 slots 13, 14; kind
0x43524333, "CRC3"). A test that changes a field to exercise the check behind it (a bad epoch,
a negative v) signs the file again with this module, so the reader gets past the checksum to the
check under test; a test of the checksum itself leaves the file unsigned.

    python3 dev/ckpt_checksum.py FILE...    re-signs each model or state file in place
    python3 dev/ckpt_checksum.py --check    the CRC-32C check value, crc32c(b"123456789")
"""
import struct
import sys

CRC32C_KIND = 0x43524333
MODEL_MAGIC, STATE_MAGIC = 20240326, 20240527
# (header struct format, the slot of the kind; the checksum is the next slot)
LAYOUTS = {"model": ("<256i", 8), "state": ("<64q", 13)}

_TABLE = []
for _b in range(256):
    _c = _b
    for _ in range(8):
        _c = (_c >> 1) ^ (0x82F63B78 if _c & 1 else 0)
    _TABLE.append(_c)


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli) of data, continuing a running value crc (start: 0)."""
    c = crc ^ 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        c = (c >> 8) ^ table[(c ^ byte) & 0xFF]
    return c ^ 0xFFFFFFFF


def sign(data, kind=None):
    """data (a model or state file's bytes) with its checksum slots set to match its contents.
    kind: "model" or "state"; None: told by the file's magic."""
    if kind is None:
        magic = struct.unpack_from("<i", data, 0)[0]
        kind = {MODEL_MAGIC: "model", STATE_MAGIC: "state"}.get(magic)
        if kind is None:
            raise SystemExit("ckpt_checksum.py: magic %d is neither a model nor a state file" % magic)
    fmt, slot = LAYOUTS[kind]
    n = struct.calcsize(fmt)
    header = list(struct.unpack_from(fmt, data, 0))
    header[slot] = header[slot + 1] = 0
    crc = crc32c(data[n:], crc32c(struct.pack(fmt, *header)))
    header[slot], header[slot + 1] = CRC32C_KIND, crc if fmt == "<64q" else struct.unpack("<i", struct.pack("<I", crc))[0]
    return struct.pack(fmt, *header) + bytes(data[n:])


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        print("%08x" % crc32c(b"123456789"))
        sys.exit(0)
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            signed = sign(f.read())
        with open(path, "wb") as f:
            f.write(signed)
