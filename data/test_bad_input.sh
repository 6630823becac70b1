#!/bin/bash
# data/test_bad_input.sh -- bad input to ./tokenizer must give one clear line on stderr and exit 1,
# never a crash, a hang or a huge allocation. Each case runs ./tokenizer under a time limit
# (10 s) and a memory limit (ulimit -v, 2 GB), so a hang shows as exit 124 and a runaway
# allocation as an out-of-memory error, and checks: exit status 1 (a crash would be >= 128),
# exactly one line on stderr, starting with "error:" and containing the expected words. A few
# cases check what a good run writes instead (shard sizes, the encode output format).
# Needs ./tokenizer (make tokenizer) and python3; it makes its own tiny vocabulary (no download).
# Closing line: "N passed, N failed"; exit status non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-./tokenizer}
[ -x "$BIN" ] || { echo "error: $BIN not built (make tokenizer)"; exit 1; }
command -v python3 > /dev/null || { echo "error: python3 not found (it writes the test files)"; exit 1; }
W=$(mktemp -d /tmp/tok_bad_input_XXXXXX)
trap 'rm -rf "$W"' EXIT
passed=0; failed=0

pass() { printf 'PASS %-34s %s\n' "$1" "$2"; passed=$((passed + 1)); }
fail() { printf 'FAIL %-34s %s\n' "$1" "$2"; failed=$((failed + 1)); }

# run ARGS...: ./tokenizer ARGS, stdin from $IN (default /dev/null), at most 10 s and 2 GB, and
# files of at most $FSIZE KiB when FSIZE is set (ulimit -f)
run() {
    ( ulimit -v 2000000; [ -z "${FSIZE:-}" ] || ulimit -f "$FSIZE"; exec timeout -k 2 10 "$BIN" "$@" ) \
        > "$W/out" 2> "$W/err" < "${IN:-/dev/null}"
}

# expect NAME WORDS -- ARGS...: wants exit 1 and one "error:" line matching WORDS (a grep regex)
expect() {
    local name=$1 words=$2; shift 3
    run "$@"
    local rc=$? lines; lines=$(wc -l < "$W/err")
    if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -q "^error: .*$words" "$W/err"; then
        pass "$name" "$(cat "$W/err")"
    else
        fail "$name" "exit $rc, $lines stderr line(s): $(head -c 300 "$W/err")"
    fi
}

# The test vocabulary: byte b is token b, filler tokens up to id 65532, then "th" 65533,
# "the" 65534 and <|endoftext|> 65535 (so ids of 1 to 5 digits appear), merges "t h", "th e".
python3 - "$W" <<'EOF'
import json, sys
w = sys.argv[1]
# GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others from U+0100
bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs: bs.append(b); cs.append(256 + n); n += 1
char = dict(zip(bs, map(chr, cs)))
enc = {char[b]: b for b in range(256)}
for i in range(256, 65533): enc["zz%05d" % i] = i
enc["th"], enc["the"], enc["<|endoftext|>"] = 65533, 65534, 65535
def write(name, text): open(f"{w}/{name}", "w", encoding="utf-8").write(text)
write("enc.json", json.dumps(enc, ensure_ascii=False))
write("vocab.bpe", "#version: 0.2\nt h\nth e\n")
write("empty.bpe", "")
write("header_only.bpe", "#version: 0.2\n")
write("long.bpe", "#version: 0.2\n" + "a" * 600 + " b\n")
write("dup.bpe", "#version: 0.2\nt h\nth e\nt h\n")
write("enc_eot.json", '{"<|endoftext|>": 0}')
write("empty.json", "")
write("garbage.json", "hello, I am not JSON")
# shards input: document 0 (val, 1,000 bytes), documents 1..3 (train, 50,000 bytes each); one
# token per byte (no "t" in the text), so train is 150,003 tokens with one <|endoftext|> each
import os
os.makedirs(f"{w}/docs")
line = "abcd efgh ijk lmnop\n"  # 20 bytes
write("docs/d0.txt", line * 50)
for d in (1, 2, 3): write(f"docs/d{d}.txt", line * 2500)
EOF
"$BIN" build "$W/enc.json" "$W/vocab.bpe" "$W/tok.bin" > /dev/null 2> "$W/err" ||
    { echo "error: $BIN build of the test vocabulary failed: $(cat "$W/err")"; exit 1; }
T=(-t "$W/tok.bin")

# writes a variant of tok.bin: tokfile OUT KEY=VALUE...  (header fields, and what to append/cut)
tokfile() {
    python3 - "$W/tok.bin" "$@" <<'EOF'
import struct, sys
src, out, *edits = sys.argv[1:]
d = bytearray(open(src, "rb").read())
for e in edits:
    k, v = e.split("=")
    if k.startswith("h"): d[4 * int(k[1:]):4 * int(k[1:]) + 4] = struct.pack("<i", int(v))
    elif k == "size": d = d[:int(v)]
    elif k == "table_only":   # cut after the token table (what a version 1/2 file holds)
        V, pos = struct.unpack_from("<i", d, 8)[0], 1024
        for _ in range(V): pos += 1 + d[pos]
        d = d[:pos]
    elif k == "append": d += b"x" * int(v)
open(out, "wb").write(d)
EOF
}

# ---- the tokenizer file (-t): header first, regular files only, size checked before reading
mkfifo "$W/fifo"
mkdir "$W/dir"
expect "-t a FIFO"                  "not a regular file"   -- -t "$W/fifo" encode
expect "-t a directory"             "not a regular file"   -- -t "$W/dir" encode
expect "-t /dev/zero"               "not a regular file"   -- -t /dev/zero encode
truncate -s 3G "$W/huge.bin"
expect "-t a 3 GB file of zeros"    "bad magic 0"          -- -t "$W/huge.bin" decode
expect "-t missing file"            "no such file"         -- -t "$W/none.bin" encode
tokfile "$W/bigV.bin" h2=2000000
expect "-t vocab_size 2000000"      "vocab_size 2000000 is out of range" -- -t "$W/bigV.bin" decode
tokfile "$W/bigV_trunc.bin" h1=2 h2=1000000 h3=0
expect "-t header vs file size"     "header .* needs"      -- -t "$W/bigV_trunc.bin" decode
tokfile "$W/nomerge.bin" h4=0 table_only=1
expect "-t version 3, 0 merges"     "merge count 0"        -- -t "$W/nomerge.bin" decode
tokfile "$W/v2junk.bin" h1=2 h4=0 table_only=1 append=5
expect "-t version 2, trailing bytes" "5 bytes after the token table" -- -t "$W/v2junk.bin" decode

# ---- every input file of ./tokenizer: regular files only (a FIFO must not block)
expect "shards of a FIFO"           "not a regular file"   -- "${T[@]}" shards "$W/o1/x" "$W/fifo"
expect "shards of /dev/zero"        "not a regular file"   -- "${T[@]}" shards "$W/o2/x" /dev/zero
expect "bench of a FIFO"            "not a regular file"   -- "${T[@]}" bench "$W/fifo"
expect "bench of a directory"       "not a regular file"   -- "${T[@]}" bench "$W/dir"
expect "build: encoder.json a FIFO" "not a regular file"   -- build "$W/fifo" "$W/vocab.bpe" "$W/o3.bin"
expect "build: vocab.bpe a FIFO"    "not a regular file"   -- build "$W/enc.json" "$W/fifo" "$W/o4.bin"
expect "shards of a missing file"   "no such file"         -- "${T[@]}" shards "$W/o5/x" "$W/none.txt"

# ---- encode: a 68 MB "word" is refused (the heap BPE would need ~1.7 GB and ~30 s), not tried
head -c 68000000 /dev/zero | tr '\0' a > "$W/long_word.txt"
IN=$W/long_word.txt expect "encode of a 68 MB word" "pre-token .* 68000000 bytes" -- "${T[@]}" encode

# ---- numeric flags: whole numbers only, overflow-checked, within bounds
expect "--threads 1000000"          "out of range"         -- "${T[@]}" --threads 1000000 encode
expect "--threads 2^32+1"           "out of range"         -- "${T[@]}" --threads 4294967297 encode
expect "--threads 10^20"            "out of range"         -- "${T[@]}" --threads 100000000000000000000 encode
expect "--threads ' 4'"             "not a whole number"   -- "${T[@]}" --threads " 4" encode
expect "--threads +4"               "not a whole number"   -- "${T[@]}" --threads +4 encode
expect "--threads 0"                "out of range"         -- "${T[@]}" --threads 0 encode
expect "--threads without a value"  "needs a value"        -- "${T[@]}" encode --threads
expect "-t without a value"         "needs a value"        -- encode -t
expect "--shard-tokens 1000"        "out of range"         -- "${T[@]}" --shard-tokens 1000 shards "$W/o6/x" "$W/docs"
expect "--shard-tokens 3000000000"  "out of range"         -- "${T[@]}" --shard-tokens 3000000000 shards "$W/o7/x" "$W/docs"
expect "--val-every 1"              "out of range"         -- "${T[@]}" --val-every 1 shards "$W/o8/x" "$W/docs"
expect "--val-every 2^64+1"         "out of range"         -- "${T[@]}" --val-every 18446744073709551617 shards "$W/o9/x" "$W/docs"
expect "--reps 2^32+1"              "out of range"         -- "${T[@]}" --reps 4294967297 bench "$W/docs/d0.txt"
expect "--chunk-bytes 1"            "out of range"         -- "${T[@]}" --chunk-bytes 1 encode
expect "unknown command"            "unknown command"      -- "${T[@]}" frobnicate

# ---- build: inputs that would make a tokenizer file that cannot encode
expect "build: empty vocab.bpe"     "empty.bpe: no merges" -- build "$W/enc.json" "$W/empty.bpe" "$W/b1.bin"
expect "build: vocab.bpe header only" "header_only.bpe: no merges" -- build "$W/enc.json" "$W/header_only.bpe" "$W/b2.bin"
expect "build: 600-byte merge part" "long.bpe: .*longer than 255" -- build "$W/enc.json" "$W/long.bpe" "$W/b3.bin"
expect "build: merge twice"         "dup.bpe: .*twice"     -- build "$W/enc.json" "$W/dup.bpe" "$W/b4.bin"
expect "build: only <|endoftext|>"  "enc_eot.json: .*single-byte" -- build "$W/enc_eot.json" "$W/vocab.bpe" "$W/b5.bin"
expect "build: empty encoder.json"  "empty.json: .*JSON"   -- build "$W/empty.json" "$W/vocab.bpe" "$W/b6.bin"
expect "build: garbage encoder.json" "garbage.json: .*JSON" -- build "$W/garbage.json" "$W/vocab.bpe" "$W/b7.bin"
FSIZE=100 expect "build: write past ulimit -f" "b8.bin.tmp.[0-9]*: write failed (File too large)" -- build "$W/enc.json" "$W/vocab.bpe" "$W/b8.bin"
left=$(ls "$W"/b?.bin* 2> /dev/null | wc -l)
if [ "$left" -eq 0 ]; then pass "failed builds leave no file" "no b?.bin, no temp file"
else fail "failed builds leave no file" "$(ls "$W"/b?.bin* | tr '\n' ' ')"; fi
# the temp file is OUT.tmp.PID: another run's temp file (here OUT.tmp) is not overwritten or moved
echo "another run's temp file" > "$W/b9.bin.tmp"
run build "$W/enc.json" "$W/vocab.bpe" "$W/b9.bin"
rc=$?
if [ $rc -eq 0 ] && [ -s "$W/b9.bin" ] && [ "$(cat "$W/b9.bin.tmp" 2> /dev/null)" = "another run's temp file" ]; then
    pass "build: another run's temp file kept" "$(cat "$W/b9.bin.tmp")"
else fail "build: another run's temp file kept" "exit $rc, b9.bin.tmp: $(head -c 100 "$W/b9.bin.tmp" 2>&1)"; fi

# ---- shards: no shard smaller than the minimum (65,537 tokens) unless its split is smaller
run "${T[@]}" --shard-tokens 65537 --val-every 4 shards "$W/s/x" "$W/docs"
rc=$?
sizes=$(python3 - "$W/s/x" <<'EOF'
import glob, struct, sys
for split in ("train", "val"):
    out = []
    for p in sorted(glob.glob(f"{sys.argv[1]}_{split}_*.bin")):
        d = open(p, "rb").read()
        magic, version, n = struct.unpack_from("<3i", d)
        out.append(str(n) if (magic, version, len(d)) == (20240520, 1, 1024 + 2 * n) else "bad")
    print(f"{split}=" + "+".join(out), end=" ")
EOF
)
# train: 150,003 tokens -> 65,537 + 84,466 (the short tail joins the shard before it)
if [ $rc -eq 0 ] && [ "$sizes" = "train=65537+84466 val=1001 " ]; then pass "shards: last shard merged" "$sizes"
else fail "shards: last shard merged" "exit $rc, shards $sizes(want train=65537+84466 val=1001)"; fi
if grep -q "^warning: .*val split .*1001 tokens" "$W/err" && ! grep -q "train split" "$W/err"; then
    pass "shards: warns about a small split" "$(grep val "$W/err")"
else fail "shards: warns about a small split" "stderr: $(head -c 300 "$W/err")"; fi

# ---- shards: a dataset under a prefix is replaced whole (--replace) or not at all
# snap DIR: every name under DIR, with a checksum for each file: shows a file changed, added
# (a stale shard, a temp file, a staging folder) or removed
snap() { (cd "$1" && find . | LC_ALL=C sort | while IFS= read -r f; do if [ -f "$f" ]; then cksum "$f"; else echo "$f"; fi; done); }
# same NAME: the folder $W/r holds exactly the first dataset, byte for byte
same() {
    if [ "$(snap "$W/r")" = "$before" ]; then pass "$1" "$(ls "$W/r" | tr '\n' ' ')"
    else fail "$1" "now: $(ls -R "$W/r" | tr '\n' ' ' | head -c 300)"; fi
}
run "${T[@]}" --shard-tokens 65537 --val-every 4 shards "$W/r/x" "$W/docs" # train 2 shards, val 1
before=$(snap "$W/r")
expect "shards: a dataset is there"  "r/x: a dataset is already there (3 shards.*--replace" -- "${T[@]}" shards "$W/r/x" "$W/docs"
same "shards: refused run left it"
# fails after writing its val shard (one document: train is empty); the old run overwrote the
# previous val shard with it and then deleted it
expect "shards: failing run"         "only 1 documents, so the train split is empty" -- "${T[@]}" --replace shards "$W/r/x" "$W/docs/d1.txt"
same "shards: failing run left it"
FSIZE=100 expect "shards: write past ulimit -f" "x_train_000000.bin: write failed (File too large)" -- "${T[@]}" --replace --shard-tokens 65537 shards "$W/r/x" "$W/docs"
same "shards: ulimit -f run left it"
# killed while it waits for stdin (a FIFO), after it wrote the shards of a first 64 MiB batch
python3 -c "import sys; open(sys.argv[1], 'w').write('abcd efgh ijk lmnop\n' * (((64 << 20) // 20) + 1))" "$W/big.txt"
mkfifo "$W/stdin"; touch "$W/mark"
exec 3<> "$W/stdin" # a writer that never writes: the run waits for stdin after the first batch
# (timeout passes the TERM on to ./tokenizer, and exits as it does)
( ulimit -v 2000000; exec timeout -k 2 30 "$BIN" "${T[@]}" --replace shards "$W/r/x" "$W/big.txt" - ) \
    < "$W/stdin" > "$W/out" 2> "$W/err" &
pid=$!
for i in $(seq 200); do [ -n "$(find "$W/r" -name 'x_val_000000.bin*' -newer "$W/mark" 2> /dev/null)" ] && break; sleep 0.1; done
kill -TERM $pid; wait $pid; rc=$?
exec 3>&-
lines=$(wc -l < "$W/err")
if [ $rc -eq 143 ] && [ "$lines" -eq 1 ] && grep -q "^error: .*interrupted by signal 15" "$W/err"; then
    pass "shards: SIGTERM mid-run" "$(cat "$W/err")"
else fail "shards: SIGTERM mid-run" "exit $rc (want 143), $lines stderr line(s): $(head -c 300 "$W/err")"; fi
same "shards: SIGTERM run left it"
rm -f "$W/big.txt"
# fewer shards than the dataset there: the third shard must not stay beside the new two
run "${T[@]}" --replace --val-every 4 shards "$W/r/x" "$W/docs"
rc=$?
got=$(cd "$W/r" && ls)
if [ $rc -eq 0 ] && [ "$got" = "$(printf 'x_train_000000.bin\nx_val_000000.bin')" ] &&
    [ "$(od -An -tu4 -j8 -N4 "$W/r/x_train_000000.bin" | tr -d ' ')" = 150003 ]; then
    pass "shards: --replace replaces it whole" "$(echo $got) ($(grep -o 'previous.*removed' "$W/out"))"
else fail "shards: --replace replaces it whole" "exit $rc, $(echo $got), stderr: $(head -c 200 "$W/err")"; fi

# ---- sft: JSONL records -> version-2 shards (gptc/shard.h): each record's prompt flagged 0, its
# completion and the <|endoftext|> after it flagged 1, one <|endoftext|> flagged 0 first; prompt
# and completion encoded apart, "<|endoftext|>" in them plain text; blank lines skipped
printf '%s\n' '{"prompt": "the a", "completion": " thee"}' '' '{"id": 7, "prompt": "", "completion": "b<|endoftext|>"}' \
    ' ' '{"prompt": "x\ny", "completion": ""}' > "$W/sft.jsonl"
run "${T[@]}" --val-every 2 sft "$W/sft/x" "$W/sft.jsonl"
rc=$?
got=$(python3 - "$BIN" "$W/tok.bin" "$W/sft/x" <<'EOF'
import struct, subprocess, sys
binary, tok, prefix = sys.argv[1:]
def enc(text):
    out = subprocess.run([binary, "-t", tok, "encode"], input=text.encode(), capture_output=True).stdout
    return [int(x) for x in out.split()]
E = 65535
def stream(records):  # (tokens, flags) as sft writes them
    t, f = [E], [0]
    for p, c in records:
        t += enc(p) + enc(c) + [E]
        f += [0] * len(enc(p)) + [1] * (len(enc(c)) + 1)
    return t, f
want = {"val": stream([("the a", " thee"), ("x\ny", "")]), "train": stream([("", "b<|endoftext|>")])}
for split in ("train", "val"):
    d = open(f"{prefix}_{split}_000000.bin", "rb").read()
    magic, version, n = struct.unpack_from("<3i", d)
    t = list(struct.unpack_from("<%dH" % n, d, 1024))
    f = list(d[1024 + 2 * n:])
    ok = (magic, version, len(d)) == (20240520, 2, 1024 + 3 * n) and (t, f) == want[split]
    print(f"{split}={'ok' if ok else 'WRONG'}:{n}", end=" ")
EOF
)
if [ $rc -eq 0 ] && [ "$got" = "train=ok:16 val=ok:12 " ]; then pass "sft: shards, flags, splits" "$got"
else fail "sft: shards, flags, splits" "exit $rc, $got, stderr: $(head -c 300 "$W/err")"; fi
printf '%s\n' '{"prompt": "a", "completion": "b"}' '{"prompt": "a", "completion": "b"}' '' '{"prompt": "a", "completion": 5}' > "$W/sft_bad.jsonl"
expect "sft: a bad record"          "sft_bad.jsonl:4: no \"completion\" string" -- "${T[@]}" sft "$W/sft2/x" "$W/sft_bad.jsonl"
printf '{"prompt": "a", "completion": "b"}\n{"prompt": "a",\n' > "$W/sft_cut.jsonl"
expect "sft: a line cut short"      "sft_cut.jsonl:2: not valid JSON" -- "${T[@]}" sft "$W/sft3/x" "$W/sft_cut.jsonl"
expect "sft: a dataset is there"    "sft/x: a dataset is already there" -- "${T[@]}" sft "$W/sft/x" "$W/sft.jsonl"
expect "sft: a FIFO"                "not a regular file"   -- "${T[@]}" sft "$W/sft4/x" "$W/fifo"

# ---- eval: multiple-choice JSONL records (HellaSwag's jsonl) -> an eval file (gptc/eval.h): each
# record's "ctx" and " " + each of its "endings" encoded apart (llm.c's rendering), its label, its
# index; the header's N and longest example. Compared byte for byte with dev/evalfile.py's writer
# fed ./tokenizer encode's ids. Blank lines and other fields are skipped; a bad record is one error
# naming file:line
printf '%s\n' '{"ind": 3, "ctx": "the a", "endings": ["thee", "", "a the"], "label": 2, "split": "val"}' '' \
    '{"ctx": "x<|endoftext|>y\n", "endings": ["1", "2"], "label": 0}' > "$W/ev.jsonl"
run "${T[@]}" eval "$W/ev/out.bin" "$W/ev.jsonl"
rc=$?
got=$(python3 - "$BIN" "$W/tok.bin" "$W/ev/out.bin" "$W/ev.jsonl" <<'EOF'
import json, subprocess, sys
sys.path.insert(0, "dev")
import evalfile
binary, tok, path, src = sys.argv[1:]
def enc(text):
    out = subprocess.run([binary, "-t", tok, "encode"], input=text.encode(), capture_output=True).stdout
    return [int(x) for x in out.split()]
recs = [json.loads(line) for line in open(src) if line.strip()]
want = [{"ctx": enc(r["ctx"]), "endings": [enc(" " + e) for e in r["endings"]], "label": r["label"]}
        for r in recs]
data = open(path, "rb").read()
print("%s, %d bytes" % ("the same bytes" if data == evalfile.encode(want) else "DIFFERENT", len(data)))
EOF
)
if [ $rc -eq 0 ] && [[ $got == "the same bytes"* ]]; then pass "eval: llm.c's rendering and format" "$got"
else fail "eval: llm.c's rendering and format" "exit $rc, $got, stderr: $(head -c 300 "$W/err")"; fi
evbad() { printf '%s\n' "$2" > "$W/$1.jsonl"; }
evbad evj '{"ctx": "a",';                                        expect "eval: not JSON"             "evj.jsonl:1: not valid JSON" -- "${T[@]}" eval "$W/o.bin" "$W/evj.jsonl"
evbad evc '{"endings": ["a", "b"], "label": 0}';                  expect "eval: no ctx"               "evc.jsonl:1: no \"ctx\" string" -- "${T[@]}" eval "$W/o.bin" "$W/evc.jsonl"
evbad eve '{"ctx": "a", "endings": "ab", "label": 0}';            expect "eval: endings not an array" "eve.jsonl:1: no \"endings\" array" -- "${T[@]}" eval "$W/o.bin" "$W/eve.jsonl"
evbad ev1 '{"ctx": "a", "endings": ["b"], "label": 0}';           expect "eval: one ending"           "ev1.jsonl:1: fewer than 2 endings" -- "${T[@]}" eval "$W/o.bin" "$W/ev1.jsonl"
evbad evn '{"ctx": "a", "endings": ["b", 5], "label": 0}';        expect "eval: an ending not text"   "evn.jsonl:1: an ending is not a string" -- "${T[@]}" eval "$W/o.bin" "$W/evn.jsonl"
evbad evl '{"ctx": "a", "endings": ["b", "c"], "label": "0"}';    expect "eval: label not a number"   "evl.jsonl:1: no integer \"label\"" -- "${T[@]}" eval "$W/o.bin" "$W/evl.jsonl"
evbad evk '{"ctx": "a", "endings": ["b", "c"], "label": 2}';      expect "eval: label >= K"           "evk.jsonl:1: \"label\" is not the index" -- "${T[@]}" eval "$W/o.bin" "$W/evk.jsonl"
evbad evm '{"ctx": "a", "endings": ["b", "c"], "label": -1}';     expect "eval: label < 0"            "evm.jsonl:1: \"label\" is not the index" -- "${T[@]}" eval "$W/o.bin" "$W/evm.jsonl"
evbad ev0 "$(printf '{"ctx": "a", "endings": ["b", "c"], "label": 1}\n{"ctx": "", "endings": ["b", "c"], "label": 1}')"
expect "eval: empty context"        "ev0.jsonl:2: the context has no tokens" -- "${T[@]}" eval "$W/o.bin" "$W/ev0.jsonl"
python3 -c "import sys; open(sys.argv[1], 'w').write('{\"ctx\": \"%s\", \"endings\": [\"b\", \"c\"], \"label\": 1}\n' % ('a' * 40000))" "$W/evbig.jsonl"
expect "eval: an example too long"  "evbig.jsonl:1: the example is 80024 bytes, more than" -- "${T[@]}" eval "$W/o.bin" "$W/evbig.jsonl"
python3 -c "import sys; open(sys.argv[1], 'w').write('{\"ctx\": \"a\", \"endings\": [\"b\", \"c\"], \"label\": 1}\n' * 65537)" "$W/evmany.jsonl"
expect "eval: 65537 records"        "evmany.jsonl:65537: more than 65536 records" -- "${T[@]}" eval "$W/o.bin" "$W/evmany.jsonl"
evbad evnone "$(printf '\n \n')";                                  expect "eval: no records"           "no records" -- "${T[@]}" eval "$W/o.bin" "$W/evnone.jsonl"
expect "eval: a missing input"      "no such file"          -- "${T[@]}" eval "$W/o.bin" "$W/none.jsonl"
expect "eval: a FIFO"               "not a regular file"    -- "${T[@]}" eval "$W/o.bin" "$W/fifo"
expect "eval: output under a file"  "cannot open"           -- "${T[@]}" eval "$W/tok.bin/o.bin" "$W/ev.jsonl"
rule_tmp=$(ls "$W" | grep -c 'o.bin.tmp' || true)
if [ "$rule_tmp" -eq 0 ] && [ ! -e "$W/o.bin" ]; then pass "eval: a failed run writes nothing" "no o.bin, no temp"
else fail "eval: a failed run writes nothing" "$(ls "$W" | grep o.bin)"; fi

# ---- encode prints ids as decimal text, one space between, a newline at the end
printf '\tthe a the\n' > "$W/the.txt"
IN=$W/the.txt run "${T[@]}" encode
if [ "$(od -An -c "$W/out" | tr -s ' ')" = "$(printf '9 65534 32 97 32 65534 10\n' | od -An -c | tr -s ' ')" ]; then
    pass "encode output format" "$(cat "$W/out")"
else fail "encode output format" "got: $(head -c 100 "$W/out")"; fi
IN=/dev/null run "${T[@]}" encode
if [ "$(od -An -c "$W/out" | tr -s ' ')" = " \n" ]; then pass "encode of empty input" "one newline"
else fail "encode of empty input" "got: $(od -An -c "$W/out" | head -c 100)"; fi

echo
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
