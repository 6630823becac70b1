#!/usr/bin/env bash
# Turn a CUDA source into C++ for the CPU emulator (dev/cuda/emu.h):
#   dev/cuda/emu_build.sh IN.cu OUT.cpp
#   g++ -std=c++17 -O2 -DGPT_CUDA_EMU -I. OUT.cpp      # from the repo root
# Rewrites every launch `NAME<<<ARGS>>>(` (NAME optionally with one template
# argument, launch on one line) into `EMU_LAUNCH(NAME, ARGS)(`, and prepends
# the emulator include plus a #line so errors and emulator messages point at IN.cu.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 IN.cu OUT.cpp" >&2
    exit 2
fi
in=$1
out=$2
if [ ! -f "$in" ]; then
    echo "emu_build.sh: input file '$in' not found" >&2
    exit 1
fi
{
    echo '#include "dev/cuda/emu.h"'
    echo "#line 1 \"$in\""
    perl -pe 's/\b([A-Za-z_][\w:]*(?:<[^<>;]*>)?)\s*<<<(.*?)>>>\s*\(/EMU_LAUNCH($1, $2)(/g' "$in"
} > "$out"
