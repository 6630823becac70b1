#!/bin/bash
# dev/fuzz/run.sh -- builds the libFuzzer harnesses of dev/fuzz/ and runs each for a while.
#   bash dev/fuzz/run.sh [SECONDS] [HARNESS...]     (default 60 s each; all harnesses)
# Prints per harness: execs, crashes, ooms (allocations over the limit), hangs, and the distinct
# findings (first sanitizer line + the project frame), each with its reproducer file.
# Environment: SRC=dir   the sources to fuzz (a checkout with train_gpt.c, gptc/ and data/ whose
#                         loaders have these harnesses' signatures; default: here)
#              OUT=dir   builds, corpora, findings (default build/fuzz; kept between runs)
#              CC=clang  a clang with libFuzzer (-fsanitize=fuzzer)
set -u
cd "$(dirname "$0")/../.."
SECS=${1:-60}; shift || true
HARNESSES=("$@")
[ ${#HARNESSES[@]} -eq 0 ] && HARNESSES=(model shard state tokenizer descriptor flags eval)
SRC=$(realpath "${SRC:-.}")
OUT=${OUT:-build/fuzz}
CC=${CC:-clang}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")

command -v "$CC" > /dev/null || { echo "error: $CC not found (apt-get install clang: libFuzzer comes with it)"; exit 1; }
echo 'int LLVMFuzzerTestOneInput(const unsigned char* d, unsigned long n) { (void)d; (void)n; return 0; }' > "$OUT/probe.c"
"$CC" -fsanitize=fuzzer -o "$OUT/probe" "$OUT/probe.c" 2> /dev/null ||
    { echo "error: $CC cannot link -fsanitize=fuzzer (Debian: apt-get install clang libclang-rt-dev)"; exit 1; }

echo "sources: $SRC"

for h in "${HARNESSES[@]}"; do
    [ -f "dev/fuzz/fuzz_$h.c" ] || { echo "error: no harness dev/fuzz/fuzz_$h.c"; exit 1; }
    "$CC" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Wall -Wextra \
        -Wno-unused-function -Wno-unknown-pragmas -I"$SRC" -o "$OUT/fuzz_$h" "dev/fuzz/fuzz_$h.c" -lm ||
        { echo "error: could not build fuzz_$h"; exit 1; }
done

# Seeds: valid files made by the binaries themselves (as dev/test_crafted_inputs.sh makes them)
if [ ! -d "$OUT/seeds" ]; then
    S=$OUT/seedwork; rm -rf "$S"; mkdir -p "$S"
    gcc -O1 -fopenmp -o "$S/train_gpt" "$SRC/train_gpt.c" -lm && gcc -O1 -o "$S/tokenizer" "$SRC/data/tokenizer.c" ||
        { echo "error: could not build the seed binaries"; exit 1; }
    python3 dev/gen_bad_inputs.py base "$S" > /dev/null || exit 1
    for c in "$S"/base.d/*; do
        mapfile -d '' -t F < "$c"
        bin=$S/train_gpt; [ "${F[4]}" = TOK ] && bin=$S/tokenizer
        OMP_NUM_THREADS=1 "$bin" "${F[@]:5}" > /dev/null || { echo "error: seed command failed: ${F[*]:4}"; exit 1; }
    done
    mkdir -p "$OUT"/seeds/{model,shard,state,tokenizer,descriptor,flags,eval}
    cp "$S"/base/run/model_*.bin "$OUT/seeds/model/"
    cp "$S"/base/run/state_*.bin "$OUT/seeds/state/"
    cp "$S"/base/shard.bin "$OUT/seeds/shard/"
    cp "$S"/base/tokenizer.bin "$OUT/seeds/tokenizer/"
    python3 -c "import sys; sys.path.insert(0, 'dev'); import evalfile
evalfile.write(sys.argv[1], [{'ctx': [5, 6, 7], 'endings': [[8], [9, 10], [11, 12, 13]], 'label': 1},
                             {'ctx': list(range(1, 20)), 'endings': [[1, 2], [3]], 'label': 0}])" "$OUT/seeds/eval/0"
    i=0; for d in L1H1C8T16V97 d12 L3H5C60T17V311 d48 L4H4C256T1024V50257; do printf '%s' "$d" > "$OUT/seeds/descriptor/$((i++))"; done
    printf -- '-b\n4\n-t\n64\n-e\nd12\n-l\n3e-4\n--beta1\n0.9\n-S\n42' > "$OUT/seeds/flags/0"
    printf -- '-d\n-1\n-x\n10\n-y\n1\n-o\nout\n-k\n2\n-Z\nfoo.bin' > "$OUT/seeds/flags/1"
    rm -rf "$S"
fi

declare -A MAXLEN=([model]=16384 [shard]=4096 [state]=32768 [tokenizer]=8192 [descriptor]=64 [flags]=512 [eval]=4096)
declare -A EXECS=()
for h in "${HARNESSES[@]}"; do
    A=$OUT/artifacts/$h; mkdir -p "$A" "$OUT/corpus/$h" "$OUT/logs"
    rm -f "$A"/*
    echo "fuzzing $h for $SECS s (log: $OUT/logs/$h.log)"
    # fork mode: a crash, OOM or hang is recorded and the run goes on (plain libFuzzer stops at the first)
    FUZZ_TMP=/dev/shm "$OUT/fuzz_$h" "$OUT/corpus/$h" "$OUT/seeds/$h" -fork=1 -ignore_crashes=1 \
        -ignore_ooms=1 -ignore_timeouts=1 -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
        -malloc_limit_mb=2048 -max_len="${MAXLEN[$h]:-4096}" -use_value_profile=1 \
        -artifact_prefix="$A/" > "$OUT/logs/$h.log" 2>&1
    EXECS[$h]=$(grep -oE '^#[0-9]+' "$OUT/logs/$h.log" | tail -n 1 | tr -d '#')
done

# Each finding run once more (up to 50 per harness): its kind, first report line and project frame.
#   crash       a sanitizer report (memory error, UB), an abort of the harness's own checks, a signal
#   huge-alloc  an allocation over the limit (ASan's allocation-size report, libFuzzer's malloc limit)
#   hang        no exit within -timeout
: > "$OUT/findings.tsv"
for h in "${HARNESSES[@]}"; do
    n=0
    for f in "$OUT/artifacts/$h"/*; do
        [ -f "$f" ] || continue
        n=$((n + 1)); [ $n -gt 50 ] && break
        out=$(FUZZ_TMP=/dev/shm timeout 30 "$OUT/fuzz_$h" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 "$f" 2>&1)
        sig=$(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|^fuzz_[a-z]+:' <<< "$out" |
              sed -E 's/==[0-9]+==//; s/ on address 0x[0-9a-f]+.*//; s/ \(pc 0x.*//; s/^.*(runtime error:)/\1/; s/0x[0-9a-f]+/0x../g; s/\(0x\.\. after adjustments[^)]*\) //')
        frame=$(grep -m1 -E '^ +#[0-9]+ .* in [a-z_]+ .*(train_gpt\.c|gptc/[a-z_]+\.h|data/[a-z_]+\.h):[0-9]+' <<< "$out" |
                sed -E 's/^.* in ([a-z_0-9]+) .*\/([a-z_]+\.[ch]):([0-9]+).*/\1 \2:\3/')
        kind=crash
        [[ $(basename "$f") == timeout-* || $sig == *"timeout"* ]] && kind=hang
        [[ $sig =~ allocation-size-too-big|requested\ allocation\ size|out\ of\ memory|out-of-memory|malloc\( ]] && kind=huge-alloc
        [ -z "$sig" ] && sig="(no report when run again: $(tail -n 1 <<< "$out" | cut -c1-80))"
        printf '%s\t%s\t%s | %s\t%s\n' "$h" "$kind" "$sig" "${frame:-?}" "$f" >> "$OUT/findings.tsv"
    done
done

printf '\n%-11s %10s %8s %11s %6s\n' harness execs crashes huge-alloc hangs
for h in "${HARNESSES[@]}"; do
    c=$(awk -F'\t' -v h="$h" '$1==h && $2=="crash"' "$OUT/findings.tsv" | wc -l)
    a=$(awk -F'\t' -v h="$h" '$1==h && $2=="huge-alloc"' "$OUT/findings.tsv" | wc -l)
    t=$(awk -F'\t' -v h="$h" '$1==h && $2=="hang"' "$OUT/findings.tsv" | wc -l)
    total=$(find "$OUT/artifacts/$h" -type f | wc -l)
    more=""; [ "$total" -gt 50 ] && more=" (+$((total - 50)) files not rerun)"
    printf '%-11s %10s %8d %11d %6d%s\n' "$h" "${EXECS[$h]:-?}" "$c" "$a" "$t" "$more"
done
echo
echo "distinct findings (count, kind, first report line | project frame, one reproducer):"
sort -t$'\t' -k1,3 "$OUT/findings.tsv" | awk -F'\t' '{k=$1"\t"$2"\t"$3; if (!(k in n)) {order[++m]=k; ex[k]=$4} n[k]++}
    END {for (i=1;i<=m;i++) {split(order[i],p,"\t"); printf "%-10s %3dx [%s] %s\n             %s\n", p[1], n[order[i]], p[2], p[3], ex[order[i]]}}'
echo "(reproduce: $OUT/fuzz_HARNESS FILE; the harness sources are dev/fuzz/fuzz_HARNESS.c)"
