#!/bin/bash
# dev/bench_cpu.sh -- one training step of GPT-2 d12 (124M) at B=4, T=64, fp32, on THREADS threads:
# train_gpt against PyTorch (dev/train_gpt.py --train, same model, optimizer and batch shape),
# in the same run. Prints median ms/step, GFLOP/s, peak RSS and the ratio.
#   usage: dev/bench_cpu.sh [STEPS] [THREADS]        (defaults: 10 steps, 2 threads)
# Both use GPT-2 token ids (train_gpt: the Brown shards if present, else random tokens written
# here; PyTorch: its random tokens); the first step of train_gpt and the first 2 of PyTorch are
# warm-up and not counted.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-10}
THREADS=${2:-2}
PYTHON=${PYTHON:-/usr/bin/python3}
make --no-print-directory train_gpt > /dev/null
W=$(mktemp -d /tmp/bench_cpu_XXXXXX)
trap 'rm -rf "$W"' EXIT

# peak RSS of a child process: its ru_maxrss, read by a tiny python wrapper (no GNU time needed)
peak() { "$PYTHON" -c 'import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
print("peak_rss_mib=%.0f" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024))
sys.exit(rc)' "$@"; }

DATA=data/brown/brown_train_*.bin
if ! ls $DATA > /dev/null 2>&1; then
    "$PYTHON" - "$W/tokens.bin" <<'EOF'
import struct, sys, random
random.seed(0); n = 200000
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, n, *([0] * 253)))
    f.write(struct.pack("<%dH" % n, *[random.randrange(50257) for _ in range(n)]))
EOF
    DATA="$W/tokens.bin"
fi

echo "== train_gpt: d12, B=4, T=64, $STEPS steps, $THREADS threads"
OMP_NUM_THREADS=$THREADS peak ./train_gpt -e d12 -b 4 -t 64 -x "$STEPS" -i "$DATA" -j "" -s 0 -o "" \
    | tee "$W/c.log" | grep -E "^step +[0-9]+/|summary|peak_rss"
echo "== PyTorch $("$PYTHON" -c 'import torch; print(torch.__version__)'): same config"
OPENBLAS_CORETYPE=$(grep -qw avx512f /proc/cpuinfo && echo SkylakeX || echo "") \
OMP_NUM_THREADS=$THREADS peak "$PYTHON" dev/train_gpt.py --train --model d12 -B 4 -T 64 --steps $((STEPS + 2)) \
    | tee "$W/py.log" | grep -E "^step|median|peak_rss"

c_ms=$(sed -n 's/.*median step \([0-9.]*\) ms.*/\1/p' "$W/c.log")
c_gf=$(sed -n 's/.*GFLOP\/step, \([0-9.]*\) GFLOP\/s.*/\1/p' "$W/c.log")
gflop=$(sed -n 's/.* \([0-9.]*\) GFLOP\/step.*/\1/p' "$W/c.log")
c_rss=$(sed -n 's/peak_rss_mib=//p' "$W/c.log")
py_ms=$(sed -n 's/median_ms_per_step=//p' "$W/py.log")
py_rss=$(sed -n 's/peak_rss_mib=//p' "$W/py.log")
echo
printf '%-12s %12s %10s %14s %10s\n' "" "ms/step" "GFLOP/s" "peak RSS MiB" "vs PyTorch"
printf '%-12s %12.1f %10.1f %14s %9.2fx\n' train_gpt "$c_ms" "$c_gf" "$c_rss" "$(awk "BEGIN{print $py_ms / $c_ms}")"
printf '%-12s %12.1f %10.1f %14s %9.2fx\n' PyTorch "$py_ms" "$(awk "BEGIN{print $gflop * 1000 / $py_ms}")" "$py_rss" 1
echo "($gflop GFLOP per step: matmuls and attention, forward + backward; THREADS=$THREADS)"
