#!/usr/bin/env python3
"""
dev/gen_bad_inputs.py -- crafted bad inputs for every format the trainer and ./tokenizer read.

What it is: the generator behind dev/test_crafted_inputs.sh. It never hard-codes a whole valid
file: the valid base files come from the current binaries (the trainer writes the model and the
training state of a 1-step run; ./tokenizer build writes the tokenizer file). This script only
writes the inputs those commands need (a token shard, a tiny encoder.json + vocab.bpe) and then
mutates the base files by field index, following the LAYOUT TABLES below, so that a format change
is a change of a table, not of the code.

What it is not: a checker. It writes the cases; the shell script runs them and judges.

Usage (the shell script does this):
  gen_bad_inputs.py base  DIR   writes DIR/base/{shard.bin,shard2.bin,encoder.json,vocab.bpe,text.txt} and the
                                commands that make the other base files, as case files in DIR/base.d
  gen_bad_inputs.py cases DIR   reads DIR/base/*, writes the mutated files under DIR/files and one
                                case file per case in DIR/cases.d

A case file holds NUL-separated fields: name, expect, alloc, stdin, program, args...
  expect  "fail": the input is invalid; the program must exit 1 with one "error: " line.
          "any":  the input may be valid; exit 0 is fine too (never a crash, a sanitizer report,
                  a hang, or an exit status other than 0 and 1).
  alloc   "small": the input is a few KB: an attempt to allocate GBs (an ASan allocation report,
                  or the program's own "out of memory") is a failure, because a header that
                  implies GBs must be checked against the file's size before anything is allocated.
          "any":  the case asks for a big run on purpose (a flag); a clean OOM error is fine.
  program "TRAIN" (the trainer) or "TOK" (./tokenizer); the runner substitutes the binaries.
"""
import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckpt_checksum  # noqa: E402  (dev/ckpt_checksum.py: re-signs crafted checkpoint files)
import evalfile       # noqa: E402  (dev/evalfile.py: llm.c's eval files, written and checked)

# ===============================================================================================
# LAYOUT TABLES -- update these when a format changes
# ===============================================================================================

# The base run: a tiny model so that every case runs in well under a second under ASan.
DESC = "L1H1C8T16V97"                  # L=1 NH=1 C=8 maxT=16 V=97 (Vp=128)
B, T = 2, 8
NTOK = 5 * B * T + 1                    # the base shard: 5 samples of B*T+1 tokens
BASE_STEP = 1                           # -x 1 writes model_00000001.bin + state_00000001.bin

def ckpt_name(kind, step):              # the checkpoint file names in -o
    return "%s_%08d.bin" % (kind, step)

# Values every integer field is tried with. "valid+1"/"valid-1" are added per field.
I32_MIN, I32_MAX = -2**31, 2**31 - 1
I64_MIN, I64_MAX = -2**63, 2**63 - 1
BOUNDARY_I32 = {"0": 0, "-1": -1, "1": 1, "INT32_MAX": I32_MAX, "INT32_MIN": I32_MIN,
                "2^24": 1 << 24, "2^30": 1 << 30}
BOUNDARY_I64 = dict(BOUNDARY_I32, INT64_MAX=I64_MAX, INT64_MIN=I64_MIN, huge=1 << 40,
                    **{"2^31": 1 << 31, "2^32": 1 << 32, "2^62": 1 << 62})

# Field rules: what a changed value must do.
#   fixed  any other value is invalid (magic, version, a size that changes the file's size, ...)
#   free   the reader does not depend on it (reserved entries, an RNG key): any value is fine
#   other names: a rule function below decides per value
# Model file: int32 header[256], then num_parameters float32.
MODEL = {
    "header": ("i", 256),
    "fields": {0: ("magic", "fixed"), 1: ("version", "fixed"), 2: ("maxT", "fixed"),
               3: ("V", "model_vocab"), 4: ("L", "fixed"), 5: ("NH", "model_heads"),
               6: ("C", "fixed"), 7: ("Vp", "fixed"), 8: ("checksum_kind", "checksum_kind"),
               9: ("checksum", "fixed"), 10: ("reserved10", "free"), 255: ("reserved255", "free")},
}
# Token shard: int32 header[256] = {magic, version, ntok}, then ntok uint16; version 2 (a loss
# mask, `./tokenizer sft`) then ntok uint8 flags, each 0 or 1. The version fixes the file's size:
# 1 <-> 2 on the same bytes is a size mismatch.
SHARD = {
    "header": ("i", 256), "magic": 20240520, "version": 1, "version_flags": 2,
    "fields": {0: ("magic", "fixed"), 1: ("version", "fixed"), 2: ("ntok", "fixed"),
               3: ("reserved3", "free"), 255: ("reserved255", "free")},
}
# the version-2 base shard's flags: runs of context (0) and counted targets (1), like records
def base_flags(n):
    return [1 if (i // 7) % 3 == 2 else 0 for i in range(n)]
# SFT records for ./tokenizer sft (one JSON object a line): (name, expect, the file's bytes)
SFT_GOOD = b'{"prompt": "hello", "completion": " world"}\n' * 3
SFT_JSONL = [
    ("good", "any", SFT_GOOD),
    ("good_crlf_blank_lines_extra_keys", "any",
     b'\r\n{"id": 1, "prompt": "", "completion": ""}\r\n\n  \n' + SFT_GOOD + b'{"prompt": "a", "completion": "b"}'),
    ("good_escapes_eot_text", "any", SFT_GOOD + b'{"prompt": "<|endoftext|>\\u00e9\\n", "completion": "\\ud83d\\ude00"}\n'),
    ("empty_file", "fail", b""),
    ("blank_lines_only", "fail", b"\n \n\t\n"),
    ("one_record", "fail", b'{"prompt": "a", "completion": "b"}\n'),
    ("not_json", "fail", SFT_GOOD + b"hello\n"),
    ("truncated_last_line", "fail", SFT_GOOD + b'{"prompt": "a", "compl'),
    ("array", "fail", SFT_GOOD + b'["a", "b"]\n'),
    ("string", "fail", SFT_GOOD + b'"a"\n'),
    ("null", "fail", SFT_GOOD + b"null\n"),
    ("no_completion", "fail", SFT_GOOD + b'{"prompt": "a"}\n'),
    ("no_prompt", "fail", SFT_GOOD + b'{"completion": "a"}\n'),
    ("prompt_number", "fail", SFT_GOOD + b'{"prompt": 1, "completion": "a"}\n'),
    ("completion_null", "fail", SFT_GOOD + b'{"prompt": "a", "completion": null}\n'),
    ("completion_object", "fail", SFT_GOOD + b'{"prompt": "a", "completion": {"x": 1}}\n'),
    ("duplicate_key", "fail", SFT_GOOD + b'{"prompt": "a", "prompt": "b", "completion": "c"}\n'),
    ("two_objects_one_line", "fail", SFT_GOOD + b'{"prompt": "a", "completion": "b"} {}\n'),
    ("invalid_utf8", "fail", SFT_GOOD + b'{"prompt": "\xff\xfe", "completion": "b"}\n'),
    ("nul_escape", "fail", SFT_GOOD + b'{"prompt": "a\\u0000", "completion": "b"}\n'),
    ("raw_nul_byte", "fail", SFT_GOOD + b'{"prompt": "a\x00", "completion": "b"}\n'),
    ("lone_surrogate", "fail", SFT_GOOD + b'{"prompt": "\\ud800", "completion": "b"}\n'),
    ("control_char_in_string", "fail", SFT_GOOD + b'{"prompt": "a\x01", "completion": "b"}\n'),
    ("deep_nesting", "fail", SFT_GOOD + b"[" * 100000 + b"\n"),
    ("huge_line", "any", SFT_GOOD + b'{"prompt": "' + b"ab " * 300000 + b'", "completion": "c"}\n'),
]
# Multiple-choice records for ./tokenizer eval (HellaSwag's jsonl: one JSON object a line with
# "ctx", "endings" and "label"): (name, expect, the file's bytes)
EV_GOOD = b'{"ctx": "hello", "endings": [" world", "well", ""], "label": 1}\n' * 3
EV_REC = lambda ctx=b'"a"', ends=b'["b", "c"]', label=b"1": b'{"ctx": %s, "endings": %s, "label": %s}\n' % (ctx, ends, label)
TOK_EVAL_JSONL = [
    ("good", "any", EV_GOOD),
    ("good_hellaswag_layout_crlf_blank_lines", "any",
     b'\r\n{"ind": 24, "ctx_a": "x", "ctx": "A man", "split": "val", "label": 3, "endings": ["a", "b", "c", "d"], '
     b'"source_id": "y"}\r\n\n  \n' + EV_GOOD),
    ("good_escapes_eot_text", "any", EV_GOOD + EV_REC(b'"<|endoftext|>\\u00e9\\n"', b'["\\ud83d\\ude00", "\\t"]')),
    ("good_K=1000", "any", EV_REC(ends=b"[" + b", ".join([b'"a"'] * 1000) + b"]", label=b"999")),
    ("good_65536_records", "any", EV_REC() * 65536),
    ("empty_file", "fail", b""),
    ("blank_lines_only", "fail", b"\n \n\t\n"),
    ("65537_records", "fail", EV_REC() * 65537),
    ("not_json", "fail", EV_GOOD + b"hello\n"),
    ("truncated_last_line", "fail", EV_GOOD + b'{"ctx": "a", "endi'),
    ("array", "fail", EV_GOOD + b'["a", "b"]\n'),
    ("no_ctx", "fail", EV_GOOD + b'{"endings": ["a", "b"], "label": 0}\n'),
    ("ctx_number", "fail", EV_GOOD + EV_REC(ctx=b"1")),
    ("ctx_empty", "fail", EV_GOOD + EV_REC(ctx=b'""')),
    ("ctx_80000_bytes", "fail", EV_GOOD + EV_REC(ctx=b'"' + b"\\u00e9" * 40000 + b'"')),
    ("endings_string", "fail", EV_GOOD + EV_REC(ends=b'"ab"')),
    ("endings_empty", "fail", EV_GOOD + EV_REC(ends=b"[]")),
    ("endings_one", "fail", EV_GOOD + EV_REC(ends=b'["a"]', label=b"0")),
    ("endings_null_item", "fail", EV_GOOD + EV_REC(ends=b'["a", null]')),
    ("endings_40000", "fail", EV_GOOD + EV_REC(ends=b"[" + b", ".join([b'""'] * 40000) + b"]")),
    ("label_missing", "fail", EV_GOOD + b'{"ctx": "a", "endings": ["b", "c"]}\n'),
    ("label_string", "fail", EV_GOOD + EV_REC(label=b'"1"')),
    ("label_float", "fail", EV_GOOD + EV_REC(label=b"1.0")),
    ("label_negative", "fail", EV_GOOD + EV_REC(label=b"-1")),
    ("label_K", "fail", EV_GOOD + EV_REC(label=b"2")),
    ("label_INT64_MAX", "fail", EV_GOOD + EV_REC(label=b"9223372036854775807")),
    ("label_2^64", "fail", EV_GOOD + EV_REC(label=b"18446744073709551616")),
    ("duplicate_key", "fail", EV_GOOD + b'{"ctx": "a", "ctx": "b", "endings": ["b", "c"], "label": 1}\n'),
    ("invalid_utf8", "fail", EV_GOOD + EV_REC(ctx=b'"\xff\xfe"')),
    ("nul_escape", "fail", EV_GOOD + EV_REC(ctx=b'"a\\u0000"')),
    ("deep_nesting", "fail", EV_GOOD + b"[" * 100000 + b"\n"),
]
# Training state: int64 header[64], then (version 2) an options block, then AdamW m and v.
# One layout per version: the generator takes the version from the base file the trainer wrote.
STATE_COMMON = {0: ("magic", "fixed"), 1: ("version", "fixed"), 2: ("step", "fixed"),
                3: ("num_parameters", "fixed"), 4: ("epoch", "state_epoch"),
                5: ("shard_pos", "state_shard"), 6: ("sample_pos", "state_sample"),
                7: ("rng_key", "free"), 8: ("rng_counter", "free"), 9: ("B", "fixed"),
                10: ("T", "fixed")}
STATE = {
    1: {"header": ("q", 64), "options_len_field": None,
        "fields": {**STATE_COMMON, 11: ("reserved11", "free"), 63: ("reserved63", "free")}},
    2: {"header": ("q", 64), "options_len_field": 11,
        "fields": {**STATE_COMMON, 11: ("options_len", "fixed"), 12: ("data_identity", "fixed"),
                   13: ("checksum_kind", "checksum_kind"), 14: ("checksum", "fixed"),
                   15: ("reserved15", "free"), 63: ("reserved63", "free")}},
}
# Tokenizer file: int32 header[256] = {magic, version, V, eot, merges M}, then V times
# (uint8 n, n bytes), then (version 3) M times uint32 (left, right, merged).
TOKENIZER = {
    "header": ("i", 256),
    "fields": {0: ("magic", "fixed"), 1: ("version", "tok_version"), 2: ("V", "fixed"),
               3: ("eot", "tok_eot"), 4: ("merges", "fixed"), 5: ("reserved5", "free"),
               255: ("reserved255", "free")},
}
# Multiple-choice eval file (gptc/eval.h, dev/evalfile.py): int32 header[256] = {magic, version, N,
# longest example's bytes}, then per example the uint16 stream 65535, bytes, index, label, K,
# ctx_len, ctx..., K times (len, tokens...). N and the longest example must be exact ("fixed"); the
# examples' fields are mutated one at a time and judged by dev/evalfile.py's check (the format's
# rules restated in Python), the base examples by EVAL_EXAMPLES below (V = 97, maxT = 16).
EVAL = {
    "header": ("i", 256),
    "fields": {0: ("magic", "fixed"), 1: ("version", "fixed"), 2: ("N", "fixed"),
               3: ("longest", "fixed"), 4: ("reserved4", "free"), 255: ("reserved255", "free")},
}
EVAL_EXAMPLES = [
    {"ctx": [1, 2, 3], "endings": [[4], [5, 6]], "label": 1},                          # K = 2
    {"ctx": [0] * 20, "endings": [[7, 8], [9], [96, 95, 94]], "label": 2},            # cut: 20 > maxT
    {"ctx": [10, 11], "endings": [[12] * 16, [13], [14], [15]], "label": 0},          # a maxT completion
    {"ctx": [96], "endings": [[1], [2], [3], [4], [5]], "label": 4},                  # K = 5
]
EVAL_FIELD_VALUES = {"0": 0, "1": 1, "2": 2, "valid-1": None, "valid+1": None, "32768": 32768,
                     "65534": 65534, "65535": 65535}
# Command-line flags of the trainer: (flag, kind, lo, hi, values that are cheap to run in range).
# Out-of-range and malformed values must fail; in-range ones may run (they are "any").
TRAIN_FLAGS = [
    ("-b", "int", 1, 1 << 24, [1]), ("-t", "int", 1, 1 << 20, [1, 16]),
    ("-d", "int", -1, 1 << 40, [-1, 16, 32]), ("-x", "int", 1, 1 << 30, [1, 2]),
    ("-l", "float", 1e-12, 10.0, ["1e-12", "10"]), ("-u", "int", 0, 1 << 30, [0, 1 << 30]),
    ("-q", "float", 0.0, 1.0, ["0", "1"]), ("-c", "float", 0.0, 1e3, ["0", "1000"]),
    ("-G", "float", 0.0, 1e9, ["0", "1e9"]), ("-D", "float", 0.0, 0.99, ["0", "0.99"]),
    ("-v", "int", 0, 1 << 30, [0, 1 << 30]),
    ("-m", "int", 1, 1 << 30, [1, 1 << 30]), ("-s", "int", 0, 1 << 30, [0, 1]),
    ("-g", "int", 1, 1 << 20, [1, 1 << 20]), ("-K", "int", 0, 1 << 30, [0, 1, 1 << 30]),
    ("-H", "float", 1e-6, 1e6, ["1e-6", "1e6"]), ("-n", "int", 0, 1 << 30, [0, 1 << 30]),
    ("-y", "int", 0, 1, [0]), ("-S", "int", 0, I64_MAX, [0, I64_MAX]),
    ("-k", "int", 0, 1 << 30, [0, 1]),
    ("--beta1", "float", 0.0, 0.999999, ["0", "0.999999"]),
    ("--beta2", "float", 0.0, 0.999999, ["0", "0.999999"]),
    ("--eps", "float", 1e-30, 1.0, ["1e-30", "1"]),
]
FULL_MALFORMED = ("-b", "-d", "-x", "-S", "-l", "--eps")
# Model descriptors (-e): (descriptor, expect). Huge ones must be refused before allocating.
DESCRIPTORS = [
    ("d0", "fail"), ("d-1", "fail"), ("d1001", "fail"), ("d99999999999999999999", "fail"),
    ("d", "fail"), ("", "fail"), ("L", "fail"), ("L1", "fail"), ("L1H1", "fail"),
    ("L0H1C8", "fail"), ("L1H0C8", "fail"), ("L1H1C0", "fail"), ("L1H1C8T0", "fail"),
    ("L1H1C8V0", "fail"), ("L1H1C8T16V65537", "fail"), ("L1H3C8T16V97", "fail"),
    ("L1H1C8T16V97X1", "fail"), ("l1h1c8t16v97", "fail"), ("L1H1C8T16V97 ", "fail"),
    ("L+1H1C8T16V97", "fail"), ("L-1H1C8T16V97", "fail"), ("L1H1C8T7V97", "fail"),
    ("L1H1C8T16V97L2", "any"), ("L01H01C08T16V97", "any"), ("L1H1C8T16V65536", "any"),
    ("L1H1C8T16V1", "any"), ("L1H8C8T16V97", "any"),
    ("L99999999999999999999H1C8T16V97", "fail"), ("L1H1C2147483647T16V97", "fail"),
    ("L1H1C4294967304T16V97", "fail"), ("L1H1C8T2147483647V97", "fail"),
    ("L2147483647H1C8T16V97", "fail"), ("L1000000H1C1000000T1000000V65536", "fail"),
    ("L1H1C1000000T16V97", "fail"), ("L1000H1000C1000000T1000000V65536", "fail"),
]

# ===============================================================================================
# Rules: does this value of this field possibly make a valid file? ("any" if so, else "fail")
# ===============================================================================================

def rule_expect(rule, value, base_value, ctx):
    if value == base_value:
        return "any"
    if rule == "free":
        return "any"
    if rule == "fixed":
        return "fail"
    if rule == "checksum_kind":  # 0: none recorded (llm.c's files): the rest is not verified
        return "any" if value == 0 else "fail"
    if rule == "model_vocab":    # V may shrink to any 1..Vp (the file's size is unchanged)
        return "any" if 1 <= value <= ctx["Vp"] else "fail"
    if rule == "model_heads":    # NH must divide C
        return "any" if value > 0 and ctx["C"] % value == 0 else "fail"
    if rule == "state_epoch":    # any epoch >= 0 names a valid data order
        return "any" if value >= 0 else "fail"
    if rule == "state_shard":    # one shard: only position 0
        return "fail"
    if rule == "state_sample":   # a sample position in [0, nsamples]
        return "any" if 0 <= value <= ctx["nsamples"] else "fail"
    if rule == "tok_version":    # 2 and 3 read the same table (2 ignores the merges); 1 implies eot 50256
        return "any" if value in (2, 3) or (value == 1 and ctx["V"] > 50256) else "fail"
    if rule == "tok_eot":        # eot must be a token, and not one of the single-byte tokens
        return "any" if ctx["V"] - ctx["M"] - 1 <= value < ctx["V"] else "fail"
    raise SystemExit("gen_bad_inputs.py: unknown rule %r (update rule_expect)" % rule)

# ===============================================================================================
# Writing cases
# ===============================================================================================

class Cases:
    def __init__(self, dir_, files):
        self.dir, self.files, self.n = dir_, files, 0
        os.makedirs(dir_, exist_ok=True)
        os.makedirs(files, exist_ok=True)
        self.expects = {}

    def add(self, name, expect, argv, alloc="small", stdin="/dev/null"):
        assert expect in ("fail", "any") and alloc in ("small", "any"), name
        assert name not in self.expects, "duplicate case name " + name
        self.expects[name] = expect
        self.n += 1
        fields = [name, expect, alloc, stdin] + [str(a) for a in argv]
        for f in fields:
            assert "\0" not in f, name
        with open(os.path.join(self.dir, "%04d" % self.n), "wb") as f:
            f.write(b"\0".join(x.encode("utf-8", "surrogateescape") for x in fields) + b"\0")

    def path(self, name):
        safe = "".join(c if c.isalnum() or c in "._=-+" else "_" for c in name)
        return os.path.join(self.files, safe)

    def file(self, name, data):
        p = self.path(name)
        with open(p, "wb") as f:
            f.write(data)
        return p

def header_of(data, fmt):
    code, n = fmt
    size = struct.calcsize("<%d%s" % (n, code))
    return list(struct.unpack_from("<%d%s" % (n, code), data, 0)), size

def set_field(data, fmt, index, value):
    code, n = fmt
    width = struct.calcsize(code)
    d = bytearray(data)
    if code == "i":
        value = ((value + 2**31) % 2**32) - 2**31   # wrap to int32 like a C cast would
    else:
        value = ((value + 2**63) % 2**64) - 2**63
    struct.pack_into("<" + code, d, index * width, value)
    return bytes(d)

def field_values(fmt, base_value):
    table = BOUNDARY_I32 if fmt[0] == "i" else BOUNDARY_I64
    vals = dict(table)
    vals["valid+1"] = base_value + 1
    vals["valid-1"] = base_value - 1
    out, seen = [], set()
    for label, v in vals.items():
        lim = 2**31 if fmt[0] == "i" else 2**63
        if not -lim <= v < lim or v in seen or v == base_value:
            continue
        seen.add(v)
        out.append((label, v))
    return out

def header_cases(cs, prefix, data, layout, ctx, run, sign=None):
    """every listed field x every boundary value; run(name, expect, path) adds the case. sign:
    a checkpoint's files are signed again after the change (dev/ckpt_checksum.py), so that the
    check of the field itself is reached; the checksum's own fields are left as changed."""
    fmt = layout["header"]
    h, _ = header_of(data, fmt)
    for index, (fname, rule) in sorted(layout["fields"].items()):
        for label, v in field_values(fmt, h[index]):
            name = "%s.h%d.%s=%s" % (prefix, index, fname, label)
            d = set_field(data, fmt, index, v)
            if sign is not None and not fname.startswith("checksum"):
                d = sign(d)
            run(name, rule_expect(rule, v, h[index], ctx), cs.file(name, d))

def cut_cases(cs, prefix, data, boundaries, run, expect_full="any"):
    """truncations: at and around every section boundary, one byte short, one byte long"""
    sizes = {}
    for label, off in boundaries:
        for d, suffix in ((-1, "-1"), (0, ""), (1, "+1")):
            n = off + d
            if 0 <= n < len(data) and n not in sizes:
                sizes[n] = "cut@%s%s" % (label, suffix)
    sizes.setdefault(0, "empty")
    sizes.setdefault(len(data) - 1, "one_byte_short")
    for n, label in sorted(sizes.items()):
        name = "%s.%s(%d)" % (prefix, label, n)
        run(name, "fail", cs.file(name, data[:n]))
    name = prefix + ".one_byte_long"
    run(name, "fail", cs.file(name, data + b"\0"))
    name = prefix + ".4_bytes_long"
    run(name, "fail", cs.file(name, data + b"\0\0\0\0"))

# ===============================================================================================
# Base files
# ===============================================================================================

def bytes_to_unicode():
    # GPT-2's printable stand-ins for the 256 byte values (encoder.json's alphabet)
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return bs, {b: chr(c) for b, c in zip(bs, cs)}

BPE_MERGES = [(b"h", b"e"), (b"l", b"l"), (b"he", b"ll"), (b" ", b"w")]

def write_base(dir_):
    base = os.path.join(dir_, "base")
    os.makedirs(base, exist_ok=True)
    # the token shard (the format is llm.c's; the trainer's base run proves it valid)
    V = int(DESC.split("V")[1])
    hdr = [SHARD["magic"], SHARD["version"], NTOK] + [0] * 253
    toks = [(7 * i + 3) % V for i in range(NTOK)]
    with open(os.path.join(base, "shard.bin"), "wb") as f:
        f.write(struct.pack("<256i", *hdr) + struct.pack("<%dH" % NTOK, *toks))
    hdr2 = [SHARD["magic"], SHARD["version_flags"], NTOK] + [0] * 253  # with a loss mask
    with open(os.path.join(base, "shard2.bin"), "wb") as f:
        f.write(struct.pack("<256i", *hdr2) + struct.pack("<%dH" % NTOK, *toks) + bytes(base_flags(NTOK)))
    # a tiny GPT-2-style vocabulary: 256 byte tokens, 4 merges, <|endoftext|>
    order, b2u = bytes_to_unicode()
    enc = {}
    for b in order:
        enc[b2u[b]] = len(enc)
    for a, b in BPE_MERGES:
        enc["".join(b2u[x] for x in a + b)] = len(enc)
    enc["<|endoftext|>"] = len(enc)
    with open(os.path.join(base, "encoder.json"), "w", encoding="utf-8") as f:
        json.dump(enc, f, ensure_ascii=False)
    with open(os.path.join(base, "vocab.bpe"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in BPE_MERGES:
            f.write("".join(b2u[x] for x in a) + " " + "".join(b2u[x] for x in b) + "\n")
    with open(os.path.join(base, "text.txt"), "wb") as f:
        f.write(b"hello world, hell well\n" + bytes(range(256)) + b"\n")
    with open(os.path.join(base, "eval.bin"), "wb") as f:   # the eval file (any model of V=97)
        f.write(evalfile.encode(EVAL_EXAMPLES))
    # the commands that make the rest, run by the shell script (they must succeed)
    cs = Cases(os.path.join(dir_, "base.d"), os.path.join(dir_, "files"))
    cs.add("base.tokenizer", "any", ["TOK", "build", os.path.join(base, "encoder.json"),
                                    os.path.join(base, "vocab.bpe"), os.path.join(base, "tokenizer.bin")])
    cs.add("base.checkpoint", "any", ["TRAIN"] + train_args(dir_, o=os.path.join(base, "run")))

def train_args(dir_, **kw):
    """the base trainer command line, with some flags replaced (None drops a flag)"""
    base = os.path.join(dir_, "base")
    args = {"-e": DESC, "-i": os.path.join(base, "shard.bin"), "-j": "", "-b": B, "-t": T,
            "-x": BASE_STEP, "-u": 0, "-s": 0, "-o": "", "-Z": os.path.join(base, "no_tokenizer.bin")}
    for k, v in kw.items():
        args["-" + k if len(k) == 1 else "--" + k] = v
    out = []
    for k, v in args.items():
        if v is not None:
            out += [k, str(v)]
    return out

# ===============================================================================================
# The cases of each format
# ===============================================================================================

def model_cases(cs, dir_):
    base = os.path.join(dir_, "base")
    data = open(os.path.join(base, "run", ckpt_name("model", BASE_STEP)), "rb").read()
    h, hsize = header_of(data, MODEL["header"])
    ctx = {"C": h[6], "Vp": h[7]}
    nparams = (len(data) - hsize) // 4
    def run(name, expect, path):
        cs.add(name, expect, ["TRAIN"] + train_args(dir_, e=path))
    header_cases(cs, "model", data, MODEL, ctx, run, sign=lambda d: ckpt_checksum.sign(d, "model"))
    cut_cases(cs, "model", data, [("inside_header", 4), ("header_fields", 32), ("header", hsize),
                                  ("wpe", hsize + 4 * h[7] * h[6]), ("mid_params", hsize + 2 * nparams)], run)
    # size products that overflow: huge C and maxT with a tiny V, each at the base file's size
    combos = {
        "C=2^30,maxT=INT32_MAX,V=1": {2: I32_MAX, 3: 1, 6: 1 << 30},
        "C=INT32_MAX,maxT=INT32_MAX,Vp=INT32_MAX": {2: I32_MAX, 6: I32_MAX, 7: I32_MAX},
        "L=INT32_MAX": {4: I32_MAX},
        "C=46341(C^2>INT32_MAX)": {6: 46341},
        "Vp=INT32_MAX,V=65536": {3: 65536, 7: I32_MAX},
        "L=2^20,C=2^16": {4: 1 << 20, 6: 1 << 16},
    }
    wrap = find_wrapping_config(nparams)
    if wrap:
        combos["num_parameters*4_wraps_to_the_file_size"] = wrap
    for label, fields in combos.items():
        d = data
        for i, v in fields.items():
            d = set_field(d, MODEL["header"], i, v)
        name = "model.overflow." + label
        run(name, "fail", cs.file(name, d))
    # contents: non-finite weights must be refused (they would train into NaN), checksum or not
    for label, word in (("nan", b"\x00\x00\xc0\x7f"), ("inf", b"\x00\x00\x80\x7f")):
        for where, off in (("first", hsize), ("last", len(data) - 4)):
            for signed in (0, 1):
                name = "model.weight_%s_%s%s" % (where, label, "_signed" if signed else "")
                d = data[:off] + word + data[off + 4:]
                run(name, "fail", cs.file(name, ckpt_checksum.sign(d, "model") if signed else d))
    # one flipped bit anywhere (a weight, an unused header slot) fails the checksum
    for where, off in (("weight", hsize + 4 * (nparams // 3) + 1), ("header_slot_200", 4 * 200)):
        name = "model.bitflip_" + where
        d = bytearray(data)
        d[off] ^= 0x10
        run(name, "fail", cs.file(name, bytes(d)))
    # not a file
    run("model.directory", "fail", base)
    run("model.dev_null", "fail", "/dev/null")
    fifo = cs.path("model.fifo")
    os.mkfifo(fifo)
    run("model.fifo", "fail", fifo)

def find_wrapping_config(n0):
    """maxT, V, L, NH, C, Vp (int32 each) whose parameter count is n0 modulo 2^64, so that a
    reader that computes the size in size_t without overflow checks finds the base file's size"""
    # count = C*(Vp + maxT + 2) + L*(12C^2 + 13C) = C*X with X = S + 2 + L*K, S = Vp + maxT, K = 12C+13
    M = 1 << 64
    for C in range(300000001, 350000001, 2):            # odd: invertible mod 2^64
        K = 12 * C + 13
        R = n0 * pow(C, -1, M) % M                      # need X = R (as an integer)
        L, S = divmod(R - 2, K)
        if 1 <= L < 2**31 and 2 <= S <= 2 * (2**31 - 1) - 256:
            Vp = min(S - 16, 2**31 - 1)
            maxT = S - Vp
            if maxT >= 16 and Vp >= 1:
                assert (C * (Vp + maxT + 2) + L * (12 * C * C + 13 * C)) % M == n0
                return {2: maxT, 3: 1, 4: L, 5: 1, 6: C, 7: Vp}
    return None

def shard_cases(cs, dir_):
    base = os.path.join(dir_, "base")
    data = open(os.path.join(base, "shard.bin"), "rb").read()
    h, hsize = header_of(data, SHARD["header"])
    V = int(DESC.split("V")[1])
    def run(name, expect, path):
        cs.add(name, expect, ["TRAIN"] + train_args(dir_, i=path))
    header_cases(cs, "shard", data, SHARD, {}, run)
    cut_cases(cs, "shard", data, [("inside_header", 8), ("header", hsize),
                                  ("mid_tokens", hsize + 2 * (h[2] // 2)),
                                  ("odd_byte", hsize + 2 * h[2] - 1)], run)
    for label, tok in (("V-1", V - 1), ("V", V), ("65535", 65535)):
        for where, i in (("first", 0), ("last", h[2] - 1)):
            name = "shard.token_%s=%s" % (where, label)
            d = bytearray(data)
            struct.pack_into("<H", d, hsize + 2 * i, tok)
            run(name, "any" if tok < V else "fail", cs.file(name, bytes(d)))
    # a header that agrees with the file but has too few tokens for one batch (B*T+1)
    for n in (0, 1, B * T, B * T + 1):
        name = "shard.ntok=%d_consistent" % n
        d = set_field(data[:hsize], SHARD["header"], 2, n) + data[hsize:hsize + 2 * n]
        run(name, "any" if n >= B * T + 1 else "fail", cs.file(name, d))
    # a glob of two shards, the second broken; validation shards; not-a-file
    good = cs.file("shard.glob_a.bin", data)
    cs.file("shard.glob_b.bin", data[:hsize + 10])
    cs.add("shard.glob_second_bad", "fail", ["TRAIN"] + train_args(dir_, i=good.replace("glob_a", "glob_?")))
    cs.add("shard.glob_no_match", "fail", ["TRAIN"] + train_args(dir_, i=cs.path("nothing_*.bin")))
    cs.add("shard.glob_unbalanced_bracket", "fail", ["TRAIN"] + train_args(dir_, i=cs.path("x[.bin")))
    cs.add("shard.val_truncated", "fail",
           ["TRAIN"] + train_args(dir_, j=cs.file("shard.val_cut", data[:hsize + 3]), v=1))
    cs.add("shard.val_token_V", "fail",
           ["TRAIN"] + train_args(dir_, j=cs.path("shard.token_last=V"), v=1))
    run("shard.directory", "fail", base)
    run("shard.dev_null", "fail", "/dev/null")
    fifo = cs.path("shard.fifo")
    os.mkfifo(fifo)
    run("shard.fifo", "fail", fifo)

def shard2_cases(cs, dir_):
    """the version-2 shard (tokens, then a loss flag per token): the trainer's base run on it,
    every header field, truncation in each section, flags other than 0/1, a mixed glob"""
    base = os.path.join(dir_, "base")
    data = open(os.path.join(base, "shard2.bin"), "rb").read()
    h, hsize = header_of(data, SHARD["header"])
    n = h[2]
    flags_at = hsize + 2 * n
    def run(name, expect, path, **kw):
        cs.add(name, expect, ["TRAIN"] + train_args(dir_, i=path, **kw))
    run("shard2.base", "any", os.path.join(base, "shard2.bin"))
    run("shard2.base_with_val", "any", os.path.join(base, "shard2.bin"), j=os.path.join(base, "shard2.bin"), v=1)
    header_cases(cs, "shard2", data, SHARD, {}, run)
    cut_cases(cs, "shard2", data, [("inside_header", 8), ("header", hsize), ("mid_tokens", hsize + n),
                                   ("flags", flags_at), ("mid_flags", flags_at + n // 2)], run)
    for label, value in (("0", 0), ("1", 1), ("2", 2), ("255", 255), ("128", 128)):
        for where, i in (("first", 0), ("last", n - 1), ("mid", n // 2)):
            name = "shard2.flag_%s=%s" % (where, label)
            d = bytearray(data)
            d[flags_at + i] = value
            run(name, "any" if value <= 1 else "fail", cs.file(name, bytes(d)))
    # no target counts anywhere: the run's loss is 0 (never NaN); every target counts
    for label, value in (("all_0", 0), ("all_1", 1)):
        name = "shard2.flags_" + label
        run(name, "any", cs.file(name, data[:flags_at] + bytes([value]) * n), j=cs.path(name), v=1)
    # the version field of one format on the other's bytes
    name = "shard2.as_version1"
    run(name, "fail", cs.file(name, set_field(data, SHARD["header"], 1, 1)))
    v1 = open(os.path.join(base, "shard.bin"), "rb").read()
    name = "shard.as_version2"
    run(name, "fail", cs.file(name, set_field(v1, SHARD["header"], 1, 2)))
    name = "shard.version1_with_flags_appended"
    run(name, "fail", cs.file(name, v1 + bytes(base_flags(n))))
    # a glob of a version-1 and a version-2 shard (the first counts every target); and a bad flag
    # in the second shard of a glob is found at start-up
    mixed = cs.file("shard2.mixed_a.bin", v1).replace("mixed_a", "mixed_?")
    cs.file("shard2.mixed_b.bin", data)
    cs.add("shard2.mixed_glob", "any", ["TRAIN"] + train_args(dir_, i=mixed, x=3))
    bad = bytearray(data)
    bad[-1] = 2
    glob = cs.file("shard2.badglob_a.bin", data).replace("badglob_a", "badglob_?")
    cs.add("shard2.glob_second_bad_flag", "fail", ["TRAIN"] + train_args(dir_, i=glob))
    cs.add("shard2.val_bad_flag", "fail",
           ["TRAIN"] + train_args(dir_, j=cs.file("shard2.badglob_b.bin", bytes(bad)), v=1))

def sft_cases(cs, dir_):
    """./tokenizer sft on crafted JSONL: malformed lines are one error naming the line"""
    tok = os.path.join(dir_, "base", "tokenizer.bin")
    for name, expect, data in SFT_JSONL:
        path = cs.file("sft." + name + ".jsonl", data)
        cs.add("sft." + name, expect, ["TOK", "-t", tok, "--threads", "1", "--val-every", "2", "sft",
                                      cs.path("sft_out." + name) + "/x", path])
    cs.add("sft.stdin", "any", ["TOK", "-t", tok, "--val-every", "2", "sft", cs.path("sft_out.stdin") + "/x", "-"],
           stdin=cs.path("sft.good.jsonl"))
    cs.add("sft.missing_file", "fail", ["TOK", "-t", tok, "sft", cs.path("sft_out.missing") + "/x",
                                        cs.path("nothing.jsonl")])
    cs.add("sft.no_inputs", "fail", ["TOK", "-t", tok, "sft", cs.path("sft_out.none") + "/x"])
    fifo = cs.path("sft.fifo")
    os.mkfifo(fifo)
    cs.add("sft.fifo", "fail", ["TOK", "-t", tok, "sft", cs.path("sft_out.fifo") + "/x", fifo])

def tok_eval_cases(cs, dir_):
    """./tokenizer eval on crafted JSONL: malformed lines are one error naming the line"""
    tok = os.path.join(dir_, "base", "tokenizer.bin")
    for name, expect, data in TOK_EVAL_JSONL:
        path = cs.file("tokeval." + name + ".jsonl", data)
        cs.add("tokeval." + name, expect, ["TOK", "-t", tok, "--threads", "1", "eval",
                                          cs.path("tokeval_out." + name) + "/x.bin", path])
    cs.add("tokeval.stdin", "any", ["TOK", "-t", tok, "eval", cs.path("tokeval_out.stdin.bin"), "-"],
           stdin=cs.path("tokeval.good.jsonl"))
    cs.add("tokeval.missing_file", "fail", ["TOK", "-t", tok, "eval", cs.path("tokeval_out.m.bin"),
                                            cs.path("nothing.jsonl")])
    cs.add("tokeval.no_inputs", "fail", ["TOK", "-t", tok, "eval", cs.path("tokeval_out.n.bin")])
    cs.add("tokeval.out_is_a_directory", "fail", ["TOK", "-t", tok, "eval", dir_, cs.path("tokeval.good.jsonl")])

def state_cases(cs, dir_):
    base = os.path.join(dir_, "base")
    run_dir = os.path.join(base, "run")
    model = open(os.path.join(run_dir, ckpt_name("model", BASE_STEP)), "rb").read()
    data = open(os.path.join(run_dir, ckpt_name("state", BASE_STEP)), "rb").read()
    version = struct.unpack_from("<q", data, 8)[0]
    if version not in STATE:
        raise SystemExit("gen_bad_inputs.py: the trainer writes state version %d: add its layout to STATE" % version)
    layout = STATE[version]
    h, hsize = header_of(data, layout["header"])
    nparams = h[3]
    olen = h[layout["options_len_field"]] if layout["options_len_field"] is not None else 0
    ctx = {"nsamples": (NTOK - 1) // (B * T)}

    def resume(name, expect, state_bytes, model_bytes=model, step=BASE_STEP, extra=None):
        d = os.path.join(cs.files, "ckpt", "".join(c if c.isalnum() or c in "._=-+" else "_" for c in name))
        os.makedirs(d)
        if model_bytes is not None:
            with open(os.path.join(d, ckpt_name("model", step)), "wb") as f:
                f.write(model_bytes)
        if state_bytes is not None:
            with open(os.path.join(d, ckpt_name("state", step)), "wb") as f:
                f.write(state_bytes)
        flags = dict({"o": d, "y": 1, "x": BASE_STEP + 1}, **(extra or {}))
        cs.add(name, expect, ["TRAIN"] + train_args(dir_, **flags))

    resume("state.unchanged", "any", data)
    fmt = layout["header"]
    for index, (fname, rule) in sorted(layout["fields"].items()):
        for label, v in field_values(fmt, h[index]):
            name = "state.h%d.%s=%s" % (index, fname, label)
            d = set_field(data, fmt, index, v)
            if not fname.startswith("checksum"):
                d = ckpt_checksum.sign(d, "state")   # (as header_cases: the field's own check is reached)
            resume(name, rule_expect(rule, v, h[index], ctx), d)
    # truncation at every section boundary: header, options, m, v
    bounds = [("inside_header", 8), ("header", hsize)]
    if olen:
        bounds += [("mid_options", hsize + olen // 2), ("options", hsize + olen)]
    bounds += [("mid_m", hsize + olen + 2 * nparams), ("m", hsize + olen + 4 * nparams),
               ("mid_v", hsize + olen + 6 * nparams)]
    sizes = {}
    for label, off in bounds:
        for dd, suffix in ((-1, "-1"), (0, ""), (1, "+1")):
            if 0 <= off + dd < len(data):
                sizes.setdefault(off + dd, "cut@%s%s" % (label, suffix))
    sizes.setdefault(0, "empty")
    sizes.setdefault(len(data) - 1, "one_byte_short")
    for n, label in sorted(sizes.items()):
        resume("state.%s(%d)" % (label, n), "fail", data[:n])
    resume("state.one_byte_long", "fail", data + b"\0")
    # AdamW moments: non-finite m or v, negative v
    m0, v0 = hsize + olen, hsize + olen + 4 * nparams
    for label, off, word in (("m_nan", m0, b"\x00\x00\xc0\x7f"), ("m_inf", m0 + 4 * (nparams - 1), b"\x00\x00\x80\x7f"),
                             ("v_nan", v0, b"\x00\x00\xc0\x7f"), ("v_negative", len(data) - 4, struct.pack("<f", -1.0)),
                             ("v_-inf", v0, b"\x00\x00\x80\xff")):
        resume("state." + label, "fail", ckpt_checksum.sign(data[:off] + word + data[off + 4:], "state"))
    d = bytearray(data)
    d[m0 + 4 * (nparams // 2) + 2] ^= 0x01   # one flipped bit of a moment: the checksum
    resume("state.bitflip_m", "fail", bytes(d))
    # the options block (version 2): NUL-terminated "flag", "value" strings
    if olen:
        opts = data[hsize:hsize + olen]
        def with_options(new):
            d = set_field(data, fmt, layout["options_len_field"], len(new))
            return d[:hsize] + new + d[hsize + olen:]
        parts = opts.split(b"\0")[:-1]
        variants = {
            "options_empty": b"",
            "options_unterminated": opts[:-1] + b"x",
            "options_all_nul": b"\0" * olen,
            "options_no_nul": b"x" * olen,
            "options_odd_count": b"\0".join(parts[:-1]) + b"\0",
            "options_repeated": opts + opts[:len(parts[0]) + len(parts[1]) + 2],
            "options_unknown_flag": b"-Q\x001\x00" + opts,
            "options_first_value_garbage": b"\0".join([parts[0], b"\xff" * 40] + parts[2:]) + b"\0",
            "options_values_huge": b"".join(p + b"\0" + (b"9" * 400 if p.startswith(b"-") and p != b"-e" and p != b"-i" else b"") + b"\0"
                                            for p in parts[0::2]),
            "options_flag_without_value_at_end": opts + b"-x\0",
        }
        for label, new in variants.items():
            resume("state." + label, "fail", ckpt_checksum.sign(with_options(new), "state"))
    # the pair: state without model, model broken, model of another size, file name vs header step
    resume("state.model_missing", "fail", data, model_bytes=None)
    resume("state.model_truncated", "fail", data, model_bytes=model[:len(model) - 4])
    other = set_field(model, MODEL["header"], 2, header_of(model, MODEL["header"])[0][2] * 2)
    other += b"\0" * (4 * header_of(model, MODEL["header"])[0][2] * header_of(model, MODEL["header"])[0][6])
    resume("state.model_other_size", "fail", data, model_bytes=other)
    resume("state.file_name_step_5", "fail", data, step=5, extra={"x": 6})
    resume("state.file_name_step_0", "fail", data, step=0)
    resume("state.directory", "fail", None)
    os.makedirs(os.path.join(cs.files, "ckpt", "state.directory", ckpt_name("state", BASE_STEP)))
    with open(os.path.join(cs.files, "ckpt", "state.directory", ckpt_name("model", BASE_STEP)), "wb") as f:
        f.write(model)
    # resuming with other flags than the checkpoint's
    resume("state.resume_other_B", "fail", data, extra={"b": 1})
    resume("state.resume_other_T", "fail", data, extra={"t": 4})
    resume("state.resume_x_not_larger", "any", data, extra={"x": BASE_STEP})

def tokenizer_cases(cs, dir_):
    base = os.path.join(dir_, "base")
    data = open(os.path.join(base, "tokenizer.bin"), "rb").read()
    h, hsize = header_of(data, TOKENIZER["header"])
    V, M = h[2], h[4]
    text = os.path.join(base, "text.txt")
    def run(name, expect, path):
        cs.add(name, expect, ["TOK", "-t", path, "--threads", "1", "encode"], stdin=text)
    header_cases(cs, "tok", data, TOKENIZER, {"V": V, "M": M}, run)
    # token table offsets
    offs, pos = [], hsize
    for _ in range(V):
        offs.append(pos)
        pos += 1 + data[pos]
    table_end = pos
    cut_cases(cs, "tok", data, [("inside_header", 8), ("header", hsize), ("mid_table", offs[V // 2]),
                                ("last_token", offs[-1]), ("table", table_end),
                                ("mid_merges", table_end + 12 * (M // 2) + 4)], run)
    # version 1/2 files: decode only; the bytes after the table are ignored
    for ver in (1, 2):
        expect = rule_expect("tok_version", ver, 3, {"V": V})
        name = "tok.version%d_with_merges" % ver
        run(name, expect, cs.file(name, set_field(data, TOKENIZER["header"], 1, ver)))
        name = "tok.version%d_no_merges" % ver
        run(name, expect, cs.file(name, set_field(data, TOKENIZER["header"], 1, ver)[:table_end]))
    # token lengths: the last one longer than the file, a zero-length token, 255
    for label, i, n in (("last_len=255", V - 1, 255), ("first_len=0", 0, 0), ("first_len=2", 0, 2)):
        d = bytearray(data)
        d[offs[i]] = n
        name = "tok.token_" + label
        run(name, "fail", cs.file(name, bytes(d)))
    # merges: ids out of range, a result that is not left+right, a repeated pair
    def merge_edit(label, r, k, value):
        d = bytearray(data)
        struct.pack_into("<I", d, table_end + 12 * r + 4 * k, value)
        name = "tok.merge%d.%s" % (r, label)
        run(name, "fail", cs.file(name, bytes(d)))
    for k, part in enumerate(("left", "right", "merged")):
        for label, value in (("V", V), ("UINT32_MAX", 2**32 - 1), ("2^31", 2**31), ("65536", 65536)):
            merge_edit("%s=%s" % (part, label), M - 1, k, value)
    merge_edit("merged=left", 0, 2, struct.unpack_from("<I", data, table_end)[0])
    merge_edit("merged=eot", 0, 2, h[3])
    first = data[table_end:table_end + 12]
    d = data[:table_end + 12] + first + data[table_end + 24:]
    run("tok.merge1.repeats_merge0", "fail", cs.file("tok.merge1.repeats_merge0", d))
    # a table with every token a single byte 'a': no token for most bytes
    # (keeps the file's size: each token of length 1 gets the byte 'a')
    d = bytearray(data)
    for o in offs[:256]:
        if data[o] == 1:
            d[o + 1] = ord("a")
    run("tok.no_byte_tokens", "fail", cs.file("tok.no_byte_tokens", bytes(d)))
    # the trainer reads the same file with -Z: a few cases through it, sampling on so it decodes
    for name in ("tok.h2.V=valid+1", "tok.cut@table(%d)" % table_end, "tok.token_last_len=255",
                 "tok.version2_no_merges", "tok.h3.eot=INT32_MAX", "tok.h3.eot=valid-1"):
        if name in cs.expects:
            cs.add("trainer_Z." + name, cs.expects[name], ["TRAIN"] + train_args(dir_, Z=cs.path(name), s=1, g=4))
    run("tok.directory", "fail", base)
    run("tok.dev_null", "fail", "/dev/null")
    # the tokenizer's own flags
    good = os.path.join(base, "tokenizer.bin")
    for flag in ("--threads", "--chunk-bytes", "--reps", "--shard-tokens", "--val-every"):
        for label, v in (("0", "0"), ("-1", "-1"), ("abc", "abc"), ("INT64_MAX", str(I64_MAX)),
                         ("2^64", str(2**64)), ("empty", "")):
            # INT64_MAX is a usable "no limit" for the counts; not for threads or a shard's int32 size
            expect = "any" if label == "INT64_MAX" and flag in ("--chunk-bytes", "--reps", "--val-every") else "fail"
            cs.add("tokflag.%s=%s" % (flag, label), expect,
                   ["TOK", "-t", good, flag, v, "encode"], stdin=text)
        cs.add("tokflag.%s=missing" % flag, "fail", ["TOK", "-t", good, "encode", flag])
    for label, v in (("INT32_MAX", str(I32_MAX)), ("2^20", str(1 << 20))):
        cs.add("tokflag.--threads=" + label, "any", ["TOK", "-t", good, "--threads", v, "encode"],
               stdin=text, alloc="any")
    cs.add("tokflag.--chunk-bytes=1", "any", ["TOK", "-t", good, "--chunk-bytes", "1", "encode"], stdin=text)

def eval_cases(cs, dir_):
    base = os.path.join(dir_, "base")
    data = open(os.path.join(base, "eval.bin"), "rb").read()
    V, maxT = int(DESC.split("V")[1]), int(DESC.split("T")[1].split("V")[0])
    def run(name, expect, path, **kw):
        cs.add(name, expect, ["TRAIN"] + train_args(dir_, eval=path, **kw))
    def judged(name, d):  # the outcome dev/evalfile.py's check predicts
        run(name, "fail" if evalfile.check(d, V, maxT) else "any", cs.file(name, d))
    header_cases(cs, "eval", data, EVAL, {}, run)
    # every uint16 field of every example (and each completion's length) at its boundary values
    starts, p = [], 1024
    for ex in EVAL_EXAMPLES:
        starts.append(p)
        p += 2 * len(evalfile.example_stream(len(starts) - 1, ex))
    for i, ex in enumerate(EVAL_EXAMPLES):
        fields = list(enumerate(evalfile.FIELDS))
        q = 6 + len(ex["ctx"])
        for k, end in enumerate(ex["endings"]):
            fields.append((q, "len%d" % k))
            q += 1 + len(end)
        for f, fname in fields:
            cur = struct.unpack_from("<H", data, starts[i] + 2 * f)[0]
            for label, v in EVAL_FIELD_VALUES.items():
                v = cur - 1 if label == "valid-1" else cur + 1 if label == "valid+1" else v
                if v == cur or not 0 <= v <= 65535:
                    continue
                d = bytearray(data)
                struct.pack_into("<H", d, starts[i] + 2 * f, v)
                judged("eval.ex%d.%s=%s" % (i, fname, label), bytes(d))
    # tokens: the first context token and the last token of the file, at V-1, V and 65535
    for where, off in (("first_ctx", starts[0] + 12), ("last", len(data) - 2)):
        for label, v in (("V-1", V - 1), ("V", V), ("65535", 65535)):
            d = bytearray(data)
            struct.pack_into("<H", d, off, v)
            judged("eval.token_%s=%s" % (where, label), bytes(d))
    cut_cases(cs, "eval", data, [("inside_header", 8), ("header", 1024), ("ex0_fields", 1024 + 6),
                                 ("ex1", starts[1]), ("mid_ex2", starts[2] + 20),
                                 ("last_example", starts[3])], run)
    # headers that promise much more than the file holds: refused before anything is allocated
    for label, n, longest in (("N=65536", 65536, None), ("N=65536,longest=65534", 65536, 65534),
                              ("longest=65534", None, 65534)):
        d = data
        if n is not None:
            d = set_field(d, EVAL["header"], 2, n)
        if longest is not None:
            d = set_field(d, EVAL["header"], 3, longest)
        run("eval.promise." + label, "fail", cs.file("eval.promise." + label, d))
    # valid files beyond llm.c's: K = 2..300, every example cut to the context, one example
    many = [{"ctx": [1, 2], "endings": [[t % V] for t in range(300)], "label": 299}]
    judged("eval.K=300", evalfile.encode(many))
    judged("eval.all_cut", evalfile.encode([{"ctx": list(range(40)), "endings": [[1] * 16, [2]],
                                             "label": 1}] * 3))
    judged("eval.one_example_K2", evalfile.encode([EVAL_EXAMPLES[0]]))
    # --val-eval: scored at every validation of a training run
    good = os.path.join(base, "eval.bin")
    shard = os.path.join(base, "shard.bin")
    bad = cs.file("eval.val_eval_bad.bin", evalfile.encode(EVAL_EXAMPLES, len(EVAL_EXAMPLES) + 1))
    run("eval.val_eval_good", "any", None, j=shard, v=1, **{"val-eval": good})
    run("eval.val_eval_bad", "fail", None, j=shard, v=1, **{"val-eval": bad})
    run("eval.val_eval_no_validation", "fail", None, **{"val-eval": good})
    # not a file
    run("eval.directory", "fail", base)
    run("eval.dev_null", "fail", "/dev/null")
    fifo = cs.path("eval.fifo")
    os.mkfifo(fifo)
    run("eval.fifo", "fail", fifo)

def flag_cases(cs, dir_):
    def run(name, expect, argv, alloc="any"):
        cs.add(name, expect, ["TRAIN"] + argv, alloc=alloc)
    for flag, kind, lo, hi, cheap in TRAIN_FLAGS:
        key = flag.lstrip("-")
        # malformed numbers: every one for the flags in FULL_MALFORMED (the others share their parser)
        bad = {"empty": "", "abc": "abc", "1x": "1x", "nan": "nan", "INT64_MAX+1": str(2**63)}
        if flag in FULL_MALFORMED:
            bad.update({"1space": "1 ", "plus": "+", "minus": "-", "inf": "inf", "-inf": "-inf",
                        "1e999": "1e999", "0x10": "0x10" if kind == "int" else None,
                        "1.5": "1.5" if kind == "int" else None, "INT64_MIN-1": str(-2**63 - 1),
                        "2^64": str(2**64), "1e2": "1e2" if kind == "int" else None})
            run("flag.%s=space1(leading_space)" % flag, "any", train_args(dir_, **{key: " 1"}))
        if kind == "int":
            for label, v in (("lo-1", lo - 1), ("hi+1", hi + 1), ("INT32_MIN", I32_MIN),
                             ("INT32_MAX", I32_MAX), ("INT64_MAX", I64_MAX), ("INT64_MIN", I64_MIN)):
                if v < lo or v > hi:
                    bad[label] = str(v)
        else:
            for label, v in (("below_lo", "%.17g" % (lo - max(abs(lo), 1e-30) * 0.5 if lo > 0 else -1e-30)),
                             ("above_hi", "%.17g" % (hi * 1.5 + 1e-30)), ("-1", "-1"),
                             ("1e308", "1e308"), ("-1e308", "-1e308"), ("denormal", "1e-320")):
                if not lo <= float(v) <= hi:
                    bad[label] = v
        for label, v in bad.items():
            if v is not None and not (flag == "-d" and v == "-1"):
                run("flag.%s=%s" % (flag, label), "fail", train_args(dir_, **{key: v}), alloc="small")
        for v in cheap:
            run("flag.%s=%s(in_range)" % (flag, v), "any", train_args(dir_, **{key: v}))
    run("flag.-d=0", "fail", train_args(dir_, d=0), alloc="small")
    run("flag.-d=24(not_multiple)", "fail", train_args(dir_, d=24), alloc="small")
    run("flag.-d=2^40(2^36_micro_batches)", "fail", train_args(dir_, d=1 << 40), alloc="small")
    run("flag.-t=17(>maxT)", "fail", train_args(dir_, t=17), alloc="small")
    run("flag.-b=2^20_-t=16(huge_batch)", "any", train_args(dir_, b=1 << 20, t=16))
    run("flag.-b=2^24(max)", "any", train_args(dir_, b=1 << 24))
    # a valid command line whose run diverges within ten steps: it must stop with an error, and the
    # layers must survive the inf/NaN on the way (no undefined behaviour before the check)
    run("flag.diverging_run", "any", train_args(dir_, x=50, q=1, l=10, c=0, G=0, beta2=0))
    # a bad input with the default -u (20 >= -x 1 draws a warning): still one line on stderr
    run("flag.default_-u_and_missing_shard", "fail", train_args(dir_, u=None, i=cs.path("missing.bin")), alloc="small")
    # structure
    base = train_args(dir_)
    run("flag.unknown", "fail", base + ["-Q", "1"], alloc="small")
    run("flag.missing_value", "fail", base + ["-b"], alloc="small")
    run("flag.not_a_flag", "fail", base + ["hello", "1"], alloc="small")
    run("flag.dash_only", "fail", base + ["-", "1"], alloc="small")
    run("flag.double_dash_unknown", "fail", base + ["--b", "1"], alloc="small")
    run("flag.long_unknown", "fail", base + ["--beta3", "0.5"], alloc="small")
    run("flag.empty_flag", "fail", base + ["", "1"], alloc="small")
    run("flag.-y1_without_-o", "fail", train_args(dir_, y=1), alloc="small")
    run("flag.-l*-c>=1", "fail", train_args(dir_, l=1, c=1), alloc="small")
    # paths
    long_path = "/tmp/" + "x" * 5000
    run("flag.-o=long_path", "fail", train_args(dir_, o=long_path), alloc="small")
    run("flag.-o=4000_byte_path", "fail", train_args(dir_, o="/tmp/" + "y" * 250 + "/" + "z" * 3750), alloc="small")
    run("flag.-i=long_path", "fail", train_args(dir_, i=long_path), alloc="small")
    run("flag.-e=long_path.bin", "fail", train_args(dir_, e=long_path + ".bin"), alloc="small")
    run("flag.-e=missing.bin", "fail", train_args(dir_, e="/nonexistent/model.bin"), alloc="small")
    f = cs.file("flag.a_file", b"x")
    run("flag.-o=a_file", "fail", train_args(dir_, o=f), alloc="small")
    run("flag.-o=under_a_file", "fail", train_args(dir_, o=f + "/sub"), alloc="small")
    run("flag.-Z=directory", "fail", train_args(dir_, Z=cs.files, s=1), alloc="small")
    for desc, expect in DESCRIPTORS:
        run("desc." + (desc if desc else "empty"), expect, train_args(dir_, e=desc), alloc="small")
    wrap = find_wrapping_descriptor()
    if wrap:
        run("desc.num_parameters*4_wraps_small(%s)" % wrap, "fail", train_args(dir_, e=wrap), alloc="small")
    # -o holding another run's checkpoints, without -y 1
    run("flag.-o=earlier_run_without_-y", "fail",
        train_args(dir_, o=os.path.join(dir_, "base", "run")), alloc="small")

def find_wrapping_descriptor():
    """a descriptor (numbers up to 10^6, as the parser allowed) whose weight bytes wrap size_t to
    less than 1 MiB: a reader without overflow checks allocates a little and writes a lot"""
    M = 1 << 64
    for C in range(620000, 1000001, 8):
        K = 12 * C + 13
        for m in (1, 2, 3):
            target = -(-m * (1 << 62) // C)              # X with C*X just above m*2^62
            L, S = divmod(target - 2, K)
            if not 1 <= L <= 1000000:
                continue
            for X in (target, target + 1):
                S = X - 2 - L * K
                Vp, T = 128, S - 128
                if 16 <= T <= 1000000 and (4 * C * X) % M < (1 << 20):
                    return "L%dH1C%dT%dV97" % (L, C, T)
    return None

def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("base", "cases"):
        raise SystemExit("usage: gen_bad_inputs.py base|cases DIR")
    dir_ = sys.argv[2]
    if sys.argv[1] == "base":
        write_base(dir_)
        return
    cs = Cases(os.path.join(dir_, "cases.d"), os.path.join(dir_, "files"))
    model_cases(cs, dir_)
    shard_cases(cs, dir_)
    shard2_cases(cs, dir_)
    state_cases(cs, dir_)
    tokenizer_cases(cs, dir_)
    sft_cases(cs, dir_)
    tok_eval_cases(cs, dir_)
    flag_cases(cs, dir_)
    eval_cases(cs, dir_)
    print("%d cases" % cs.n)

if __name__ == "__main__":
    main()
