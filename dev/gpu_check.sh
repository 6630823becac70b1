#!/bin/bash
# dev/gpu_check.sh -- everything the CUDA trainer must show on a GPU, in one run (one device call):
#   1. the PyTorch references (written here: dev/ref is ~1.2 GB, too big to carry)
#   2. test_gptcu in fp32 and bf16 on both references (make test-cuda), then compute-sanitizer's
#      racecheck and memcheck on the odd config
#   3. train_gptcu on GPT-2 d12, T=1024, B=16: falling loss, tok/s, ms/step, GPU memory
#   4. the largest B that fits (3 steps each at growing B until one runs out of memory)
#   5. dev/bench_gpu.sh at B=16 against PyTorch
#   usage: dev/gpu_check.sh [LOGDIR]     (default $OUT when set, else a temp dir)
# Closing line: "N passed, N failed" over the steps above; exit status non-zero on a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${1:-${OUT:-$(mktemp -d /tmp/gpu_check_XXXXXX)}}
mkdir -p "$LOG"
export PYTHON=${PYTHON:-python3}
passed=0; failed=0
step() { # NAME CMD...: runs CMD with its output in $LOG/NAME.log, reports
    local name=$1; shift
    local t0=$SECONDS
    if "$@" > "$LOG/$name.log" 2>&1; then
        echo "PASS $name ($((SECONDS - t0)) s)"; passed=$((passed + 1))
    else
        echo "FAIL $name ($((SECONDS - t0)) s): $(tail -3 "$LOG/$name.log" | tr '\n' ' ')"; failed=$((failed + 1))
    fi
}
nvidia-smi --query-gpu=name,memory.total,compute_cap --format=csv | tee "$LOG/gpu.txt"

step references make --no-print-directory PYTHON="$PYTHON" dev/ref/odd_ref.bin dev/ref/drop_ref.bin dev/ref/d12_ref.bin
step test-cuda make --no-print-directory PYTHON="$PYTHON" test-cuda
grep -E "^[0-9]+ passed|FAILED" "$LOG/test-cuda.log" | head -20
# what the CPU emulator cannot see: shared-memory races and out-of-bounds accesses on the GPU
# (test_gptcu is the bf16 build now, the last one test-cuda made)
if command -v compute-sanitizer > /dev/null; then
    pairs=(dev/ref/odd_model.bin dev/ref/odd_ref.bin dev/ref/drop_model.bin dev/ref/drop_ref.bin) # with and without dropout
    step racecheck compute-sanitizer --tool racecheck --error-exitcode 1 ./test_gptcu --no-resume "${pairs[@]}"
    step memcheck compute-sanitizer --tool memcheck --error-exitcode 1 ./test_gptcu --no-resume "${pairs[@]}"
else
    echo "compute-sanitizer not found: racecheck and memcheck skipped"
fi

# tokens with something to learn: the Brown shards when carried (data/brown), else a Markov chain
# over 512 ids (next = 31 * prev + r mod 512, r uniform in 0..7): the loss must fall from
# ln(50257) = 10.8 to ln(512) = 6.2 (the unigram) and on toward ln(8) = 2.1 (the bigram)
TRAIN="$LOG/tokens.bin"
if ls data/brown/brown_train_*.bin > /dev/null 2>&1; then
    TRAIN="data/brown/brown_train_*.bin"
else
    "$PYTHON" - "$TRAIN" $((30 * 64 * 1024 + 1)) <<'PY'
import struct, sys, numpy as np
path, n = sys.argv[1], int(sys.argv[2])
r = np.random.default_rng(0).integers(0, 8, n)
toks = np.empty(n, np.int64); toks[0] = 0
for i in range(1, n):
    toks[i] = (31 * toks[i - 1] + r[i]) % 512
with open(path, "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, n, *([0] * 253)))
    f.write(toks.astype(np.uint16).tobytes())
PY
fi
make --no-print-directory PRECISION=BF16 train_gptcu > "$LOG/build.log" 2>&1
step d12-B16 ./train_gptcu -e d12 -b 16 -t 1024 -x 30 -i "$TRAIN" -j "" -s 0 -v 0 -o ""
grep -E "^step +(1|10|20|30)/|summary|gpu:" "$LOG/d12-B16.log"

best=16
for b in 24 32 48 64; do
    if ./train_gptcu -e d12 -b $b -t 1024 -x 3 -i "$TRAIN" -j "" -s 0 -v 0 -o "" > "$LOG/d12-B$b.log" 2>&1; then
        best=$b; grep -E "summary|gpu:" "$LOG/d12-B$b.log"
    else
        echo "B=$b does not run: $(tail -1 "$LOG/d12-B$b.log")"; break
    fi
done
echo "largest B that fits (of 16 24 32 48 64): $best"

step bench-B16 dev/bench_gpu.sh 16 30 16384 "$LOG/bench"
tail -6 "$LOG/bench-B16.log"
echo
echo "logs in $LOG"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
