#!/bin/bash
# dev/bench_generate.sh -- generation speed on this CPU: the KV cache against a full forward per
# token, GPT-2 d12 (random weights unless MODEL is a model file), NEW tokens after a 32-token prompt.
#   usage: dev/bench_generate.sh [NEW] [THREADS] [MODEL]     (default 512 tokens, 2 threads, d12)
# Prints each run's line "generated N tokens ... tok/s" and the ratio. Run it on an idle machine.
set -eu
cd "$(dirname "$0")/.."
NEW=${1:-512}; THREADS=${2:-2}; MODEL=${3:-d12}
make --no-print-directory train_gpt tokenizer > /dev/null
# 32 tokens of GPT-2's tokenizer
PROMPT="The history of the region begins with the first settlers, who came from the north in small groups and built their villages along the rivers and lakes of the wide valley"
n=$(printf '%s' "$PROMPT" | ./tokenizer encode | wc -w)
echo "d12 generation: $NEW new tokens after a $n-token prompt, $THREADS thread(s), model $MODEL"
rate() { sed -n 's/.* \([0-9.]*\) tok\/s.*/\1/p'; }
# each run's last stderr line: "generated N tokens after a 32-token prompt in S s: R tok/s (...)"
kv_line=$(OMP_NUM_THREADS=$THREADS ./train_gpt -e "$MODEL" --prompt "$PROMPT" -g "$NEW" -K 0 2>&1 >/dev/null | tail -1)
echo "$kv_line"
full_line=$(OMP_NUM_THREADS=$THREADS ./train_gpt -e "$MODEL" --prompt "$PROMPT" -g "$NEW" -K 0 --kv-cache 0 2>&1 >/dev/null | tail -1)
echo "$full_line"
kv=$(echo "$kv_line" | rate); full=$(echo "$full_line" | rate)
awk -v a="$kv" -v b="$full" 'BEGIN { printf "KV cache %.1f tok/s, full forward %.2f tok/s: %.1fx\n", a, b, a / b }'
