#!/usr/bin/env python3
"""dev/bench_torch_gpt.py -- the lean PyTorch peer of dev/bench_cpu.sh: a GPT-2 training step
written the way a PyTorch user writes one, timed.

The model is GPT-2 (Radford et al. 2019) in standard modules: nn.Embedding for tokens and
positions, per block nn.LayerNorm -> nn.Linear(C, 3C) -> causal attention (softmax(QK^T/sqrt(hs))V
with a lower-triangular mask; torch 1.13 has no fused attention on the CPU) -> nn.Linear(C, C),
nn.LayerNorm -> nn.Linear(C, 4C) -> GELU (tanh) -> nn.Linear(4C, C), a final nn.LayerNorm, the
output layer tied to the token embedding, F.cross_entropy; torch.optim.AdamW (its default
implementation for this torch: foreach on 1.13), global-norm clipping at 1.0. The same shapes and
FLOPs as train_gpt's step; the weights are random (the speed does not depend on them), the
tokens random ids below V. dev/train_gpt.py --train is the other peer: the reference model, whose
hand-written ops check our numbers, and which is slower.

    dev/bench_torch_gpt.py [--layers 12 --heads 12 --channels 768 -B 4 -T 64 --steps 12]

Prints one line per step (ms), then "median_ms_per_step=M min_ms=A max_ms=B" over the steps after
the first two (warm-up: allocation). Run with OMP_NUM_THREADS set (dev/bench_cpu.sh does).
"""
import argparse
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, NH, maxT):
        super().__init__()
        self.NH = NH
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.fc_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.register_buffer("causal", torch.tril(torch.ones(maxT, maxT, dtype=torch.bool)))

    def forward(self, x):
        B, T, C = x.shape
        hs = C // self.NH
        q, k, v = self.qkv(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.NH, hs).transpose(1, 2) for t in (q, k, v))  # (B, NH, T, hs)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(~self.causal[:T, :T], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.proj(y)
        return x + self.fc_proj(F.gelu(self.fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, NH, C, V, maxT):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(maxT, C)
        self.blocks = nn.ModuleList(Block(C, NH, maxT) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        for m in self.modules():  # GPT-2's init: N(0, 0.02) weights, zero biases
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.blocks:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # the output layer is tied to wte
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--channels", type=int, default=768)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--max-seq-len", type=int, default=1024)
    ap.add_argument("-B", type=int, default=4)
    ap.add_argument("-T", type=int, default=64)
    ap.add_argument("--steps", type=int, default=12)
    a = ap.parse_args()
    if a.steps < 3 or a.T > a.max_seq_len or a.channels % a.heads != 0:
        ap.error("need --steps >= 3, T <= --max-seq-len and channels divisible by heads")
    torch.manual_seed(0)
    model = GPT(a.layers, a.heads, a.channels, a.vocab, a.max_seq_len)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    gen = torch.Generator().manual_seed(1)
    print("lean PyTorch GPT-2: L=%d NH=%d C=%d V=%d, %d parameters | B=%d T=%d | torch %s, %d threads"
          % (a.layers, a.heads, a.channels, a.vocab, sum(p.numel() for p in model.parameters()), a.B, a.T,
             torch.__version__, torch.get_num_threads()))
    times = []
    for s in range(a.steps):
        w = torch.randint(0, a.vocab, (a.B, a.T + 1), generator=gen)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(w[:, :-1], w[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ms = (time.perf_counter() - t0) * 1000
        times.append(ms)
        print("step %2d/%d | loss %.4f | %.1f ms" % (s + 1, a.steps, loss.item(), ms), flush=True)
    t = times[2:]
    print("median_ms_per_step=%.3f min_ms=%.3f max_ms=%.3f" % (float(np.median(t)), min(t), max(t)))


if __name__ == "__main__":
    main()
