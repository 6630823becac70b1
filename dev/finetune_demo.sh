#!/bin/bash
# dev/finetune_demo.sh -- pretraining, then fine-tuning, end to end on this CPU: the quick start's
# small GPT-2 (L4H4C256, 16M parameters) pretrained on the Brown corpus, then fine-tuned on
# tinyshakespeare from that checkpoint (a new run: step 0, fresh AdamW, short warmup, dropout),
# against the same Shakespeare run from a random init. Prints the Shakespeare
# validation loss of the Brown model before fine-tuning and of both runs after, then a sample.
#   usage: dev/finetune_demo.sh [OUT_DIR]        (default /tmp/finetune_demo; it must not exist)
# Needs data/brown (make data) and data/tinyshakespeare (sh data/prepare.sh shakespeare [FILE]).
# PRETRAIN and FINETUNE (steps) override 600 and 300. ~7 minutes on the 2-core CI machine.
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/finetune_demo}
PRETRAIN=${PRETRAIN:-600}; FINETUNE=${FINETUNE:-300}
[ -e "$OUT" ] && { echo "error: $OUT exists: give a new directory" >&2; exit 1; }
ls data/brown/brown_train_*.bin > /dev/null 2>&1 || { echo "error: no data/brown: run make data" >&2; exit 1; }
ls data/tinyshakespeare/tinyshakespeare_val_*.bin > /dev/null 2>&1 ||
    { echo "error: no data/tinyshakespeare: run sh data/prepare.sh shakespeare [input.txt]" >&2; exit 1; }
make --no-print-directory train_gpt > /dev/null
mkdir -p "$OUT"
shakes=(-i 'data/tinyshakespeare/tinyshakespeare_train_*.bin' -j 'data/tinyshakespeare/tinyshakespeare_val_*.bin')
vals() { sed -n 's/^step \([0-9]*\): val loss \([0-9.]*\).*/\1 \2/p' "$1"; }

echo "== 1. pretraining on Brown: $PRETRAIN steps"
./train_gpt -x "$PRETRAIN" -v 100 -s 0 -k 1 -o "$OUT/brown" > "$OUT/brown.log"
grep '^model:\|^summary:' "$OUT/brown.log"
vals "$OUT/brown.log" | tail -1 | awk '{ print "Brown val loss at step " $1 ": " $2 }'
brown=$(printf '%s/brown/model_%08d.bin' "$OUT" "$PRETRAIN")

# Fine-tuning: a new run from the pretrained weights, short warmup, dropout 0.1. The from-scratch
# run has exactly the same flags, so the init is the only difference. (This 16M model saw 0.3M
# Brown tokens: it takes the pretraining lr well. A well-trained GPT-2 wants a far smaller one:
# README.md's fine-tuning recipe, -l 3e-5.)
ft=(-x "$FINETUNE" -l 1e-3 -u 20 -D 0.1 -v 50 -s 0 -k 1)
echo "== 2. fine-tuning the Brown model on Shakespeare: $FINETUNE steps"
./train_gpt -e "$brown" "${shakes[@]}" "${ft[@]}" -o "$OUT/finetune" > "$OUT/finetune.log"
echo "== 3. the same Shakespeare run from a random init"
./train_gpt "${shakes[@]}" "${ft[@]}" -o "$OUT/scratch" > "$OUT/scratch.log"

echo "== Shakespeare validation loss (step: fine-tuned from Brown | from scratch)"
join <(vals "$OUT/finetune.log") <(vals "$OUT/scratch.log") | awk '{ printf "step %4d: %s | %s\n", $1, $2, $3 }'
grep '^summary:' "$OUT/finetune.log"

echo "== a sample from the fine-tuned model"
cmd=(./train_gpt -e "$(printf '%s/finetune/model_%08d.bin' "$OUT" "$FINETUNE")" --prompt "ROMEO:" -g 80 -K 40 -S 1)
echo "\$ ${cmd[*]}"
"${cmd[@]}"
echo
