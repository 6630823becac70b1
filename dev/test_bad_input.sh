#!/bin/bash
# dev/test_bad_input.sh -- bad input must give one clear line on stderr and exit 1, never a crash.
# Each case runs ./train_gpt on a broken file or flag and checks: exit status 1 (a crash would be
# >= 128), exactly one line on stderr, starting with "error:" and containing the expected words
# (a fixed string). At the end, a few rules that must hold (-k, a resumed run's log, --prompt
# with and without the KV cache), each a check that fails when the rule breaks.
# Closing line: "N passed, N failed"; exit status non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-./train_gpt}   # BIN=./train_gptcu_emu: the CUDA trainer, the same cases
[ -x "$BIN" ] || { echo "error: $BIN not built (make $(basename "$BIN"))"; exit 1; }
W=$(mktemp -d /tmp/bad_input_XXXXXX)
trap 'rm -rf "$W"' EXIT
passed=0; failed=0

# writes a token shard: shard PATH MAGIC VERSION NTOK_IN_HEADER NTOK_WRITTEN MAXTOKEN
shard() {
    python3 - "$@" <<'EOF'
import struct, sys
path, magic, version, nhead, nwrite, maxtok = sys.argv[1], *map(int, sys.argv[2:])
with open(path, "wb") as f:
    f.write(struct.pack("<256i", magic, version, nhead, *([0] * 253)))
    f.write(struct.pack("<%dH" % nwrite, *[(i * 7) % (maxtok + 1) for i in range(nwrite)]))
EOF
}

# expect NAME WORDS -- ARGS...: runs train_gpt ARGS, wants exit 1 and one "error:" line with WORDS
expect() {
    local name=$1 words=$2; shift 3
    (ulimit -v "${LIMIT_KB:-unlimited}" -f "${LIMIT_FILE_KB:-unlimited}"; exec timeout 60 "$BIN" "$@") > "$W/out" 2> "$W/err" < /dev/null
    local rc=$? lines; lines=$(wc -l < "$W/err")
    if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -q "^error: " "$W/err" && grep -qF -- "$words" "$W/err"; then
        printf 'PASS %-28s %s\n' "$name" "$(cat "$W/err")"; passed=$((passed + 1))
    else
        printf 'FAIL %-28s exit %d, %d stderr line(s): %s\n' "$name" $rc "$lines" "$(head -c 300 "$W/err")"
        failed=$((failed + 1))
    fi
}

# rule NAME COND DETAIL: a check that passes when the shell condition COND holds
rule() { if eval "$2"; then printf 'PASS %-28s %s\n' "$1" "$3"; passed=$((passed + 1));
         else printf 'FAIL %-28s %s\n' "$1" "$3"; failed=$((failed + 1)); fi; }

M=L1H1C8T16V97   # a tiny model: V = 97, maxT = 16
shard "$W/good.bin" 20240520 1 400 400 96
common=(-e $M -i "$W/good.bin" -j "" -b 2 -t 8 -x 1 -u 0 -s 0 -o "")  # a flag given again: the last wins
# a valid model file to break
"$BIN" -e $M -i "$W/good.bin" -j "" -b 2 -t 8 -x 1 -u 0 -s 0 -o "$W/run" > /dev/null 2>&1 || { echo "error: could not make a checkpoint"; exit 1; }
model="$W/run/model_00000001.bin"

# model files
expect "model missing"        "not found"          -- "${common[@]}" -e "$W/none.bin"
head -c 2000 "$model" > "$W/trunc.bin"
expect "model truncated"      "bytes, expected"    -- "${common[@]}" -e "$W/trunc.bin"
head -c 500 "$model" > "$W/short.bin"
expect "model header cut"     "truncated"          -- "${common[@]}" -e "$W/short.bin"
python3 -c "import sys;d=bytearray(open(sys.argv[1],'rb').read());d[0]^=1;open(sys.argv[2],'wb').write(d)" "$model" "$W/magic.bin"
expect "model wrong magic"    "bad magic"          -- "${common[@]}" -e "$W/magic.bin"
python3 -c "import sys;d=bytearray(open(sys.argv[1],'rb').read());d[4]=5;open(sys.argv[2],'wb').write(d)" "$model" "$W/ver.bin"
expect "model wrong version"  "version 5"          -- "${common[@]}" -e "$W/ver.bin"
python3 -c "import sys;d=bytearray(open(sys.argv[1],'rb').read());d[20:24]=(3).to_bytes(4,'little');open(sys.argv[2],'wb').write(d)" "$model" "$W/heads.bin"
expect "model C % NH != 0"    "not divisible"      -- "${common[@]}" -e "$W/heads.bin"

# token shards
expect "shard missing"        "no files match"     -- "${common[@]}" -i "$W/nothing_*.bin"
shard "$W/trunc_shard.bin" 20240520 1 400 300 96
expect "shard truncated"      "truncated"          -- "${common[@]}" -i "$W/trunc_shard.bin"
shard "$W/magic_shard.bin" 20240521 1 400 400 96
expect "shard wrong magic"    "bad magic"          -- "${common[@]}" -i "$W/magic_shard.bin"
shard "$W/ver_shard.bin" 20240520 3 400 400 96
expect "shard wrong version"  "version 3"          -- "${common[@]}" -i "$W/ver_shard.bin"
shard "$W/big_tok.bin" 20240520 1 400 400 120
expect "token id >= V"        ">= the model's vocab" -- "${common[@]}" -i "$W/big_tok.bin"
shard "$W/tiny_shard.bin" 20240520 1 10 10 96
expect "shard smaller than batch" "fewer than one batch" -- "${common[@]}" -i "$W/tiny_shard.bin"
head -c 100 "$W/good.bin" > "$W/header_cut.bin"
expect "shard header cut"     "truncated"          -- "${common[@]}" -i "$W/header_cut.bin"

# token shards with a loss mask (version 2: a flag per token after the tokens, gptc/shard.h):
# shard2 PATH NTOK_IN_HEADER NTOK_WRITTEN NFLAGS_WRITTEN FLAG_VALUE_AT_100
shard2() {
    python3 - "$@" <<'EOF'
import struct, sys
path, nhead, ntok, nflag, bad = sys.argv[1], *map(int, sys.argv[2:])
flags = [(i // 5) % 2 for i in range(nflag)]
if nflag > 100: flags[100] = bad
with open(path, "wb") as f:
    f.write(struct.pack("<256i", 20240520, 2, nhead, *([0] * 253)))
    f.write(struct.pack("<%dH" % ntok, *[(i * 7) % 97 for i in range(ntok)]) + bytes(flags))
EOF
}
shard2 "$W/mask.bin" 400 400 400 1
shard2 "$W/flag2.bin" 400 400 400 2
expect "shard flag 2"         "flag 2 of token 100 is not 0 or 1" -- "${common[@]}" -i "$W/flag2.bin"
expect "val shard flag 2"     "flag 2 of token 100" -- "${common[@]}" -i "$W/mask.bin" -j "$W/flag2.bin" -v 1
shard2 "$W/flag_cut.bin" 400 400 399 1
expect "shard flags truncated" "and their flags"   -- "${common[@]}" -i "$W/flag_cut.bin"
shard2 "$W/no_flags.bin" 400 400 0 1
expect "version 2 without flags" "truncated"       -- "${common[@]}" -i "$W/no_flags.bin"
cp "$W/mask.bin" "$W/multi2_0.bin"; cp "$W/flag2.bin" "$W/multi2_1.bin"
expect "later shard flag 2"   "multi2_1.bin: flag 2" -- "${common[@]}" -i "$W/multi2_*.bin" -S 1
# the flags are part of the data's identity: a resume on the same tokens with one flag changed
"$BIN" "${common[@]}" -i "$W/mask.bin" -o "$W/mrun" > /dev/null 2>&1 || { echo "FAIL could not train on a masked shard"; failed=$((failed + 1)); }
shard2 "$W/mask_b.bin" 400 400 400 0; cp "$W/mask_b.bin" "$W/mask.bin"
expect "resume, other flags"  "shards differ"      -- "${common[@]}" -i "$W/mask.bin" -o "$W/mrun" -y 1 -x 2

# flags
expect "T > maxT"             "exceeds"            -- "${common[@]}" -t 32
expect "B = 0"                "-b 0"               -- "${common[@]}" -b 0
expect "B negative"           "-b -3"              -- "${common[@]}" -b -3
expect "lr not a number"      "not a number"       -- "${common[@]}" -l abc
expect "steps not an integer" "not an integer"     -- "${common[@]}" -x 1.5
expect "lr infinite"          "not a number"       -- "${common[@]}" -l inf
expect "dropout 1"            "-D 1: must be in"   -- "${common[@]}" -D 1
expect "dropout negative"     "-D -0.1: must be in" -- "${common[@]}" -D -0.1
expect "total batch indivisible" "not a multiple"  -- "${common[@]}" -d 100
expect "unknown flag"         "unknown flag"       -- "${common[@]}" -Q 1
expect "missing value"        "missing value"      -- "${common[@]}" -b
expect "bad descriptor"       "not a model file"   -- "${common[@]}" -e d0
expect "descriptor C % NH"    "not divisible"      -- "${common[@]}" -e L2H5C64
expect "resume without -o"    "needs an output"    -- "${common[@]}" -y 1
expect "resume flag range"    "-y 2"               -- "${common[@]}" -y 2

# checkpoint state files
mkdir -p "$W/res"
cp "$model" "$W/res/model_00000001.bin"
printf 'garbage-garbage-garbage' > "$W/res/state_00000001.bin"
expect "state truncated"      "truncated"          -- "${common[@]}" -o "$W/res" -y 1 -x 3
python3 -c "import struct;open('$W/res/state_00000001.bin','wb').write(struct.pack('<64q',1,*([0]*63)))"
expect "state wrong magic"    "bad magic"          -- "${common[@]}" -o "$W/res" -y 1 -x 3
cp "$W/run/state_00000001.bin" "$W/res/state_00000001.bin"
expect "resume with other B"  "trained with -b 2"  -- "${common[@]}" -o "$W/res" -y 1 -x 3 -b 1

# --- sizes from untrusted numbers: checked before anything is allocated (ulimit: a huge
# allocation attempt would fail here with "out of memory" instead of the expected error)
expect "descriptor overflow"  "more than the limit" -- "${common[@]}" -e L384522H1C999720T647174V128
expect "descriptor params"    "parameters is more"  -- "${common[@]}" -e L1000H1C60000T1000V128
expect "descriptor twice"     "appears twice"      -- "${common[@]}" -e L2H2C16L3
expect "-d micro-batch count" "micro-batches"      -- "${common[@]}" -d 4294967297 -b 1 -t 1
expect "B*T over the limit"   "more than the limit" -- "${common[@]}" -e L1H1C8T1048576V97 -b 1048576 -t 1048576
python3 -c "import struct,sys;open(sys.argv[1],'wb').write(struct.pack('<256i',20240326,3,1024,50257,48,25,1600,50304,*([0]*248)))" "$W/big_header.bin"
LIMIT_KB=4000000 expect "model 1KB, huge header" "bytes, expected" -- "${common[@]}" -e "$W/big_header.bin"

# --- non-regular input files: a directory, a FIFO (must not block), for -e, -i and -Z
mkfifo "$W/fifo"
expect "-e directory"         "model.safetensors"  -- "${common[@]}" -e "$W"
expect "-e FIFO"              "FIFO"               -- "${common[@]}" -e "$W/fifo"
expect "-i FIFO"              "FIFO"               -- "${common[@]}" -i "$W/fifo"
expect "-Z FIFO"              "FIFO"               -- "${common[@]}" -Z "$W/fifo"
expect "-o path too long"     "path too long"      -- "${common[@]}" -o "$W/$(printf 'd%.0s' {1..4100})"

# --- Hugging Face checkpoints (-e *.safetensors or a directory): dev/hf_gpt2.py's malformed files,
# each through the trainer (dev/test_safetensors.sh runs them through the loader alone, and ASan)
if "${PYTHON:-/usr/bin/python3}" dev/hf_gpt2.py --malformed "$W/st_bad" > /dev/null 2>&1; then
    while IFS=$'\t' read -r case words; do
        expect "safetensors: $case" "$words" -- "${common[@]}" -e "$W/st_bad/$case"
    done < "$W/st_bad/cases.txt"
else
    echo "FAIL could not write the malformed safetensors (dev/hf_gpt2.py --malformed)"; failed=$((failed + 1))
fi

# --- every shard is checked at start-up, not when first reached (-S 1: multi_0 comes first,
# so one step never reaches multi_1)
shard "$W/multi_0.bin" 20240520 1 400 400 96
shard "$W/multi_1.bin" 20240520 1 400 400 120
expect "later shard token >= V" ">= the model's vocab" -- "${common[@]}" -i "$W/multi_*.bin" -S 1
shard "$W/multi_1.bin" 20240520 1 10 10 96
expect "later shard too small" "fewer than one batch" -- "${common[@]}" -i "$W/multi_*.bin" -S 1
shard "$W/multi_1.bin" 20240521 1 400 400 96
expect "later shard bad magic" "bad magic"         -- "${common[@]}" -i "$W/multi_*.bin" -S 1
rm -f "$W"/multi_*.bin

# --- a diverging run stops before it saves anything; impossible settings are refused
expect "lr * wd >= 1"         "must be below 1"    -- "${common[@]}" -l 10 -c 1000
python3 -c "import struct,sys;d=bytearray(open(sys.argv[1],'rb').read());n=(len(d)-1024)//4;d[1024:]=struct.pack('<%df'%n,*([3e38]*n));open(sys.argv[2],'wb').write(d)" "$model" "$W/huge_w.bin"
python3 dev/ckpt_checksum.py "$W/huge_w.bin"   # (signed again: these test what lies past the checksum)
expect "diverged: no save"    "diverged"           -- "${common[@]}" -e "$W/huge_w.bin" -o "$W/div"
if ls "$W/div"/model_* > /dev/null 2>&1; then echo "FAIL diverged run wrote a checkpoint"; failed=$((failed + 1)); fi
python3 -c "import struct,sys;d=bytearray(open(sys.argv[1],'rb').read());d[2000:2004]=struct.pack('<f',float('nan'));open(sys.argv[2],'wb').write(d)" "$model" "$W/nan_w.bin"
python3 dev/ckpt_checksum.py "$W/nan_w.bin"
expect "model NaN weight"     "non-finite"         -- "${common[@]}" -e "$W/nan_w.bin"

# --- state file fields: each checked against the file name, the model and its range.
# setstate h FIELD VALUE: a copy of the good checkpoint in $W/st with int64 header field FIELD set;
# setstate f I VALUE: with the I-th float32 from the end of the file set (v is last, m before it)
good_state="$W/run/state_00000001.bin"
setstate() {
    rm -rf "$W/st"; mkdir -p "$W/st"; cp "$model" "$W/st/model_00000001.bin"
    python3 - "$good_state" "$W/st/state_00000001.bin" "$@" <<'EOF'
import struct, sys
src, dst, kind, idx, val = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
d = bytearray(open(src, "rb").read())
if kind == "h":
    d[8 * idx:8 * idx + 8] = struct.pack("<q", int(val))
else:
    off = len(d) - 4 * (idx + 1)
    d[off:off + 4] = struct.pack("<f", float(val))
open(dst, "wb").write(d)
EOF
    # signed again, so that the field's own check is reached (not for the checksum's own slots)
    [ "$1 $2" = "h 13" ] || [ "$1 $2" = "h 14" ] || python3 dev/ckpt_checksum.py "$W/st/state_00000001.bin"
}
st=(-e $M -i "$W/good.bin" -j "" -b 2 -t 8 -x 5 -u 0 -s 0 -o "$W/st" -y 1)
setstate h 2 -1;                   expect "state step -1"      "header says step -1"  -- "${st[@]}"
setstate h 2 7;                    expect "state step != name" "file name says"       -- "${st[@]}"
setstate h 4 9223372036854775807;  expect "state epoch huge"   "out of range"         -- "${st[@]}"
setstate h 5 -1;                   expect "state shard < 0"    "out of range"         -- "${st[@]}"
setstate h 6 -5;                   expect "state sample < 0"   "out of range"         -- "${st[@]}"
setstate h 6 1000;                 expect "state sample > n"   "out of range"         -- "${st[@]}"
setstate h 3 12;                   expect "state param count"  "parameters"           -- "${st[@]}"
setstate h 11 99999999;            expect "state options len"  "options length"       -- "${st[@]}"
setstate h 12 12345;               expect "state data identity" "shards differ"       -- "${st[@]}"
setstate f 0 -1;                   expect "state v negative"   "negative"             -- "${st[@]}"
setstate f 0 nan;                  expect "state v NaN"        "not finite"           -- "${st[@]}"
nparam=$(python3 -c "import struct,sys;print(struct.unpack('<q',open(sys.argv[1],'rb').read()[24:32])[0])" "$good_state")
setstate f $((2 * nparam - 1)) inf; expect "state m inf"       "not finite"           -- "${st[@]}"
setstate h 1 1;                    expect "state version 1"    "version 1"            -- "${st[@]}"

# --- checkpoints prove their integrity: one flipped bit, in the weights or the moments, is an
# error naming the file (checked on -e of a model file and on every resume)
flip() { python3 -c "import sys;d=bytearray(open(sys.argv[1],'rb').read());d[int(sys.argv[2])]^=int(sys.argv[3]);open(sys.argv[1],'wb').write(d)" "$@"; }
cp "$model" "$W/flip.bin"; flip "$W/flip.bin" 3001 8
expect "model bit flipped, -e" "checksum mismatch" -- "${common[@]}" -e "$W/flip.bin"
setstate h 63 0; flip "$W/st/state_00000001.bin" $(( $(stat -c %s "$good_state") - 8 * nparam )) 1
expect "state bit flipped (m)" "checksum mismatch" -- "${st[@]}"
setstate h 63 0; flip "$W/st/model_00000001.bin" 1500 128
expect "resume, model bit flipped" "checksum mismatch" -- "${st[@]}"
setstate h 13 7;                   expect "state checksum kind" "unknown checksum kind" -- "${st[@]}"

# --- a save past the file-size limit (ulimit -f, 20 MB: the state file of this 3.4M-parameter
# model does not fit, its model file does): one error line, not a kill by SIGXFSZ, and no temp
# file left; a later resume in the directory removes the temp files of killed saves (and only those)
LIMIT_FILE_KB=20000 expect "save past ulimit -f" "File too large" -- "${common[@]}" -e L4H4C256V97 -o "$W/fsz"
rule "failed save leaves no temp" '[ -z "$(ls "$W/fsz" | grep tmp)" ]' "$(ls "$W/fsz" | tr '\n' ' ')"
cp -r "$W/run" "$W/dead"; touch "$W/dead/model_00000002.bin.tmp.4242" "$W/dead/state_00000002.bin.tmp.4242" "$W/dead/log.txt.tmp.77" "$W/dead/mine.tmp.1"
"$BIN" "${common[@]}" -o "$W/dead" -y 1 -x 2 > /dev/null 2>&1
rule "resume removes dead temps" '[ "$(ls "$W/dead" | grep tmp)" = "mine.tmp.1" ]' "$(ls "$W/dead" | tr '\n' ' ')"

# recorded values are normalised: -D -0 is -D 0, so a resume that says -D 0 continues the run
"$BIN" "${common[@]}" -D -0 -o "$W/negzero" > /dev/null 2>&1
"$BIN" "${common[@]}" -D 0 -x 2 -o "$W/negzero" -y 1 > /dev/null 2> "$W/negzero.err"
rule "-D -0 recorded as 0" '[ -f "$W/negzero/state_00000002.bin" ]' "$(head -c 120 "$W/negzero.err")"
# -o is a directory name, never a glob: "exp[12]" must neither see exp1's checkpoints (a fresh run
# there is not "an earlier run") nor remove exp1's temp files
cp -r "$W/run" "$W/exp1"; touch "$W/exp1/model_00000005.bin.tmp.4242"; mkdir -p "$W/exp[12]"
"$BIN" "${common[@]}" -o "$W/exp[12]" > /dev/null 2> "$W/glob.err"
rule "-o with glob characters" '[ -f "$W/exp[12]/state_00000001.bin" ] && [ -f "$W/exp1/model_00000005.bin.tmp.4242" ]' "$(head -c 120 "$W/glob.err")"

# --- a run owns its output directory
expect "fresh run, old ckpts" "earlier run"        -- "${common[@]}" -o "$W/run"
mkdir -p "$W/locked"; echo "pid 1 on test" > "$W/locked/.lock"
flock "$W/locked/.lock" sleep 30 & holder=$!
sleep 0.5
expect "second run, locked"   "another run is using" -- "${common[@]}" -o "$W/locked"
kill $holder 2>/dev/null; wait $holder 2>/dev/null

# --- resume cannot silently change the run
expect "resume, other -l"     "trained with -l 0.001" -- "${common[@]}" -o "$W/run" -y 1 -x 3 -l 2e-3
expect "resume, other -S"     "trained with -S 1337" -- "${common[@]}" -o "$W/run" -y 1 -x 3 -S 7
expect "resume, other -D"     "trained with -D 0"  -- "${common[@]}" -o "$W/run" -y 1 -x 3 -D 0.1
expect "resume, other -e"     "trained with -e"    -- "${common[@]}" -o "$W/run" -y 1 -x 3 -e L1H1C16T16V97
expect "resume, nothing to do" "run is complete"   -- -o "$W/run" -y 1 -s 0

# --- -k keeps the newest checkpoints only (not bad input: a rule to hold)
"$BIN" "${common[@]}" -x 6 -n 1 -k 2 -o "$W/keep" > /dev/null 2>&1
kept=$(cd "$W/keep" && ls model_* state_* 2>/dev/null | tr '\n' ' ')
if [ "$kept" = "model_00000005.bin model_00000006.bin state_00000005.bin state_00000006.bin " ]; then
    printf 'PASS %-28s %s\n' "-k 2 keeps the newest 2" "$kept"; passed=$((passed + 1))
else
    printf 'FAIL %-28s %s\n' "-k 2 keeps the newest 2" "$kept"; failed=$((failed + 1))
fi
expect "resume, -x <= step"   "already done"       -- "${common[@]}" -o "$W/keep" -y 1 -x 3

# --- rules to hold (not bad input)
# a resumed longer run keeps the final validation of the run it extends (-v 50: not on schedule)
"$BIN" "${common[@]}" -j "$W/good.bin" -x 3 -v 50 -m 2 -o "$W/ext" > /dev/null 2>&1
"$BIN" "${common[@]}" -j "$W/good.bin" -x 5 -v 50 -m 2 -o "$W/ext" -y 1 > /dev/null 2>&1
rule "resume keeps the last val" '[ "$(grep -c " vl:" "$W/ext/log.txt")" -eq 3 ]' "$(grep ' vl:' "$W/ext/log.txt" | cut -d' ' -f1 | tr '\n' ' ')"
# generation: the KV cache and a full forward per token draw the same text
if [ -f data/gpt2_tokenizer.bin ]; then
    gen=(-e L2H2C32T64V50257 -S 3 -K 0 -g 12 --prompt "The history of the")
    kv=$("$BIN" "${gen[@]}" 2> /dev/null); full=$("$BIN" "${gen[@]}" --kv-cache 0 2> /dev/null)
    rule "--prompt: KV == full" '[ -n "$kv" ] && [ "$kv" = "$full" ]' "$(printf '%s' "$kv" | head -c 60 | tr '\n' ' ')"
fi

# generation at the edges of the context: maxT 1 and 2; an empty prompt (<|endoftext|> alone), one
# token, exactly maxT tokens, longer; -g past the end. Each must exit 0, draw the same text with
# and without the KV cache, and stop at maxT + 1 tokens in all.
if [ -f data/gpt2_tokenizer.bin ]; then
    edges=""; bad=0
    for T in 1 2; do for p in "" "The" "The cat" "The cat sat on"; do
        e=(-e L1H1C8T${T}V50257 -S 5 -g 9 --prompt "$p")
        kv=$("$BIN" "${e[@]}" 2> "$W/gen_err"); rc1=$?
        made=$(grep -o 'generated [0-9]*' "$W/gen_err" | grep -o '[0-9]*$')
        full=$("$BIN" "${e[@]}" --kv-cache 0 2> /dev/null); rc2=$?
        ntok=$(grep -o 'after a [0-9]*' "$W/gen_err" | grep -o '[0-9]*$')
        if [ $rc1 -ne 0 ] || [ $rc2 -ne 0 ] || [ "$kv" != "$full" ] || [ -z "$ntok" ] || [ -z "$made" ] ||
           [ $((ntok + made)) -ne $((T + 1)) ]; then bad=1; fi
        edges="$edges T$T:${ntok:-?}+${made:-?}"
    done; done
    rule "--prompt at the context's edges" '[ $bad -eq 0 ]' "$edges"
fi
expect "--prompt, forward overflows" "not finite"  -- -e "$W/huge_w.bin" -Z data/gpt2_tokenizer.bin --prompt "a" -g 3

# the HellaSwag recipe offline, on a small jsonl in HellaSwag's own layout: data/prepare.sh hellaswag
# writes what llm.c's dev/data/hellaswag.py writes (the context's GPT-2 tokens, " " + each ending's,
# checked against tiktoken's ids for the first context and ./tokenizer encode for the rest), and
# --eval reads it
if [ -f data/gpt2_tokenizer.bin ] && [ -x ./tokenizer ]; then
    cat > "$W/hs.jsonl" <<'EOF'
{"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he", "ctx": "A man is sitting on a roof. he", "split": "val", "split_type": "indomain", "label": 3, "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof."], "source_id": "activitynet~v_-JhWjGDPHMY"}
{"ind": 92, "activity_label": "Clean and jerk", "ctx_a": "A lady walks to a barbell. She bends down and grabs the pole.", "ctx_b": "the lady", "ctx": "A lady walks to a barbell. She bends down and grabs the pole. the lady", "split": "val", "split_type": "zeroshot", "label": 3, "endings": ["swings and lands in her arms.", "pulls the barbell forward.", "pulls a rope attached to the barbell.", "stands and lifts the weight over her head."], "source_id": "activitynet~v_2jGHp7ReEeE"}
EOF
    sh data/prepare.sh hellaswag "$W/hs.jsonl" "$W/hs/hellaswag_val.bin" > "$W/hs.log" 2>&1
    rc=$?
    same=$(python3 - "$W/hs.jsonl" "$W/hs/hellaswag_val.bin" <<'EOF'
import json, subprocess, sys
sys.path.insert(0, "dev")
import evalfile
enc = lambda s: [int(x) for x in subprocess.run(["./tokenizer", "encode"], input=s.encode(),
                                                capture_output=True).stdout.split()]
recs = [json.loads(line) for line in open(sys.argv[1])]
want = [{"ctx": enc(r["ctx"]), "endings": [enc(" " + e) for e in r["endings"]], "label": r["label"]}
        for r in recs]
tiktoken = [32, 582, 318, 5586, 319, 257, 9753, 13, 339]   # "A man is sitting on a roof. he"
print("yes" if open(sys.argv[2], "rb").read() == evalfile.encode(want) and want[0]["ctx"] == tiktoken else "no")
EOF
)
    line=$("$BIN" -e L1H1C8V50257 --eval "$W/hs/hellaswag_val.bin" 2> /dev/null | tail -1)
    rule "prepare.sh hellaswag, --eval" '[ $rc -eq 0 ] && [ "$same" = yes ] && [[ $line == "eval: 2 examples | acc "* ]]' \
        "recipe exit $rc, llm.c's bytes: $same; $line"
fi

# --- multiple-choice eval files (--eval, --val-eval; gptc/eval.h): every field, truncation, tokens
# >= V, lengths that run past their example, a header that lies. evfile NAME CODE writes $W/NAME.ev:
# three valid examples (ex) encoded by dev/evalfile.py into b (enc(ex, N, longest)), then CODE, which
# may change ex and encode again, or change b: put(i, f, v) sets uint16 field f of example i
evfile() {
    python3 - "$W/$1.ev" "$2" <<'EOF'
import struct, sys
sys.path.insert(0, "dev")
import evalfile
enc = lambda *a: bytearray(evalfile.encode(*a))
ex = [{"ctx": [1, 2, 3], "endings": [[4], [5, 6], [7, 8, 96]], "label": 1},      # 36 bytes
      {"ctx": [0] * 5, "endings": [[11, 12], [13]], "label": 0},                # 32 bytes
      {"ctx": [20, 21], "endings": [[22], [23], [24], [25, 26]], "label": 3}]   # 34 bytes
b = enc(ex)
def put(i, f, v):
    p = 1024
    for _ in range(i):
        p += struct.unpack_from("<H", b, p + 2)[0]
    struct.pack_into("<H", b, p + 2 * f, v)
exec(sys.argv[2])
open(sys.argv[1], "wb").write(b)
EOF
}
ev=(-e $M -b 2)
evfile good ""
expect "eval missing"         "eval file not found" -- "${ev[@]}" --eval "$W/none.ev"
evfile cut "b = b[:500]";                               expect "eval header cut"      "truncated eval file"      -- "${ev[@]}" --eval "$W/cut.ev"
evfile magic "struct.pack_into('<i', b, 0, 20240520)";  expect "eval bad magic"       "bad magic 20240520"       -- "${ev[@]}" --eval "$W/magic.ev"
evfile ver "struct.pack_into('<i', b, 4, 2)";           expect "eval version"         "version 2"                -- "${ev[@]}" --eval "$W/ver.ev"
evfile n0 "struct.pack_into('<i', b, 8, 0)";            expect "eval N=0"             "N=0 examples"             -- "${ev[@]}" --eval "$W/n0.ev"
evfile nbig "struct.pack_into('<i', b, 8, 70000)";      expect "eval N > 65536"       "N=70000 examples"         -- "${ev[@]}" --eval "$W/nbig.ev"
evfile nlong "b = enc(ex, 4)";                          expect "eval N too large"     "the file ends after 3"    -- "${ev[@]}" --eval "$W/nlong.ev"
evfile nsize "b = enc(ex, 2)";                          expect "eval N too small"     "header's N=2 examples"    -- "${ev[@]}" --eval "$W/nsize.ev"
evfile nshort "ex = [ex[0]] + [{'ctx': [1], 'endings': [[2], [3]], 'label': 0}] * 3; b = enc(ex, 3)"; expect "eval N too small, trailing" "22 bytes after the header's N=3" -- "${ev[@]}" --eval "$W/nshort.ev"
evfile lodd "struct.pack_into('<i', b, 12, 37)";        expect "eval longest odd"     "longest example 37"       -- "${ev[@]}" --eval "$W/lodd.ev"
evfile lhigh "b = enc(ex, None, 40)";                   expect "eval longest too big" "the longest is 36"        -- "${ev[@]}" --eval "$W/lhigh.ev"
evfile llow "b = enc(ex, None, 34)";                    expect "eval longest too small" "longest example (34)"   -- "${ev[@]}" --eval "$W/llow.ev"
evfile odd "b += bytes(1)";                             expect "eval odd size"        "odd"                      -- "${ev[@]}" --eval "$W/odd.ev"
evfile trunc "b = b[:-4]";                              expect "eval truncated"       "past the end of the file" -- "${ev[@]}" --eval "$W/trunc.ev"
evfile trail "b += bytes(2)";                           expect "eval trailing data"   "2 bytes after"            -- "${ev[@]}" --eval "$W/trail.ev"
evfile start "put(1, 0, 7)";                            expect "eval start field"     "example 1: start field 7" -- "${ev[@]}" --eval "$W/start.ev"
evfile bodd "put(0, 1, 35)";                            expect "eval bytes odd"       "example 0: bytes field 35" -- "${ev[@]}" --eval "$W/bodd.ev"
evfile bpast "put(2, 1, 36)";                           expect "eval bytes past end"  "example 2: bytes field 36 runs past" -- "${ev[@]}" --eval "$W/bpast.ev"
evfile bbig "b = enc(ex, None, 38); b[1060:1060] = bytes(2); put(0, 1, 38)"; expect "eval bytes too big" "example 0: bytes field 38 disagrees" -- "${ev[@]}" --eval "$W/bbig.ev"
evfile bsmall "put(0, 1, 34)";                          expect "eval bytes too small" "example 0: completion 2's length 3 runs past" -- "${ev[@]}" --eval "$W/bsmall.ev"
evfile index "put(1, 2, 5)";                            expect "eval index"           "example 1: index field 5" -- "${ev[@]}" --eval "$W/index.ev"
evfile k1 "ex[1]['endings'] = [[11, 12]]; b = enc(ex)"; expect "eval K=1"             "example 1: K=1 completions" -- "${ev[@]}" --eval "$W/k1.ev"
evfile k0 "put(1, 4, 0)";                               expect "eval K=0"             "example 1: K=0 completions" -- "${ev[@]}" --eval "$W/k0.ev"
evfile kmore "put(0, 4, 4)";                            expect "eval K too many"      "example 0: completion 3 of K=4 starts past" -- "${ev[@]}" --eval "$W/kmore.ev"
evfile label "ex[2]['label'] = 4; b = enc(ex)";         expect "eval label >= K"      "example 2: label 4, not below K=4" -- "${ev[@]}" --eval "$W/label.ev"
evfile ctx0 "ex[0]['ctx'] = []; b = enc(ex)";           expect "eval empty context"   "example 0: context length 0" -- "${ev[@]}" --eval "$W/ctx0.ev"
evfile ctxpast "put(1, 5, 40)";                         expect "eval context past"    "example 1: context length 40 runs past" -- "${ev[@]}" --eval "$W/ctxpast.ev"
evfile empty "ex[0]['endings'][1] = []; b = enc(ex)";   expect "eval empty completion" "example 0: completion 1 has length 0" -- "${ev[@]}" --eval "$W/empty.ev"
evfile cpast "put(0, 14, 9)";                           expect "eval completion past" "example 0: completion 2's length 9 runs past" -- "${ev[@]}" --eval "$W/cpast.ev"
evfile ctok "ex[1]['ctx'][2] = 97; b = enc(ex)";        expect "eval context token >= V" "example 1: context token 2 is 97" -- "${ev[@]}" --eval "$W/ctok.ev"
evfile etok "ex[2]['endings'][3][1] = 65535; b = enc(ex)"; expect "eval completion token >= V" "example 2: completion 3's token 1 is 65535" -- "${ev[@]}" --eval "$W/etok.ev"
evfile long "ex[0]['endings'][0] = [1] * 17; b = enc(ex)"; expect "eval completion > maxT" "example 0: completion 0 is 17 tokens" -- "${ev[@]}" --eval "$W/long.ev"
expect "eval directory"       "is a directory"     -- "${ev[@]}" --eval "$W"
expect "eval FIFO"            "FIFO"               -- "${ev[@]}" --eval "$W/fifo"
expect "--eval and --prompt"  "one at a time"      -- "${ev[@]}" --eval "$W/good.ev" --prompt "a"
expect "--val-eval, no validation" "this run has none" -- "${common[@]}" --val-eval "$W/good.ev"
expect "--val-eval, bad file" "example 1: index field 5" -- "${common[@]}" -j "$W/good.bin" --val-eval "$W/index.ev"
# rules: the scores do not depend on -b; --val-eval logs llm.c's line at every validation, and its
# value is the standalone --eval of the checkpoint; a resumed run keeps the eval of its checkpoint's
# step when it does not redo it (as it keeps the validation loss)
lines=$(for b in 1 2 5; do "$BIN" -e $M -b $b --eval "$W/good.ev" 2> /dev/null | tail -1; done | sort -u)
re='^eval: 3 examples \| acc [01]\.[0-9]{4} \| acc_norm [01]\.[0-9]{4}$'
rule "--eval: any -b, one line" '[ "$(printf "%s\n" "$lines" | wc -l)" -eq 1 ] && [[ $lines =~ $re ]]' "$lines"
"$BIN" "${common[@]}" -j "$W/good.bin" -x 3 -v 2 -m 1 --val-eval "$W/good.ev" -o "$W/evrun" > /dev/null 2>&1
"$BIN" "${common[@]}" -j "$W/good.bin" -x 5 -v 2 -m 1 --val-eval "$W/good.ev" -o "$W/evrun" -y 1 > /dev/null 2>&1
logged=$(grep " eval:" "$W/evrun/log.txt" | cut -d' ' -f1 | tr '\n' ' ')
rule "--val-eval: log, resumed" '[ "$logged" = "s:0 s:2 s:3 s:4 s:5 " ]' "$logged"
standalone=$("$BIN" -e "$W/evrun/model_00000005.bin" -b 2 --eval "$W/good.ev" 2> /dev/null | tail -1)
rule "--val-eval = --eval" '[ -n "$standalone" ] && [ "${standalone##* }" = "$(grep "^s:5 eval:" "$W/evrun/log.txt" | cut -d: -f3)" ]' "$standalone"

echo
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
