"""
dev/evalfile.py -- llm.c's multiple-choice eval file, written and read in Python (struct only).

The format (gptc/eval.h specifies it and reads it in C): int32 header[256] = {20240522, 1, N, the
longest example's bytes, 0...}, then per example the uint16 stream
    65535, bytes, index, label, K, ctx_len, ctx..., K times (len, tokens...)
Used by dev/train_gpt.py (the PyTorch reference of the scores), dev/gen_bad_inputs.py (crafted
files) and dev/test_bad_input.sh. An example is a dict {"ctx": [tokens], "endings": [[tokens],
...], "label": int}.
"""
import struct

MAGIC, VERSION, START = 20240522, 1, 65535
FIELDS = ("start", "bytes", "index", "label", "K", "ctx_len")   # an example's first six uint16


def example_stream(i, ex):
    """the uint16 list of example i (its bytes field filled in)"""
    s = [START, 0, i, ex["label"], len(ex["endings"]), len(ex["ctx"])] + list(ex["ctx"])
    for end in ex["endings"]:
        s += [len(end)] + list(end)
    s[1] = 2 * len(s)
    return s


def encode(examples, n=None, longest=None):
    """the file's bytes; n, longest: override the header's fields (crafted files)"""
    streams = [example_stream(i, ex) for i, ex in enumerate(examples)]
    body = b"".join(struct.pack("<%dH" % len(s), *[v & 0xFFFF for v in s]) for s in streams)
    n = len(examples) if n is None else n
    longest = max(2 * len(s) for s in streams) if longest is None else longest
    return struct.pack("<256i", MAGIC, VERSION, n, longest, *([0] * 252)) + body


def write(path, examples):
    with open(path, "wb") as f:
        f.write(encode(examples))


def check(data, V, maxT):
    """None if train_gpt accepts data (the file's bytes) for a model of vocabulary V and context
    maxT, else what gptc/eval.h rejects first (a Python restatement of its rules, used to predict
    the crafted cases' outcome)"""
    if len(data) < 1024:
        return "truncated header"
    magic, version, n, longest = struct.unpack_from("<4i", data, 0)
    body = len(data) - 1024
    if magic != MAGIC or version != VERSION or not 1 <= n <= 65536:
        return "header"
    if not (22 <= longest <= 65534 and longest % 2 == 0) or body % 2:
        return "longest or size"
    if not 22 * n <= body <= n * longest:
        return "size against N and longest"
    u = struct.unpack_from("<%dH" % (body // 2), data, 1024)
    p, most = 0, 0
    for i in range(n):
        left = len(u) - p
        if left < 6:
            return "example %d: truncated" % i
        start, nbytes, index, label, K, ctx = u[p:p + 6]
        m = nbytes // 2
        if start != START or nbytes % 2 or nbytes < 22 or m > left or nbytes > longest:
            return "example %d: start or bytes" % i
        if index != i or K < 2 or label >= K or ctx == 0 or 6 + ctx > m:
            return "example %d: index, K, label or context" % i
        if any(t >= V for t in u[p + 6:p + 6 + ctx]):
            return "example %d: context token >= V" % i
        q = 6 + ctx
        for _ in range(K):
            if q >= m or u[p + q] == 0 or q + 1 + u[p + q] > m:
                return "example %d: a completion's length" % i
            if any(t >= V for t in u[p + q + 1:p + q + 1 + u[p + q]]) or u[p + q] > maxT:
                return "example %d: a completion's token >= V or length > maxT" % i
            q += 1 + u[p + q]
        if q != m:
            return "example %d: bytes disagrees" % i
        most = max(most, nbytes)
        p += m
    if p != len(u) or most != longest:
        return "trailing data or longest"
    return None


def read(path):
    """-> examples (no checks beyond what parsing needs: the C reader is the one that checks)"""
    data = open(path, "rb").read()
    h = struct.unpack_from("<256i", data, 0)
    assert h[0] == MAGIC and h[1] == VERSION, path
    u = struct.unpack_from("<%dH" % ((len(data) - 1024) // 2), data, 1024)
    out, p = [], 0
    for _ in range(h[2]):
        label, K, n = u[p + 3], u[p + 4], u[p + 5]
        q = p + 6 + n
        ex = {"ctx": list(u[p + 6:q]), "endings": [], "label": label}
        for _ in range(K):
            ex["endings"].append(list(u[q + 1:q + 1 + u[q]]))
            q += 1 + u[q]
        out.append(ex)
        p += u[p + 1] // 2
    return out
