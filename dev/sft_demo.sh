#!/bin/bash
# dev/sft_demo.sh -- what supervised fine-tuning buys, measured: Brown's 15 genres as a task.
# The quick start's model (L4H4C256, 16M parameters) is pretrained on Brown (the quick start's
# run), then fine-tuned on "PASSAGE\nGenre: GENRE" records from the training documents
# (dev/sft_demo_data.py), and scored on passages of the 25 held-out documents as a 15-way
# multiple-choice eval (--eval: the genre whose tokens the model finds likeliest after the
# passage). Rows of the table:
#   majority class        always the most frequent genre of the eval set
#   pretrained, 0-shot    the Brown model as it is
#   SFT, loss mask        fine-tuned with the loss on the genre only (v2 shards, ./tokenizer sft)
#   SFT, no mask          the same records and steps, the loss on every token
#   SFT from random init  the masked run from a random init instead of the pretrained model
# Prints the table (acc and acc_norm) and draws the fine-tuning runs' curves (dev/plot_log.py).
#   usage: dev/sft_demo.sh [OUT_DIR]        (default /tmp/sft_demo; it must not exist)
# Needs data/brown (make data). PRETRAIN and SFT (steps) override 300 and 300; EVAL_B (rows a
# forward in evaluation) 32.
# First run (2026-12-07, 2-core CI machine, loaded by other jobs): majority class 0.1600 (13 of the
# 15 genres among the 200 held-out passages; "essay" 32 of them); SFT with the mask after 300
# steps 0.1600 acc and acc_norm (the genre prior, not yet the passage: its eval was 0.04, 0.16,
# 0.04, 0.16 at steps 0-300, val loss 1.29 nats per counted token), the rest not run to the end:
# a --val-eval of 3,000 completions at -b 4 took 100-180 s on the loaded machine. The issue's
# target (SFT with the mask >= 2x the majority) is not reached with these settings.
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/sft_demo}
PRETRAIN=${PRETRAIN:-300}; SFT=${SFT:-300}; EVAL_B=${EVAL_B:-32}
PYTHON=${PYTHON:-/usr/bin/python3}
[ -e "$OUT" ] && { echo "error: $OUT exists: give a new directory" >&2; exit 1; }
[ -d data/.cache/brown_text ] && ls data/brown/brown_train_*.bin > /dev/null 2>&1 ||
    { echo "error: no data/brown: run make data" >&2; exit 1; }
make --no-print-directory train_gpt tokenizer > /dev/null
mkdir -p "$OUT"

echo "== data: passages of 40 words, train documents -> SFT records, held-out documents -> eval"
"$PYTHON" dev/sft_demo_data.py data/.cache/brown_text "$OUT/data" | tee "$OUT/data.log"
# a few records to val (--val-every): the SFT runs report a validation loss on unseen passages
./tokenizer sft --val-every 50 "$OUT/data/genre" "$OUT/data/sft_train.jsonl" > /dev/null
./tokenizer sft --val-every 50 "$OUT/data/plain" "$OUT/data/sft_train_nomask.jsonl" > /dev/null
ev="$OUT/data/genre_eval.bin"
score() { ./train_gpt -e "$1" --eval "$ev" -b "$EVAL_B" 2> /dev/null | tail -1; }

echo "== 1. pretraining on Brown: $PRETRAIN steps (the quick start's run)"
./train_gpt -x "$PRETRAIN" -s 0 -k 1 -o "$OUT/pretrain" > "$OUT/pretrain.log"
pre=$(printf '%s/pretrain/model_%08d.bin' "$OUT" "$PRETRAIN")
grep '^summary:' "$OUT/pretrain.log"

# Fine-tuning: new runs from the pretrained weights (or a random init), the same flags for all
sft=(-x "$SFT" -l 1e-3 -u 20 -v 100 -m 10 -s 0 -k 1 --val-eval "$ev")
echo "== 2. SFT with the loss mask (the genre only): $SFT steps"
./train_gpt -e "$pre" -i "$OUT/data/genre_train_*.bin" -j "$OUT/data/genre_val_*.bin" "${sft[@]}" -o "$OUT/sft_mask" > "$OUT/sft_mask.log"
echo "== 3. the same SFT without the mask (every token counts)"
./train_gpt -e "$pre" -i "$OUT/data/plain_train_*.bin" -j "$OUT/data/plain_val_*.bin" "${sft[@]}" -o "$OUT/sft_nomask" > "$OUT/sft_nomask.log"
echo "== 4. SFT with the mask from a random init"
./train_gpt -i "$OUT/data/genre_train_*.bin" -j "$OUT/data/genre_val_*.bin" "${sft[@]}" -o "$OUT/sft_scratch" > "$OUT/sft_scratch.log"

last() { printf '%s/%s/model_%08d.bin' "$OUT" "$1" "$SFT"; }
{
    echo "| model | acc | acc_norm |"
    echo "|---|---:|---:|"
    sed -n 's/^majority baseline: \([0-9.]*\).*/| majority class | \1 | \1 |/p' "$OUT/data.log"
    for row in "pretrained, 0-shot:$pre" "SFT, loss mask:$(last sft_mask)" "SFT, no mask:$(last sft_nomask)" \
               "SFT from random init:$(last sft_scratch)"; do
        score "${row#*:}" | sed -n "s/^eval: .* | acc \\([0-9.]*\\) | acc_norm \\([0-9.]*\\)/| ${row%%:*} | \\1 | \\2 |/p"
    done
} | tee "$OUT/table.md"
"$PYTHON" dev/plot_log.py "SFT, loss mask=$OUT/sft_mask/log.txt" "SFT, no mask=$OUT/sft_nomask/log.txt" \
    "SFT from random init=$OUT/sft_scratch/log.txt" -o "$OUT/sft_demo.png" --title "Brown genres: SFT of the 16M model"
