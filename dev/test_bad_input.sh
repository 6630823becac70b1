#!/bin/bash
# dev/test_bad_input.sh -- bad input must give one clear line on stderr and exit 1, never a crash.
# Each case runs ./train_gpt on a broken file or flag and checks: exit status 1 (a crash would be
# >= 128), exactly one line on stderr, starting with "error:" and containing the expected words.
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
    "$BIN" "$@" > "$W/out" 2> "$W/err" < /dev/null
    local rc=$? lines; lines=$(wc -l < "$W/err")
    if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -q "^error: .*$words" "$W/err"; then
        printf 'PASS %-28s %s\n' "$name" "$(cat "$W/err")"; passed=$((passed + 1))
    else
        printf 'FAIL %-28s exit %d, %d stderr line(s): %s\n' "$name" $rc "$lines" "$(head -c 300 "$W/err")"
        failed=$((failed + 1))
    fi
}

M=L1H1C8T16V97   # a tiny model: V = 97, maxT = 16
shard "$W/good.bin" 20240520 1 400 400 96
common=(-e $M -i "$W/good.bin" -j "" -b 2 -t 8 -x 1 -s 0 -o "")
# a valid model file to break
"$BIN" -e $M -i "$W/good.bin" -j "" -b 2 -t 8 -x 1 -s 0 -o "$W/run" > /dev/null 2>&1 || { echo "error: could not make a checkpoint"; exit 1; }
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
shard "$W/ver_shard.bin" 20240520 2 400 400 96
expect "shard wrong version"  "version 2"          -- "${common[@]}" -i "$W/ver_shard.bin"
shard "$W/big_tok.bin" 20240520 1 400 400 120
expect "token id >= V"        ">= the model's vocab" -- "${common[@]}" -i "$W/big_tok.bin"
shard "$W/tiny_shard.bin" 20240520 1 10 10 96
expect "shard smaller than batch" "fewer than one batch" -- "${common[@]}" -i "$W/tiny_shard.bin"
head -c 100 "$W/good.bin" > "$W/header_cut.bin"
expect "shard header cut"     "truncated"          -- "${common[@]}" -i "$W/header_cut.bin"

# flags
expect "T > maxT"             "exceeds"            -- "${common[@]}" -t 32
expect "B = 0"                "-b 0"               -- "${common[@]}" -b 0
expect "B negative"           "-b -3"              -- "${common[@]}" -b -3
expect "lr not a number"      "not a number"       -- "${common[@]}" -l abc
expect "steps not an integer" "not an integer"     -- "${common[@]}" -x 1.5
expect "lr infinite"          "not a number"       -- "${common[@]}" -l inf
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
expect "resume with other B"  "same -b"            -- "${common[@]}" -o "$W/res" -y 1 -x 3 -b 1

echo
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
