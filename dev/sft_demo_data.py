#!/usr/bin/env python3
"""dev/sft_demo_data.py -- the data of dev/sft_demo.sh: Brown's genres as a classification task.

    dev/sft_demo_data.py BROWN_TEXT_DIR OUT_DIR [--words 40] [--eval-per-doc 8]

BROWN_TEXT_DIR holds the corpus as data/prepare.sh leaves it (data/.cache/brown_text: one file per
document, named by its category letter and number, ca01.txt ... cr09.txt). The split is
data/brown's: documents 0, 20, 40, ... in name order are validation (./tokenizer shards
--val-every 20), so the held-out documents are ones pretraining never saw.

Writes to OUT_DIR:
  sft_train.jsonl         {"prompt": PASSAGE + "\\nGenre:", "completion": " " + GENRE}, one record per
                          passage of --words words of every training document (./tokenizer sft
                          turns it into token shards with the loss on the completion only)
  sft_train_nomask.jsonl  the same text with an empty prompt: the loss counts every token
  genre_eval.bin          the held-out documents' passages (--eval-per-doc each, evenly spaced) as a
                          multiple-choice eval file (dev/evalfile.py: llm.c's format): the context
                          is PASSAGE + "\\nGenre:", the 15 completions " " + each genre, the label
                          the true one
and prints the class balance of the eval set and its majority-class baseline.
Tokens come from ./tokenizer encode (GPT-2's BPE, data/gpt2_tokenizer.bin).
"""
import argparse
import collections
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evalfile  # noqa: E402

# Brown's 15 categories (the letter after "c" in a file name), named by one or two plain words
GENRES = collections.OrderedDict([
    ("a", "news"), ("b", "editorial"), ("c", "review"), ("d", "religion"), ("e", "hobbies"),
    ("f", "lore"), ("g", "essay"), ("h", "government"), ("j", "learned"), ("k", "fiction"),
    ("l", "mystery"), ("m", "science fiction"), ("n", "adventure"), ("p", "romance"), ("r", "humor")])
VAL_EVERY = 20


def die(msg):
    print("error: " + msg, file=sys.stderr)
    sys.exit(1)


def encode(text):
    out = subprocess.run(["./tokenizer", "encode"], input=text.encode("utf-8"), capture_output=True)
    if out.returncode != 0:
        die("./tokenizer encode failed: " + out.stderr.decode("utf-8", "replace").strip())
    return [int(t) for t in out.stdout.split()]


def passages(path, words):
    text = open(path, encoding="utf-8").read().split()
    return [" ".join(text[i:i + words]) for i in range(0, len(text) - words + 1, words)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("brown_text")
    ap.add_argument("out")
    ap.add_argument("--words", type=int, default=40)
    ap.add_argument("--eval-per-doc", type=int, default=8)
    a = ap.parse_args()
    names = sorted(n for n in os.listdir(a.brown_text) if n.endswith(".txt")) if os.path.isdir(a.brown_text) else []
    if len(names) != 500:
        die("%s: expected Brown's 500 documents, found %d (run make data)" % (a.brown_text, len(names)))
    os.makedirs(a.out, exist_ok=True)
    endings = [encode(" " + g) for g in GENRES.values()]
    labels = list(GENRES)
    n_train, examples, counts = 0, [], collections.Counter()
    with open(os.path.join(a.out, "sft_train.jsonl"), "w") as masked, \
         open(os.path.join(a.out, "sft_train_nomask.jsonl"), "w") as plain:
        for d, name in enumerate(names):
            letter = name[1]
            if letter not in GENRES:
                die("%s: category letter %r is not one of Brown's" % (name, letter))
            ps = passages(os.path.join(a.brown_text, name), a.words)
            if d % VAL_EVERY != 0:
                for p in ps:
                    rec = {"prompt": p + "\nGenre:", "completion": " " + GENRES[letter]}
                    masked.write(json.dumps(rec) + "\n")
                    plain.write(json.dumps({"prompt": "", "completion": rec["prompt"] + rec["completion"]}) + "\n")
                    n_train += 1
                continue
            step = max(1, len(ps) // a.eval_per_doc)
            for p in ps[::step][:a.eval_per_doc]:
                examples.append({"ctx": encode(p + "\nGenre:"), "endings": endings, "label": labels.index(letter)})
                counts[GENRES[letter]] += 1
    evalfile.write(os.path.join(a.out, "genre_eval.bin"), examples)
    top, n_top = counts.most_common(1)[0]
    print("sft: %d training records (%d training documents, %d words a passage)" % (n_train, 475, a.words))
    print("eval: %d examples from %d held-out documents, %d genres; by genre: %s" % (
        len(examples), len(names) // VAL_EVERY, len(GENRES), ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
    print("majority baseline: %.4f (always '%s')" % (n_top / len(examples), top))


if __name__ == "__main__":
    main()
