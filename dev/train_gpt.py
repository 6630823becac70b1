"""
dev/train_gpt.py -- the PyTorch reference for train_gpt.c (formats: gptc/README.md; init: gptc/rand.h).

What it is: the same GPT-2 as the C trainer, written so that every intermediate the C code
computes is a real tensor here, plus the tools to produce what the C tests compare against:
  --self-test        check the numpy init RNG bit-for-bit against a scalar version, and more
  --write-reference  initial model file + reference file (activations, grads, K AdamW steps);
                     with --loss-mask, targets the loss does not count (supervised fine-tuning)
  --train            a plain training loop that prints per-step timings (the PyTorch baseline)

What it deliberately is not: a fast or general trainer. No sampling, no checkpoint resume.
Dropout (--dropout, for --write-reference) applies the C trainer's masks, drawn from the same
counter-based RNG, so the two compute the same activations and gradients. The reference path always runs on the CPU in float32 with the hand-written ops.

Non-obvious rules (gptc/rand.h and train_gpt.c state them for the C side):
- Init uses no torch RNG: a counter-based RNG (SplitMix64's mixer) + Marsaglia polar, computed
  in numpy so that C can reproduce every float32 bit. The RNG is written twice: a vectorized
  numpy version (used) and a scalar pure-Python one (the executable definition), see --self-test.
- wte is (Vp, C); rows V..Vp-1 are zero and stay exactly zero: the loss only reads the first V
  logit columns, so their gradient is exactly 0, and AdamW on (param 0, grad 0) moves nothing.
- LayerNorm and attention are written out by hand so that mean / rstd / softmax probabilities
  exist to be recorded. In --train the same math runs through fused torch ops instead
  (F.layer_norm, F.gelu(approximate='tanh'), and with --flash scaled_dot_product_attention).

Shapes: B batch, T time, C channels, NH heads, hs = C/NH head size, V vocab, Vp padded vocab,
L layers, A micro-batches per step (gradient accumulation), K optimizer steps.
"""
import argparse, contextlib, glob, inspect, math, os, struct, sys, tempfile, time
from dataclasses import dataclass

import numpy as np   # provides: the vectorized init RNG, file I/O
import torch         # provides: autograd, AdamW, clip_grad_norm_
import torch.nn as nn
import torch.nn.functional as F

MODEL_MAGIC, MODEL_VERSION_FP32 = 20240326, 3
SHARD_MAGIC, SHARD_VERSION = 20240520, 1
REF_MAGIC, REF_VERSION = 20261122, 1
HEADER_INTS = 256   # every file starts with int32[256] (1024 bytes)


class UserError(Exception):
    """Bad input. main() prints it as one 'error: ...' line and exits 1 (no traceback)."""

# ----------------------------------------------------------------------------------------------
# Init RNG. All integer math is uint64 with wraparound; all float math is float64, one IEEE
# rounding per operation (numpy never fuses a*b+c into an FMA; the C side must not either).

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MIX1, MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
SQRT_HALF, LN2 = 0.7071067811865476, 0.6931471805599453
MAX_ATTEMPTS = 64   # polar method fails one attempt with p = 1 - pi/4; 64 in a row never happens
TOKEN_STREAM = 16   # "tensor index" whose stream gives the random tokens
IGNORED = -1        # a target the loss does not count (train_gpt.c's IGNORED_TARGET)

def mix(z):
    """SplitMix64 finalizer on a Python int (scalar definition)."""
    z ^= z >> 30; z = (z * MIX1) & M64
    z ^= z >> 27; z = (z * MIX2) & M64
    z ^= z >> 31
    return z

def stream_key(seed, k):
    return mix((mix(seed & M64) + k) & M64)   # key_k = mix(mix(seed) + k)

def log_exact(s):
    """log(s) for s in (0,1) with only + - * / in a fixed order, so C gets the same bits."""
    m, e = math.frexp(s)                # s = m * 2^e, m in [0.5, 1)
    if m < SQRT_HALF:
        m = m * 2.0; e = e - 1          # now m in [sqrt(1/2), sqrt(2)): |t| <= 0.172
    t = (m - 1.0) / (m + 1.0)           # log(m) = 2 atanh(t) = 2 (t + t^3/3 + t^5/5 + ...)
    t2 = t * t
    p = 1.0 / 25.0
    for d in range(23, 0, -2):
        p = p * t2 + 1.0 / d
    return float(e) * LN2 + (2.0 * t) * p

def f32(v):
    """Round a float64 to float32 (nearest-even), as C's (float) cast does."""
    return struct.unpack("<f", struct.pack("<f", v))[0]

def normal_scalar(key, i):
    """Element i's standard normal z (float64) and the attempt j that produced it.
    The stored parameter is f32(z * std)."""
    for j in range(MAX_ATTEMPTS):
        u1 = mix((key + (i * 128 + 2 * j + 1) * GOLDEN) & M64)
        u2 = mix((key + (i * 128 + 2 * j + 2) * GOLDEN) & M64)
        x = float((u1 >> 11) | 1) * 2.0 ** -52 - 1.0   # odd 53-bit int -> exact, in (-1,1), != 0
        y = float((u2 >> 11) | 1) * 2.0 ** -52 - 1.0
        xx = x * x; yy = y * y; s = xx + yy
        if s < 1.0:
            z = x * math.sqrt((-2.0 * log_exact(s)) / s)
            return z, j
    raise RuntimeError("init RNG: no accepted attempt in %d tries (i=%d)" % (MAX_ATTEMPTS, i))

def _u64(v):
    return np.uint64(v & M64)

def mix_np(z):
    """mix() on a uint64 array, in place (array ops wrap silently, unlike numpy scalars)."""
    z ^= z >> np.uint64(30); z *= _u64(MIX1)
    z ^= z >> np.uint64(27); z *= _u64(MIX2)
    z ^= z >> np.uint64(31)
    return z

def unit_np(u):
    """uint64 draws -> float64 in (-1,1): ((u >> 11) | 1) * 2^-52 - 1, all steps exact."""
    return ((u >> np.uint64(11)) | np.uint64(1)).astype(np.float64) * 2.0 ** -52 - 1.0

def log_exact_np(s):
    m, e = np.frexp(s)
    small = m < SQRT_HALF
    m = np.where(small, m * 2.0, m)
    e = np.where(small, e - 1, e)
    t = (m - 1.0) / (m + 1.0)
    t2 = t * t
    p = np.full_like(s, 1.0 / 25.0)
    for d in range(23, 0, -2):
        p *= t2
        p += 1.0 / d
    return e.astype(np.float64) * LN2 + (2.0 * t) * p

def normal_np(key, idx):
    """Standard normals (float64) for element indices idx (uint64 array) + the attempt j of each."""
    base = _u64(key) + idx * _u64(128 * GOLDEN)          # key + i*128*GOLDEN, wrapping
    z = np.empty(idx.shape, np.float64)
    tries = np.zeros(idx.shape, np.int8)
    pending = np.arange(idx.size)                        # positions not accepted yet
    for j in range(MAX_ATTEMPTS):
        b = base[pending]
        x = unit_np(mix_np(b + _u64((2 * j + 1) * GOLDEN)))
        y = unit_np(mix_np(b + _u64((2 * j + 2) * GOLDEN)))
        s = x * x
        s += y * y
        ok = s < 1.0
        x, s, done = x[ok], s[ok], pending[ok]
        z[done] = x * np.sqrt((-2.0 * log_exact_np(s)) / s)
        tries[done] = j
        pending = pending[~ok]
        if pending.size == 0:
            return z, tries
    raise RuntimeError("init RNG: no accepted attempt in %d tries" % MAX_ATTEMPTS)

DROPOUT_STREAM = 17  # stream_key(seed, 17) gives the dropout pass keys

def dropout_pass_key(seed, n):
    """The key of forward pass n (the run's n-th micro-batch; train_gpt.c's dropout_pass_key)."""
    return mix((stream_key(seed, DROPOUT_STREAM) + n * GOLDEN) & M64)

class Dropout:
    """train_gpt.c's dropout: element i of site s is dropped iff draw(stream_key(pass key, s), i) >> 40
    is below floor(p * 2^24 + 0.5); kept elements are scaled by 1/(1-p) (in float32). Sites: 0 the
    embeddings, 1+3l layer l's attention probabilities, 2+3l its attention branch, 3+3l its MLP branch;
    elements are numbered row-major over the tensor ((B,T,C), or (B,NH,T,T) for the probabilities)."""
    def __init__(self, p, pass_key):
        self.threshold = int(float(np.float32(p)) * 16777216.0 + 0.5)
        self.scale = float(np.float32(1.0) / (np.float32(1.0) - np.float32(p)))   # float32, as in C
        self.key = pass_key

    def __call__(self, x, site):
        """x * mask * 1/(1-p): autograd gives the backward (the same mask on the gradient)."""
        key = stream_key(self.key, site)
        n = np.arange(x.numel(), dtype=np.uint64)
        keep = (mix_np(_u64(key) + n * _u64(GOLDEN)) >> np.uint64(40)) >= np.uint64(self.threshold)
        mask = torch.from_numpy(keep.reshape(tuple(x.shape))).to(x.dtype)
        return x * mask * self.scale

def random_tokens(seed, count, V, offset=0):
    """token n = draw(16, n) % V for n = offset .. offset+count-1 (row-major over the batch)."""
    n = np.arange(offset, offset + count, dtype=np.uint64)
    u = mix_np(_u64(stream_key(seed, TOKEN_STREAM)) + n * _u64(GOLDEN))
    return (u % np.uint64(V)).astype(np.int32)

# ----------------------------------------------------------------------------------------------
# Config and the parameter table (the one place that lists names, shapes, init and decay).

@dataclass
class Config:
    maxT: int
    V: int
    L: int
    NH: int
    C: int

    @property
    def Vp(self):
        return (self.V + 127) // 128 * 128

    def describe(self):
        return "L=%d NH=%d C=%d maxT=%d V=%d Vp=%d" % (self.L, self.NH, self.C, self.maxT, self.V, self.Vp)

def check_config(c, where):
    for k in ("maxT", "V", "L", "NH", "C"):
        if getattr(c, k) <= 0:
            raise UserError("%s: %s must be positive, got %d" % (where, k, getattr(c, k)))
    if c.C % c.NH:
        raise UserError("%s: C=%d is not divisible by the head count NH=%d" % (where, c.C, c.NH))
    return c

def parse_model(desc):
    """'d12' / 'dN' or letter+integer pairs like 'L3H5C60T17V311' (README.md's Flags: descriptors)."""
    fixed = {12: (12, 768), 24: (16, 1024), 36: (20, 1280), 48: (25, 1600)}   # L -> (NH, C)
    if len(desc) > 1 and desc[0] == "d" and desc[1:].isdigit():
        L = int(desc[1:])
        NH, C = fixed.get(L, (L, 64 * L))
        return check_config(Config(1024, 50257, L, NH, C), "model '%s'" % desc)
    vals, pos = {}, 0
    while pos < len(desc):
        letter, pos = desc[pos], pos + 1
        start = pos
        while pos < len(desc) and desc[pos].isdigit():
            pos += 1
        if letter not in "LHCTV" or pos == start or letter in vals:
            raise UserError("invalid model descriptor '%s' (expected d12, dN, or letter+integer "
                            "pairs from L H C T V, e.g. L3H5C60T17V311)" % desc)
        vals[letter] = int(desc[start:pos])
    if not all(k in vals for k in "LHC"):
        raise UserError("invalid model descriptor '%s': L, H and C are required" % desc)
    return check_config(Config(vals.get("T", 1024), vals.get("V", 50257), vals["L"], vals["H"],
                               vals["C"]), "model '%s'" % desc)

def param_table(c):
    """[(name, shape, init, std, decay)] in file order; init is 'normal', 'ones' or 'zeros'."""
    L, C = c.L, c.C
    std, resid = 0.02, 0.02 / math.sqrt(2.0 * L)   # residual projections: scaled by depth
    return [("wte", (c.Vp, C), "normal", std, True), ("wpe", (c.maxT, C), "normal", std, True),
            ("ln1w", (L, C), "ones", 0, False), ("ln1b", (L, C), "zeros", 0, False),
            ("qkvw", (L, 3 * C, C), "normal", std, True), ("qkvb", (L, 3 * C), "zeros", 0, False),
            ("attprojw", (L, C, C), "normal", resid, True), ("attprojb", (L, C), "zeros", 0, False),
            ("ln2w", (L, C), "ones", 0, False), ("ln2b", (L, C), "zeros", 0, False),
            ("fcw", (L, 4 * C, C), "normal", std, True), ("fcb", (L, 4 * C), "zeros", 0, False),
            ("fcprojw", (L, C, 4 * C), "normal", resid, True), ("fcprojb", (L, C), "zeros", 0, False),
            ("lnfw", (C,), "ones", 0, False), ("lnfb", (C,), "zeros", 0, False)]

def init_params(c, seed, chunk=1 << 20):
    """{name: float32 array} as gptc/rand.h's init specification defines them; normals are generated `chunk` elements at a time."""
    params = {}
    for k, (name, shape, init, std, _) in enumerate(param_table(c)):
        a = np.zeros(int(np.prod(shape)), np.float32)
        if init == "ones":
            a[:] = 1.0
        elif init == "normal":
            key = stream_key(seed, k)
            n = c.V * c.C if name == "wte" else a.size        # wte: rows >= V stay 0
            for start in range(0, n, chunk):
                idx = np.arange(start, min(n, start + chunk), dtype=np.uint64)
                a[start:start + idx.size] = (normal_np(key, idx)[0] * std).astype(np.float32)
        params[name] = a.reshape(shape)
    return params

# ----------------------------------------------------------------------------------------------
# The model. One nn.Parameter per table row, with the stacked (L, ...) shapes of the table.

def layernorm(x, w, b):
    """x (B,T,C) -> out (B,T,C), mean (B,T), rstd (B,T). PyTorch LayerNorm: biased var, eps 1e-5."""
    mean = x.mean(-1, keepdim=True)
    xc = x - mean
    rstd = (xc.pow(2).mean(-1, keepdim=True) + 1e-5).rsqrt()
    return xc * rstd * w + b, mean.squeeze(-1), rstd.squeeze(-1)

def gelu_tanh(x):
    """GELU, tanh approximation (Hendrycks & Gimpel 2016), as in GPT-2."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))

class GPT(nn.Module):
    def __init__(self, c, params):
        super().__init__()
        self.c, self.names = c, [row[0] for row in param_table(c)]
        self.decay = {row[0]: row[4] for row in param_table(c)}
        for name in self.names:                       # registration order = file order
            # shares memory with params[name] when it is already float32 (d12: saves 0.5 GB)
            setattr(self, name, nn.Parameter(torch.from_numpy(np.require(params[name], np.float32, "CW"))))
        self.fused, self.flash = False, False         # set by --train only

    def forward(self, idx, targets, rec=None, drop=None, reduce="mean"):
        """idx, targets (B,T) int64 -> the loss: the mean over the targets that count (a target
        IGNORED = -1 does not: loss 0, no gradient, as cross_entropy's ignore_index), or with
        reduce="sum" their sum. rec(name, tensor) receives every intermediate.
        drop: a Dropout (this pass's masks), or None. Recorded: encoded, attproj and fcproj after
        their dropout, att (the probabilities) before it, as train_gpt.c keeps them."""
        c = self.c
        B, T = idx.shape
        C, NH, hs, V = c.C, c.NH, c.C // c.NH, c.V
        save = rec if rec is not None else (lambda name, t: None)
        ln = ((lambda x, w, b: (F.layer_norm(x, (C,), w, b, 1e-5), None, None)) if self.fused
              else layernorm)
        act = (lambda x: F.gelu(x, approximate="tanh")) if self.fused else gelu_tanh
        # per-layer views of the stacked (L, ...) params, taken once: the backward of unbind is one
        # stack, whereas indexing self.qkvw[l] L times would accumulate L full-size (L, ...) grads
        p = {n: getattr(self, n).unbind(0) for n in self.names if n not in ("wte", "wpe", "lnfw", "lnfb")}
        dropout = drop or (lambda x, site: x)                           # the identity without dropout
        x = dropout(self.wte[idx] + self.wpe[:T], 0)                    # (B,T,C)
        save("encoded", x)
        for l in range(c.L):
            h, mean, rstd = ln(x, p["ln1w"][l], p["ln1b"][l])            # (B,T,C), (B,T), (B,T)
            save("ln1.%d" % l, h); save("ln1_mean.%d" % l, mean); save("ln1_rstd.%d" % l, rstd)
            qkv = h @ p["qkvw"][l].t() + p["qkvb"][l]                   # (B,T,3C) = [q | k | v]
            save("qkv.%d" % l, qkv)
            q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in qkv.split(C, dim=2))  # (B,NH,T,hs)
            if self.flash and rec is None and drop is None:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B,NH,T,T)
                future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
                att = F.softmax(att.masked_fill(future, float("-inf")), dim=-1)  # exp(-inf) = 0 exactly
                save("att.%d" % l, att)
                y = dropout(att, 1 + 3 * l) @ v                         # (B,NH,T,hs)
            y = y.transpose(1, 2).contiguous().view(B, T, C)            # heads side by side
            save("atty.%d" % l, y)
            y = dropout(y @ p["attprojw"][l].t() + p["attprojb"][l], 2 + 3 * l)  # (B,T,C)
            save("attproj.%d" % l, y)
            x = x + y
            save("residual2.%d" % l, x)
            h, mean, rstd = ln(x, p["ln2w"][l], p["ln2b"][l])
            save("ln2.%d" % l, h); save("ln2_mean.%d" % l, mean); save("ln2_rstd.%d" % l, rstd)
            h = h @ p["fcw"][l].t() + p["fcb"][l]                       # (B,T,4C)
            save("fch.%d" % l, h)
            h = act(h)
            save("fch_gelu.%d" % l, h)
            h = dropout(h @ p["fcprojw"][l].t() + p["fcprojb"][l], 3 + 3 * l)  # (B,T,C)
            save("fcproj.%d" % l, h)
            x = x + h
            save("residual3.%d" % l, x)
        h, mean, rstd = ln(x, self.lnfw, self.lnfb)
        save("lnf", h); save("lnf_mean", mean); save("lnf_rstd", rstd)
        logits = (h @ self.wte.t())[:, :, :V]      # (B,T,V): tied head; padded columns never used
        save("logits", logits)
        losses = F.cross_entropy(logits.reshape(B * T, V).float(), targets.reshape(-1),
                                 ignore_index=IGNORED, reduction="none").view(B, T)
        save("losses", losses)
        counted = targets != IGNORED
        loss = (losses.sum() if reduce == "sum" else losses.mean() if bool(counted.all())
                else losses.sum() / counted.sum())
        save("loss", loss)
        return loss

def make_optimizer(model, a, fused=False):
    """torch AdamW with two groups: weight decay only on the params the table marks 'decay'."""
    groups = [{"params": [p for n, p in model.named_parameters() if model.decay[n]], "weight_decay": a.wd},
              {"params": [p for n, p in model.named_parameters() if not model.decay[n]], "weight_decay": 0.0}]
    extra = {"fused": True} if fused else {}
    return torch.optim.AdamW(groups, lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps, **extra)

def clip_grad_norm(params, max_norm):
    """torch.nn.utils.clip_grad_norm_'s rule (grads *= clip/(norm + 1e-6) when that is < 1) with the
    norm summed in float64. torch 1.13's CPU float32 norm loses ~0.4% on d12 (17.572 instead of
    17.635 for the reference's own gradients, measured): that error belongs to no implementation."""
    params = [p for p in params if p.grad is not None]
    norm = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in params))
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0:
        for p in params:
            p.grad.mul_(coef)
    return norm

def lr_at(s, S, a):
    """lr of update n = s + 1 of S (train_gpt.c's lr_schedule): linear warmup reaching lr at n = warmup,
    then cosine decay reaching exactly lr*final_frac at n = S."""
    n = s + 1
    if n <= a.warmup:
        return a.lr * n / a.warmup
    r = min(1.0, (n - a.warmup) / (S - a.warmup))
    min_lr = a.lr * a.final_frac
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * r)) * (a.lr - min_lr)

# ----------------------------------------------------------------------------------------------
# Files: model (llm.c v3 fp32), token shards (llm.c), reference (ours). Written to a temp file
# and renamed, so a crash never leaves a half-written file under the final name.

def _header(*vals):
    h = np.zeros(HEADER_INTS, np.int32)
    h[:len(vals)] = vals
    return h.tobytes()

@contextlib.contextmanager
def atomic_open(path):
    tmp = path + ".tmp"
    try:
        f = open(tmp, "wb")
    except OSError as e:
        raise UserError("cannot write %s: %s" % (path, e.strerror))
    try:
        with f:
            yield f
    except BaseException:
        os.remove(tmp)
        raise
    os.replace(tmp, path)

def write_model(path, c, tensors):
    """tensors: {name: array or tensor}; header then every parameter in table order."""
    with atomic_open(path) as f:
        f.write(_header(MODEL_MAGIC, MODEL_VERSION_FP32, c.maxT, c.V, c.L, c.NH, c.C, c.Vp))
        for name, *_ in param_table(c):
            t = tensors[name]
            t = t.detach().cpu().numpy() if torch.is_tensor(t) else t
            f.write(np.ascontiguousarray(t, np.float32).tobytes())

def read_header(path, f, magic, what, hint):
    raw = f.read(HEADER_INTS * 4)
    if len(raw) < HEADER_INTS * 4:
        raise UserError("%s: truncated %s header (%d of %d bytes)" % (path, what, len(raw), HEADER_INTS * 4))
    h = np.frombuffer(raw, np.int32)
    if h[0] != magic:
        raise UserError("%s: bad magic %d, expected %d: not a %s (%s)" % (path, h[0], magic, what, hint))
    return h

def read_model(path):
    """-> (Config, {name: float32 array}). Checks magic, version, sizes and the exact file length."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise UserError("cannot open model file %s: %s" % (path, e.strerror))
    with f:
        h = read_header(path, f, MODEL_MAGIC, "model file", "hint: write one with --write-reference")
        if h[1] != MODEL_VERSION_FP32:
            raise UserError("%s: model version %d, expected %d (fp32); hint: export in fp32"
                            % (path, h[1], MODEL_VERSION_FP32))
        c = check_config(Config(*(int(v) for v in h[2:7])), path)
        if h[7] != c.Vp:
            raise UserError("%s: header Vp=%d, expected %d (V=%d rounded up to 128)" % (path, h[7], c.Vp, c.V))
        table = param_table(c)
        want = HEADER_INTS * 4 + 4 * sum(int(np.prod(s)) for _, s, *_ in table)
        have = os.fstat(f.fileno()).st_size
        if have != want:
            raise UserError("%s: %s: %d bytes, expected %d for %s" % (path, "truncated" if have < want
                            else "trailing data", have, want, c.describe()))
        return c, {name: np.fromfile(f, np.float32, int(np.prod(s))).reshape(s) for name, s, *_ in table}

class RefWriter:
    """Streams records to disk (d12's reference is ~1 GB); the record count is patched in at close."""
    def __init__(self, path):
        self.path, self.n = path, 0
        self._ctx = atomic_open(path)
        self.f = self._ctx.__enter__()
        self.f.write(_header())

    def add(self, name, t):
        a = t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)
        code = 1 if a.dtype.kind in "iu" else 0
        a = np.asarray(a, np.int32 if code else np.float32, order="C")   # (ascontiguousarray makes 0-d 1-d)
        nb = name.encode()
        self.f.write(struct.pack("<i", len(nb)) + nb + struct.pack("<ii", code, a.ndim))
        self.f.write(np.array(a.shape, np.int32).tobytes() + a.tobytes())
        self.n += 1

    def close(self):
        self.f.seek(0)
        self.f.write(_header(REF_MAGIC, REF_VERSION, self.n))
        self._ctx.__exit__(None, None, None)

def read_reference(path):
    """-> {name: array} in file order (used by --self-test; handy for debugging the C side)."""
    with open(path, "rb") as f:
        h = read_header(path, f, REF_MAGIC, "reference file", "hint: write one with --write-reference")
        out = {}
        for _ in range(int(h[2])):
            nlen, = struct.unpack("<i", f.read(4))
            name = f.read(nlen).decode()
            code, ndim = struct.unpack("<ii", f.read(8))
            shape = tuple(np.frombuffer(f.read(4 * ndim), np.int32))
            out[name] = np.fromfile(f, np.int32 if code else np.float32, int(np.prod(shape))).reshape(shape)
        return out

class ShardLoader:
    """Consecutive (B, T+1) windows over llm.c token shards (int32 header, then uint16 tokens)."""
    def __init__(self, pattern, B, T, V):
        self.files = sorted(glob.glob(pattern))
        if not self.files:
            raise UserError("no token shards match '%s'" % pattern)
        self.B, self.T, self.V, self.shard, self.pos = B, T, V, -1, 0
        self._next_shard()

    def _next_shard(self):
        self.shard = (self.shard + 1) % len(self.files)
        path = self.files[self.shard]
        with open(path, "rb") as f:
            h = read_header(path, f, SHARD_MAGIC, "token shard", "hint: see data/")
        ntok, size = int(h[2]), os.path.getsize(path)
        if h[1] != SHARD_VERSION or ntok < self.B * self.T + 1 or size != HEADER_INTS * 4 + 2 * ntok:
            raise UserError("%s: version %d, %d tokens, %d bytes: need version %d, >= %d tokens (B*T+1), "
                            "and 1024+2*ntok bytes" % (path, h[1], ntok, size, SHARD_VERSION, self.B * self.T + 1))
        self.tokens = np.memmap(path, np.uint16, "r", HEADER_INTS * 4, (ntok,))
        self.pos = 0

    def next(self):
        n = self.B * self.T + 1
        if self.pos + n > len(self.tokens):
            self._next_shard()
        w = np.array(self.tokens[self.pos:self.pos + n], np.int64)
        self.pos += n - 1                        # windows overlap by one token (the last target)
        if w.max() >= self.V:
            raise UserError("%s: token %d >= vocab size %d" % (self.files[self.shard], w.max(), self.V))
        return np.stack([w[b * self.T: (b + 1) * self.T + 1] for b in range(self.B)])   # (B, T+1)

# ----------------------------------------------------------------------------------------------
# Modes

def load_config_and_params(a, sizes):
    """Config from --load or --model; the batch sizes are checked before the (slow) init."""
    if a.load and a.model:
        raise UserError("give --model or --load, not both")
    c, params = read_model(a.load) if a.load else (parse_model(a.model or "d12"), None)
    for n in sizes:
        if getattr(a, n) <= 0:
            raise UserError("%s must be positive, got %d" % (n, getattr(a, n)))
    if a.T > c.maxT:
        raise UserError("T=%d exceeds the model's maxT=%d" % (a.T, c.maxT))
    if not 0 <= a.seed < 2 ** 31:
        raise UserError("seed must be in [0, 2^31) (it is stored as int32), got %d" % a.seed)
    if params is None:
        t0 = time.time()
        params = init_params(c, a.seed)
        print("init %s seed %d: %d params in %.1f s" % (c.describe(), a.seed,
              sum(p.size for p in params.values()), time.time() - t0))
    return c, params

def loss_mask(A, B, T, seed):
    """(A,B,T) int32, 1 where a target counts: micro-batch m keeps a fraction (0.5, 0.15, 0) of
    them (m mod 3), in runs like a prompt's and a completion's; micro-batch 0's row 1 keeps none,
    and micro-batch 0 keeps at least one (its forward's mean is recorded)"""
    rng = np.random.default_rng(seed)
    mask = np.zeros((A, B, T), np.int32)
    for m in range(A):
        keep = (0.5, 0.15, 0.0)[m % 3]
        on = rng.random() < keep
        for i in range(B * T):
            if rng.random() < 0.25:             # a run ends: the next is counted with p = keep
                on = rng.random() < keep
            mask[m].flat[i] = on
    if B > 1:
        mask[0, 1] = 0
    mask[0, 0, -1] = 1
    return mask

def write_reference(a):
    c, params = load_config_and_params(a, ("B", "T", "A", "K"))
    t0 = time.time()
    write_model(a.out_model, c, params)              # the initial parameters
    model = GPT(c, params)
    B, T, A, K = a.B, a.T, a.A, a.K
    if a.loss_mask:   # one stream cut as the C loader cuts a shard: micro-batch m's row b is
        # stream[m*B*T + b*T .. + T] (T+1 tokens: the rows overlap by one), so test_gpt can train
        # on it as a shard; mask: which targets count (micro-batches with different counts)
        stream = random_tokens(a.seed, A * B * T + 1, c.V)
        tokens = np.stack([np.stack([stream[(m * B + b) * T:(m * B + b + 1) * T + 1] for b in range(B)])
                           for m in range(A)])
        mask = loss_mask(A, B, T, a.seed)
    else:
        tokens = random_tokens(a.seed, A * B * (T + 1), c.V).reshape(A, B, T + 1)
        mask = np.ones((A, B, T), np.int32)
    batches = [(torch.from_numpy(tk[:, :T]).long(),
                torch.where(torch.from_numpy(mk) != 0, torch.from_numpy(tk[:, 1:]).long(), IGNORED))
               for tk, mk in zip(tokens, mask)]
    ref = RefWriter(a.out_ref)
    ref.add("config", np.array([B, T, A, K, a.seed], np.int32))
    ref.add("hparams", np.array([a.lr, a.beta1, a.beta2, a.eps, a.wd, a.clip, a.warmup, a.final_frac], np.float32))
    ref.add("tokens", tokens)
    if a.loss_mask:
        ref.add("mask", mask)
    # dropout: pass n = the n-th micro-batch of the run (step k's micro-batch m is pass k*A + m),
    # as the C training loop numbers them on one rank; the recorded forward is pass 0
    drop = (lambda n: Dropout(a.dropout, dropout_pass_key(a.seed, n))) if a.dropout > 0 else (lambda n: None)
    if a.dropout > 0:
        ref.add("dropout", np.array([a.dropout], np.float32))
    # forward + backward of micro-batch 0 alone (its mean loss over its counted targets, not
    # divided by A)
    loss0 = model(*batches[0], rec=ref.add, drop=drop(0))
    loss0.backward()
    for name, p in model.named_parameters():
        ref.add("grad." + name, p.grad)
    pad = model.wte.grad[c.V:].abs().max().item() if c.Vp > c.V else 0.0
    if pad != 0.0:
        raise RuntimeError("gradient of padded wte rows is %g, must be exactly 0" % pad)
    # K steps, each over all A micro-batches (the same ones every step). With a loss mask the
    # step's loss is the sum over every micro-batch's counted targets / their count N (not a mean
    # of the micro-batches' means), the gradient that of it: each micro-batch adds sum / N.
    N = max(int(mask.sum()), 1)   # (none counted: loss 0 and zero gradient, as in train_gpt.c)
    opt = make_optimizer(model, a)
    step_loss, step_norm, step_lr = [], [], []
    for s in range(K):
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for m, (x, y) in enumerate(batches):
            if a.loss_mask:
                loss = model(x, y, drop=drop(s * A + m), reduce="sum")
                (loss / N).backward()
            else:
                loss = model(x, y, drop=drop(s * A + m))
                (loss / A).backward()
            total += loss.item()
        norm = clip_grad_norm(model.parameters(), a.clip)
        lr = lr_at(s, K, a)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        step_loss.append(total / (N if a.loss_mask else A)); step_norm.append(norm); step_lr.append(lr)
        print("step %d/%d | loss %.6f | norm %.4f | lr %.4e" % (s + 1, K, step_loss[-1], norm, lr))
    for name, v in (("step_loss", step_loss), ("step_norm", step_norm), ("step_lr", step_lr)):
        ref.add(name, np.array(v, np.float32))
    for name, p in model.named_parameters():
        ref.add("final." + name, p)
    ref.close()
    pad = model.wte[c.V:].abs().max().item() if c.Vp > c.V else 0.0
    print("config %s | B=%d T=%d A=%d K=%d seed=%d" % (c.describe(), B, T, A, K, a.seed))
    print("loss0 %.6f (ln V = %.6f) | padded wte rows: grad 0, max |value| after %d steps %g"
          % (loss0.item(), math.log(c.V), K, pad))
    print("step losses: %s%s" % (" ".join("%.6f" % v for v in step_loss),
          "" if K < 2 or step_loss[-1] < step_loss[0] else "   WARNING: loss did not fall"))
    print("wrote %s (%d bytes), %s (%d records, %d bytes) in %.1f s" % (a.out_model, os.path.getsize(a.out_model),
          a.out_ref, ref.n, os.path.getsize(a.out_ref), time.time() - t0))

def train(a):
    if a.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: torch %s sees no CUDA device" % torch.__version__)
    if a.dtype == "bfloat16" and a.device != "cuda":
        raise UserError("--dtype bfloat16 needs --device cuda")
    if a.compile and not hasattr(torch, "compile"):
        raise UserError("--compile needs torch >= 2.0 (this is %s)" % torch.__version__)
    if a.flash and not hasattr(F, "scaled_dot_product_attention"):
        raise UserError("--flash needs torch >= 2.0 (this is %s)" % torch.__version__)
    if a.fused_adamw and (a.device != "cuda" or "fused" not in inspect.signature(torch.optim.AdamW).parameters):
        raise UserError("--fused-adamw needs --device cuda and torch >= 2.0")
    if a.device == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        print("warning: OMP_NUM_THREADS is unset; torch picks %d threads" % torch.get_num_threads(), file=sys.stderr)
    c, params = load_config_and_params(a, ("B", "T", "A", "steps"))
    if a.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = GPT(c, params).to(a.device)
    model.fused, model.flash = True, a.flash
    fwd = torch.compile(model) if a.compile else model
    opt = make_optimizer(model, a, a.fused_adamw)
    loader = ShardLoader(a.input, a.B, a.T, c.V) if a.input else None
    bf16 = a.dtype == "bfloat16"     # autocast: matmuls in bf16, params / grads / AdamW stay fp32
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    opts = [o for o in ("compile", "flash", "fused_adamw") if getattr(a, o)]
    print("train %s | B=%d T=%d A=%d steps=%d | %s %s %s" % (c.describe(), a.B, a.T, a.A, a.steps, a.device,
          a.dtype, " ".join(opts)))
    ntok, times = a.B * (a.T + 1), []
    for s in range(a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for m in range(a.A):
            if loader:
                w = loader.next()
            else:                    # fresh random tokens per micro-batch (or batch 0 with --overfit)
                w = random_tokens(a.seed, ntok, c.V, 0 if a.overfit else (s * a.A + m) * ntok).reshape(a.B, a.T + 1)
            w = torch.from_numpy(np.asarray(w, np.int64)).to(a.device)
            with autocast():
                loss = fwd(w[:, :-1], w[:, 1:])
            (loss / a.A).backward()
            loss_sum = loss_sum + loss.detach()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        lr = lr_at(s, a.steps, a)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        if a.device == "cuda":
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1000
        times.append(ms)
        print("step %4d/%d | loss %.6f | norm %.4f | lr %.4e | %.1f ms" % (s + 1, a.steps, float(loss_sum) / a.A,
              float(norm), lr, ms), flush=True)
    if a.out_model:
        write_model(a.out_model, c, dict(model.named_parameters()))
    timed = times[2:] if len(times) > 2 else times    # the first steps pay for allocation / compile
    med = float(np.median(timed))
    print("tokens/s %.0f" % (a.A * a.B * a.T / (med / 1000)))
    print("median_ms_per_step=%.3f" % med)
    if a.device == "cuda":
        print("peak_gpu_mib=%.0f" % (torch.cuda.max_memory_allocated() / 1048576))

# ----------------------------------------------------------------------------------------------
# Self-test: the RNG bit for bit, the file formats, and the model's basic physics.

def raises(fn, *args):
    """The UserError message fn(*args) raises, or None."""
    try:
        fn(*args)
    except UserError as e:
        return str(e)
    return None

def self_test():
    results = []
    def check(name, ok, detail=""):
        results.append(ok)
        print("%-44s %s %s" % (name, "ok  " if ok else "FAIL", detail))

    s, got = 1234567, []              # SplitMix64's published first outputs for seed 1234567
    for _ in range(3):
        s = (s + GOLDEN) & M64; got.append(mix(s))
    check("mix == SplitMix64 test vector", got == [6457827717110365317, 3203168211198807973, 9817491932198370423])
    ss = np.random.default_rng(0).uniform(1e-300, 1.0, 20000)
    rel = max(abs(log_exact(v) - math.log(v)) / abs(math.log(v)) for v in ss)
    check("log_exact ~ math.log", rel < 1e-15, "max rel err %.2e" % rel)
    check("log_exact_np == log_exact (bits)", np.array_equal(log_exact_np(ss), np.array([log_exact(v) for v in ss])))
    # dropout's mask, vectorized, against its scalar definition (keep iff draw >> 40 >= threshold)
    d = Dropout(0.3, dropout_pass_key(1337, 5))
    kept = d(torch.ones(4, 7, 9), 4).flatten().numpy() != 0
    key = stream_key(d.key, 4)
    want = np.array([mix((key + i * GOLDEN) & M64) >> 40 >= d.threshold for i in range(kept.size)])
    check("dropout mask: vectorized == scalar", np.array_equal(kept, want),
          "%d of %d kept (p = 0.3)" % (kept.sum(), kept.size))

    c = parse_model("L3H5C60T17V311")
    params = init_params(c, 1337, chunk=1000)      # small chunks: exercise chunk boundaries
    pick = np.random.default_rng(1)
    for k, (name, shape, init, std, _) in enumerate(param_table(c)):
        if name not in ("wte", "attprojw", "fcprojw"):
            continue
        n = c.V * c.C if name == "wte" else int(np.prod(shape))
        idx = np.unique(np.concatenate([np.arange(1500), pick.integers(0, n, 1500), [n - 1]]))
        want = [normal_scalar(stream_key(1337, k), int(i)) for i in idx]
        z = np.array([z for z, _ in want])
        vals = np.array([f32(z * std) for z, _ in want], np.float32)
        tries = np.array([j for _, j in want])
        z_np, tries_np = normal_np(stream_key(1337, k), idx.astype(np.uint64))
        ok = (np.array_equal(vals.view(np.uint32), params[name].reshape(-1)[idx].view(np.uint32))
              and np.array_equal(z.view(np.uint64), z_np.view(np.uint64))      # float64 bits: stricter
              and np.array_equal(tries, tries_np) and (tries >= 1).sum() > 0)
        check("init %s: vectorized == scalar" % name, ok, "%d elements, %d with j>=1, %d with j>=2, max j %d"
              % (idx.size, (tries >= 1).sum(), (tries >= 2).sum(), tries.max()))
    idx = np.concatenate([pick.integers(0, 124475904, 100), pick.integers(0, 1 << 40, 100)]).astype(np.uint64)
    want = np.array([normal_scalar(stream_key(42, 4), int(i))[0] for i in idx])
    check("large indices (d12 size, 2^40): np == scalar", np.array_equal(want, normal_np(stream_key(42, 4), idx)[0]))
    check("wte padded rows are 0, ln ones, biases 0", not params["wte"][c.V:].any() and (params["ln1w"] == 1).all()
          and not params["qkvb"].any() and (params["lnfw"] == 1).all())
    big = normal_np(stream_key(7, 0), np.arange(1 << 20, dtype=np.uint64))[0]
    check("normals: mean ~ 0, std ~ 1", abs(big.mean()) < 5e-3 and abs(big.std() - 1) < 5e-3,
          "mean %.4f std %.4f" % (big.mean(), big.std()))
    # for the C side to cross-check; wte[:4] depends only on seed and k, so it is the same for
    # every config (d12, L3H5C60T17V311, ...); the tokens depend on V
    z = [normal_scalar(stream_key(1337, 0), i)[0] for i in range(4)]
    w = [f32(v * 0.02) for v in z]
    print("  wte[:4] seed 1337 (any config): %s  bits %s" % (" ".join("%.9g" % v for v in w),
          " ".join("%08x" % struct.unpack("<I", struct.pack("<f", v))[0] for v in w)))
    print("  their z (float64, before *std): %s" % " ".join(v.hex() for v in z))
    for V in (50257, 311):
        print("  tokens[:8] seed 1337 V=%d: %s" % (V, random_tokens(1337, 8, V).tolist()))
    check("d12 parameter count", sum(int(np.prod(s)) for _, s, *_ in param_table(parse_model("d12"))) == 124475904)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.bin")
        write_model(path, c, params)
        c2, p2 = read_model(path)
        check("model file round trip", c2 == c and all(np.array_equal(params[n], p2[n]) for n in params)
              and os.path.getsize(path) == 1024 + 4 * sum(p.size for p in params.values()))
        raw = open(path, "rb").read()
        for what, data in (("truncated", raw[:-4]), ("wrong magic", b"\1" + raw[1:]), ("short header", raw[:100])):
            open(path, "wb").write(data)
            msg = raises(read_model, path)
            check("model file %s -> error" % what, msg is not None, msg or "")
        for bad in ("L3H5", "L3H5C61", "X3H5C60", "L3H5C60V0", "L3L3H5C60", "d"):
            check("descriptor %r -> error" % bad, raises(parse_model, bad) is not None)
        # tiny reference, read back
        ns = argparse.Namespace(model="L2H2C8T9V130", load=None, seed=5, B=2, T=7, A=2, K=3, lr=1e-2, beta1=0.9,
                                beta2=0.95, eps=1e-8, wd=0.1, clip=1.0, warmup=1, final_frac=0.1, dropout=0.0,
                                loss_mask=False, out_model=os.path.join(tmp, "r.bin"), out_ref=os.path.join(tmp, "r.ref"))
        with contextlib.redirect_stdout(open(os.devnull, "w")):
            write_reference(ns)
        r = read_reference(ns.out_ref)
        check("reference file: records and shapes", len(r) == 3 + 1 + 2 * 15 + 6 + 16 + 3 + 16 and
              r["att.1"].shape == (2, 2, 7, 7) and r["logits"].shape == (2, 7, 130) and r["loss"].shape == ()
              and r["grad.wte"].shape == (256, 8) and r["tokens"].dtype == np.int32 and r["step_lr"].shape == (3,))
        check("reference: att 0 above diagonal, rows sum 1", not np.triu(r["att.0"], 1).any() and
              np.allclose(r["att.0"].sum(-1), 1, atol=1e-6))
        check("reference: loss ~ ln V, falls, pad grads 0", abs(r["loss"] - math.log(130)) < 0.05 and
              r["step_loss"][-1] < r["step_loss"][0] and not r["grad.wte"][130:].any() and
              not r["final.wte"][130:].any(), "loss %.4f steps %s" % (r["loss"], r["step_loss"]))
        # the hand-written ops agree with torch's fused ones (the --train path)
        m = GPT(*read_model(ns.out_model))
        x = torch.from_numpy(r["tokens"][0, :, :7]).long(); y = torch.from_numpy(r["tokens"][0, :, 1:]).long()
        l_manual = m(x, y).item(); m.fused = True
        m.flash = hasattr(F, "scaled_dot_product_attention")
        check("manual ops == fused torch ops", abs(m(x, y).item() - l_manual) < 1e-5)
        # --loss-mask: uncounted targets have loss 0, the loss is the counted ones' mean, and a
        # micro-batch with no counted target adds nothing to the step (A=3: the third is such)
        ns.loss_mask, ns.A = True, 3
        with contextlib.redirect_stdout(open(os.devnull, "w")):
            write_reference(ns)
        r = read_reference(ns.out_ref)
        mk, ls = r["mask"], r["losses"]
        check("reference --loss-mask: ignored targets", mk.shape == (3, 2, 7) and 0 < mk[0].sum() < 14 and
              not mk[2].any() and not ls[mk[0] == 0].any() and (ls[mk[0] == 1] > 0).all() and
              abs(float(r["loss"]) - ls[mk[0] == 1].mean()) < 1e-6 and np.isfinite(r["step_loss"]).all(),
              "%d + %d + %d targets count" % tuple(int(mk[i].sum()) for i in range(3)))
    failed = results.count(False)
    print("%d passed, %d failed" % (len(results) - failed, failed))
    return 1 if failed else 0

# ----------------------------------------------------------------------------------------------
# CLI

class Parser(argparse.ArgumentParser):
    def error(self, message):          # one line, exit 1 (argparse's default is usage + exit 2)
        print("error: %s (see --help)" % message, file=sys.stderr)
        sys.exit(1)

def main():
    p = Parser(description="PyTorch reference GPT-2 for train_gpt.c (see README.md)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--self-test", action="store_true", help="check the init RNG, file formats, model")
    mode.add_argument("--write-reference", action="store_true", help="write --out-model and --out-ref")
    mode.add_argument("--train", action="store_true", help="train and time steps (median_ms_per_step=)")
    p.add_argument("--model", help="d12 | dN | letter+integer pairs, e.g. L3H5C60T17V311 (default d12)")
    p.add_argument("--load", help="start from this model file instead of --model's init")
    p.add_argument("--seed", type=int, default=1337, help="init and token seed")
    p.add_argument("-B", type=int, default=4, help="batch size")
    p.add_argument("-T", type=int, default=64, help="sequence length (<= maxT)")
    p.add_argument("-A", type=int, default=1, help="micro-batches accumulated per step")
    p.add_argument("-K", type=int, default=2, help="--write-reference: optimizer steps")
    p.add_argument("--steps", type=int, default=20, help="--train: optimizer steps")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.95)
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--wd", type=float, default=0.1, help="weight decay (on the 'decay' params only)")
    p.add_argument("--clip", type=float, default=1.0, help="global grad-norm clip")
    p.add_argument("--warmup", type=int, default=1, help="linear warmup steps")
    p.add_argument("--final-frac", type=float, default=0.1, help="final lr as a fraction of --lr")
    p.add_argument("--loss-mask", action="store_true", help="--write-reference: targets that do not "
                   "count (loss_mask()), the tokens as one shard's stream")
    p.add_argument("--dropout", type=float, default=0.0, help="--write-reference: dropout probability "
                   "(train_gpt.c's -D and masks)")
    p.add_argument("--out-model", help="model file to write (initial params; --train: final)")
    p.add_argument("--out-ref", help="reference file to write")
    p.add_argument("--input", help="--train: token shard glob (default: random tokens)")
    p.add_argument("--overfit", action="store_true", help="--train: reuse one random batch")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--compile", action="store_true", help="torch.compile (torch >= 2.0)")
    p.add_argument("--flash", action="store_true", help="F.scaled_dot_product_attention (torch >= 2.0)")
    p.add_argument("--fused-adamw", action="store_true", help="AdamW(fused=True) (torch >= 2.0, cuda)")
    a = p.parse_args()
    if a.warmup < 0:
        p.error("--warmup must be >= 0")
    if not 0.0 <= a.dropout <= 0.99:
        p.error("--dropout must be in [0, 0.99]")
    try:
        if a.self_test:
            return self_test()
        if a.write_reference:
            if not a.out_model or not a.out_ref:
                raise UserError("--write-reference needs --out-model PATH and --out-ref PATH")
            write_reference(a)
        else:
            train(a)
    except UserError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
