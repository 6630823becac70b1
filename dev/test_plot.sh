#!/bin/bash
# dev/test_plot.sh -- dev/plot_log.py draws real runs' logs, and refuses what it cannot read.
# A 30-step run of a tiny model writes a log.txt; the plot of it (and of a copy with eval lines,
# which adds the accuracy panel) must be a PNG of the expected size; a missing log, a line that is
# not the format and a non-PNG output name must each be one "error:" line and exit 1.
# Closing line: "N passed, N failed"; exit status non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/usr/bin/python3}
"$PYTHON" -c "import matplotlib" 2> /dev/null || { echo "error: $PYTHON lacks matplotlib (dev/deps.sh test installs python3-matplotlib)"; exit 1; }
W=$(mktemp -d /tmp/test_plot_XXXXXX)
trap 'rm -rf "$W"' EXIT
passed=0; failed=0
ok()   { printf 'PASS %-30s %s\n' "$1" "$2"; passed=$((passed + 1)); }
fail() { printf 'FAIL %-30s %s\n' "$1" "$2"; failed=$((failed + 1)); }

python3 -c "
import struct, random
random.seed(3)
with open('$W/shard.bin', 'wb') as f:
    f.write(struct.pack('<256i', 20240520, 1, 2000, *([0] * 253)))
    f.write(struct.pack('<2000H', *[random.randrange(97) for _ in range(2000)]))"
./train_gpt -e L1H1C16T16V97 -i "$W/shard.bin" -j "$W/shard.bin" -b 2 -t 8 -x 30 -v 10 -m 2 -s 0 -n 0 -o "$W/run" > /dev/null 2>&1 ||
    fail "a run to plot" "train_gpt failed"
cp "$W/run/log.txt" "$W/with_eval.txt"
printf 's:0 eval:0.2500\ns:30 eval:0.3125\n' >> "$W/with_eval.txt"
# png_size FILE: "WIDTHxHEIGHT" from the PNG header, or "not a PNG"
png_size() { python3 -c "
import struct, sys
d = open(sys.argv[1], 'rb').read(24)
print('%dx%d' % struct.unpack('>II', d[16:24]) if d[:8] == b'\x89PNG\r\n\x1a\n' else 'not a PNG')" "$1"; }
for case in "one run:run:$W/run/log.txt:700x420" "two runs, eval:eval:a=$W/run/log.txt b=$W/with_eval.txt:1100x420"; do
    IFS=: read -r name out logs want <<< "$case"
    # shellcheck disable=SC2086 # logs: one word per log
    if "$PYTHON" dev/plot_log.py $logs -o "$W/$out.png" > "$W/out" 2> "$W/err" && [ "$(png_size "$W/$out.png")" = "$want" ]; then
        ok "$name" "$(cat "$W/out") ($want)"
    else
        fail "$name" "$(head -c 200 "$W/err") $(png_size "$W/$out.png" 2>&1)"
    fi
done
# expect NAME WORDS ARGS...: exit 1 and one "error:" line with WORDS
expect() {
    local name=$1 words=$2; shift 2
    "$PYTHON" dev/plot_log.py "$@" > /dev/null 2> "$W/err"
    local rc=$?
    if [ $rc -eq 1 ] && [ "$(wc -l < "$W/err")" -eq 1 ] && grep -q "^error: .*$words" "$W/err"; then ok "$name" "$(cat "$W/err")"
    else fail "$name" "exit $rc: $(head -c 200 "$W/err")"; fi
}
printf 's:0 trl:1.5 norm:1 lr:1\nhello\n' > "$W/bad.txt"
expect "missing log" "cannot read" "$W/none.txt" -o "$W/x.png"
expect "not a log line" "bad.txt:2: not a log line" "$W/bad.txt" -o "$W/x.png"
expect "output not .png" "must be a .png" "$W/run/log.txt" -o "$W/x.jpg"

echo
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
