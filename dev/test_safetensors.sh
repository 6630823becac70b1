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

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
