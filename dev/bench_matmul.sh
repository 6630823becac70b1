#!/usr/bin/env bash
# Build and run the matmul lab (dev/matmul_lab.c): validation of every
# version against a double-precision reference, bitwise determinism checks,
# then GFLOP/s per layer shape and per part (forward, dinp, dweight) and the
# projected time of one GPT-2 d12 training step's matmuls.
#
# usage: dev/bench_matmul.sh [reps=7] [first_version_to_time=0] [number_of_BT_values=3]
#   e.g. dev/bench_matmul.sh 11 2 1   # only the final version, BT=256, 11 reps
# env:   CC (default gcc), OMP_NUM_THREADS (default 2),
#        MATMUL_LAB_SKIP_CHECKS=1 to skip validation.
# The machine should be otherwise idle: timings are wall-clock medians.
set -euo pipefail
cd "$(dirname "$0")/.."
CC=${CC:-gcc}
CFLAGS="-O3 -march=native -fopenmp -Wall -Wextra"
out_dir=$(mktemp -d)
trap 'rm -rf "$out_dir"' EXIT
echo "building: $CC $CFLAGS dev/matmul_lab.c -lm"
$CC $CFLAGS dev/matmul_lab.c -o "$out_dir/matmul_lab" -lm
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
"$out_dir/matmul_lab" "$@"
