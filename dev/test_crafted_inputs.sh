#!/bin/bash
# dev/test_crafted_inputs.sh -- the crafted-input sweep: every input format and flag, at its
# boundary values, truncated at every section boundary, with size products that overflow, run
# through the trainer and ./tokenizer built with AddressSanitizer + UndefinedBehaviorSanitizer.
#
# dev/gen_bad_inputs.py writes the cases (its tables at the top describe the formats); this script
# makes the valid base files with the binaries themselves (a 1-step run writes the checkpoint pair,
# ./tokenizer build writes the tokenizer file), has the generator mutate them, runs every case under
# `timeout` and checks:
#   - no sanitizer report, no signal, no timeout, no exit status other than 0 or 1;
#   - exit 1 comes with exactly one line on stderr, starting "error: ";
#   - an invalid input ("fail" cases) exits 1: exit 0 means the bad input was accepted;
#   - a few-KB input never makes the program allocate GBs (ASan's allocation report, or the program's
#     own "out of memory"): a header must be checked against the file's size before allocating.
# Closing line: "N passed, N failed"; exit status non-zero on any failure.
#
# Environment:
#   BIN=path TOKBIN=path  the binaries (default: build/train_gpt_asan, build/tokenizer_asan, built
#                         here when missing or older than their sources); any build works, the
#                         sanitizer checks just find nothing in a build without sanitizers
#   ONLY=regex            run the cases whose name matches (grep -E)
#   KEEP=1                keep the work folder (crafted files + case files) and print its path
#   VERBOSE=1             print passing cases too;  JOBS=N: cases run at once (default: nproc)
#   LEAKS=1               LeakSanitizer too (off by default: exit(1) on bad input leaves memory
#                         allocated by design, and leak checking doubles the time of each case)
#   TIMEOUT=20            seconds per case;  MEM_MB=2048: the allocation limit per case
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-build/train_gpt_asan}
TOKBIN=${TOKBIN:-build/tokenizer_asan}
TIMEOUT=${TIMEOUT:-20}
MEM_MB=${MEM_MB:-2048}
SAN_FLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"

# Jansson, when there is one: ./tokenizer sft reads JSONL with it (without it, sft is one error)
JSON=()
printf '#include <jansson.h>\nint main(void) { json_decref(json_object()); return 0; }\n' |
    ${CC:-gcc} -x c - -o /dev/null -ljansson 2> /dev/null && JSON=(-DUSE_JANSSON -ljansson)
# builds an ASan+UBSan binary when it is one of the defaults and is missing or out of date
build_asan() {  # build_asan OUT SOURCE DEPS...
    local out=$1 src=$2 dep; shift 2
    local stale=0
    [ -x "$out" ] || stale=1
    for dep in "$src" "$@"; do [ "$dep" -nt "$out" ] && stale=1; done
    [ $stale -eq 0 ] && return 0
    mkdir -p "$(dirname "$out")"
    echo "building $out (ASan + UBSan)"
    ${CC:-gcc} $SAN_FLAGS -fopenmp -Wall -Wextra -o "$out" "$src" -lm "${JSON[@]}" || { echo "error: could not build $out"; exit 1; }
}
[ "$BIN" = build/train_gpt_asan ] && build_asan "$BIN" train_gpt.c data/tokenizer.h data/unicode_tables.h
[ "$TOKBIN" = build/tokenizer_asan ] && build_asan "$TOKBIN" data/tokenizer.c data/dataset.h data/tokenizer.h data/unicode_tables.h
for b in "$BIN" "$TOKBIN"; do [ -x "$b" ] || { echo "error: $b not built"; exit 1; }; done
BIN=$(realpath "$BIN"); TOKBIN=$(realpath "$TOKBIN")

W=$(mktemp -d /tmp/crafted_XXXXXX)
if [ "${KEEP:-0}" = 1 ]; then echo "work folder: $W (kept)"; else trap 'rm -rf "$W"' EXIT; fi

# sanitizer settings: distinct exit codes, huge allocations reported (not silently NULL) unless a
# case asks for a big run on purpose, a hard RSS cap; OMP_NUM_THREADS=1: many short processes
export OMP_NUM_THREADS=1
ASAN_BASE="exitcode=86:abort_on_error=0:detect_leaks=${LEAKS:-0}:max_allocation_size_mb=$MEM_MB:hard_rss_limit_mb=$((MEM_MB + 1024)):malloc_fill_byte=190"
export UBSAN_OPTIONS="exitcode=87:print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="exitcode=88"
# a binary without ASan gets an address-space limit instead (ASan reserves terabytes of shadow)
asan_in() { ldd "$1" 2>/dev/null | grep -q libasan || grep -q __asan_init "$1" 2>/dev/null; }
LIMIT_KB=$((MEM_MB * 2 * 1024)); LIMIT_TRAIN=""; LIMIT_TOK=""
asan_in "$BIN" || LIMIT_TRAIN=$LIMIT_KB
asan_in "$TOKBIN" || LIMIT_TOK=$LIMIT_KB
if [ -n "$LIMIT_TRAIN" ] && [ -n "$LIMIT_TOK" ]; then ulimit -v "$LIMIT_KB"; LIMIT_TRAIN=""; LIMIT_TOK=""; fi

# Process creation is slow on small VMs: run_case forks only for the command itself (and grep on
# a failure); everything else is bash builtins.
# run_case CASEFILE MODE: runs one case, prints "PASS name ..." or "FAIL name [kind] detail" and a
# "repro:" line. MODE "base": the command must succeed (it makes a base file).
run_case() {
    local F=()
    mapfile -d '' -t F < "$1"
    local name=${F[0]} expect=${F[1]} alloc=${F[2]} in=${F[3]} prog=${F[4]}
    local args=("${F[@]:5}") bin=$BIN show=./train_gpt limit=$LIMIT_TRAIN
    [ "$prog" = TOK ] && { bin=$TOKBIN; show=./tokenizer; limit=$LIMIT_TOK; }
    local may_null=0; [ "$alloc" = any ] && may_null=1
    if [ -z "$limit" ]; then
        ASAN_OPTIONS="$ASAN_BASE:allocator_may_return_null=$may_null" \
            timeout -k 2 "$TIMEOUT" "$bin" "${args[@]}" < "$in" > "$1.out" 2> "$1.err"
    else  # one binary without ASan, the other with: the limit for this one only
        (ulimit -v "$limit"; exec timeout -k 2 "$TIMEOUT" "$bin" "${args[@]}" < "$in" > "$1.out" 2> "$1.err")
    fi
    local rc=$? kind="" detail="" err="" line first lines
    IFS= read -r -d '' err < "$1.err"
    if [ "$alloc" = any ]; then  # ASan's note on a refused allocation is not the program's output
        local kept=""
        while IFS= read -r line; do
            [[ $line == ==*==WARNING:\ AddressSanitizer\ failed\ to\ allocate* ]] || kept+="$line"$'\n'
        done <<< "${err%$'\n'}"
        [ -n "$err" ] && err=$kept
    fi
    first=${err%%$'\n'*}; first=${first:0:300}
    local nl=${err//[!$'\n']/}; lines=${#nl}
    [ -n "$err" ] && [[ $err != *$'\n' ]] && lines=$((lines + 1))
    local san_re='ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:|AddressSanitizer: hard rss limit'
    local big_re='allocation-size-too-big|requested allocation size|rss limit exhausted|allocator is out of memory|calloc-overflow'
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        kind=timeout; detail="no exit within ${TIMEOUT}s"
    elif [[ $err =~ $big_re ]]; then
        kind=huge-alloc; detail=$(grep -m1 -E 'AddressSanitizer' <<< "$err")
    elif [[ $err =~ $san_re ]]; then
        kind=sanitizer; detail=$(grep -m1 -E "$san_re" <<< "$err")
        local frame; frame=$(grep -m1 -E '^ +#[0-9]+ .* in [a-z_]+ .*(train_gpt|tokenizer)\.[ch]' <<< "$err")
        [ -n "$frame" ] && detail="$detail | at ${frame#* in }"
    elif [ $rc -ge 128 ]; then
        kind=crash; detail="signal $((rc - 128)): $first"
    elif [ "$alloc" = small ] && [[ $err == *"out of memory"* ]]; then
        kind=huge-alloc; detail=$first
    elif [ $rc -eq 0 ]; then
        if [ "$2" != base ] && [ "$expect" = fail ]; then kind=accepted; detail="exit 0 on an invalid input"; fi
    elif [ $rc -eq 1 ]; then
        if [ "$2" = base ]; then kind=base; detail="the base command failed: $first"
        elif [ "$lines" -ne 1 ] || [[ $first != "error: "* ]]; then
            kind=message; detail="$lines stderr line(s): ${err:0:300}"; detail=${detail//$'\n'/|}
        fi
    else
        kind=exit-code; detail="exit $rc: $first"
    fi
    if [ -z "$kind" ]; then
        printf 'PASS %-52s %s\n' "$name" "$first"
        return 0
    fi
    local cmd; printf -v cmd '%q ' "${args[@]}"
    printf 'FAIL %-52s [%s] %s\n     repro: %s %s< %s\n' "$name" "$kind" "$detail" "$show" "$cmd" "$in"
    return 1
}

t0=$SECONDS
python3 dev/gen_bad_inputs.py base "$W" || { echo "error: gen_bad_inputs.py base failed"; exit 1; }
for c in "$W"/base.d/*; do
    run_case "$c" base > "$W/base.log" || { cat "$W/base.log"; echo "error: could not make the base files"; echo "0 passed, 1 failed"; exit 1; }
done
python3 dev/gen_bad_inputs.py cases "$W" || { echo "error: gen_bad_inputs.py cases failed"; exit 1; }
CASES=()
for c in "$W"/cases.d/*; do
    [[ $c == *.out || $c == *.err ]] && continue
    if [ -n "${ONLY:-}" ]; then
        IFS= read -r -d '' n < "$c"
        [[ $n =~ $ONLY ]] || continue
    fi
    CASES+=("$c")
done
# JOBS workers, each taking every JOBS-th case
JOBS=${JOBS:-$(nproc)}
for ((k = 0; k < JOBS; k++)); do
    for ((i = k; i < ${#CASES[@]}; i += JOBS)); do run_case "${CASES[$i]}" case; done > "$W/results.$k" &
done
wait
cat "$W"/results.* > "$W/results.log"
if [ "${VERBOSE:-0}" = 1 ]; then cat "$W/results.log"; else grep -av '^PASS' "$W/results.log"; fi
passed=$(grep -ac '^PASS' "$W/results.log"); failed=$(grep -ac '^FAIL' "$W/results.log")
echo
if [ "$failed" -gt 0 ]; then
    printf 'failures by kind:'
    grep -a '^FAIL' "$W/results.log" | sed -E 's/^FAIL +[^ ]+ +\[([a-z-]+)\].*/\1/' | sort | uniq -c | awk '{printf " %s %d,", $2, $1}'
    echo
fi
echo "($((SECONDS - t0)) s, $((passed + failed)) cases; binaries $BIN, $TOKBIN)"
[ "$failed" -gt 0 ] && [ "${KEEP:-0}" != 1 ] && echo "(the repro lines name files in a folder now deleted: KEEP=1 ONLY=NAME keeps them)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
