#!/bin/bash
# dev/test_safetensors.sh -- Hugging Face GPT-2 checkpoints in and out of train_gpt.c
# (data/safetensors.h), end to end against PyTorch, and the loader against malformed files.
#
#   1. dev/hf_gpt2.py --write: small GPT-2s in openai-community/gpt2's layout, in variants, with
#      PyTorch's logits                                         (into a temporary directory)
#   2. build/test_safetensors DIR: load, forward, compare; export F32/BF16, read back
#   3. dev/hf_gpt2.py --read-exports: PyTorch reads every export and writes its logits
#   4. build/test_safetensors --compare DIR: those logits against ours
#   5. --corrupt: two checks perturbed for real must make their runs fail
#   6. dev/hf_gpt2.py --malformed: ~50 broken checkpoints; each, through `--load` (the loading
#      path of -e), in the normal and the sanitizer build, must end with exit status 1 and exactly
#      one stderr line "error: ..." naming the file (and the tensor, where there is one). The
#      normal build runs under ulimit -v LIMIT_KB (1 GiB): a header that costs the JSON parser
#      gigabytes, or a config.json of a model larger than its file, must be refused before that
#   7. the sanitizer build runs 2 and 4 again (leak checking on), counted as one check each
#   8. --export through the trainer (train_gpt.c's main, inside each build; TRAINER=./train_gpt
#      runs that binary instead): both files or neither, an existing export replaced only with
#      --export-overwrite 1, a refused or failed export leaves the directory as it was and no
#      temp file
#
# It builds what it runs, unless given (TEST_BIN=..., ASAN_BIN=...), with exactly:
#   gcc -O2 -march=native -fopenmp -Wall -Wextra -DUSE_JANSSON -o build/test_safetensors dev/test_safetensors.c -lm -ljansson
#   gcc -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
#       -fopenmp -Wall -Wextra -DUSE_JANSSON -o build/test_safetensors_asan dev/test_safetensors.c -lm -ljansson
# Needs: gcc, libjansson-dev, /usr/bin/python3 with numpy and torch (dev/deps.sh).
# Last line: "N passed, N failed"; the exit status is non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
passed=0
failed=0
ok() { echo "$1  OK"; passed=$((passed + 1)); }
bad() { echo "$1  FAILED"; failed=$((failed + 1)); }
# adds a C run's closing "N passed, N failed" to ours (a run that died without one is a failure)
count_run() {
    local name=$1 log=$2 rc=$3
    local last
    last=$(tail -n 1 "$log")
    if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        passed=$((passed + BASH_REMATCH[1])); failed=$((failed + BASH_REMATCH[2]))
        [ "$rc" -eq 0 ] || [ "${BASH_REMATCH[2]}" -gt 0 ] || bad "$name (exit $rc)"
    else
        bad "$name (exit $rc, no closing line)"
    fi
}

mkdir -p build
TEST_BIN=${TEST_BIN:-}
ASAN_BIN=${ASAN_BIN:-}
if [ -z "$TEST_BIN" ]; then
    TEST_BIN=build/test_safetensors
    gcc -O2 -march=native -fopenmp -Wall -Wextra -DUSE_JANSSON -o "$TEST_BIN" dev/test_safetensors.c -lm -ljansson || exit 1
fi
if [ -z "$ASAN_BIN" ]; then
    ASAN_BIN=build/test_safetensors_asan
    gcc -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
        -fopenmp -Wall -Wextra -DUSE_JANSSON -o "$ASAN_BIN" dev/test_safetensors.c -lm -ljansson || exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/test_safetensors.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
DIR=$TMP/ckpt
LOG=$TMP/log

echo "== 1. PyTorch writes the checkpoints"
if $PY dev/hf_gpt2.py --write "$DIR"; then ok "hf_gpt2.py --write"; else bad "hf_gpt2.py --write"; fi

echo; echo "== 2. the C loader and exporter"
"$TEST_BIN" "$DIR" | tee "$LOG"
count_run "test_safetensors" "$LOG" "${PIPESTATUS[0]}"

echo; echo "== 3. PyTorch reads the C exports"
if $PY dev/hf_gpt2.py --read-exports "$DIR"; then ok "hf_gpt2.py --read-exports"; else bad "hf_gpt2.py --read-exports"; fi

echo; echo "== 4. their logits"
"$TEST_BIN" --compare "$DIR" | tee "$LOG"
count_run "test_safetensors --compare" "$LOG" "${PIPESTATUS[0]}"

echo; echo "== 5. a perturbed reference must fail its check"
for args in "--corrupt odd_f32_bf16/round to nearest even|" "--corrupt odd_f32/logits|" \
            "--corrupt bf16 rounding|" "--corrupt odd_f32_f32/torch = original|--compare"; do
    name=${args%%|*}; name=${name#--corrupt }
    mode=${args##*|}
    "$TEST_BIN" --corrupt "$name" $mode "$DIR" > "$LOG" 2>&1
    rc=$?
    if [ $rc -eq 1 ] && grep -q "^$name .*FAILED" "$LOG" && [ "$(grep -c FAILED "$LOG")" -eq 1 ]; then
        ok "--corrupt '$name' fails that check alone"
    else
        bad "--corrupt '$name' (exit $rc, $(grep -c FAILED "$LOG") FAILED lines)"
    fi
done

echo; echo "== 6. malformed checkpoints: one line 'error: FILE: ...', exit status 1, no crash"
LIMIT_KB=${LIMIT_KB:-1048576}
BAD=$TMP/bad
$PY dev/hf_gpt2.py --malformed "$BAD" || bad "hf_gpt2.py --malformed"
while IFS=$'\t' read -r case expect; do
    for bin in "$TEST_BIN" "$ASAN_BIN"; do
        # the sanitizer build: a die() exits without freeing, by design, so no leak report there;
        # it reserves terabytes of address space, so only the normal build runs under the limit
        limit=$LIMIT_KB
        [ "$bin" = "$ASAN_BIN" ] && limit=unlimited
        (ulimit -v "$limit"; ASAN_OPTIONS=detect_leaks=0 exec "$bin" --load "$BAD/$case") > "$TMP/out" 2> "$TMP/err"
        rc=$?
        lines=$(wc -l < "$TMP/err")
        first=$(head -n 1 "$TMP/err")
        what="$case ($(basename "$bin"))"
        if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && [[ $first == "error: $BAD/$case"* ]] &&
           grep -qF -- "$expect" "$TMP/err"; then
            ok "$(printf '%-40s %s' "$what" "${first#error: $BAD/}")"
        else
            bad "$what: exit $rc, $lines stderr lines, expected 'error: $BAD/$case...' with '$expect', got: $(head -c 300 "$TMP/err")"
        fi
    done
done < "$BAD/cases.txt"

echo; echo "== 7. the sanitizer build on the good checkpoints (leak checking on)"
for mode in "" "--compare"; do
    "$ASAN_BIN" $mode "$DIR" > "$LOG" 2>&1
    rc=$?
    summary=$(tail -n 1 "$LOG")
    if [ $rc -eq 0 ] && [[ $summary =~ ^[0-9]+\ passed,\ 0\ failed$ ]]; then
        ok "$(basename "$ASAN_BIN") $mode: $summary"
    else
        bad "$(basename "$ASAN_BIN") $mode (exit $rc): $(grep -v ' OK$' "$LOG" | head -c 600)"
    fi
done

echo; echo "== 8. --export: both files or neither; an export is replaced only when asked"
# a copy of tiny_f32 whose h.0.mlp.c_fc.weight [1, 2] is 3.4e38: a finite float, inf in BF16
SRC=$DIR/tiny_f32
HUGE=$TMP/huge_weight
$PY -c '
import json, os, shutil, struct, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst)
shutil.copy(os.path.join(src, "config.json"), dst)
raw = bytearray(open(os.path.join(src, "model.safetensors"), "rb").read())
n = struct.unpack("<Q", raw[:8])[0]
e = json.loads(raw[8:8 + n])["h.0.mlp.c_fc.weight"]
at = 8 + n + e["data_offsets"][0] + 4 * (1 * e["shape"][1] + 2)
raw[at:at + 4] = struct.pack("<f", 3.4e38)
open(os.path.join(dst, "model.safetensors"), "wb").write(raw)
' "$SRC" "$HUGE" || bad "a model with a weight of 3.4e38 ($HUGE)"
trainers=("$TEST_BIN" "$ASAN_BIN")
[ -n "${TRAINER:-}" ] && trainers=("$TRAINER")
for bin in "${trainers[@]}"; do
    tag=$(basename "$bin")
    E=$TMP/exports_$tag
    mkdir -p "$E"
    # the trainer's main: train_gpt.c's train_main inside a test build, or the binary TRAINER
    trainer() {
        if [ -n "${TRAINER:-}" ]; then "$bin" "$@"; else ASAN_OPTIONS=detect_leaks=0 "$bin" --trainer "$@"; fi
    }
    # no temp file (NAME.tmp.PID, DIR.tmp.PID, model.safetensors.old.PID) anywhere under $E
    no_temps() { ! find "$E" | grep -qE '\.(tmp|old)\.[0-9]+'; }
    # refused NAME WORDS -- ARGS: exit status 1 and one line "error: ..." containing WORDS
    refused() {
        local name=$1 words=$2; shift 3
        trainer "$@" > "$TMP/out" 2> "$TMP/err"
        local rc=$? lines; lines=$(wc -l < "$TMP/err")
        if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -q '^error: ' "$TMP/err" && grep -qF -- "$words" "$TMP/err"; then
            ok "$(printf '%-40s %s' "$name ($tag)" "$(cut -c1-120 "$TMP/err")")"
        else
            bad "$name ($tag): exit $rc, $lines stderr lines, expected 'error: ...$words...', got: $(head -c 300 "$TMP/err")"
        fi
    }
    # wrote NAME DIR -- ARGS: exit status 0, nothing on stderr, and DIR holds a checkpoint that loads
    wrote() {
        local name=$1 dir=$2; shift 3
        trainer "$@" > "$TMP/out" 2> "$TMP/err"
        local rc=$?
        if [ $rc -eq 0 ] && [ ! -s "$TMP/err" ] && "$TEST_BIN" --load "$dir" > /dev/null 2>> "$TMP/err"; then
            ok "$(printf '%-40s %s' "$name ($tag)" "exit 0, loads; $(basename "$dir")/: $(ls -A "$dir" | tr '\n' ' ')")"
        else
            bad "$name ($tag): exit $rc: $(head -c 300 "$TMP/err")"
        fi
    }
    # same NAME DIR COPY: DIR is as COPY (names, kinds, bytes), and no temp file is left
    same() {
        if diff -r "$2" "$3" > /dev/null && [ "$(ls -A "$2")" = "$(ls -A "$3")" ] && no_temps; then
            ok "$1 ($tag): $(basename "$2")/ byte-identical, no temp file"
        else
            bad "$1 ($tag): $(basename "$2")/ changed or a temp file left: $(diff -r "$2" "$3" 2>&1 | head -c 200) $(find "$E" | grep -E '\.(tmp|old)\.[0-9]+' | head -3 | tr '\n' ' ')"
        fi
    }

    wrote "a new directory" "$E/a" -- -e "$SRC" --export "$E/a"
    if [ "$(ls -A "$E/a" | tr '\n' ' ')" = "config.json model.safetensors " ] && no_temps; then
        ok "a new directory ($tag): exactly the two files, no temp file"
    else
        bad "a new directory ($tag): $(ls -A "$E/a" | tr '\n' ' '), temps: $(find "$E" | grep -E '\.(tmp|old)\.' | head -3)"
    fi
    cp -a "$E/a" "$E/a.copy"
    refused "over an export" "already holds an export" -- -e "$SRC" --export "$E/a" --export-dtype bf16
    same "over an export" "$E/a" "$E/a.copy"
    wrote "--export-overwrite 1" "$E/a" -- -e "$SRC" --export "$E/a" --export-dtype bf16 --export-overwrite 1
    if ! cmp -s "$E/a/model.safetensors" "$E/a.copy/model.safetensors" && grep -q bfloat16 "$E/a/config.json" &&
       no_temps; then
        ok "--export-overwrite 1 ($tag): both files replaced (BF16 now), no temp file"
    else
        bad "--export-overwrite 1 ($tag): the two files were not both replaced, or a temp file is left"
    fi
    # a directory where config.json goes: refused before anything is renamed (it was found only
    # after model.safetensors had replaced the old one)
    cp -a "$E/a.copy" "$E/b"
    rm "$E/b/config.json"
    mkdir "$E/b/config.json"
    echo keep > "$E/b/config.json/x"
    cp -a "$E/b" "$E/b.copy"
    refused "config.json is a directory" "config.json is a directory" -- -e "$SRC" --export "$E/b" --export-overwrite 1
    same "config.json is a directory" "$E/b" "$E/b.copy"
    # a write that fails half way (ulimit -f 16 KB, the model is 36 KB: EFBIG): the old export stays.
    # (PMIX_MCA_gds=hash: an MPI build's start-up would otherwise need shared-memory files past it)
    cp -a "$E/a.copy" "$E/c"
    cp -a "$E/c" "$E/c.copy"
    (ulimit -f 16; PMIX_MCA_gds=hash trainer -e "$SRC" --export "$E/c" --export-overwrite 1) > "$TMP/out" 2> "$TMP/err"
    rc=$?
    if [ $rc -eq 1 ] && [ "$(wc -l < "$TMP/err")" -eq 1 ] && grep -q "^error: .*File too large" "$TMP/err"; then
        ok "$(printf '%-40s %s' "a write error ($tag)" "$(cut -c1-120 "$TMP/err")")"
    else
        bad "a write error ($tag): exit $rc: $(head -c 300 "$TMP/err")"
    fi
    same "a write error" "$E/c" "$E/c.copy"
    # the second rename fails (a rename() that refuses config.json, preloaded; not under ASan, whose
    # runtime must come first): the first is undone, the old export stays whole
    if [ "$bin" != "$ASAN_BIN" ]; then
        printf '%s\n' '#define _GNU_SOURCE' '#include <dlfcn.h>' '#include <errno.h>' '#include <string.h>' \
            'int rename(const char* a, const char* b) {' \
            '    size_t n = strlen(b);' \
            '    if (n >= 11 && strcmp(b + n - 11, "config.json") == 0) { errno = EIO; return -1; }' \
            '    return ((int (*)(const char*, const char*))dlsym(RTLD_NEXT, "rename"))(a, b);' '}' > "$TMP/failrename.c"
        gcc -shared -fPIC -o "$TMP/failrename.so" "$TMP/failrename.c" -ldl || bad "build failrename.so"
        cp -a "$E/a.copy" "$E/d"
        cp -a "$E/d" "$E/d.copy"
        LD_PRELOAD=$TMP/failrename.so refused "the second rename fails" "the old model.safetensors put back" -- \
            -e "$SRC" --export "$E/d" --export-dtype bf16 --export-overwrite 1
        same "the second rename fails" "$E/d" "$E/d.copy"
        mkdir "$E/e"
        echo keep > "$E/e/README"
        LD_PRELOAD=$TMP/failrename.so refused "the second rename fails, no old model" "the new model.safetensors removed" -- \
            -e "$SRC" --export "$E/e"
        [ "$(ls -A "$E/e")" = README ] && no_temps && ok "the second rename fails, no old model ($tag): e/ as it was" ||
            bad "the second rename fails, no old model ($tag): e/ holds $(ls -A "$E/e" | tr '\n' ' ')"
    fi
    refused "its parent does not exist" "its parent directory $E/none does not exist" -- -e "$SRC" --export "$E/none/d"
    [ ! -e "$E/none" ] || bad "its parent does not exist ($tag): $E/none was created"
    refused "BF16 overflow" "tensor 'h.0.mlp.c_fc.weight' element [1, 2] is 3.4e+38" -- \
        -e "$HUGE" --export "$E/huge" --export-dtype bf16
    if [ ! -e "$E/huge" ] && no_temps; then ok "BF16 overflow ($tag): nothing written"
    else bad "BF16 overflow ($tag): $E/huge exists or a temp file is left"; fi
    wrote "the same weights in F32" "$E/huge32" -- -e "$HUGE" --export "$E/huge32"
    refused "an empty --export" 'error: --export "": ' -- -e "$SRC" --export ""
    refused "--export names a file" "exists and is not a directory" -- -e "$SRC" --export "$E/a/config.json"
    mkdir "$E/empty"
    wrote "an empty directory" "$E/empty" -- -e "$SRC" --export "$E/empty"
    mkdir "$E/other"
    echo keep > "$E/other/README"
    wrote "a directory with other files" "$E/other" -- -e "$SRC" --export "$E/other/"
    if [ "$(cat "$E/other/README" 2>/dev/null)" = keep ] && no_temps; then
        ok "a directory with other files ($tag): README kept, no temp file"
    else
        bad "a directory with other files ($tag): README lost, or a temp file left"
    fi
done

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
