"""
dev/eval_reference.py -- the PyTorch reference of multiple-choice evaluation (gptc/eval.h).

What it is: writes a small random model (dev/train_gpt.py's init, its wte scaled up so that the
model has preferences and the completions' scores are well apart), a crafted eval file in llm.c's
format (dev/evalfile.py) and a reference file (dev/train_gpt.py's format) holding, for every
completion, the sum and the mean of its tokens' cross-entropies given the context, computed here
one completion at a time with dev/train_gpt.py's model, and each example's choices:
  eval_sum, eval_mean (rows)    every completion's summed / mean cross-entropy, in file order
  eval_pred, eval_pred_norm (N) the lowest sum's and the lowest mean's index (ties: the lowest)
  eval_counts                   N, acc and acc_norm counts
test_gpt.c (--eval-ref, and by default) runs gptc/eval.h's scoring on the same model and file and
compares each completion within the fp32 bounds, and the choices.

The crafted file covers: K = 2..5 completions; contexts of 1 token up to longer than the model's
context (maxT=17 in the default model: cut from the left); completions of 1 to several tokens and
one of exactly maxT (the context then keeps 1 token); tokens 0 and V-1; an exact tie (the same
completion twice, the label on the second: the lowest index wins).

usage: python3 dev/eval_reference.py [--model L3H5C60T17V311] [--seed 1337] --out-model M
           --out-eval E --out-ref R
"""
import argparse, os, sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evalfile                                   # noqa: E402 (llm.c's eval format)
from train_gpt import (GPT, RefWriter, UserError, init_params, parse_model,   # noqa: E402
                       write_model)

WTE_SCALE = 10.0   # logits std ~ 1.5 instead of ~ 0.15: choices far apart against fp32 rounding


def crafted_examples(c, rng):
    """the examples (evalfile's dicts) for a model of context c.maxT and vocabulary c.V"""
    tok = lambda n: [int(t) for t in rng.integers(0, c.V, n)]
    ctx_lens = [1, 2, 5, 9, 16, c.maxT, c.maxT + 8, 3 * c.maxT]
    out = []
    for i in range(40):
        K = 2 + i % 4
        ends = [tok(int(rng.integers(1, 7))) for _ in range(K)]
        out.append({"ctx": tok(ctx_lens[i % len(ctx_lens)]), "endings": ends,
                    "label": int(rng.integers(0, K))})
    out[5]["endings"][1] = tok(c.maxT)             # the longest completion the context allows
    out[6]["ctx"][0], out[6]["endings"][0][-1] = 0, c.V - 1
    out[7]["endings"][2] = list(out[7]["endings"][0])   # an exact tie: the lowest index wins
    out[7]["label"] = 2
    return out


def score(model, c, ex):
    """each completion's summed and mean cross-entropy, one completion (one row) at a time"""
    longest = max(len(e) for e in ex["endings"])
    keep = min(len(ex["ctx"]), c.maxT + 1 - longest)          # the context cut from the left
    ctx = ex["ctx"][len(ex["ctx"]) - keep:]
    sums, means = [], []
    for end in ex["endings"]:
        row = torch.tensor([ctx + end], dtype=torch.long)     # (1, m)
        got = {}
        model(row[:, :-1], row[:, 1:], rec=lambda name, t: got.__setitem__(name, t))
        losses = F.cross_entropy(got["logits"][0].float(), row[0, 1:], reduction="none")
        s = float(losses[keep - 1:].double().sum())           # the completion's targets only
        sums.append(s)
        means.append(s / len(end))
    return sums, means


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="L3H5C60T17V311")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--out-model", required=True)
    p.add_argument("--out-eval", required=True)
    p.add_argument("--out-ref", required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    c = parse_model(a.model)
    params = init_params(c, a.seed)
    params["wte"] = (params["wte"] * WTE_SCALE).astype(np.float32)   # padding rows stay 0
    write_model(a.out_model, c, params)
    model = GPT(c, params)
    examples = crafted_examples(c, np.random.default_rng(a.seed))
    evalfile.write(a.out_eval, examples)
    sums, means, pred, pred_norm, closest = [], [], [], [], float("inf")
    with torch.no_grad():
        for ex in examples:
            s, m = score(model, c, ex)
            sums += s; means += m
            pred.append(int(np.argmin(s))); pred_norm.append(int(np.argmin(m)))   # first of ties
            for v in (s, m):
                gaps = np.diff(np.sort(v))
                if gaps[0] > 0:
                    closest = min(closest, gaps[0] / max(abs(min(v)), 1.0))
    if closest < 1e-4:      # a near-tie would make the choices depend on fp32 rounding
        raise UserError("the crafted examples have a near-tie (relative gap %.2g): change --seed" % closest)
    label = [ex["label"] for ex in examples]
    counts = [len(examples), sum(p == l for p, l in zip(pred, label)),
              sum(p == l for p, l in zip(pred_norm, label))]
    ref = RefWriter(a.out_ref)
    ref.add("eval_sum", np.array(sums, np.float32))
    ref.add("eval_mean", np.array(means, np.float32))
    ref.add("eval_pred", np.array(pred, np.int32))
    ref.add("eval_pred_norm", np.array(pred_norm, np.int32))
    ref.add("eval_counts", np.array(counts, np.int32))
    ref.close()
    print("eval reference: %s, %d examples, %d completions: acc %.4f acc_norm %.4f; closest "
          "non-tie gap %.3g relative; wrote %s %s %s" % (c.describe(), len(examples), len(sums),
          counts[1] / counts[0], counts[2] / counts[0], closest, a.out_model, a.out_eval, a.out_ref))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(1)
