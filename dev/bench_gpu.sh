#!/bin/bash
# dev/bench_gpu.sh -- GPT-2 d12 (124M), T=1024, bf16, on one GPU: train_gptcu against PyTorch at its
# best (bf16 autocast, torch.compile, scaled_dot_product_attention, fused AdamW, TF32), the same
# model, batch shape and optimizer, in one run. Prints tok/s, ms/step, MFU, peak GPU memory and the
# ratio; keeps the raw logs.
#   usage: dev/bench_gpu.sh [B] [STEPS] [TOTAL_BATCH] [LOGDIR]
#     B            micro-batch (default 16)
#     STEPS        optimizer steps (default 20; the first ones warm up and are not counted)
#     TOTAL_BATCH  tokens per optimizer step, a multiple of B*1024 (default B*1024: no accumulation;
#                  524288 = GPT-2's 0.5M with accumulation)
#     LOGDIR       where the logs go (default: a temp dir, printed)
# MFU: the FLOPs of gpt_flops_per_micro_batch (matmuls + attention, fwd + bwd) per second, against
# 989 TFLOP/s (H100 SXM dense bf16) and against PEAK_TFLOPS if set (e.g. a measured GEMM rate).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-16}
STEPS=${2:-20}
TOTAL=${3:-$((B * 1024))}
LOGDIR=${4:-$(mktemp -d /tmp/bench_gpu_XXXXXX)}
PYTHON=${PYTHON:-python3}
T=1024
mkdir -p "$LOGDIR"
if [ $((TOTAL % (B * T))) -ne 0 ]; then echo "error: TOTAL_BATCH $TOTAL is not a multiple of B*T = $((B * T))" >&2; exit 1; fi
A=$((TOTAL / (B * T)))

make --no-print-directory PRECISION=BF16 train_gptcu > "$LOGDIR/build.log" 2>&1 || { cat "$LOGDIR/build.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > "$LOGDIR/gpu.txt" 2>&1 || true

# random GPT-2 token ids, enough for every step without reuse
"$PYTHON" - "$LOGDIR/tokens.bin" $(( (STEPS + 2) * TOTAL + 1 )) <<'PY'
import struct, sys, numpy as np
path, n = sys.argv[1], int(sys.argv[2])
toks = np.random.default_rng(0).integers(0, 50257, n, dtype=np.uint16)
with open(path, "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, n, *([0] * 253)))
    f.write(toks.tobytes())
PY

echo "== train_gptcu: d12, B=$B T=$T, $A micro-batch(es) per step, $STEPS steps"
./train_gptcu -e d12 -b "$B" -t $T -d "$TOTAL" -x "$STEPS" -i "$LOGDIR/tokens.bin" -j "" -s 0 -v 0 -o "" \
    > "$LOGDIR/train_gptcu.log" 2>&1 || { tail -5 "$LOGDIR/train_gptcu.log"; exit 1; }
grep -E "^step +[0-9]+/|summary|gpu:" "$LOGDIR/train_gptcu.log" | tail -4

echo "== PyTorch $("$PYTHON" -c 'import torch; print(torch.__version__)'): bf16 autocast + compile + flash + fused AdamW + TF32"
"$PYTHON" dev/train_gpt.py --train --device cuda --dtype bfloat16 --compile --flash --fused-adamw \
    --model d12 -B "$B" -T $T -A "$A" --steps "$STEPS" --input "$LOGDIR/tokens.bin" \
    > "$LOGDIR/pytorch.log" 2>&1 || { tail -5 "$LOGDIR/pytorch.log"; exit 1; }
grep -E "tokens/s|median|peak_gpu" "$LOGDIR/pytorch.log"

c_ms=$(sed -n 's/.*median step \([0-9.]*\) ms.*/\1/p' "$LOGDIR/train_gptcu.log")
gflop=$(sed -n 's/.* \([0-9.]*\) GFLOP\/step.*/\1/p' "$LOGDIR/train_gptcu.log")
c_mem=$(sed -n 's/.*memory in use \([0-9]*\) MiB.*/\1/p' "$LOGDIR/train_gptcu.log")
py_ms=$(sed -n 's/median_ms_per_step=//p' "$LOGDIR/pytorch.log")
py_mem=$(sed -n 's/peak_gpu_mib=//p' "$LOGDIR/pytorch.log")
peak=${PEAK_TFLOPS:-989}
row() { # name ms mem
    awk -v n="$1" -v ms="$2" -v mem="$3" -v tok="$TOTAL" -v gf="$gflop" -v pk="$peak" -v ref="$py_ms" \
        'BEGIN { tf = gf / ms; printf "%-12s %10.0f %9.1f %7.1f%% %10s %8.2fx\n", n, tok / (ms / 1000), ms, 100 * tf / pk, mem, ref / ms }'
}
echo
printf '%-12s %10s %9s %8s %10s %9s\n' "" "tok/s" "ms/step" "MFU" "GPU MiB" "vs torch"
row train_gptcu "$c_ms" "$c_mem"
row PyTorch "$py_ms" "$py_mem"
echo "($gflop GFLOP per step; MFU against $peak TFLOP/s; train_gptcu's memory is the device's in-use total"
echo " (cudaMemGetInfo), PyTorch's its allocator's peak; logs in $LOGDIR)"
