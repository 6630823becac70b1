#!/bin/bash
# dev/bench_cpu.sh -- one training step of GPT-2 d12 (124M) at B=4, T=64, fp32, on THREADS threads:
# train_gpt against two PyTorch peers with the same model, optimizer and batch shape, and against
# the machine's measured FMA peak (dev/fma_peak.c), all in the same run:
#   - "PyTorch, lean": dev/bench_torch_gpt.py, GPT-2 as a PyTorch user writes it (nn.Linear,
#     nn.LayerNorm, F.cross_entropy, torch.optim.AdamW): the fastest fair peer we have;
#   - "PyTorch, reference": dev/train_gpt.py --train, the model whose hand-written ops check ours.
# Prints for each the median ms/step and its min-max, GFLOP/s, peak RSS, the speed relative to the
# lean peer and the fraction of the FMA peak.
#   usage: dev/bench_cpu.sh [STEPS] [THREADS]        (defaults: 10 steps, 2 threads)
# All use GPT-2 token ids (train_gpt: the Brown shards if present, else random tokens written
# here; PyTorch: random tokens); the first step of train_gpt and the first 2 of each PyTorch peer
# are warm-up and not counted. Measure on an idle machine: another job on the cores slows OpenMP's
# threads badly (3-4x), and the FMA peak with them.
# PyTorch's speed is its BLAS's, so the BLAS is pinned down and shown:
# - PyTorch must run on OpenBLAS (Debian's python3-torch + libopenblas0-openmp): dev/deps.sh bench
#   installs them when run as root, else the benchmark stops with the command that does. (On
#   Debian's reference BLAS, libblas3, a d12 step takes ~10x longer.)
# - OpenBLAS is told its core type, OPENBLAS_CORETYPE=SkylakeX on an AVX-512 CPU, Haswell on AVX2
#   (OpenBLAS 0.3.21 gives a CPU it does not know slow generic kernels, and the environment may
#   name a slower one); on other CPUs it chooses.
# - The PyTorch process itself prints the BLAS it calls (dev/torch_blas.py: the library of the
#   sgemm_ that libtorch gets) and what OpenBLAS says of itself: version and build, the core type
#   it uses, threads and threading. Where update-alternatives picks libblas.so.3 (Debian), its
#   choice is printed too.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-10}
THREADS=${2:-2}
PYTHON=${PYTHON:-/usr/bin/python3}
PYTHON=$PYTHON dev/deps.sh bench
# NO_DATA=1: without the Brown shards train_gpt reads random tokens (below), npm is not needed
make --no-print-directory NO_DATA=1 train_gpt > /dev/null
W=$(mktemp -d /tmp/bench_cpu_XXXXXX)
trap 'rm -rf "$W"' EXIT

# peak RSS of a child process: its ru_maxrss, read by a tiny python wrapper (no GNU time needed)
peak() { "$PYTHON" -c 'import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
print("peak_rss_mib=%.0f" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024))
sys.exit(rc)' "$@"; }

DATA='data/brown/brown_train_*.bin'   # a glob: train_gpt expands it
# shellcheck disable=SC2086 # expanded here only to see whether it matches
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

echo "== CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores;" \
     "FMA peak (dev/fma_peak.c, -O2 -march=native)"
"${CC:-cc}" -O2 -march=native -fopenmp -o "$W/fma_peak" dev/fma_peak.c -lm
"$W/fma_peak" "$THREADS" | tee "$W/fma.log"

echo "== train_gpt: d12, B=4, T=64, $STEPS steps, $THREADS threads"
OMP_NUM_THREADS=$THREADS peak ./train_gpt -e d12 -b 4 -t 64 -x "$STEPS" -i "$DATA" -j "" -s 0 -o "" \
    | tee "$W/c.log" | grep -E "^step +[0-9]+/|summary|peak_rss"

echo "== PyTorch: same config (OpenBLAS pinned down first)"
if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
elif grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell
else unset OPENBLAS_CORETYPE; fi
echo "environment: $(env | grep '^OPENBLAS_' | sort | tr '\n' ' ')OMP_NUM_THREADS=$THREADS"
alt=libblas.so.3-$(uname -m)-linux-gnu
if command -v update-alternatives > /dev/null && update-alternatives --query "$alt" > /dev/null 2>&1; then
    echo "update-alternatives ($(update-alternatives --query "$alt" | sed -n 's/^Status: //p') mode):" \
         "libblas.so.3 -> $(update-alternatives --query "$alt" | sed -n 's/^Value: //p')"
fi
# dev/torch_blas.py --run: prints the BLAS this process calls, refuses anything but OpenBLAS, then
# runs dev/train_gpt.py in the same process
echo "== PyTorch, lean (dev/bench_torch_gpt.py)"
OMP_NUM_THREADS=$THREADS peak "$PYTHON" dev/torch_blas.py --run dev/bench_torch_gpt.py -B 4 -T 64 \
    --steps $((STEPS + 2)) | tee "$W/lean.log" | grep -E "^step|median|peak_rss|BLAS|sgemm_"
echo "== PyTorch, reference (dev/train_gpt.py --train)"
OMP_NUM_THREADS=$THREADS peak "$PYTHON" dev/torch_blas.py --run dev/train_gpt.py --train --model d12 -B 4 -T 64 \
    --steps $((STEPS + 2)) | tee "$W/py.log" | grep -E "^step|median|peak_rss"

# the timed steps' ms of a log (train_gpt: after step 1; PyTorch: after steps 1-2), one a line
steps_ms() { sed -n 's/^step *\([0-9]*\)\/.*| \([0-9.]*\) ms.*/\1 \2/p' "$1" | awk -v skip="$2" '$1 > skip { print $2 }'; }
steps_ms "$W/c.log" 1 > "$W/c.ms"; steps_ms "$W/lean.log" 2 > "$W/lean.ms"; steps_ms "$W/py.log" 2 > "$W/py.ms"
gflop=$(sed -n 's/.* \([0-9.]*\) GFLOP\/step.*/\1/p' "$W/c.log")
pk_gf=$(sed -n "s/^$THREADS threads*: \([0-9.]*\) GFLOP.*/\1/p" "$W/fma.log")
rss() { sed -n 's/peak_rss_mib=//p' "$1"; }
echo
echo "$(date -u +%Y-%m-%d), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $THREADS threads:"
# one row: NAME MS_FILE RSS; the lean peer's median (the first row computed) is the reference
awk -v gflop="$gflop" -v pk_gf="$pk_gf" '
function row(name, file, rss,   n, x, v, i, j, t, med) {
    n = 0
    while ((getline x < file) > 0) v[++n] = x + 0
    for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
    med = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    if (lean == 0) lean = med
    printf "%-20s %9.1f %17s %9.1f %13s %10.2fx %11.1f%%\n", name, med, sprintf("%.0f-%.0f", v[1], v[n]),
           gflop * 1000 / med, rss, lean / med, 100 * gflop * 1000 / med / pk_gf
}
BEGIN {
    printf "%-20s %9s %17s %9s %13s %11s %12s\n", "", "ms/step", "min-max ms", "GFLOP/s", "peak RSS MiB",
           "vs lean PT", "of FMA peak"
    lean = 0
    row("PyTorch, lean", ARGV[2], ARGV[3])
    row("train_gpt", ARGV[1], ARGV[4])
    row("PyTorch, reference", ARGV[5], ARGV[6])
    printf "%-20s %9.1f %17s %9.1f %13s %10.2fx %11.1f%%\n", "FMA peak", gflop * 1000 / pk_gf, "-", pk_gf, "-",
           lean / (gflop * 1000 / pk_gf), 100
}' "$W/c.ms" "$W/lean.ms" "$(rss "$W/lean.log")" "$(rss "$W/c.log")" "$W/py.ms" "$(rss "$W/py.log")"
echo "(medians of the timed steps; $gflop GFLOP per step: matmuls and attention, forward + backward; the FMA" \
     "peak row: dev/fma_peak.c on $THREADS threads, and the time a step's GFLOP would take at that rate)"
