#!/bin/bash
# dev/test_dist.sh -- data-parallel training (gptc/comm.h) under mpirun, against one process.
# On the odd config, a small one (with dropout) and the odd one on shards with a loss mask (version
# 2: the ranks' micro-batches count different numbers of targets, some none), 8 steps with warmup,
# cosine decay and active clipping:
#   - 2 ranks x A micro-batches against 1 rank x 2A: every step's loss, gradient norm and lr, the
#     validation losses and the final weights within test_gpt's fp32 bounds (test_gpt
#     --compare-runs), with -z 0 and -z 1 (ZeRO-1);
#   - two 2-rank runs are bitwise identical (and -z 0 and -z 1 give the same bits);
#   - resume across process counts: a 2-rank checkpoint resumed on 1 rank and a 1-rank checkpoint
#     on 2 ranks continue within the bounds; 2 ranks on 2 ranks bitwise;
#   - ranks that disagree (a flag) stop with one error naming the difference; a rank that fails
#     ends the whole job non-zero within a bounded time; -d not divisible by ranks*B*T is an error;
#   - multiple-choice eval (--eval, --val-eval) on 2 and 3 ranks prints what 1 rank prints.
# The data stream's partition (disjoint samples, union = the epoch) is checked by test_gpt itself.
# BIN=./train_gptcu_emu_fp32 runs it all on the CUDA trainer under the emulator (make test-dist).
# Closing line: "N passed, N failed"; exit status non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-./train_gpt}
[ -x "$BIN" ] && [ -x ./test_gpt ] || { echo "error: build $BIN and ./test_gpt first (make train_gpt test_gpt)"; exit 1; }
command -v mpirun > /dev/null || { echo "error: mpirun not found (dev/deps.sh mpi installs Open MPI)"; exit 1; }
ldd "$BIN" | grep -q libmpi || { echo "error: $BIN was built without MPI (install Open MPI, then make train_gpt)"; exit 1; }
W=$(mktemp -d /tmp/test_dist_XXXXXX)
trap 'rm -rf "$W"' EXIT
passed=0; failed=0
export OMP_NUM_THREADS=1
# 2 ranks on 2 cores, as root in CI; a job that hangs is killed by timeout
MPIRUN=(timeout 120 mpirun --oversubscribe -x OMP_NUM_THREADS=1)
# the emulator: a step takes ~1 s where its fibers switch in user space (x86-64), 15-25 s where
# they fall back to ucontext (a system call per switch), so its jobs get 400 s before they hang
case "$BIN" in *emu*) MPIRUN[1]=400 ;; esac
[ "$(id -u)" -eq 0 ] && MPIRUN+=(--allow-run-as-root)

ok()   { printf 'PASS %-36s %s\n' "$1" "$2"; passed=$((passed + 1)); }
fail() { printf 'FAIL %-36s %s\n' "$1" "$2"; failed=$((failed + 1)); }

# compare NAME MODE DIR_A DIR_B: test_gpt --compare-runs[-bitwise]
compare() {
    local name=$1 mode=$2
    if ./test_gpt "--compare-runs$mode" "$3" "$4" > "$W/cmp.log" 2>&1; then
        ok "$name" "$(tail -1 "$W/cmp.log")"
    else
        fail "$name" "$(grep -m3 'FAILED\|error' "$W/cmp.log" | tr '\n' ' ')"
    fi
}
# run DIR ARGS...: one training run that must succeed
run() {
    local dir=$1; shift
    if ! "$@" -o "$dir" > "$W/run.log" 2>&1; then fail "run $(basename "$dir")" "$(tail -3 "$W/run.log" | tr '\n' ' ')"; fi
}

python3 - "$W" <<'PY'
import struct, sys, random
random.seed(7)
for name, n, V in [("s_tr_0", 3000, 97), ("s_tr_1", 2600, 97), ("s_va_0", 900, 97),
                   ("o_tr_0", 4000, 311), ("o_tr_1", 3500, 311), ("o_va_0", 1200, 311)]:
    with open("%s/%s.bin" % (sys.argv[1], name), "wb") as f:
        f.write(struct.pack("<256i", 20240520, 1, n, *([0] * 253)))
        f.write(struct.pack("<%dH" % n, *[random.randrange(V) for _ in range(n)]))
# with a loss mask: runs of counted targets whose density changes every 39 tokens (a sample of
# the odd config), so micro-batches count from none to most of their targets
for name, n in [("m_tr_0", 4000), ("m_tr_1", 3500), ("m_va_0", 1200)]:
    keep = [random.choice((0.0, 0.1, 0.5, 0.9)) for _ in range(n // 39 + 1)]
    flags, on = [], 0
    for i in range(n):
        if random.random() < 0.3:
            on = int(random.random() < keep[i // 39])
        flags.append(on)
    with open("%s/%s.bin" % (sys.argv[1], name), "wb") as f:
        f.write(struct.pack("<256i", 20240520, 2, n, *([0] * 253)))
        f.write(struct.pack("<%dH" % n, *[random.randrange(311) for _ in range(n)]) + bytes(flags))
PY

# small: B*T = 16, 4 micro-batches per step in all, with dropout (its masks follow a micro-batch's
# place in the global batch, so they too must not depend on the rank count); odd: B*T = 39, 2 in all
small=(-e L2H2C24T16V97 -i "$W/s_tr_*.bin" -j "$W/s_va_0.bin" -b 2 -t 8 -d 64 -D 0.1)
odd=(-e L3H5C60T17V311 -i "$W/o_tr_*.bin" -j "$W/o_va_0.bin" -b 3 -t 13 -d 78)
sft=(-e L3H5C60T17V311 -i "$W/m_tr_*.bin" -j "$W/m_va_0.bin" -b 3 -t 13 -d 78)
steps=(-x 8 -u 2 -l 3e-3 -G 0.5 --eps 1e-6 -v 4 -m 3 -s 0 -n 4)
configs="small odd sft"

for cfg in $configs; do
    eval "args=(\"\${$cfg[@]}\" \"\${steps[@]}\")"
    run "$W/$cfg.1" "$BIN" "${args[@]}"
    for z in 0 1; do
        run "$W/$cfg.2z$z" "${MPIRUN[@]}" -np 2 "$BIN" "${args[@]}" -z $z
        compare "$cfg: 2 ranks -z $z vs 1 rank" "" "$W/$cfg.1" "$W/$cfg.2z$z"
    done
    run "$W/$cfg.2again" "${MPIRUN[@]}" -np 2 "$BIN" "${args[@]}" -z 1
    compare "$cfg: two 2-rank runs" -bitwise "$W/$cfg.2z1" "$W/$cfg.2again"
    compare "$cfg: 2 ranks -z 0 vs -z 1" -bitwise "$W/$cfg.2z0" "$W/$cfg.2z1"
done
# resume across process counts, from the step-4 checkpoint of the small runs
args=("${small[@]}" "${steps[@]}")
resume_from() {   # resume_from SRC DST: DST = SRC without its step-8 checkpoint and log past step 4
    rm -rf "$2"; cp -r "$1" "$2"; rm -f "$2"/*_00000008.bin
}
resume_from "$W/small.2z0" "$W/r21"; run "$W/r21" "$BIN" "${args[@]}" -y 1
compare "resume: 2 ranks -> 1 rank" "" "$W/small.2z0" "$W/r21"
resume_from "$W/small.1" "$W/r12"; run "$W/r12" "${MPIRUN[@]}" -np 2 "$BIN" "${args[@]}" -y 1 -z 1
compare "resume: 1 rank -> 2 ranks (ZeRO)" "" "$W/small.1" "$W/r12"
resume_from "$W/small.2z1" "$W/r22"; run "$W/r22" "${MPIRUN[@]}" -np 2 "$BIN" "${args[@]}" -y 1 -z 0
compare "resume: 2 ranks -> 2 ranks" -bitwise "$W/small.2z1" "$W/r22"
# the default -d (B*T on each rank) is recorded as the run's tokens per step, B*T*ranks: a 2-rank
# run resumed on 1 rank trains as many tokens a step, and on 2 ranks it resumes as launched
nod=(-e L2H2C24T16V97 -i "$W/s_tr_*.bin" -j "$W/s_va_0.bin" -b 2 -t 8 -D 0.1 "${steps[@]}") # no -d
run "$W/nod.2" "${MPIRUN[@]}" -np 2 "$BIN" "${nod[@]}"
resume_from "$W/nod.2" "$W/nod21"; run "$W/nod21" "$BIN" "${nod[@]}" -y 1
compare "default -d: 2 ranks -> 1 rank" "" "$W/nod.2" "$W/nod21"
resume_from "$W/nod.2" "$W/nod22"; run "$W/nod22" "${MPIRUN[@]}" -np 2 "$BIN" "${nod[@]}" -y 1
compare "default -d: 2 ranks -> 2 ranks" -bitwise "$W/nod.2" "$W/nod22"

# expect NAME WORDS CMD...: the job must fail (non-zero, not killed by timeout) and say WORDS
expect() {
    local name=$1 words=$2; shift 2
    "$@" > "$W/out" 2> "$W/err" < /dev/null
    local rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "^error: .*$words" "$W/err"; then
        ok "$name" "$(grep -m1 '^error:' "$W/err" | cut -c1-150)"
    else
        fail "$name" "exit $rc: $(head -c 300 "$W/err")"
    fi
}
fast=("${small[@]}" -x 2 -u 0 -s 0 -v 0 -o "")
expect "ranks disagree (-l)" "does not run what rank 0 runs: -l 0.002 here, -l 0.001 on rank 0" \
    "${MPIRUN[@]}" -np 1 "$BIN" "${fast[@]}" -l 1e-3 : -np 1 "$BIN" "${fast[@]}" -l 2e-3
expect "ranks disagree (data)" "does not run what rank 0 runs: data" \
    "${MPIRUN[@]}" -np 1 "$BIN" "${fast[@]}" : -np 1 "$BIN" "${fast[@]}" -i "$W/s_tr_0.bin"
expect "one rank fails: the job ends" "no files match" \
    "${MPIRUN[@]}" -np 1 "$BIN" "${fast[@]}" : -np 1 "$BIN" "${fast[@]}" -i "$W/none_*.bin"
expect "-d not divisible by ranks*B*T" "not a multiple of B\*T\*ranks" \
    "${MPIRUN[@]}" -np 2 "$BIN" "${fast[@]}" -d 16
# an error every rank hits (a bad flag, a missing file) is printed once, by rank 0
for bad in "-b 0" "-i $W/none_*.bin"; do
    "${MPIRUN[@]}" -np 2 "$BIN" "${fast[@]}" $bad > /dev/null 2> "$W/err" < /dev/null
    n=$(grep -c "^error: " "$W/err")
    if [ "$n" -eq 1 ]; then ok "every rank: one error line ($bad)" "$(grep -m1 '^error:' "$W/err" | cut -c1-100)"
    else fail "every rank: one error line ($bad)" "$n error lines"; fi
done

# multiple-choice eval (gptc/eval.h): each rank scores a block of the examples and the counts are
# summed, so 2 and 3 ranks print the line 1 rank prints (7 examples: blocks of unequal size); in a
# training run (--val-eval) too; ranks that read different eval files stop with one error
python3 - "$W" <<'PY'
import random, sys
sys.path.insert(0, "dev")
import evalfile
random.seed(3)
for name, n in (("ev_a", 7), ("ev_b", 6)):
    exs = [{"ctx": [random.randrange(97) for _ in range(1 + 3 * i)],
            "endings": [[random.randrange(97) for _ in range(1 + (i + k) % 4)] for k in range(2 + i % 3)],
            "label": i % 2} for i in range(n)]
    evalfile.write("%s/%s.bin" % (sys.argv[1], name), exs)
PY
ev=(-e L2H2C24T16V97 -b 3 --eval "$W/ev_a.bin")
one=$("$BIN" "${ev[@]}" 2> /dev/null | tail -1)
for np in 2 3; do
    many=$("${MPIRUN[@]}" -np $np "$BIN" "${ev[@]}" 2> /dev/null | tail -1)
    if [[ $one == eval:* ]] && [ "$one" = "$many" ]; then ok "--eval: $np ranks = 1 rank" "$many"
    else fail "--eval: $np ranks = 1 rank" "1 rank: '$one', $np ranks: '$many'"; fi
done
run "$W/ev.1" "$BIN" "${small[@]}" -x 2 -v 1 -m 2 -s 0 --val-eval "$W/ev_a.bin"
run "$W/ev.2" "${MPIRUN[@]}" -np 2 "$BIN" "${small[@]}" -x 2 -v 1 -m 2 -s 0 --val-eval "$W/ev_a.bin"
e1=$(grep " eval:" "$W/ev.1/log.txt" | tr '\n' ' '); e2=$(grep " eval:" "$W/ev.2/log.txt" | tr '\n' ' ')
if [ "$(grep -c " eval:" "$W/ev.1/log.txt")" -eq 3 ] && [ "${e1%% s:1*}" = "${e2%% s:1*}" ] &&
   [ "$(grep -c " eval:" "$W/ev.2/log.txt")" -eq 3 ]; then ok "--val-eval: 2 ranks" "$e2"
else fail "--val-eval: 2 ranks" "1 rank: $e1| 2 ranks: $e2"; fi
expect "ranks read other eval files" "different eval files" \
    "${MPIRUN[@]}" -np 1 "$BIN" "${ev[@]}" : -np 1 "$BIN" -e L2H2C24T16V97 -b 3 --eval "$W/ev_b.bin"

echo
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
